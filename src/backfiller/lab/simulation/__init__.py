"""Safe gap simulation: the seed's ways to make a gap without damaging a main table.

* :func:`simulate_move_report` — move one partition report aside → ``missing_partition_report``;
* :func:`simulate_broken_manifest` — load a copy of a manifest without some fields in place of
  the real one → ``manifest_changed``, and every action that would use it is refused;
* :func:`simulate_failing_check` — make one check fail for one partition → ``check_failed``
  once the partition is recomputed; the old data stays visible.

None of them writes a Delta table, the ledger or a manifest: what they change lives in
``<state_dir>/simulations.json`` and ``<state_dir>/simulations/<sim_id>/``, and
:func:`undo_simulation` restores exactly. The core sees them only through the overlay that
:func:`with_simulations` gives a project; under it, while any is active, plans are dry runs.
"""

from typing import TYPE_CHECKING

from backfiller._lazy import lazy_getattr

if TYPE_CHECKING:
    from backfiller.lab.simulation.broken_manifest import (
        DROPPABLE_FIELDS,
        simulate_broken_manifest,
    )
    from backfiller.lab.simulation.failing_check import simulate_failing_check
    from backfiller.lab.simulation.move_report import simulate_move_report
    from backfiller.lab.simulation.overlay import simulation_overlay, with_simulations
    from backfiller.lab.simulation.registry import (
        SimulationKind,
        SimulationRecord,
        active_simulations,
        forced_failures,
        read_simulations,
    )
    from backfiller.lab.simulation.undo import undo_simulation

#: imported when first used: loading a project without simulations reads one path, no more
_EXPORTS = {
    "DROPPABLE_FIELDS": "backfiller.lab.simulation.broken_manifest",
    "simulate_broken_manifest": "backfiller.lab.simulation.broken_manifest",
    "simulate_failing_check": "backfiller.lab.simulation.failing_check",
    "simulate_move_report": "backfiller.lab.simulation.move_report",
    "simulation_overlay": "backfiller.lab.simulation.overlay",
    "with_simulations": "backfiller.lab.simulation.overlay",
    "SimulationKind": "backfiller.lab.simulation.registry",
    "SimulationRecord": "backfiller.lab.simulation.registry",
    "active_simulations": "backfiller.lab.simulation.registry",
    "forced_failures": "backfiller.lab.simulation.registry",
    "read_simulations": "backfiller.lab.simulation.registry",
    "undo_simulation": "backfiller.lab.simulation.undo",
}

__getattr__ = lazy_getattr(globals(), _EXPORTS)

__all__ = [
    "DROPPABLE_FIELDS",
    "SimulationKind",
    "SimulationRecord",
    "active_simulations",
    "forced_failures",
    "read_simulations",
    "simulate_broken_manifest",
    "simulate_failing_check",
    "simulate_move_report",
    "simulation_overlay",
    "undo_simulation",
    "with_simulations",
]
