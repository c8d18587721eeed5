"""Partition schemes, keys and windows. Pure: no I/O, no clock of its own.

A time-window key maps to a half-open window ``[start, end)`` in the scheme's time zone. The
seed's inclusive ``window_end`` (``2026-04-17T23:59:59.999999+00:00``) is only a rendering of the
half-open end (:meth:`Window.inclusive_end`).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import Enum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from backfiller.errors import ConfigError, InvalidPartitionKeyError

__all__ = [
    "DynamicScheme",
    "Granularity",
    "PartitionScheme",
    "StaticScheme",
    "TimeWindowScheme",
    "Window",
    "scheme_from_config",
]

_ONE_MICROSECOND = timedelta(microseconds=1)
_STATIC_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class Window:
    """A half-open time window ``[start, end)``; both ends are time-zone aware.

    Comparisons go through UTC: two wall-clock times in the same zone compare by their wall
    time in Python, which is wrong across a DST fall-back.
    """

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("window ends must be time-zone aware")
        if not self.start_utc < self.end_utc:
            raise ValueError(f"empty window: {self.start.isoformat()} >= {self.end.isoformat()}")

    @property
    def start_utc(self) -> datetime:
        return self.start.astimezone(UTC)

    @property
    def end_utc(self) -> datetime:
        return self.end.astimezone(UTC)

    def contains(self, moment: datetime) -> bool:
        return self.start_utc <= moment.astimezone(UTC) < self.end_utc

    @property
    def inclusive_end(self) -> datetime:
        """The last representable microsecond of the window: the seed's ``window_end``."""
        return (self.end_utc - _ONE_MICROSECOND).astimezone(self.end.tzinfo)

    def render(self) -> tuple[str, str]:
        """``(window_start, window_end)`` as the seed writes them (inclusive end)."""
        return self.start.isoformat(), self.inclusive_end.isoformat()


class Granularity(Enum):
    HOURLY = "hourly"
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"

    @property
    def key_format(self) -> str:
        return _KEY_FORMATS[self]


_KEY_FORMATS = {
    Granularity.HOURLY: "YYYY-MM-DDTHH:00 (with the UTC offset, e.g. +01:00, outside UTC)",
    Granularity.DAILY: "YYYY-MM-DD",
    Granularity.WEEKLY: "YYYY-MM-DD (the first day of the week)",
    Granularity.MONTHLY: "YYYY-MM",
}


class PartitionScheme(ABC):
    """How the keys of an asset are made and what each one means."""

    @property
    @abstractmethod
    def name(self) -> str:
        """A short description, e.g. ``daily from 2026-03-01 (UTC)``."""

    @property
    @abstractmethod
    def key_format(self) -> str:
        """The expected format, for error messages."""

    @abstractmethod
    def parse(self, key: str, *, now: datetime | None = None) -> str:
        """Return ``key`` if it is a valid key of this scheme, else raise.

        With ``now``, a time window that is not complete yet is refused too.
        """

    @abstractmethod
    def window(self, key: str) -> Window | None:
        """The time window of ``key``; ``None`` for static keys."""

    @abstractmethod
    def keys(self, *, now: datetime | None = None) -> list[str]:
        """All keys: for time windows, from the start to the last complete one as of ``now``."""

    @abstractmethod
    def key_range(self, first: str, last: str) -> list[str]:
        """The keys from ``first`` to ``last``, both included, in order."""

    def same_kind(self, other: PartitionScheme) -> bool:
        """Whether a partition mapping between the two schemes can be identity."""
        return self == other


def _check_characters(key: object, expected: str) -> str:
    if not isinstance(key, str) or not key:
        raise InvalidPartitionKeyError(
            f"Invalid partition key {key!r}: expected {expected}",
            hint=f"pass a key in the format {expected}",
        )
    bad = set(key) & set("/\\'\";`*?%$ \t\r\n\x00") or ({".."} if ".." in key else set())
    if bad:
        raise InvalidPartitionKeyError(
            f"Invalid partition key {key!r}: it contains {''.join(sorted(bad))!r}, "
            f"which no partition key may contain; expected {expected}",
            hint=f"pass a key in the format {expected}",
        )
    return key


@dataclass(frozen=True)
class TimeWindowScheme(PartitionScheme):
    """Hourly, daily (the default), weekly or monthly windows from a start, in a time zone."""

    granularity: Granularity = Granularity.DAILY
    start: datetime = datetime(1970, 1, 1, tzinfo=UTC)
    end: datetime | None = None
    timezone: str = "UTC"
    week_starts_on: int = 0  # Monday

    def __post_init__(self) -> None:
        try:
            zone = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigError(
                f"Unknown time zone {self.timezone!r}",
                hint="use an IANA name such as 'UTC' or 'Europe/Berlin'",
            ) from exc
        start = self.start if self.start.tzinfo else self.start.replace(tzinfo=zone)
        object.__setattr__(self, "start", self._floor(start))
        if self.end is not None:
            end = self.end if self.end.tzinfo else self.end.replace(tzinfo=zone)
            object.__setattr__(self, "end", end.astimezone(UTC))
        if not 0 <= self.week_starts_on <= 6:
            raise ConfigError("week_starts_on must be 0 (Monday) to 6 (Sunday)")

    # -- naming -------------------------------------------------------------------------
    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def name(self) -> str:
        return f"{self.granularity.value} from {self.format_key(self.start)} ({self.timezone})"

    @property
    def key_format(self) -> str:
        return self.granularity.key_format

    def _is_utc(self) -> bool:
        return self.timezone in {"UTC", "Etc/UTC", "Z"}

    # -- boundaries (every datetime below is in UTC; only keys and renderings are local) ----
    def _local_midnight(self, day: date) -> datetime:
        naive = datetime(day.year, day.month, day.day)
        return naive.replace(tzinfo=self.zone).astimezone(UTC)

    def _floor(self, moment: datetime) -> datetime:
        """The start (UTC) of the window that contains ``moment``."""
        local = moment.astimezone(self.zone)
        g = self.granularity
        if g is Granularity.HOURLY:
            floored = local.replace(minute=0, second=0, microsecond=0)
            return floored.astimezone(UTC)
        day = local.date()
        if g is Granularity.WEEKLY:
            day -= timedelta(days=(day.weekday() - self.week_starts_on) % 7)
        elif g is Granularity.MONTHLY:
            day = day.replace(day=1)
        start = self._local_midnight(day)
        if start > moment.astimezone(UTC):  # a day whose midnight does not exist locally
            start = self._local_midnight(day - timedelta(days=1))
        return start

    def _next(self, start: datetime) -> datetime:
        g = self.granularity
        if g is Granularity.HOURLY:
            return self._floor(start + timedelta(hours=1))
        day = start.astimezone(self.zone).date()
        if g is Granularity.DAILY:
            return self._local_midnight(day + timedelta(days=1))
        if g is Granularity.WEEKLY:
            return self._local_midnight(day + timedelta(days=7))
        month = day.month % 12 + 1
        year = day.year + (1 if day.month == 12 else 0)
        return self._local_midnight(date(year, month, 1))

    # -- keys -----------------------------------------------------------------------------
    def format_key(self, start: datetime) -> str:
        local = start.astimezone(self.zone)
        g = self.granularity
        if g is Granularity.HOURLY:
            text = local.strftime("%Y-%m-%dT%H:00")
            if not self._is_utc():
                text += local.isoformat()[-6:]
            return text
        if g is Granularity.MONTHLY:
            return local.strftime("%Y-%m")
        return local.strftime("%Y-%m-%d")

    def key_for(self, moment: datetime) -> str:
        """The key of the window that contains ``moment`` (aware)."""
        if moment.tzinfo is None:
            raise ValueError("key_for needs a time-zone aware datetime")
        return self.format_key(self._floor(moment))

    def _start_of(self, key: str) -> datetime:
        expected = self.key_format
        key = _check_characters(key, expected)
        g = self.granularity
        bad = InvalidPartitionKeyError(
            f"Invalid partition key {key!r} for {self.name}: expected {expected}",
            hint=f"pass a key in the format {expected}",
        )
        try:
            if g is Granularity.HOURLY:
                pattern = r"\d{4}-\d{2}-\d{2}T\d{2}:00" + (
                    "" if self._is_utc() else r"[+-]\d{2}:\d{2}"
                )
                if not re.fullmatch(pattern, key):
                    raise bad
                parsed = datetime.fromisoformat(key)
                moment = parsed if parsed.tzinfo else parsed.replace(tzinfo=self.zone)
            elif g is Granularity.MONTHLY:
                if not re.fullmatch(r"\d{4}-\d{2}", key):
                    raise bad
                moment = self._local_midnight(date.fromisoformat(key + "-01"))
            else:
                if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", key):
                    raise bad
                moment = self._local_midnight(date.fromisoformat(key))
            start = self._floor(moment)
            self._next(start)  # a window must end where dates still exist (before year 10000)
        except OverflowError as exc:
            raise InvalidPartitionKeyError(
                f"Invalid partition key {key!r} for {self.name}: its window reaches past the "
                "last representable date (9999-12-31)",
                hint=f"pass a key in the format {expected} whose window ends by 9999-12-31",
            ) from exc
        except ValueError as exc:
            raise bad from exc
        if self.format_key(start) != key:
            if g is Granularity.WEEKLY:
                raise InvalidPartitionKeyError(
                    f"Invalid partition key {key!r} for {self.name}: weeks start on "
                    f"{_WEEKDAYS[self.week_starts_on]}; the week containing it is "
                    f"{self.format_key(start)!r}",
                    hint=f"pass a key in the format {expected}",
                )
            raise bad
        return start

    def parse(self, key: str, *, now: datetime | None = None) -> str:
        start = self._start_of(key)
        if start < self.start:
            raise InvalidPartitionKeyError(
                f"Partition key {key!r} is before the start of {self.name}",
                hint=f"pass a key in the format {self.key_format} from "
                f"{self.format_key(self.start)} on",
            )
        if self.end is not None and start >= self.end:
            raise InvalidPartitionKeyError(
                f"Partition key {key!r} is at or after the end of {self.name} "
                f"({self.end.astimezone(self.zone).isoformat()})",
                hint=f"pass a key in the format {self.key_format} before the end",
            )
        if now is not None and self._next(start) > now.astimezone(UTC):
            raise InvalidPartitionKeyError(
                f"Partition {key!r} is not complete yet: its window ends at "
                f"{self._next(start).astimezone(self.zone).isoformat()}, "
                f"after now ({now.isoformat()})",
                hint="wait until the window has closed, or pass an earlier key "
                f"in the format {self.key_format}",
            )
        return key

    def _window(self, start: datetime, end: datetime) -> Window:
        return Window(start.astimezone(self.zone), end.astimezone(self.zone))

    def window(self, key: str) -> Window:
        start = self._start_of(key)
        return self._window(start, self._next(start))

    def iter_windows(self, first: datetime, stop: datetime) -> Iterator[tuple[str, Window]]:
        """Keys and windows whose start lies in ``[first, stop)``, in order."""
        first, stop = first.astimezone(UTC), stop.astimezone(UTC)
        start = self._floor(first)
        if start < first:
            start = self._next(start)
        while start < stop:
            nxt = self._next(start)
            yield self.format_key(start), self._window(start, nxt)
            start = nxt

    def last_complete(self, now: datetime) -> str | None:
        """The latest key whose window has ended by ``now``; ``None`` if there is none."""
        if now.tzinfo is None:
            raise ValueError("now must be time-zone aware")
        now = now.astimezone(UTC)
        limit = now if self.end is None else min(now, self.end)
        current = self._floor(limit)
        candidate = current if self._next(current) <= limit else None
        if candidate is None:
            # the window containing ``limit`` is open; the one before it is complete
            probe = self._floor(current - timedelta(microseconds=1))
            candidate = probe
        if candidate < self.start:
            return None
        return self.format_key(candidate)

    def keys(self, *, now: datetime | None = None) -> list[str]:
        if now is None:
            if self.end is None:
                raise ValueError("an open-ended scheme needs 'now' to list its keys")
            stop = self.end
        else:
            last = self.last_complete(now)
            if last is None:
                return []
            stop = self.window(last).end_utc
        return [key for key, _ in self.iter_windows(self.start, stop)]

    def key_range(self, first: str, last: str) -> list[str]:
        self.parse(first)
        self.parse(last)
        start, stop = self.window(first).start_utc, self.window(last).end_utc
        if stop <= start:
            raise InvalidPartitionKeyError(
                f"Empty range: {first!r} comes after {last!r}",
                hint="pass --start before (or equal to) --end",
            )
        return [key for key, _ in self.iter_windows(start, stop)]

    def same_kind(self, other: PartitionScheme) -> bool:
        return (
            isinstance(other, TimeWindowScheme)
            and other.granularity is self.granularity
            and other.timezone == self.timezone
            and other.week_starts_on == self.week_starts_on
        )


_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True)
class StaticScheme(PartitionScheme):
    """A fixed list of keys, for example product lines."""

    values: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.values:
            raise ConfigError("a static partition scheme needs at least one key")
        for value in self.values:
            if not _STATIC_KEY.fullmatch(value) or ".." in value:
                raise ConfigError(
                    f"Invalid static partition key {value!r}: use letters, digits, '_', '.', '-'"
                )
        if len(set(self.values)) != len(self.values):
            raise ConfigError("static partition keys must be unique")

    @property
    def name(self) -> str:
        return f"static ({', '.join(self.values)})"

    @property
    def key_format(self) -> str:
        return "one of " + ", ".join(self.values)

    def parse(self, key: str, *, now: datetime | None = None) -> str:
        _check_characters(key, self.key_format)
        if key not in self.values:
            raise InvalidPartitionKeyError(
                f"Unknown partition key {key!r}: expected {self.key_format}",
                hint=f"pass {self.key_format}",
            )
        return key

    def window(self, key: str) -> None:
        self.parse(key)
        return

    def keys(self, *, now: datetime | None = None) -> list[str]:
        return list(self.values)

    def key_range(self, first: str, last: str) -> list[str]:
        i, j = self.values.index(self.parse(first)), self.values.index(self.parse(last))
        if j < i:
            raise InvalidPartitionKeyError(f"Empty range: {first!r} comes after {last!r}")
        return list(self.values[i : j + 1])


@dataclass(frozen=True)
class DynamicScheme(PartitionScheme):
    """Keys that are added and removed at run time (customers, product lines): the current
    values of a named dimension, as the ledger records them (``backfiller partitions add``).
    The scheme itself is pure: it holds the values it was given when the project was loaded,
    in the order they were added; it may have none yet."""

    dimension: str
    values: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not _STATIC_KEY.fullmatch(self.dimension) or ".." in self.dimension:
            raise ConfigError(
                f"Invalid dynamic dimension name {self.dimension!r}: use letters, digits, "
                "'_', '.', '-'",
                hint='set [partitions] dimension, e.g. dimension = "product_line"',
            )

    @property
    def name(self) -> str:
        shown = ", ".join(self.values[:5]) + (" …" if len(self.values) > 5 else "")
        return f"dynamic {self.dimension} ({shown or 'no values yet'})"

    @property
    def key_format(self) -> str:
        if not self.values:
            return f"a value of {self.dimension} (it has none yet)"
        return f"a value of {self.dimension}"

    def _add_hint(self, key: str) -> str:
        return (
            f"add it with 'backfiller partitions add --dimension {self.dimension} --value "
            f"{key} --reason TEXT', or pass one of its values ('backfiller partitions list')"
        )

    def parse(self, key: str, *, now: datetime | None = None) -> str:
        _check_characters(key, self.key_format)
        if key not in self.values:
            raise InvalidPartitionKeyError(
                f"Unknown partition key {key!r}: it is not a current value of the dynamic "
                f"dimension {self.dimension!r}",
                hint=self._add_hint(key),
            )
        return key

    def window(self, key: str) -> None:
        self.parse(key)
        return

    def keys(self, *, now: datetime | None = None) -> list[str]:
        return list(self.values)

    def key_range(self, first: str, last: str) -> list[str]:
        i, j = self.values.index(self.parse(first)), self.values.index(self.parse(last))
        if j < i:
            raise InvalidPartitionKeyError(
                f"Empty range: {first!r} was added after {last!r}",
                hint="values are ordered as they were added ('backfiller partitions list')",
            )
        return list(self.values[i : j + 1])

    def same_kind(self, other: PartitionScheme) -> bool:
        return isinstance(other, DynamicScheme) and other.dimension == self.dimension


def valid_value(value: object) -> str:
    """``value`` if it may be a static or dynamic partition key, else raise."""
    if not isinstance(value, str) or not _STATIC_KEY.fullmatch(value) or ".." in value:
        raise InvalidPartitionKeyError(
            f"Invalid partition value {value!r}: use up to 128 letters, digits, '_', '.', '-', "
            "starting with a letter or digit",
            hint="pass a value such as 'voice' or 'customer-0042'",
        )
    return value


def _parse_start(text: str, timezone: str) -> datetime:
    try:
        if len(text) == 7:
            text += "-01"
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ConfigError(
            f"Invalid partition start {text!r}: expected YYYY-MM-DD or an ISO 8601 timestamp"
        ) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=ZoneInfo(timezone))


def scheme_from_config(
    *,
    kind: str = "daily",
    start: str | None = None,
    end: str | None = None,
    timezone: str = "UTC",
    values: Sequence[str] = (),
    week_starts_on: int = 0,
    dimension: str = "",
) -> PartitionScheme:
    """Build a scheme from the plain values of a config file (for a dynamic scheme,
    ``values`` are the dimension's current values, read from the ledger)."""
    if kind == "static":
        return StaticScheme(tuple(values))
    if kind == "dynamic":
        if not dimension:
            raise ConfigError(
                "a dynamic partition scheme needs a dimension name",
                hint='set [partitions] dimension, e.g. dimension = "product_line"',
            )
        return DynamicScheme(dimension, tuple(values))
    try:
        granularity = Granularity(kind)
    except ValueError as exc:
        raise ConfigError(
            f"Unknown partition kind {kind!r}",
            hint="use one of hourly, daily, weekly, monthly, static, dynamic",
        ) from exc
    if start is None:
        raise ConfigError(f"a {kind} partition scheme needs a start date")
    tz_probe = TimeWindowScheme(timezone=timezone)  # validates the zone
    return TimeWindowScheme(
        granularity=granularity,
        start=_parse_start(start, tz_probe.timezone),
        end=_parse_start(end, timezone) if end else None,
        timezone=timezone,
        week_starts_on=week_starts_on,
    )
