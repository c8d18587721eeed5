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
    "Granularity",
    "PartitionScheme",
    "StaticScheme",
    "TimeWindowScheme",
    "Window",
    "scheme_from_config",
]

_ONE_MICROSECOND = timedelta(microseconds=1)
_ONE_HOUR = timedelta(hours=1)
#: how many clock changes a search for a window boundary may cross (one in any real zone)
_MAX_CHANGES = 8
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
    """Hourly, daily (the default), weekly or monthly windows from a start, in a time zone.

    Only whole windows belong to the scheme: the first is the first window that starts at or
    after ``start`` and the last is the last window that ends at or before ``end``. Both are
    stored normalised (``start`` the first window's start, ``end`` the last window's end, in
    UTC), so a scheme built again from its own fields is the same scheme.

    Window boundaries are instants on the UTC line. An hourly boundary is an instant at which
    the local clock reads a whole hour (``HH:00``): where the clock jumps by 30 or 45 minutes, or
    by an hour at a time that is not a whole hour, the windows around the change are shorter or
    longer than an hour, and each key, spelled with the UTC offset, is exactly its window's start.
    A daily, weekly or monthly boundary is the first instant of its local date: local midnight,
    or the end of the clock change when midnight is skipped.
    """

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
        if not 0 <= self.week_starts_on <= 6:
            raise ConfigError("week_starts_on must be 0 (Monday) to 6 (Sunday)")
        start = self.start if self.start.tzinfo else self.start.replace(tzinfo=zone)
        end = self.end if self.end is None or self.end.tzinfo else self.end.replace(tzinfo=zone)
        span = f"from {start.isoformat()}" + (f" to {end.isoformat()}" if end else "")
        try:
            first = self._floor(start)
            if first < start:  # not on a boundary: the first whole window is the next one
                first = self._next(first)
            first_end = self._next(first)
            # the end of the last window that ends by ``end``
            last_end = None if end is None else self._floor(end)
        except (OverflowError, ValueError) as exc:
            raise ConfigError(
                f"The {self.granularity.value} partition scheme {span} ({self.timezone}) "
                "reaches past the dates that can be represented (years 1 to 9999)",
                hint="set [partitions] start and end between 0001-01-02 and 9999-12-30",
            ) from exc
        if last_end is not None and last_end <= first:
            raise ConfigError(
                f"The {self.granularity.value} partition scheme {span} ({self.timezone}) "
                "holds no whole window",
                hint="set [partitions] end at or after the end of the first whole window "
                f"({first_end.astimezone(zone).isoformat()})",
            )
        object.__setattr__(self, "start", first)
        object.__setattr__(self, "end", last_end)

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

    # -- the UTC line (every datetime below is in UTC; only keys and renderings are local) ----
    def _offset(self, moment: datetime) -> timedelta:
        offset = moment.astimezone(self.zone).utcoffset()
        assert offset is not None  # a ZoneInfo always has one
        return offset

    def _change(self, before: datetime, after: datetime) -> datetime:
        """The instant in ``(before, after]`` at which the offset becomes ``after``'s."""
        target = self._offset(after)
        while after - before > _ONE_MICROSECOND:
            middle = before + (after - before) // 2
            if self._offset(middle) == target:
                after = middle
            else:
                before = middle
        return after

    def _hour_floor(self, moment: datetime) -> datetime:
        """The last instant at or before ``moment`` at which the local clock reads ``HH:00``."""
        for _ in range(_MAX_CHANGES):
            offset = self._offset(moment)
            candidate = (moment + offset).replace(minute=0, second=0, microsecond=0) - offset
            if self._offset(candidate) == offset:
                return candidate
            # the clock changed since ``candidate``: no whole hour since the change
            moment = self._change(candidate, moment) - _ONE_MICROSECOND
        raise AssertionError(f"no whole local hour near {moment.isoformat()} in {self.timezone}")

    def _hour_ceil(self, moment: datetime) -> datetime:
        """The first instant at or after ``moment`` at which the local clock reads ``HH:00``."""
        for _ in range(_MAX_CHANGES):
            offset = self._offset(moment)
            wall = moment + offset
            candidate = wall.replace(minute=0, second=0, microsecond=0)
            if candidate < wall:
                candidate += _ONE_HOUR
            candidate -= offset
            if self._offset(candidate) == offset:
                return candidate
            # the clock changes before ``candidate``: start again from the change
            moment = self._change(moment, candidate)
        raise AssertionError(f"no whole local hour near {moment.isoformat()} in {self.timezone}")

    def _day_start(self, day: date) -> datetime:
        """The first instant whose local date is ``day`` or later."""
        wall = datetime(day.year, day.month, day.day)
        zone = self.zone
        local = wall.replace(tzinfo=zone)
        readings = [local.astimezone(UTC), local.replace(fold=1).astimezone(UTC)]
        if readings[0] == readings[1]:  # midnight happens once (nearly always)
            return readings[0]
        found = [m for m in readings if m.astimezone(zone).replace(tzinfo=None) == wall]
        if found:
            return min(found)
        # midnight is skipped (fold 0 reads it with the offset before the jump, fold 1 with the
        # one after): the day starts where the clock jumps past it
        return self._change(min(readings), max(readings))

    def _label(self, day: date) -> date:
        """The first day of the window (day, week or month) that ``day`` falls in."""
        g = self.granularity
        if g is Granularity.WEEKLY:
            return day - timedelta(days=(day.weekday() - self.week_starts_on) % 7)
        if g is Granularity.MONTHLY:
            return day.replace(day=1)
        return day

    def _step(self, label: date, steps: int) -> date:
        g = self.granularity
        if g is Granularity.DAILY:
            return label + timedelta(days=steps)
        if g is Granularity.WEEKLY:
            return label + timedelta(days=7 * steps)
        months = label.year * 12 + label.month - 1 + steps
        return date(months // 12, months % 12 + 1, 1)

    def _floor(self, moment: datetime) -> datetime:
        """The start (UTC) of the window that contains ``moment``."""
        moment = moment.astimezone(UTC)
        if self.granularity is Granularity.HOURLY:
            return self._hour_floor(moment)
        label = self._label(moment.astimezone(self.zone).date())
        start = self._day_start(label)
        while start > moment:
            label = self._step(label, -1)
            start = self._day_start(label)
        while (following := self._day_start(self._step(label, 1))) <= moment:
            label = self._step(label, 1)
            start = following
        return start

    def _next(self, start: datetime) -> datetime:
        """The end (UTC) of the window that starts at ``start``."""
        if self.granularity is Granularity.HOURLY:
            return self._hour_ceil(start + _ONE_MICROSECOND)
        label = self._label(start.astimezone(self.zone).date())
        while True:
            label = self._step(label, 1)
            following = self._day_start(label)
            if following > start:  # a day the clock skips entirely has no window
                return following

    # -- keys -----------------------------------------------------------------------------
    def format_key(self, start: datetime) -> str:
        """The key of the window that starts at ``start``."""
        local = start.astimezone(self.zone)
        g = self.granularity
        if g is Granularity.HOURLY:
            text = f"{local.year:04d}-{local.month:02d}-{local.day:02d}T{local.hour:02d}:00"
            if not self._is_utc():
                text += _offset_text(self._offset(start))
            return text
        label = self._label(local.date())
        if g is Granularity.MONTHLY:
            return f"{label.year:04d}-{label.month:02d}"
        return label.isoformat()

    def key_for(self, moment: datetime) -> str:
        """The key of the window that contains ``moment`` (aware)."""
        if moment.tzinfo is None:
            raise ValueError("key_for needs a time-zone aware datetime")
        return self.format_key(self._floor(moment))

    def _start_of(self, key: str) -> datetime:
        expected = self.key_format
        key = _check_characters(key, expected)
        g = self.granularity

        def bad() -> InvalidPartitionKeyError:
            return InvalidPartitionKeyError(
                f"Invalid partition key {key!r} for {self.name}: expected {expected}",
                hint=f"pass a key in the format {expected}",
            )

        try:
            if g is Granularity.HOURLY:
                pattern = r"\d{4}-\d{2}-\d{2}T\d{2}:00" + (
                    "" if self._is_utc() else r"[+-]\d{2}:\d{2}(:\d{2})?"
                )
                if not re.fullmatch(pattern, key, flags=re.ASCII):
                    raise bad()
                parsed = datetime.fromisoformat(key)
                moment = parsed if parsed.tzinfo else parsed.replace(tzinfo=self.zone)
            elif g is Granularity.MONTHLY:
                if not re.fullmatch(r"\d{4}-\d{2}", key, flags=re.ASCII):
                    raise bad()
                moment = self._day_start(date.fromisoformat(key + "-01"))
            else:
                if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", key, flags=re.ASCII):
                    raise bad()
                moment = self._day_start(date.fromisoformat(key))
            start = self._floor(moment)
            self._next(start)  # a window must end where dates still exist (before year 10000)
        except OverflowError as exc:
            raise InvalidPartitionKeyError(
                f"Invalid partition key {key!r} for {self.name}: its window reaches past the "
                "last representable date (9999-12-31)",
                hint=f"pass a key in the format {expected} whose window ends by 9999-12-31",
            ) from exc
        except ValueError as exc:
            raise bad() from exc
        if self.format_key(start) != key:
            if g is Granularity.WEEKLY:
                raise InvalidPartitionKeyError(
                    f"Invalid partition key {key!r} for {self.name}: weeks start on "
                    f"{_WEEKDAYS[self.week_starts_on]}; the week containing it is "
                    f"{self.format_key(start)!r}",
                    hint=f"pass a key in the format {expected}",
                )
            raise bad()
        return start

    def _last_end(self, now: datetime | None) -> datetime | None:
        """The latest instant by which a window must end to be listed: ``end`` or ``now``."""
        if now is None:
            return self.end
        if now.tzinfo is None:
            raise ValueError("now must be time-zone aware")
        now = now.astimezone(UTC)
        return now if self.end is None else min(now, self.end)

    def parse(self, key: str, *, now: datetime | None = None) -> str:
        start = self._start_of(key)
        if start < self.start:
            raise InvalidPartitionKeyError(
                f"Partition key {key!r} is before the start of {self.name}",
                hint=f"pass a key in the format {self.key_format} from "
                f"{self.format_key(self.start)} on",
            )
        end = self._next(start)
        if self.end is not None and end > self.end:
            raise InvalidPartitionKeyError(
                f"Partition key {key!r} is past the end of {self.name}: only whole windows "
                f"that end by {self.end.astimezone(self.zone).isoformat()} belong to it",
                hint=f"pass a key in the format {self.key_format} up to "
                f"{self.key_for(self.end - _ONE_MICROSECOND)}",
            )
        if now is not None and end > now.astimezone(UTC):
            raise InvalidPartitionKeyError(
                f"Partition {key!r} is not complete yet: its window ends at "
                f"{end.astimezone(self.zone).isoformat()}, after now ({now.isoformat()})",
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
        """Keys and windows of the scheme (whole windows between its start and end) whose
        start lies in ``[first, stop)``, in order."""
        first, stop = max(first.astimezone(UTC), self.start), stop.astimezone(UTC)
        start = self._floor(first)
        if start < first:
            start = self._next(start)
        while start < stop:
            nxt = self._next(start)
            if self.end is not None and nxt > self.end:
                return
            yield self.format_key(start), self._window(start, nxt)
            start = nxt

    def last_complete(self, now: datetime) -> str | None:
        """The latest key whose window has ended by ``now`` (and by the scheme's end);
        ``None`` if there is none."""
        if now.tzinfo is None:
            raise ValueError("now must be time-zone aware")
        limit = self._last_end(now)
        assert limit is not None
        closed_by = self._floor(limit)  # the end of the last window that ends by ``limit``
        if closed_by <= self.start:
            return None
        return self.key_for(closed_by - _ONE_MICROSECOND)

    def keys(self, *, now: datetime | None = None) -> list[str]:
        limit = self._last_end(now)
        if limit is None:
            raise ValueError("an open-ended scheme needs 'now' to list its keys")
        return [key for key, _ in self.iter_windows(self.start, self._floor(limit))]

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


def _offset_text(offset: timedelta) -> str:
    """``+HH:MM`` (``+HH:MM:SS`` for the odd historical offset with seconds)."""
    sign = "-" if offset < timedelta(0) else "+"
    seconds = abs(int(offset.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{sign}{hours:02d}:{minutes:02d}" + (f":{seconds:02d}" if seconds else "")


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
) -> PartitionScheme:
    """Build a scheme from the plain values of a config file."""
    if kind == "static":
        return StaticScheme(tuple(values))
    try:
        granularity = Granularity(kind)
    except ValueError as exc:
        raise ConfigError(
            f"Unknown partition kind {kind!r}",
            hint="use one of hourly, daily, weekly, monthly, static",
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
