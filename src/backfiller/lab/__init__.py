"""The lesson wing, above the core: safe gap simulations (:mod:`backfiller.lab.simulation`),
the lesson's walk-through (:mod:`backfiller.lab.lesson`), the demo (:mod:`backfiller.lab.demo`),
the recovery-strategy document (:mod:`backfiller.lab.strategy`) and the bundled example.

The core never imports this package (a test enforces it); what a simulation changes reaches the
core as an explicit :class:`~backfiller.overlay.Overlay` (:func:`with_simulations`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from backfiller._lazy import lazy_getattr

if TYPE_CHECKING:
    from backfiller.lab.example import example_source, lay_out_example
    from backfiller.lab.simulation import simulation_overlay, with_simulations

#: imported when first used (the example needs the actions; a command that only reads the
#: simulations should not pay for them)
_EXPORTS = {
    "example_source": "backfiller.lab.example",
    "lay_out_example": "backfiller.lab.example",
    "simulation_overlay": "backfiller.lab.simulation",
    "with_simulations": "backfiller.lab.simulation",
}


__getattr__ = lazy_getattr(globals(), _EXPORTS)


__all__ = ["example_source", "lay_out_example", "simulation_overlay", "with_simulations"]
