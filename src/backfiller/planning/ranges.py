"""Consecutive partitions of one asset with the same value, collapsed into one range: what
``status`` and ``gaps`` print by default (their size grows with the ranges, not the cells)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["KeyRange"]

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
