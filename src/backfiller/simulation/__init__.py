"""Safe gap simulation: the seed's ways to make a gap without damaging a main table.

* :func:`simulate_move_report` — move one partition report aside → ``missing_partition_report``;
* :func:`simulate_broken_manifest` — load a copy of a manifest without some fields in place of
  the real one → ``manifest_changed``, and every action that would use it is refused;
* :func:`simulate_failing_check` — make one check fail for one partition → ``check_failed``
  once the partition is recomputed; the old data stays visible.

None of them writes a Delta table, the ledger or a manifest: what they change lives in
``<state_dir>/simulations.json`` and ``<state_dir>/simulations/<sim_id>/``, and
:func:`undo_simulation` restores exactly. While any is active, plans are dry runs
(:mod:`backfiller.simulation.guard`).
"""

from backfiller.simulation.broken_manifest import DROPPABLE_FIELDS, simulate_broken_manifest
from backfiller.simulation.failing_check import simulate_failing_check
from backfiller.simulation.guard import (
    allow_apply_during_simulation,
    refuse_apply_during_simulation,
)
from backfiller.simulation.move_report import simulate_move_report
from backfiller.simulation.registry import (
    SimulationKind,
    SimulationRecord,
    active_simulations,
    forced_failures,
    read_simulations,
)
from backfiller.simulation.undo import undo_simulation

__all__ = [
    "DROPPABLE_FIELDS",
    "SimulationKind",
    "SimulationRecord",
    "active_simulations",
    "allow_apply_during_simulation",
    "forced_failures",
    "read_simulations",
    "refuse_apply_during_simulation",
    "simulate_broken_manifest",
    "simulate_failing_check",
    "simulate_move_report",
    "undo_simulation",
]
