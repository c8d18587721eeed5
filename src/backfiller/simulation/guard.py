"""While a simulation is active every plan is a dry run.

``plan --mode apply`` and ``apply`` are refused (exit 2, naming the active simulations) unless
the operator passes ``--allow-apply-during-simulation`` — in the library, inside
:func:`allow_apply_during_simulation`. A plan made while simulations are active says so in its
``reason`` (and whether applying it was allowed), so the plan file itself records it. Recovery
actions that are not plans (rerun, replay) are not refused: running one is how a failing-check
simulation is observed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from backfiller.errors import PreconditionError
from backfiller.simulation.registry import active_simulations

__all__ = [
    "MARKER",
    "allow_apply_during_simulation",
    "annotate_reason",
    "apply_allowed",
    "refuse_apply_during_simulation",
]

MARKER = "[made during simulation"
_ALLOWED: ContextVar[bool] = ContextVar("allow_apply_during_simulation", default=False)


@contextmanager
def allow_apply_during_simulation(allowed: bool = True) -> Iterator[None]:
    """Inside it, plans may be applied while simulations are active."""
    token = _ALLOWED.set(allowed)
    try:
        yield
    finally:
        _ALLOWED.reset(token)


def apply_allowed() -> bool:
    return _ALLOWED.get()


def active_ids(state_dir: Path) -> list[str]:
    return [r.simulation_id for r in active_simulations(state_dir)]


def refuse_apply_during_simulation(state_dir: Path, *, what: str) -> None:
    ids = active_ids(state_dir)
    if ids and not apply_allowed():
        raise PreconditionError(
            f"{what} refused: simulation(s) {', '.join(ids)} are active, and while a "
            "simulation is active every plan is a dry run",
            hint="make a dry-run plan (--mode dry-run); undo the simulation first "
            "('backfiller simulate undo SIM_ID'); or pass --allow-apply-during-simulation "
            "(it is recorded in the plan)",
        )


def annotate_reason(reason: str | None, ids: list[str], *, allowed: bool) -> str | None:
    """``reason`` with a note of the active simulations (once; a rebuilt plan keeps it)."""
    if not ids or (reason and MARKER in reason):
        return reason
    note = f"{MARKER}(s) {', '.join(ids)}"
    note += "; apply allowed by --allow-apply-during-simulation]" if allowed else "]"
    return f"{reason} {note}" if reason else note
