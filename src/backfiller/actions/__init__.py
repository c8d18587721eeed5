"""Recovery actions and the runner."""

from backfiller.actions.runner import RunResult, StepOutcome, StepResult, execute

__all__ = ["RunResult", "StepOutcome", "StepResult", "execute"]
