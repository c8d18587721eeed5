"""The partition state machine: every verb from every state, legal or refused."""

from __future__ import annotations

import itertools

import pytest

from backfiller.errors import ExitCode, IllegalTransitionError
from backfiller.ledger.states import AttemptStatus, PartitionStatus, RunState, RunVerb, Verb

S = PartitionStatus
FROM_STATES: list[PartitionStatus | None] = [None, *PartitionStatus]

# The whole specification: verb -> (allowed from-states, to-state).
LEGAL: dict[Verb, tuple[set[PartitionStatus | None], PartitionStatus]] = {
    Verb.START: (
        {None, S.MATERIALIZED, S.FAILED, S.CHECK_FAILED, S.STALE, S.MATERIALIZING},
        S.MATERIALIZING,
    ),
    Verb.PUBLISH: ({S.MATERIALIZING}, S.MATERIALIZED),
    Verb.FAIL: ({S.MATERIALIZING}, S.FAILED),
    Verb.FAIL_CHECKS: ({S.MATERIALIZING}, S.CHECK_FAILED),
    Verb.MARK_STALE: ({S.MATERIALIZED, S.STALE}, S.STALE),
}

MATRIX = list(itertools.product(list(Verb), FROM_STATES))


def _label(value: object) -> str:
    if isinstance(value, Verb | PartitionStatus):
        return value.value
    return "none"


def test_the_specification_covers_every_verb_and_state() -> None:
    assert set(LEGAL) == set(Verb)
    assert {v.value for v in Verb} == {
        "start",
        "publish",
        "fail",
        "fail_checks",
        "mark_stale",
    }
    assert {s.value for s in PartitionStatus} == {
        "materializing",
        "materialized",
        "failed",
        "check_failed",
        "stale",
    }
    assert len(MATRIX) == 5 * 6


@pytest.mark.parametrize(("verb", "current"), MATRIX, ids=lambda v: _label(v))
def test_every_verb_from_every_state(verb: Verb, current: PartitionStatus | None) -> None:
    allowed, target = LEGAL[verb]
    if current in allowed:
        assert verb.apply(current) is target
        assert verb.to_status is target
        return
    with pytest.raises(IllegalTransitionError) as info:
        verb.apply(current)
    message = str(info.value)
    assert verb.value in message
    shown = current.value if current is not None else "no record"
    assert repr(shown) in message
    assert message.startswith(f"Cannot {verb.value} a partition in state {shown!r}")
    # the allowed states are named, in sorted order
    names = sorted(s.value if s is not None else "no record" for s in allowed)
    assert f"(allowed from: {', '.join(names)})" in message


def test_illegal_counts() -> None:
    legal = sum(1 for verb, current in MATRIX if current in LEGAL[verb][0])
    assert legal == 6 + 1 + 1 + 1 + 2
    illegal = 0
    for verb, current in MATRIX:
        try:
            verb.apply(current)
        except IllegalTransitionError:
            illegal += 1
    assert illegal == len(MATRIX) - legal == 19


def test_illegal_transition_is_a_bug_exit_code() -> None:
    with pytest.raises(IllegalTransitionError) as info:
        Verb.PUBLISH.apply(None)
    assert info.value.exit_code is ExitCode.UNEXPECTED
    assert "Cannot publish a partition in state 'no record'" in str(info.value)
    assert "allowed from: materializing" in str(info.value)


def test_crashed_attempt_can_be_restarted() -> None:
    assert Verb.START.apply(PartitionStatus.MATERIALIZING) is PartitionStatus.MATERIALIZING


@pytest.mark.parametrize(
    ("state", "finished"),
    [
        (RunState.RUNNING, False),
        (RunState.EVIDENCE_PENDING, False),
        (RunState.SUCCEEDED, True),
        (RunState.FAILED, True),
        (RunState.CHECKS_FAILED, True),
    ],
)
def test_run_state_finished(state: RunState, finished: bool) -> None:
    assert state.finished is finished


def test_run_states() -> None:
    assert [s.value for s in RunState] == [
        "running",
        "evidence_pending",
        "succeeded",
        "failed",
        "checks_failed",
    ]


R = RunState
RUN_LEGAL: dict[RunVerb, tuple[set[RunState | None], RunState | None]] = {
    RunVerb.BEGIN: ({None}, R.RUNNING),
    RunVerb.SETTLE: ({R.RUNNING, R.EVIDENCE_PENDING}, R.EVIDENCE_PENDING),
    RunVerb.SEAL: ({R.EVIDENCE_PENDING}, None),  # to the outcome recorded when it settled
    RunVerb.REOPEN: ({R.FAILED, R.CHECKS_FAILED}, R.RUNNING),
}


@pytest.mark.parametrize(
    ("verb", "current"),
    list(itertools.product(list(RunVerb), [None, *RunState])),
    ids=lambda v: v.value if isinstance(v, RunVerb | RunState) else "none",
)
def test_every_run_verb_from_every_run_state(verb: RunVerb, current: RunState | None) -> None:
    allowed, target = RUN_LEGAL[verb]
    if current in allowed:
        assert verb.apply(current) is target
        return
    with pytest.raises(IllegalTransitionError, match=f"Cannot {verb.value} a run in state"):
        verb.apply(current)


def test_a_succeeded_run_is_never_reopened() -> None:
    with pytest.raises(IllegalTransitionError, match="allowed from: checks_failed, failed"):
        RunVerb.REOPEN.apply(RunState.SUCCEEDED)


def test_attempt_states_that_need_no_more_work() -> None:
    assert {s for s in AttemptStatus if s.done} == {
        AttemptStatus.SUCCEEDED,
        AttemptStatus.REPORT_REISSUED,
    }
