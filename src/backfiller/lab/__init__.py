"""The lesson wing, above the core: safe gap simulations (:mod:`backfiller.lab.simulation`),
the lesson's walk-through (:mod:`backfiller.lab.lesson`), the demo (:mod:`backfiller.lab.demo`),
the recovery-strategy document (:mod:`backfiller.lab.strategy`) and the bundled example.

The core never imports this package (a test enforces it); what a simulation changes reaches the
core as an explicit :class:`~backfiller.overlay.Overlay` (:func:`with_simulations`).
"""

from backfiller.lab.example import example_source, lay_out_example
from backfiller.lab.simulation import simulation_overlay, with_simulations

__all__ = ["example_source", "lay_out_example", "simulation_overlay", "with_simulations"]
