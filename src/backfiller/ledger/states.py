"""Partition states and the named verbs that move between them.

A status never changes by assignment: each verb has a fixed set of from-states and one
to-state, and an illegal move raises :class:`IllegalTransitionError`.
"""

from __future__ import annotations

from enum import Enum

from backfiller.errors import IllegalTransitionError

__all__ = ["AttemptStatus", "DimensionVerb", "PartitionStatus", "RunState", "RunVerb", "Verb"]


class PartitionStatus(Enum):
    MATERIALIZING = "materializing"
    MATERIALIZED = "materialized"
    FAILED = "failed"
    CHECK_FAILED = "check_failed"
    STALE = "stale"


class Verb(Enum):
    START = "start"
    PUBLISH = "publish"
    FAIL = "fail"
    FAIL_CHECKS = "fail_checks"
    MARK_STALE = "mark_stale"

    @property
    def to_status(self) -> PartitionStatus:
        return _TRANSITIONS[self][1]

    def apply(self, current: PartitionStatus | None) -> PartitionStatus:
        """The status after this verb, or raise if the move is illegal from ``current``."""
        allowed, target = _TRANSITIONS[self]
        if current not in allowed:
            shown = current.value if current else "no record"
            names = sorted(s.value if s else "no record" for s in allowed)
            raise IllegalTransitionError(
                f"Cannot {self.value} a partition in state {shown!r} "
                f"(allowed from: {', '.join(names)})"
            )
        return target


_ANY_SETTLED: frozenset[PartitionStatus | None] = frozenset(
    {
        None,
        PartitionStatus.MATERIALIZED,
        PartitionStatus.FAILED,
        PartitionStatus.CHECK_FAILED,
        PartitionStatus.STALE,
        # a crashed attempt leaves MATERIALIZING behind; the next lease holder restarts it
        PartitionStatus.MATERIALIZING,
    }
)

_TRANSITIONS: dict[Verb, tuple[frozenset[PartitionStatus | None], PartitionStatus]] = {
    Verb.START: (_ANY_SETTLED, PartitionStatus.MATERIALIZING),
    Verb.PUBLISH: (frozenset({PartitionStatus.MATERIALIZING}), PartitionStatus.MATERIALIZED),
    Verb.FAIL: (frozenset({PartitionStatus.MATERIALIZING}), PartitionStatus.FAILED),
    Verb.FAIL_CHECKS: (frozenset({PartitionStatus.MATERIALIZING}), PartitionStatus.CHECK_FAILED),
    Verb.MARK_STALE: (
        frozenset({PartitionStatus.MATERIALIZED, PartitionStatus.STALE}),
        PartitionStatus.STALE,
    ),
}


class DimensionVerb(Enum):
    """What happened to a value of a dynamic partition dimension."""

    ADD = "add"
    REMOVE = "remove"


class AttemptStatus(Enum):
    """How one attempt at one (asset, partition) of a run ended (``running``: not yet, or
    interrupted; ``queued``: a retry decided to make it, recorded with the run's reopening,
    so that a retry killed before it reached the step is finished by ``resume``)."""

    QUEUED = "queued"  # a retry will make this attempt: decided, not started
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CHECK_FAILED = "check_failed"
    REPORT_REISSUED = "report_reissued"  # nothing published: the partition report written again

    @property
    def done(self) -> bool:
        """The attempt's step needs no more work in its run."""
        return self in {AttemptStatus.SUCCEEDED, AttemptStatus.REPORT_REISSUED}


class RunState(Enum):
    """A run's state. Its steps run while ``running``; ``evidence_pending`` means every step
    is settled (the outcome is recorded) but the evidence is not written yet — a run is not
    finished until its evidence is."""

    RUNNING = "running"
    EVIDENCE_PENDING = "evidence_pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CHECKS_FAILED = "checks_failed"

    @property
    def finished(self) -> bool:
        return self in _OUTCOMES


_OUTCOMES = frozenset({RunState.SUCCEEDED, RunState.FAILED, RunState.CHECKS_FAILED})


class RunVerb(Enum):
    """The named moves of a run: ``begin`` → ``settle`` (steps done, outcome known) → ``seal``
    (evidence written: the outcome becomes the state); ``reopen`` lets ``retry`` continue a
    run that failed — never one that succeeded."""

    BEGIN = "begin"
    SETTLE = "settle"
    SEAL = "seal"
    REOPEN = "reopen"

    def apply(self, current: RunState | None) -> RunState | None:
        """Check the move from ``current``; return the fixed target state (``None`` for
        ``seal``, whose target is the outcome recorded when the run settled)."""
        allowed, target = _RUN_TRANSITIONS[self]
        if current not in allowed:
            shown = current.value if current else "no run"
            names = sorted(s.value if s else "no run" for s in allowed)
            raise IllegalTransitionError(
                f"Cannot {self.value} a run in state {shown!r} (allowed from: {', '.join(names)})"
            )
        return target


_RUN_TRANSITIONS: dict[RunVerb, tuple[frozenset[RunState | None], RunState | None]] = {
    RunVerb.BEGIN: (frozenset({None}), RunState.RUNNING),
    # settling again after a crash between settle and seal is the same settle
    RunVerb.SETTLE: (
        frozenset({RunState.RUNNING, RunState.EVIDENCE_PENDING}),
        RunState.EVIDENCE_PENDING,
    ),
    RunVerb.SEAL: (frozenset({RunState.EVIDENCE_PENDING}), None),
    RunVerb.REOPEN: (frozenset({RunState.FAILED, RunState.CHECKS_FAILED}), RunState.RUNNING),
}


class Severity(Enum):
    """How much a failing check matters."""

    ERROR = "error"  # blocking: the partition is not published
    WARN = "warn"  # reported, never blocks


class CheckStatus(Enum):
    """How a check ended on one partition."""

    PASSED = "passed"
    FAILED = "failed"
