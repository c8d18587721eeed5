"""One root error; every subclass carries an exit code and the next step to take.

Exit codes (DESIGN.md): 0 success · 1 unexpected error · 2 bad input or usage (nothing was
written) · 3 checks failed (partitions held) · 4 conflict: stale plan, or a partition leased by
another operator.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    UNEXPECTED = 1
    BAD_INPUT = 2
    CHECKS_FAILED = 3
    CONFLICT = 4


class BackfillerError(Exception):
    """The root of every error backfiller raises on purpose."""

    exit_code: ExitCode = ExitCode.UNEXPECTED

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        asset: str | None = None,
        partition: str | None = None,
        run_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.asset = asset
        self.partition = partition
        self.run_id = run_id

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\nNext step: {self.hint}"
        return self.message


class BadInputError(BackfillerError):
    """Bad input or usage; raised before anything is written."""

    exit_code = ExitCode.BAD_INPUT


class InvalidPartitionKeyError(BadInputError):
    """A string is not a valid key of the partition scheme."""


class UnsupportedModeError(BadInputError):
    """A plan mode that backfiller does not know."""


class ConfigError(BadInputError):
    """backfiller.toml, the environment or the assets module is wrong."""


class GraphError(ConfigError):
    """The asset graph is invalid: a cycle, an unknown upstream, incompatible mappings."""


class ManifestError(BadInputError):
    """A manifest is missing, or has missing or wrong fields."""


class PlanFileError(BadInputError):
    """A plan file is missing, unreadable or does not match the plan schema."""


class PreconditionError(BadInputError):
    """A recovery action's precondition is missing (for example: not a backfill)."""


class ChecksFailedError(BackfillerError):
    """Blocking checks failed; the partitions stay held and the old data stays visible."""

    exit_code = ExitCode.CHECKS_FAILED


class ConflictError(BackfillerError):
    """The world changed since the plan, or another operator holds the partition."""

    exit_code = ExitCode.CONFLICT


class StalePlanError(ConflictError):
    """The state fingerprint of a plan no longer matches the live state."""


class IllegalTransitionError(BackfillerError):
    """A partition status change that the state machine does not allow (a bug, exit 1)."""


class MissingDependencyError(BackfillerError):
    """An optional dependency is not installed; the message carries the install line."""

    exit_code = ExitCode.BAD_INPUT


class RunFailedError(BackfillerError):
    """At least one partition of a run failed; a partial success never exits 0."""

    exit_code = ExitCode.UNEXPECTED


class DamagedStoreError(BackfillerError):
    """A table's log or data files are damaged: a commit file missing or truncated, a data
    file the log references gone. Nothing is written while it is so."""

    exit_code = ExitCode.BAD_INPUT


class WriteBlockedError(BackfillerError):
    """A file or the ledger could not be written (permission denied, disk full, a path that
    is not a folder). The run stops where it is, as an interruption: what it published is
    recorded, and ``backfiller resume RUN_ID`` finishes it once the cause is fixed."""

    exit_code = ExitCode.UNEXPECTED


def write_blocked(what: str, exc: OSError, *, run_id: str | None = None) -> WriteBlockedError:
    """The error for an ``OSError`` while writing ``what``, naming the cause in words."""
    cause = exc.strerror or str(exc) or type(exc).__name__
    where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
    then = f", then 'backfiller resume {run_id}' finishes the run" if run_id else ", then retry"
    return WriteBlockedError(
        f"Cannot write {what}: {cause}{where}",
        hint=f"fix the cause (permissions, free space, the path){then}",
    )
