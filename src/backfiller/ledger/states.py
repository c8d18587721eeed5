"""Partition states and the named verbs that move between them.

A status never changes by assignment: each verb has a fixed set of from-states and one
to-state, and an illegal move raises :class:`IllegalTransitionError`.
"""

from __future__ import annotations

from enum import Enum

from backfiller.errors import IllegalTransitionError

__all__ = ["PartitionStatus", "RunState", "Verb"]


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
    ADOPT = "adopt"

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
    Verb.ADOPT: (frozenset({None, PartitionStatus.STALE}), PartitionStatus.MATERIALIZED),
}


class RunState(Enum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CHECKS_FAILED = "checks_failed"

    @property
    def finished(self) -> bool:
        return self is not RunState.RUNNING
