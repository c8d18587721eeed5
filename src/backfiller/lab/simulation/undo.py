"""Undo a simulation: restore exactly what it changed, then mark it undone."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from backfiller.errors import BadInputError
from backfiller.lab.simulation.broken_manifest import undo_broken_manifest
from backfiller.lab.simulation.failing_check import undo_failing_check
from backfiller.lab.simulation.move_report import undo_move_report
from backfiller.lab.simulation.registry import (
    SimulationKind,
    SimulationRecord,
    find_simulation,
    mark_undone,
    simulation_folder,
)

if TYPE_CHECKING:
    from backfiller.project import Project

__all__ = ["undo_simulation"]


def undo_simulation(project: Project, simulation_id: str, *, operator: str) -> SimulationRecord:
    """Undo one active simulation; an unknown or already undone id is bad input (exit 2)."""
    state_dir = project.config.state_dir
    record = find_simulation(state_dir, simulation_id)
    if not record.active:
        raise BadInputError(
            f"Simulation {simulation_id} was already undone at {record.undone_at} "
            f"by {record.undone_by}: {record.undo_outcome}",
            hint="see 'backfiller simulate list'",
        )
    if record.kind is SimulationKind.MOVE_REPORT:
        outcome = undo_move_report(project, record)
    elif record.kind is SimulationKind.BROKEN_MANIFEST:
        outcome = undo_broken_manifest(project, record)
    else:
        outcome = undo_failing_check(project, record)
    done = mark_undone(state_dir, simulation_id, at=project.clock(), by=operator, outcome=outcome)
    project.reload_manifests()
    folder = simulation_folder(state_dir, simulation_id).parent
    with contextlib.suppress(OSError):  # only when empty: a kept original stays
        folder.rmdir()
    return done
