"""Consecutive partitions of one asset with the same value, collapsed into one range: what
``status`` and ``gaps`` print by default (their size grows with the ranges, not the cells)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["KeyRange", "key_ranges", "runs"]

T = TypeVar("T")


@dataclass(frozen=True)
class KeyRange(Generic[T]):
    """``count`` consecutive partitions ``first`` .. ``last`` of ``asset`` sharing ``value``."""

    asset: str
    first: str
    last: str
    count: int
    value: T

    def span(self) -> str:
        if self.count == 1:
            return f"{self.first} (1 partition)"
        return f"{self.first} .. {self.last} ({self.count} partitions)"


def runs(values: pa.Array | pa.ChunkedArray) -> list[tuple[int, int, object]]:
    """``(first index, last index, value)`` of each run of equal consecutive values (null
    is a value of its own)."""
    n = len(values)
    if n == 0:
        return []
    text = pc.fill_null(pc.cast(values, pa.string()), "\x00null")
    changed = pc.not_equal(text.slice(1), text.slice(0, n - 1))
    starts = [0] + [i + 1 for i in pc.indices_nonzero(changed).to_pylist()]
    ends = [s - 1 for s in starts[1:]] + [n - 1]
    firsts = pc.take(values, pa.array(starts, pa.int64())).to_pylist()
    return list(zip(starts, ends, firsts, strict=True))


def key_ranges(asset: str, keys: Sequence[str], values: pa.Array) -> list[KeyRange[object]]:
    """The runs of ``values`` (one per key of ``keys``) as ranges of ``asset``."""
    return [KeyRange(asset, keys[a], keys[b], b - a + 1, v) for a, b, v in runs(values)]
