"""The controlled path: every action is a run (:mod:`backfiller.actions.run`) of a frozen
specification (:mod:`backfiller.actions.spec`)."""

from backfiller.actions.run import RunOptions, RunResult, continue_run, execute
from backfiller.actions.runner import StepOutcome, StepResult
from backfiller.actions.spec import Action, RunSpec, Step, StepSource

__all__ = [
    "Action",
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
