"""The partition bar: one segment per range of equal state; past the limit, equal buckets of
keys that never hide a gap behind materialized neighbours."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from backfiller.planning.gaps import PartitionState
from backfiller.planning.ranges import KeyRange
from backfiller.web.bars import segments

M, F, C = PartitionState.MATERIALIZED, PartitionState.FAILED_RUN, PartitionState.CHECK_FAILED


def _ranges(states: list[PartitionState]) -> tuple[list[KeyRange[PartitionState]], list[str]]:
    keys = [f"k{i:06d}" for i in range(len(states))]
    out: list[KeyRange[PartitionState]] = []
    start = 0
    for i in range(1, len(states) + 1):
        if i == len(states) or states[i] != states[start]:
            out.append(KeyRange("a", keys[start], keys[i - 1], i - start, states[start]))
            start = i
    return out, keys


def test_under_the_limit_a_segment_is_a_range() -> None:
    ranges, keys = _ranges([M, M, F, M, C, C])
    bar = segments(ranges, keys)
    assert [(s.first, s.last, s.count, s.state, s.mixed) for s in bar] == [
        ("k000000", "k000001", 2, "materialized", False),
        ("k000002", "k000002", 1, "failed_run", False),
        ("k000003", "k000003", 1, "materialized", False),
        ("k000004", "k000005", 2, "check_failed", False),
    ]


def test_past_the_limit_buckets_show_the_gap_they_hold() -> None:
    states = [M] * 1000
    states[10] = F  # one failed partition among 99 materialized in its bucket
    states[500:510] = [C] * 10
    ranges, keys = _ranges(states)
    bar = segments(ranges, keys, limit=4)
    assert [(s.first, s.last, s.state, s.mixed) for s in bar] == [
        ("k000000", "k000249", "failed_run", True),
        ("k000250", "k000499", "materialized", False),
        ("k000500", "k000749", "check_failed", True),
        ("k000750", "k000999", "materialized", False),
    ]
    assert bar[0].counts == {"materialized": 249, "failed_run": 1}


@given(
    st.lists(st.sampled_from([M, F, C]), min_size=1, max_size=300),
    st.integers(min_value=1, max_value=40),
)
def test_a_bar_covers_every_key_once_within_its_limit(
    states: list[PartitionState], limit: int
) -> None:
    ranges, keys = _ranges(states)
    bar = segments(ranges, keys, limit=limit)
    assert len(bar) <= max(limit, len(ranges) if len(ranges) <= limit else limit)
    assert sum(s.count for s in bar) == len(keys)
    assert bar[0].first == keys[0] and bar[-1].last == keys[-1]
    position = 0
    for s in bar:
        assert keys[position] == s.first
        position += s.count
        assert keys[position - 1] == s.last
        held = set(states[position - s.count : position])
        # a segment is materialized only when every partition in it is
        assert (s.state == "materialized") == (held == {M})
        assert s.mixed == (len(held) > 1)
