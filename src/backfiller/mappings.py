"""Partition mappings: which upstream partitions one downstream partition reads.

A mapping answers, for one downstream key, the upstream keys it *requires*, split in two: those
that are keys of the upstream's scheme (``upstream_keys``; they may not be materialized yet) and
those that are not — before the upstream's start, past its end, a value the upstream does not
list (``missing_upstream_keys``). A partition that requires a key that does not exist cannot be
computed: it is the gap ``missing_upstream``, never a silent read of less than it needs, unless
the mapping says ``allow_missing=True`` (Dagster's ``allow_nonexistent_upstream_partitions``).

- :class:`IdentityMapping` — the same key: between time schemes with the same windows, or
  between static and dynamic dimensions (a downstream value the upstream does not list is
  missing).
- :class:`TimeWindowMapping` — every upstream window that overlaps the downstream window moved
  by offsets counted in downstream windows (Dagster's ``start_offset``/``end_offset``):
  ``lookback=N`` is ``start_offset=-N``; ``start_offset=-1, end_offset=-1`` reads only the
  previous window (lag); between granularities it fans in (a month reads its days) and out (a
  day reads its month).
- :class:`MultiToSingleDimensionMapping` — between a multi-dimensional scheme and a scheme of
  one of its dimensions: a day's total reads every product line of that day (fan-in over the
  other dimensions), and each (day, product line) reads its day. The dimension's own keys are
  mapped by an inner mapping (identity by default, or a time-window mapping).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime

from backfiller.errors import GraphError
from backfiller.partitions import (
    Dimension,
    DynamicScheme,
    MultiScheme,
    PartitionScheme,
    StaticScheme,
    TimeWindowScheme,
)

__all__ = [
    "IdentityMapping",
    "MultiToSingleDimensionMapping",
    "PartitionMapping",
    "TimeWindowMapping",
]

#: how many downstream windows an offset may move the span (a mapping is walked per key)
MAX_OFFSET = 1000


class PartitionMapping(ABC):
    """Which upstream partitions one downstream partition reads."""

    @abstractmethod
    def upstream_keys(
        self, key: str, downstream: PartitionScheme, upstream: PartitionScheme
    ) -> list[str]:
        """The keys of ``upstream``'s scheme that ``key`` reads, in order."""

    def missing_upstream_keys(
        self, key: str, downstream: PartitionScheme, upstream: PartitionScheme
    ) -> list[str]:
        """The upstream keys ``key`` requires that are not keys of ``upstream``'s scheme, in
        order (empty when the mapping allows them to be missing)."""
        return []

    def required_keys(
        self, key: str, downstream: PartitionScheme, upstream: PartitionScheme
    ) -> tuple[list[str], list[str]]:
        """``(upstream_keys, missing_upstream_keys)`` in one pass."""
        return (
            self.upstream_keys(key, downstream, upstream),
            self.missing_upstream_keys(key, downstream, upstream),
        )

    @abstractmethod
    def downstream_keys(
        self, key: str, upstream: PartitionScheme, downstream: PartitionScheme
    ) -> list[str]:
        """The keys of ``downstream``'s scheme that read the upstream ``key``, in order."""

    @abstractmethod
    def incompatibility(self, upstream: PartitionScheme, downstream: PartitionScheme) -> str | None:
        """Why the two schemes cannot be mapped; ``None`` when they can."""


def _check_flag(name: str, value: object, mapping: str) -> None:
    if not isinstance(value, bool):
        raise GraphError(
            f"{mapping}: {name} must be True or False, not {value!r}",
            hint=f"pass {name}=True to read only the upstream keys that exist",
        )


def _listed(scheme: PartitionScheme) -> bool:
    return isinstance(scheme, StaticScheme | DynamicScheme)


class _SplitMapping(PartitionMapping):
    """A mapping that finds a key's required upstream keys in one pass, split into those that
    exist and those that do not (``_split``); ``allow_missing`` drops the second."""

    allow_missing: bool

    @abstractmethod
    def _split(
        self, key: str, downstream: PartitionScheme, upstream: PartitionScheme
    ) -> tuple[list[str], list[str]]: ...

    def upstream_keys(
        self, key: str, downstream: PartitionScheme, upstream: PartitionScheme
    ) -> list[str]:
        return self._split(key, downstream, upstream)[0]

    def missing_upstream_keys(
        self, key: str, downstream: PartitionScheme, upstream: PartitionScheme
    ) -> list[str]:
        return [] if self.allow_missing else self._split(key, downstream, upstream)[1]

    def required_keys(
        self, key: str, downstream: PartitionScheme, upstream: PartitionScheme
    ) -> tuple[list[str], list[str]]:
        present, missing = self._split(key, downstream, upstream)
        return present, [] if self.allow_missing else missing


@dataclass(frozen=True)
class IdentityMapping(_SplitMapping):
    """The downstream partition reads the upstream partition with the same key."""

    allow_missing: bool = False

    def __post_init__(self) -> None:
        _check_flag("allow_missing", self.allow_missing, "IdentityMapping")

    def _split(
        self, key: str, downstream: PartitionScheme, upstream: PartitionScheme
    ) -> tuple[list[str], list[str]]:
        if upstream == downstream or upstream.contains(key):
            return [key], []
        return [], [key]

    def downstream_keys(
        self, key: str, upstream: PartitionScheme, downstream: PartitionScheme
    ) -> list[str]:
        return [key] if downstream == upstream or downstream.contains(key) else []

    def incompatibility(self, upstream: PartitionScheme, downstream: PartitionScheme) -> str | None:
        if upstream.same_kind(downstream):
            return None
        both_dynamic = isinstance(upstream, DynamicScheme) and isinstance(downstream, DynamicScheme)
        if _listed(upstream) and _listed(downstream) and not both_dynamic:
            return None  # static values onto static or dynamic ones: a value may be missing
        return f"identity mapping between {upstream.name} and {downstream.name}"


@dataclass(frozen=True)
class TimeWindowMapping(_SplitMapping):
    """The downstream window, moved by offsets counted in downstream windows, reads every
    upstream window that overlaps it.

    The span of a downstream key runs from the start of the window ``start_offset`` windows
    away to the end of the window ``end_offset`` windows away: ``(0, 0)`` is the window itself,
    ``lookback=N`` (the same as ``start_offset=-N``) adds the N windows before it, and
    ``start_offset=-1, end_offset=-1`` (:meth:`lag`) is the previous window alone. Upstream
    windows of the span outside the upstream's bounds are missing (reported, or dropped with
    ``allow_missing=True``).
    """

    lookback: int = 0
    start_offset: int | None = None
    end_offset: int = 0
    allow_missing: bool = False

    def __post_init__(self) -> None:
        name = "TimeWindowMapping"
        for field_name in ("lookback", "start_offset", "end_offset"):
            value = getattr(self, field_name)
            if value is None and field_name == "start_offset":
                continue
            if not isinstance(value, int) or isinstance(value, bool):
                raise GraphError(
                    f"{name}: {field_name} must be a whole number of windows, not {value!r}",
                    hint="e.g. TimeWindowMapping(lookback=2) or "
                    "TimeWindowMapping(start_offset=-1, end_offset=-1)",
                )
            if abs(value) > MAX_OFFSET:
                raise GraphError(
                    f"{name}: {field_name} = {value} is out of range",
                    hint=f"use a number of windows from -{MAX_OFFSET} to {MAX_OFFSET}",
                )
        _check_flag("allow_missing", self.allow_missing, name)
        if self.lookback < 0:
            raise GraphError(
                "a time-window mapping's lookback must be 0 or more",
                hint="lookback=N reads the N windows before the partition too; for a lag, "
                "pass start_offset=-1, end_offset=-1",
            )
        if self.lookback and self.start_offset is not None:
            raise GraphError(
                f"{name}: lookback={self.lookback} and start_offset={self.start_offset} "
                "both set where the span starts",
                hint=f"pass one of them (lookback={self.lookback} is "
                f"start_offset={-self.lookback})",
            )
        if self.first_offset > self.end_offset:
            raise GraphError(
                f"{name}: start_offset {self.first_offset} is after end_offset "
                f"{self.end_offset}, so the span is empty",
                hint="pass start_offset <= end_offset (start_offset=-1, end_offset=-1 reads "
                "the previous window alone)",
            )

    @classmethod
    def lag(cls, windows: int = 1, *, allow_missing: bool = False) -> TimeWindowMapping:
        """The window ``windows`` windows before the partition, without the partition's own."""
        if not isinstance(windows, int) or isinstance(windows, bool) or windows < 1:
            raise GraphError(
                f"TimeWindowMapping.lag: windows must be 1 or more, not {windows!r}",
                hint="lag(1) reads the previous window alone",
            )
        return cls(start_offset=-windows, end_offset=-windows, allow_missing=allow_missing)

    @property
    def first_offset(self) -> int:
        """Where the span starts, in downstream windows from the partition's own."""
        return -self.lookback if self.start_offset is None else self.start_offset

    def span(self, key: str, downstream: TimeWindowScheme) -> tuple[datetime, datetime]:
        """The instants (UTC) ``key`` reads: ``[start, end)``."""
        start = downstream.window(key).start_utc
        first = downstream.shift(start, self.first_offset)
        last = downstream.shift(start, self.end_offset)
        return first, downstream.shift(last, 1)

    def _split(
        self, key: str, downstream: PartitionScheme, upstream: PartitionScheme
    ) -> tuple[list[str], list[str]]:
        down, up = _time(downstream), _time(upstream)
        present: list[str] = []
        missing: list[str] = []
        first, stop = self.span(key, down)
        for start, end in up.grid(first, stop):
            (present if up.holds(start, end) else missing).append(up.format_key(start))
        return present, missing

    def downstream_keys(
        self, key: str, upstream: PartitionScheme, downstream: PartitionScheme
    ) -> list[str]:
        up, down = _time(upstream), _time(downstream)
        window = up.window(key)
        overlapping = list(down.grid(window.start_utc, window.end_utc))
        if not overlapping:
            return []
        # a downstream key's span is its windows ``first_offset`` .. ``end_offset`` away: it
        # overlaps the upstream window when one of those is among ``overlapping``
        first = down.shift(overlapping[0][0], -self.end_offset)
        stop = down.shift(overlapping[-1][0], -self.first_offset)
        return [
            down.format_key(start)
            for start, end in down.grid(first, down.shift(stop, 1))
            if down.holds(start, end)
        ]

    def incompatibility(self, upstream: PartitionScheme, downstream: PartitionScheme) -> str | None:
        if isinstance(upstream, TimeWindowScheme) and isinstance(downstream, TimeWindowScheme):
            return None
        return f"time-window mapping between {upstream.name} and {downstream.name}"


def _time(scheme: PartitionScheme) -> TimeWindowScheme:
    if not isinstance(scheme, TimeWindowScheme):  # the graph refuses such a mapping first
        raise GraphError(f"a time-window mapping needs time windows, not {scheme.name}")
    return scheme


@dataclass(frozen=True)
class MultiToSingleDimensionMapping(_SplitMapping):
    """Between a multi-dimensional scheme and a scheme with one of its dimensions, either way.

    Upstream multi-dimensional, downstream single: a downstream key reads every upstream cell
    whose ``dimension`` value is one of the keys ``mapping`` maps it to, with every value of
    the other dimensions (all product lines of a day feed the day's total). Upstream single,
    downstream multi-dimensional: a cell reads what ``mapping`` maps its ``dimension`` value
    to (each product line of a day reads the day). A required key that is not one of the
    upstream's keys (a day before the upstream's start, a value it does not list) is missing:
    the gap ``missing_upstream``, unless ``allow_missing``. So is a fan-in whose other
    dimensions include one without any value yet (a dynamic one before its first value is
    added): the day has no cell to read, which is not the same as nothing to read.

    ``dimension`` names the multi-dimensional scheme's dimension; by default the one whose
    scheme is of the single scheme's kind (the time dimension for a time scheme)."""

    dimension: str | None = None
    mapping: PartitionMapping = IdentityMapping()
    allow_missing: bool = False

    def __post_init__(self) -> None:
        name = "MultiToSingleDimensionMapping"
        _check_flag("allow_missing", self.allow_missing, name)
        if self.dimension is not None and not isinstance(self.dimension, str):
            raise GraphError(
                f"{name}: dimension must be a dimension's name, not {self.dimension!r}",
                hint="e.g. MultiToSingleDimensionMapping(dimension='date')",
            )
        if not isinstance(self.mapping, PartitionMapping) or isinstance(
            self.mapping, MultiToSingleDimensionMapping
        ):
            raise GraphError(
                f"{name}: mapping must map one dimension's keys, not {self.mapping!r}",
                hint="pass IdentityMapping() or TimeWindowMapping(...)",
            )

    def _find(self, multi: MultiScheme, single: PartitionScheme) -> Dimension | str:
        """The dimension of ``multi`` that ``single`` maps onto, or why there is none."""
        if self.dimension is not None:
            found = [d for d in multi.dimensions if d.name == self.dimension]
            if not found:
                return f"{multi.name} has no dimension {self.dimension!r}"
            return found[0]
        if isinstance(single, TimeWindowScheme):
            timed = multi.time_dimension
            return timed if timed is not None else f"{multi.name} has no time dimension"
        same = [d for d in multi.dimensions if d.scheme.same_kind(single)]
        if len(same) != 1:
            return f"name the dimension of {multi.name} that {single.name} maps onto"
        return same[0]

    def _dimension(self, multi: MultiScheme, single: PartitionScheme) -> Dimension:
        found = self._find(multi, single)
        if isinstance(found, str):  # the graph refuses such a mapping first
            raise GraphError(found, hint="pass MultiToSingleDimensionMapping(dimension=NAME)")
        return found

    @staticmethod
    def _cells(multi: MultiScheme, dim: Dimension, values: list[str]) -> list[str]:
        """Every cell of ``multi`` whose ``dim`` value is one of ``values``."""
        if not values:
            return []
        return multi.combine(
            [values if d.name == dim.name else d.scheme.keys() for d in multi.dimensions]
        )

    @staticmethod
    def _unlisted(multi: MultiScheme, dim: Dimension, values: list[str]) -> list[str]:
        """What a fan-in over ``values`` of ``dim`` requires when another dimension has no
        value yet (a dynamic one before its first ``partitions add``): there is no cell to
        read, which is missing, not nothing to read — one entry per value, naming the
        dimensions that have none (``2026-04-17|(no product_line value yet)``)."""
        others = {
            d.name: "*" if d.scheme.keys() else f"(no {d.name} value yet)"
            for d in multi.dimensions
            if d.name != dim.name
        }
        return [
            multi.spell([others.get(d.name, value) for d in multi.dimensions]) for value in values
        ]

    def _split(
        self, key: str, downstream: PartitionScheme, upstream: PartitionScheme
    ) -> tuple[list[str], list[str]]:
        if isinstance(upstream, MultiScheme):  # fan-in over the other dimensions
            dim = self._dimension(upstream, downstream)
            present, missing = self.mapping.required_keys(key, downstream, dim.scheme)
            if any(d.name != dim.name and not d.scheme.keys() for d in upstream.dimensions):
                return [], self._unlisted(upstream, dim, present + missing)
            return self._cells(upstream, dim, present), self._cells(upstream, dim, missing)
        assert isinstance(downstream, MultiScheme)
        dim = self._dimension(downstream, upstream)
        value = downstream.values_of(key)[dim.name]
        return self.mapping.required_keys(value, dim.scheme, upstream)

    def downstream_keys(
        self, key: str, upstream: PartitionScheme, downstream: PartitionScheme
    ) -> list[str]:
        if isinstance(upstream, MultiScheme):
            dim = self._dimension(upstream, downstream)
            value = upstream.values_of(key)[dim.name]
            return self.mapping.downstream_keys(value, dim.scheme, downstream)
        assert isinstance(downstream, MultiScheme)
        dim = self._dimension(downstream, upstream)
        values = self.mapping.downstream_keys(key, upstream, dim.scheme)
        return self._cells(downstream, dim, values)

    def incompatibility(self, upstream: PartitionScheme, downstream: PartitionScheme) -> str | None:
        multi_up, multi_down = (
            isinstance(upstream, MultiScheme),
            isinstance(downstream, MultiScheme),
        )
        if multi_up == multi_down:
            return (
                f"a multi-to-single-dimension mapping between {upstream.name} and "
                f"{downstream.name}: exactly one of them must be multi-dimensional"
            )
        if isinstance(upstream, MultiScheme):
            found = self._find(upstream, downstream)
            if isinstance(found, str):
                return found
            return self.mapping.incompatibility(found.scheme, downstream)
        assert isinstance(downstream, MultiScheme)
        found = self._find(downstream, upstream)
        if isinstance(found, str):
            return found
        return self.mapping.incompatibility(upstream, found.scheme)
