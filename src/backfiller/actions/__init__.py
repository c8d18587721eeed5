"""The controlled path: every action is a run (:mod:`backfiller.actions.run`) of a frozen
specification (:mod:`backfiller.actions.spec`).

The names below are imported on first use: a module that needs only a light part of the
package (``backfiller.actions.faults``) does not import the runner, and so no import cycle
runs through the evidence writer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from backfiller._lazy import lazy_getattr

if TYPE_CHECKING:
    from backfiller.actions.run import RunOptions, RunResult, continue_run, execute
    from backfiller.actions.runner import GroupLimits, StepOutcome, StepResult
    from backfiller.actions.spec import Action, RunSpec, Step, StepSource

_EXPORTS = {
    "Action": "backfiller.actions.spec",
    "GroupLimits": "backfiller.actions.runner",
    "RunOptions": "backfiller.actions.run",
    "RunResult": "backfiller.actions.run",
    "RunSpec": "backfiller.actions.spec",
    "Step": "backfiller.actions.spec",
    "StepOutcome": "backfiller.actions.runner",
    "StepResult": "backfiller.actions.runner",
    "StepSource": "backfiller.actions.spec",
    "continue_run": "backfiller.actions.run",
    "execute": "backfiller.actions.run",
}
__getattr__ = lazy_getattr(globals(), _EXPORTS)

__all__ = [
    "Action",
    "GroupLimits",
    "RunOptions",
    "RunResult",
    "RunSpec",
    "Step",
    "StepOutcome",
    "StepResult",
    "StepSource",
    "continue_run",
    "execute",
]
