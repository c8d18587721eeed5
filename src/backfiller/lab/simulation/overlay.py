"""The core's view of the active simulations: one :class:`~backfiller.overlay.Overlay`, built
from the lab's record of simulations, given to the project explicitly."""

from __future__ import annotations

from backfiller.lab.simulation.files import simulations_path
from backfiller.overlay import Overlay
from backfiller.project import Project

__all__ = ["simulation_overlay", "with_simulations"]


def simulation_overlay(project: Project, *, apply_allowed: bool = False) -> Overlay:
    """What the active simulations of ``project`` change for the core (an empty overlay when
    there is none). ``apply_allowed``: plans may be applied all the same (recorded)."""
    state_dir = project.config.state_dir
    if not simulations_path(state_dir).exists():  # none was ever made: nothing to read
        return Overlay(apply_allowed=apply_allowed)
    from backfiller.lab.simulation.registry import (
        active_simulations,
        forced_failures,
        manifest_overrides,
    )

    return Overlay(
        forced_check_failures=forced_failures(state_dir),
        manifest_stand_ins=manifest_overrides(state_dir, project.root),
        simulations=tuple(r.simulation_id for r in active_simulations(state_dir)),
        apply_allowed=apply_allowed,
    )


def with_simulations(project: Project, *, apply_allowed: bool = False) -> Project:
    """``project`` (same store) as the active simulations make the core see it: read the
    record again after a simulation starts or is undone."""
    return project.with_overlay(simulation_overlay(project, apply_allowed=apply_allowed))
