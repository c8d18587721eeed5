"""A partition bar: an asset's state over the window, drawn from state ranges.

The bar has one segment per range of equal state, so its size grows with the number of state
changes, not with the partitions. A window with more changes than :data:`MAX_SEGMENTS` is cut
into that many equal buckets of keys first: a bucket shows the state most of its gap partitions
are in (a gap is never hidden by materialized neighbours) and says it is mixed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from backfiller.planning.gaps import PartitionState
from backfiller.planning.ranges import KeyRange

__all__ = ["MAX_SEGMENTS", "Segment", "segments"]

MAX_SEGMENTS = 240  # a bar is some 800 px wide: at least 3 px a segment
MATERIALIZED = PartitionState.MATERIALIZED.value


@dataclass
class Segment:
    """``count`` partitions ``first`` .. ``last``; ``state`` is theirs (or, when ``mixed``,
    the most common gap state among them); ``counts``: partitions per state when mixed."""

    first: str
    last: str
    count: int
    state: str
    mixed: bool = False
    counts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "first": self.first,
            "last": self.last,
            "count": self.count,
            "state": self.state,
        }
        if self.mixed:
            out["mixed"] = True
            out["counts"] = dict(sorted(self.counts.items()))
        return out


def segments(
    ranges: Sequence[KeyRange[PartitionState]], keys: Sequence[str], limit: int = MAX_SEGMENTS
) -> list[Segment]:
    """The bar of one asset's ``ranges`` (consecutive, covering ``keys`` in order)."""
    if len(ranges) <= limit:
        return [Segment(r.first, r.last, r.count, r.value.value) for r in ranges]
    width = -(-len(keys) // limit)  # keys per bucket, rounded up
    buckets: list[Segment] = []
    pos = 0  # index of the first key of the current range
    current: dict[str, int] = {}
    start = 0
    for r in ranges:
        left, state = r.count, r.value.value
        while left:
            room = start + width - pos
            take = min(room, left)
            current[state] = current.get(state, 0) + take
            pos += take
            left -= take
            if pos == start + width or pos == len(keys):
                buckets.append(_bucket(keys, start, pos - 1, current))
                start, current = pos, {}
    if current:
        buckets.append(_bucket(keys, start, pos - 1, current))
    return _merge(buckets)


def _bucket(keys: Sequence[str], first: int, last: int, counts: dict[str, int]) -> Segment:
    gaps = {s: n for s, n in counts.items() if s != MATERIALIZED}
    state = max(sorted(gaps), key=lambda s: gaps[s]) if gaps else MATERIALIZED
    return Segment(keys[first], keys[last], last - first + 1, state, len(counts) > 1, counts)


def _merge(buckets: list[Segment]) -> list[Segment]:
    """Neighbouring buckets wholly in one state become one segment."""
    out: list[Segment] = []
    for b in buckets:
        prev = out[-1] if out else None
        if prev is not None and not prev.mixed and not b.mixed and prev.state == b.state:
            prev.last = b.last
            prev.count += b.count
            prev.counts = {}
        else:
            out.append(b)
    return out
