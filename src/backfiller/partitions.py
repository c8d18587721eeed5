"""Partition schemes, keys and windows. Pure: no I/O, no clock of its own.

A time-window key maps to a half-open window ``[start, end)`` in the scheme's time zone. The
seed's inclusive ``window_end`` (``2026-04-17T23:59:59.999999+00:00``) is only a rendering of the
half-open end (:meth:`Window.inclusive_end`).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import Enum
from itertools import islice, pairwise, product
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from backfiller.errors import ConfigError, InvalidPartitionKeyError

__all__ = [
    "CronScheme",
    "Dimension",
    "DynamicScheme",
    "Granularity",
    "MultiScheme",
    "PartitionScheme",
    "StaticScheme",
    "TimeWindowScheme",
    "Window",
    "scheme_from_config",
]

_ONE_MICROSECOND = timedelta(microseconds=1)
_ONE_HOUR = timedelta(hours=1)
_ONE_SECOND = timedelta(seconds=1)
_ONE_DAY = timedelta(days=1)
#: how many clock changes a search for a window boundary may cross (one in any real zone)
_MAX_CHANGES = 8
#: how many windows ``end_offset`` may move the last key listed
_MAX_END_OFFSET = 1000
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
    YEARLY = "yearly"

    @property
    def key_format(self) -> str:
        return _KEY_FORMATS[self]


_KEY_FORMATS = {
    Granularity.HOURLY: "YYYY-MM-DDTHH:00 (with the UTC offset, e.g. +01:00, outside UTC)",
    Granularity.DAILY: "YYYY-MM-DD",
    Granularity.WEEKLY: "YYYY-MM-DD (the first day of the week)",
    Granularity.MONTHLY: "YYYY-MM",
    Granularity.YEARLY: "YYYY",
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

    def contains(self, key: str) -> bool:
        """Whether ``key`` is a key of this scheme (inside its bounds, whatever the time)."""
        try:
            self.parse(key)
        except InvalidPartitionKeyError:
            return False
        return True

    def refused_keys(self, keys: Sequence[str]) -> Iterator[tuple[int, InvalidPartitionKeyError]]:
        """Each key of ``keys`` that :meth:`parse` (without ``now``) refuses: its position and
        the error, in order."""
        for i, key in enumerate(keys):
            try:
                self.parse(key)
            except InvalidPartitionKeyError as exc:
                yield i, exc


def _ceil_ordinal(moment: datetime) -> int:
    """The day number of the first UTC midnight at or after ``moment`` (aware)."""
    utc = moment.astimezone(UTC)
    day = utc.date().toordinal()
    return day if utc == datetime(utc.year, utc.month, utc.day, tzinfo=UTC) else day + 1


def _past_the_last_date(key: str, scheme: str, expected: str) -> InvalidPartitionKeyError:
    """The error for a key whose window would end after the last date Python can represent."""
    return InvalidPartitionKeyError(
        f"Invalid partition key {key!r} for {scheme}: its window reaches past the last "
        "representable date (9999-12-31)",
        hint=f"pass a key in the format {expected} whose window ends by 9999-12-31",
    )


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
    """Hourly, daily (the default), weekly, monthly or yearly windows from a start, in a zone.

    Only whole windows belong to the scheme: the first is the first window that starts at or
    after ``start`` and the last is the last window that ends at or before ``end``. Both are
    stored normalised (``start`` the first window's start, ``end`` the last window's end, in
    UTC), so a scheme built again from its own fields is the same scheme.

    Window boundaries are instants on the UTC line. An hourly boundary is an instant at which
    the local clock reads a whole hour (``HH:00``): where the clock jumps by 30 or 45 minutes, or
    by an hour at a time that is not a whole hour, the windows around the change are shorter or
    longer than an hour, and each key, spelled with the UTC offset, is exactly its window's start.
    A daily, weekly, monthly or yearly boundary is the first instant of its local date: local
    midnight, or the end of the clock change when midnight is skipped.

    ``end_offset`` moves the last key listed as of ``now`` by that many windows: 0 lists the
    windows that have ended, 1 also the one in progress, -1 holds back the last complete one.
    """

    granularity: Granularity = Granularity.DAILY
    start: datetime = datetime(1970, 1, 1, tzinfo=UTC)
    end: datetime | None = None
    timezone: str = "UTC"
    week_starts_on: int = 0  # Monday
    end_offset: int = 0

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
        if not -_MAX_END_OFFSET <= self.end_offset <= _MAX_END_OFFSET:
            raise ConfigError(
                f"end_offset {self.end_offset} is out of range",
                hint=f"use a whole number from -{_MAX_END_OFFSET} to {_MAX_END_OFFSET} "
                "(1 includes the window in progress)",
            )
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
        if self._is_utc():  # midnight, once: no zone to ask (a manifest's keys are parsed)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
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
        """The first day of the window (day, week, month or year) that ``day`` falls in."""
        g = self.granularity
        if g is Granularity.WEEKLY:
            return day - timedelta(days=(day.weekday() - self.week_starts_on) % 7)
        if g is Granularity.MONTHLY:
            return day.replace(day=1)
        if g is Granularity.YEARLY:
            return day.replace(month=1, day=1)
        return day

    def _step(self, label: date, steps: int) -> date:
        g = self.granularity
        if g is Granularity.DAILY:
            return label + timedelta(days=steps)
        if g is Granularity.WEEKLY:
            return label + timedelta(days=7 * steps)
        if g is Granularity.YEARLY:
            return date(label.year + steps, 1, 1)
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
        return self._label_key(self._label(local.date()))

    def _label_key(self, label: date) -> str:
        """The key of the day, week, month or year window whose first day is ``label``."""
        if self.granularity is Granularity.MONTHLY:
            return f"{label.year:04d}-{label.month:02d}"
        if self.granularity is Granularity.YEARLY:
            return f"{label.year:04d}"
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
            elif g is Granularity.YEARLY:
                if not re.fullmatch(r"\d{4}", key, flags=re.ASCII):
                    raise bad()
                moment = self._day_start(date(int(key), 1, 1))
            else:
                if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", key, flags=re.ASCII):
                    raise bad()
                moment = self._day_start(date.fromisoformat(key))
            start = self._floor(moment)
            self._next(start)  # a window must end where dates still exist (before year 10000)
        except OverflowError as exc:
            raise _past_the_last_date(key, self.name, expected) from exc
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

    def _listed_until(self, now: datetime | None) -> datetime | None:
        """The boundary by which a window must end to be listed: the end of the last window
        that has ended by ``now``, moved by ``end_offset`` windows, and at most ``end``."""
        if now is None:
            return self.end
        if now.tzinfo is None:
            raise ValueError("now must be time-zone aware")
        bound = self._floor(now.astimezone(UTC))
        for _ in range(self.end_offset):
            bound = self._next(bound)
        for _ in range(-self.end_offset):
            bound = self._floor(bound - _ONE_MICROSECOND)
        return bound if self.end is None else min(bound, self.end)

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
        listed_until = self._listed_until(now)
        if now is not None and listed_until is not None and end > listed_until:
            closes = end.astimezone(self.zone).isoformat()
            if end > now.astimezone(UTC):
                said = f"is not complete yet: its window ends at {closes}, after now"
            else:
                said = f"is held back by end_offset = {self.end_offset} (its window ended at"
                said += f" {closes})"
            raise InvalidPartitionKeyError(
                f"Partition {key!r} {said} ({now.isoformat()})",
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
        """The latest key whose window has ended by ``now`` (and by the scheme's end), moved by
        ``end_offset`` windows; ``None`` if there is none."""
        if now.tzinfo is None:
            raise ValueError("now must be time-zone aware")
        closed_by = self._listed_until(now)
        assert closed_by is not None
        if closed_by <= self.start:
            return None
        return self.key_for(closed_by - _ONE_MICROSECOND)

    def keys(self, *, now: datetime | None = None) -> list[str]:
        limit = self._listed_until(now)
        if limit is None:
            raise ValueError("an open-ended scheme needs 'now' to list its keys")
        return self._keys_between(self.start, limit)

    def refused_keys(self, keys: Sequence[str]) -> Iterator[tuple[int, InvalidPartitionKeyError]]:
        """As :meth:`PartitionScheme.refused_keys`; a long list (a manifest of ten years of
        days) is first compared with the keys the calendar lists between its first and its
        last key — each key found there is one :meth:`parse` accepts — and only the others
        are parsed one by one (some 20 µs a key)."""
        listed = self._listed_around(keys) if len(keys) > 64 else None
        for i, key in enumerate(keys):
            if listed is not None and key in listed:
                continue
            try:
                self.parse(key)
            except InvalidPartitionKeyError as exc:
                yield i, exc

    def _listed_around(self, keys: Sequence[str]) -> frozenset[str] | None:
        """The scheme's keys from the window of the least to that of the greatest of ``keys``
        (as strings), when the calendar lists them and they are not many more than ``keys``;
        None otherwise."""
        if type(self) is not TimeWindowScheme or self.granularity is Granularity.HOURLY:
            return None  # shifted or spelled windows, or hours: the calendar does not list them
        if not self._is_utc():
            return None
        try:
            first, last = self.window(min(keys)), self.window(max(keys))
        except (InvalidPartitionKeyError, OverflowError, ValueError):
            return None
        if last.end_utc - first.start_utc > _ONE_DAY * 4 * (len(keys) + 366):
            return None  # a span mostly not asked about
        found = self._calendar_keys(first.start_utc, last.end_utc)
        return None if found is None else frozenset(found)

    def _keys_between(self, first: datetime, stop: datetime) -> list[str]:
        """The keys of :meth:`iter_windows` ``(first, stop)``: in UTC, whole days, weeks,
        months or years are counted on the calendar (ten years of days in milliseconds, not
        a time-zone conversion per boundary); anything else walks the windows."""
        found = self._calendar_keys(first, stop) if type(self) is TimeWindowScheme else None
        if found is None:
            found = [key for key, _ in self.iter_windows(first, stop)]
        return found

    def _calendar_keys(self, first: datetime, stop: datetime) -> list[str] | None:
        """:meth:`_keys_between` for a UTC scheme of days, weeks, months or years, where a
        window is its label's midnight to the next label's; ``None`` for any other scheme,
        or near the last representable date (the walk says what happens there)."""
        g = self.granularity
        if g is Granularity.HOURLY or not self._is_utc():
            return None
        first, stop = max(first.astimezone(UTC), self.start), stop.astimezone(UTC)
        try:
            label = self._label(first.date())
            if datetime(label.year, label.month, label.day, tzinfo=UTC) < first:
                label = self._step(label, 1)
            if g is Granularity.DAILY or g is Granularity.WEEKLY:
                found = self._fixed_step_keys(label, stop)
                if found is not None:
                    return found
            keys: list[str] = []
            while datetime(label.year, label.month, label.day, tzinfo=UTC) < stop:
                following = self._step(label, 1)
                end = datetime(following.year, following.month, following.day, tzinfo=UTC)
                if self.end is not None and end > self.end:
                    break
                keys.append(self._label_key(label))
                label = following
        except (OverflowError, ValueError):
            return None
        return keys

    def _fixed_step_keys(self, label: date, stop: datetime) -> list[str] | None:
        """The keys of :meth:`_calendar_keys` for days or weeks (a fixed number of days
        apart), from the window whose first day is ``label``: counted in day numbers, each
        key spelled once (100,000 days: some 40 ms instead of 400). ``None`` near the last
        representable date."""
        step = 7 if self.granularity is Granularity.WEEKLY else 1
        last = _ceil_ordinal(stop) - 1  # the last first day of a window that starts before stop
        if self.end is not None:  # ... and ends by the scheme's end
            last = min(last, self.end.astimezone(UTC).date().toordinal() - step)
        if last + step > date.max.toordinal():
            return None
        return [date.fromordinal(o).isoformat() for o in range(label.toordinal(), last + 1, step)]

    def key_range(self, first: str, last: str) -> list[str]:
        self.parse(first)
        self.parse(last)
        start, stop = self.window(first).start_utc, self.window(last).end_utc
        if stop <= start:
            raise InvalidPartitionKeyError(
                f"Empty range: {first!r} comes after {last!r}",
                hint="pass --start before (or equal to) --end",
            )
        return self._keys_between(start, stop)

    # -- the unbounded grid of windows (what partition mappings walk) -------------------------
    def shift(self, start: datetime, windows: int) -> datetime:
        """The start (UTC) of the window ``windows`` windows after (before, if negative) the
        one that starts at ``start``, on the scheme's grid, ignoring its bounds. A shift that
        would leave the representable dates stops at the last window that can be reached."""
        start = start.astimezone(UTC)
        try:
            for _ in range(windows):
                start = self._next(start)
            for _ in range(-windows):
                start = self._floor(start - _ONE_MICROSECOND)
        except (OverflowError, ValueError):
            pass
        return start

    def grid(self, first: datetime, stop: datetime) -> Iterator[tuple[datetime, datetime]]:
        """``(start, end)`` (UTC) of every window of the grid that overlaps ``[first, stop)``,
        in order, whether or not it lies within the scheme's bounds."""
        stop = stop.astimezone(UTC)
        try:
            start = self._floor(first.astimezone(UTC))
            while start < stop:
                end = self._next(start)
                yield start, end
                start = end
        except (OverflowError, ValueError):
            return

    def holds(self, start: datetime, end: datetime) -> bool:
        """Whether the grid window ``[start, end)`` is within the scheme's bounds (a key)."""
        return start >= self.start and (self.end is None or end <= self.end)

    def _kind(self) -> tuple[object, ...]:
        """What two schemes must share for an identity mapping between them."""
        return ("windows", self.granularity, self.timezone, self.week_starts_on)

    def same_kind(self, other: PartitionScheme) -> bool:
        return isinstance(other, TimeWindowScheme) and other._kind() == self._kind()


def _offset_text(offset: timedelta) -> str:
    """``+HH:MM`` (``+HH:MM:SS`` for the odd historical offset with seconds)."""
    sign = "-" if offset < timedelta(0) else "+"
    seconds = abs(int(offset.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{sign}{hours:02d}:{minutes:02d}" + (f":{seconds:02d}" if seconds else "")


_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


#: what cronsim's messages call each field, as the config names them
_CRON_FIELD_NAMES = {
    "Bad second": "second",
    "Bad minute": "minute (the 1st field, 0-59)",
    "Bad hour": "hour (the 2nd field, 0-23)",
    "Bad day-of-month": "day of month (the 3rd field, 1-31 or L)",
    "Bad month": "month (the 4th field, 1-12 or JAN-DEC)",
    "Bad day-of-week": "day of week (the 5th field, 0-7 or SUN-SAT)",
}
_CRON_HINT = (
    "write 5 fields: minute hour day-of-month month day-of-week, e.g. '*/15 * * * *' "
    "(every 15 minutes) or '15 3 12 * *' (the 12th of each month at 03:15)"
)
#: how many boundaries a cron scheme keeps in mind
_MEMO_SIZE = 100_000
#: the time span one strftime directive pins down, finest first
_DIRECTIVE_UNITS = (
    ("SM", timedelta(minutes=1)),  # cron schedules fire on whole minutes
    ("HIp", timedelta(hours=1)),
    ("djaAwu", timedelta(days=1)),
    ("UWV", timedelta(days=7)),
    ("mbB", timedelta(days=31)),
    ("YyGC", timedelta(days=366)),
)


def _pattern_unit(pattern: str) -> timedelta:
    """The span of wall time one key of ``pattern`` covers (at most)."""
    directives = set(re.findall(r"%(.)", pattern))
    for letters, unit in _DIRECTIVE_UNITS:
        if directives & set(letters):
            return unit
    return timedelta(days=366 * 100)


@dataclass(frozen=True)
class CronScheme(TimeWindowScheme):
    """Windows between consecutive times of a 5-field cron schedule, in a time zone.

    A boundary is a time the schedule fires, read in the zone as cron reads it (through
    ``cronsim``, which follows Debian cron): a schedule at fixed minutes and hours fires once
    when the clock repeats the time, and when the clock resumes if it skips the time; a
    schedule with ``*`` minutes or hours follows the clock. A key is the local start with its
    UTC offset (``2026-04-17T04:15+02:00``; no offset in UTC), or ``key_pattern`` (strftime)
    when the project spells its keys another way. ``granularity`` and ``week_starts_on`` are
    not used.
    """

    cron: str = "0 0 * * *"
    key_pattern: str = ""
    _gap: timedelta = field(default=timedelta(days=1), init=False, repr=False, compare=False)
    #: window ends by start, and window starts by key, already found (cron is slow to ask)
    _memo: dict[object, datetime] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        from cronsim import CronSim, CronSimError  # only a cron scheme needs it

        fields = self.cron.split()
        if len(fields) != 5:
            raise ConfigError(
                f"Invalid cron schedule {self.cron!r}: it has {len(fields)} fields, not 5",
                hint=_CRON_HINT,
            )
        try:
            CronSim(self.cron, datetime(2000, 1, 1, tzinfo=UTC))
        except CronSimError as exc:
            field_name = _CRON_FIELD_NAMES.get(str(exc), str(exc))
            raise ConfigError(
                f"Invalid cron schedule {self.cron!r}: the {field_name} field is wrong",
                hint=_CRON_HINT,
            ) from exc
        try:
            zone = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            zone = ZoneInfo("UTC")  # the base class names the zone in its error
        start = self.start if self.start.tzinfo else self.start.replace(tzinfo=zone)
        try:  # how far back to look for the fire time before an instant (doubled as needed)
            fires = list(islice(CronSim(self.cron, start.astimezone(zone)), 16))
        except (OverflowError, ValueError):  # near year 1 or 9999: the base class says so
            fires = []
        gaps = [b.astimezone(UTC) - a.astimezone(UTC) for a, b in pairwise(fires)]
        object.__setattr__(self, "_gap", max(gaps, default=timedelta(days=1)) + 3 * _ONE_HOUR)
        super().__post_init__()
        if self.key_pattern:
            self._check_key_pattern()

    @property
    def name(self) -> str:
        return f"cron '{self.cron}' from {self.format_key(self.start)} ({self.timezone})"

    @property
    def key_format(self) -> str:
        if self.key_pattern:
            return f"{self.key_pattern} (strftime)"
        return "YYYY-MM-DDTHH:MM (with the UTC offset, e.g. +01:00, outside UTC)"

    def _kind(self) -> tuple[object, ...]:
        return ("cron", self.cron, self.timezone, self.key_pattern)

    # -- boundaries: the schedule's fire times --------------------------------------------
    def _fire_after(self, moment: datetime) -> datetime:
        """The first time (UTC) the schedule fires strictly after ``moment``. cronsim, asked
        from before a time the clock jumps forward by less than an hour (Lord Howe's half
        hour), can step over the first fire after the jump (from 00:00+10:30 it gave
        12:00+11:00 for ``0 */6 * * *``, not 06:00+11:00): it is asked again after each such
        jump before the fire it gave, and the earliest fire wins."""
        moment = moment.astimezone(UTC)
        fire = self._cron_fire_after(moment, moment)
        jump = self._jump_forward(moment, fire)
        while jump is not None:
            # from the jump, and from the next whole hour of the local clock (cronsim, asked
            # from within the hour the clock jumped in, steps over the fire all the same)
            local = jump.astimezone(self.zone)
            hour = (local.replace(minute=0, second=0, microsecond=0) + _ONE_HOUR).astimezone(UTC)
            for start in (jump, hour):
                fire = min(fire, self._cron_fire_after(start, moment))
            jump = self._jump_forward(jump, fire)
        return fire

    def _cron_fire_after(self, start: datetime, moment: datetime) -> datetime:
        """The first fire cronsim gives, asked from ``start``, strictly after ``moment``."""
        from cronsim import CronSim

        # cronsim may give a time the clock repeats once more, before ``moment``: skip it
        for fire in CronSim(self.cron, start.astimezone(self.zone)):
            fire_utc = fire.astimezone(UTC)
            if fire_utc > moment:
                return fire_utc
        raise OverflowError(f"{self.cron!r} does not fire within 50 years of {moment}")

    def _jump_forward(self, after: datetime, until: datetime) -> datetime | None:
        """The first instant (to the second) in (``after``, ``until``] at which the zone's
        clock has jumped forward (its UTC offset grew) since ``after``; ``None``: none."""
        zone = self.zone
        before = after.astimezone(zone).utcoffset()
        latest = until.astimezone(zone).utcoffset()
        if before is None or latest is None or latest <= before:
            return None
        low, high = after, until
        while high - low > _ONE_SECOND:
            middle = low + (high - low) / 2
            offset = middle.astimezone(zone).utcoffset()
            if offset is not None and offset > before:
                high = middle
            else:
                low = middle
        return high

    def _floor(self, moment: datetime) -> datetime:
        moment = moment.astimezone(UTC)
        back = self._gap
        while True:
            fire = self._fire_after(moment - back)
            if fire <= moment:
                while (following := self._fire_after(fire)) <= moment:
                    fire = following
                return fire
            back *= 2

    def _next(self, start: datetime) -> datetime:
        return self._remember(start, lambda: self._fire_after(start))

    def _remember(self, what: object, find: Callable[[], datetime]) -> datetime:
        found = self._memo.get(what)
        if found is None:
            if len(self._memo) >= _MEMO_SIZE:
                self._memo.clear()
            found = self._memo[what] = find()
        return found

    # -- keys -----------------------------------------------------------------------------
    def format_key(self, start: datetime) -> str:
        local = start.astimezone(self.zone)
        if self.key_pattern:
            return local.strftime(self.key_pattern)
        text = (
            f"{local.year:04d}-{local.month:02d}-{local.day:02d}"
            f"T{local.hour:02d}:{local.minute:02d}"
        )
        if not self._is_utc():
            text += _offset_text(self._offset(start))
        return text

    def _start_of(self, key: str) -> datetime:
        expected = self.key_format
        key = _check_characters(key, expected)

        def bad() -> InvalidPartitionKeyError:
            return InvalidPartitionKeyError(
                f"Invalid partition key {key!r} for {self.name}: expected {expected}",
                hint=f"pass a key in the format {expected}",
            )

        try:
            if self.key_pattern:
                start = self._remember(
                    key, lambda: self._start_spelled(key, datetime.strptime(key, self.key_pattern))
                )
            else:
                pattern = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}" + (
                    "" if self._is_utc() else r"[+-]\d{2}:\d{2}(:\d{2})?"
                )
                if not re.fullmatch(pattern, key, flags=re.ASCII):
                    raise bad()
                parsed = datetime.fromisoformat(key)
                start = self._floor(parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC))
            self._next(start)  # a window must end where dates still exist (before year 10000)
        except OverflowError as exc:
            raise _past_the_last_date(key, self.name, expected) from exc
        except (ValueError, LookupError) as exc:
            raise bad() from exc
        if self.format_key(start) != key:
            raise bad()
        return start

    def _start_spelled(self, key: str, parsed: datetime) -> datetime:
        """The one fire time whose key (``key_pattern``) is ``key``; ``parsed`` is ``key`` read
        back, which is at or before the local start, by less than the pattern's finest unit."""
        wall = parsed.replace(tzinfo=None)
        zone = self.zone
        # the start's wall time is in [wall, wall + unit): from the first instant the clock
        # reads ``wall`` to the last it reads ``wall + unit`` (both folds, if it reads it twice)
        readings = [
            moment.replace(tzinfo=zone, fold=fold).astimezone(UTC)
            for moment in (wall, wall + _pattern_unit(self.key_pattern))
            for fold in (0, 1)
        ]
        low, high = min(readings[:2]) - _ONE_MICROSECOND, max(readings[2:])
        found: list[datetime] = []
        fire = self._fire_after(low)
        while fire <= high and len(found) < 2:
            if self.format_key(fire) == key:
                found.append(fire)
            fire = self._fire_after(fire)
        if len(found) != 1:
            raise LookupError(f"{len(found)} windows have the key {key!r}")
        return found[0]

    def _check_key_pattern(self) -> None:
        """Refuse a ``key_pattern`` that cannot tell windows apart, or whose keys could not
        be read back or name a file safely: tried on windows from the start and around the
        zone's next clock changes."""
        starts: list[datetime] = []
        for around in [self.start, *self._changes_after(self.start)]:
            fire = self._floor(around)
            for _ in range(0 if around == self.start else 3):
                fire = max(self._floor(fire - _ONE_MICROSECOND), self.start)
            for _ in range(24 if around == self.start else 6):
                starts.append(fire)
                fire = self._next(fire)
        problem = ""
        seen: dict[str, datetime] = {}
        for start in sorted(set(starts)):
            key = self.format_key(start)
            if key in seen:
                problem = f"two windows ({seen[key].isoformat()} and {start.isoformat()}) "
                problem += f"have the key {key!r}"
                break
            seen[key] = start
        for key, start in seen.items():
            if problem:
                break
            try:
                if self._start_of(key) != start:
                    problem = f"the key {key!r} does not read back as {start.isoformat()}"
            except InvalidPartitionKeyError as exc:
                problem = f"the key {key!r} cannot be used or read back ({exc.message})"
        if problem:
            raise ConfigError(
                f"key_format {self.key_pattern!r} does not fit {self.name}: {problem}",
                hint="spell every field down to the schedule's own (e.g. '%Y%m%d' for a "
                "daily one, '%Y%m%d%H%M%z' for one that fires more than once a day), with no "
                "'/', space or '%' left in the key",
            )

    def _changes_after(self, moment: datetime) -> list[datetime]:
        """The zone's next two clock changes within two years of ``moment``."""
        found: list[datetime] = []
        week = timedelta(weeks=1)
        probe = moment
        for _ in range(105):
            following = probe + week
            if self._offset(probe) != self._offset(following):
                found.append(self._change(probe, following))
                if len(found) == 2:
                    break
            probe = following
        return found


class _ListedScheme(PartitionScheme):
    """Keys that are a list of values, in order, with no time window: what the static and
    the dynamic schemes share. A subclass has ``values`` and says what an unknown key is."""

    values: tuple[str, ...]

    @abstractmethod
    def _unknown(self, key: str) -> InvalidPartitionKeyError:
        """The error for a key that is not one of the values."""

    def _empty_range(self, first: str, last: str) -> InvalidPartitionKeyError:
        return InvalidPartitionKeyError(f"Empty range: {first!r} comes after {last!r}")

    def parse(self, key: str, *, now: datetime | None = None) -> str:
        _check_characters(key, self.key_format)
        if key not in self.values:
            raise self._unknown(key)
        return key

    def window(self, key: str) -> None:
        self.parse(key)
        return

    def keys(self, *, now: datetime | None = None) -> list[str]:
        return list(self.values)

    def key_range(self, first: str, last: str) -> list[str]:
        i, j = self.values.index(self.parse(first)), self.values.index(self.parse(last))
        if j < i:
            raise self._empty_range(first, last)
        return list(self.values[i : j + 1])


@dataclass(frozen=True)
class StaticScheme(_ListedScheme):
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

    def _unknown(self, key: str) -> InvalidPartitionKeyError:
        return InvalidPartitionKeyError(
            f"Unknown partition key {key!r}: expected {self.key_format}",
            hint=f"pass {self.key_format}",
        )


@dataclass(frozen=True)
class DynamicScheme(_ListedScheme):
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

    def _unknown(self, key: str) -> InvalidPartitionKeyError:
        return InvalidPartitionKeyError(
            f"Unknown partition key {key!r}: it is not a current value of the dynamic "
            f"dimension {self.dimension!r}",
            hint=f"add it with 'backfiller partitions add --dimension {self.dimension} --value "
            f"{key} --reason TEXT', or pass one of its values ('backfiller partitions list')",
        )

    def _empty_range(self, first: str, last: str) -> InvalidPartitionKeyError:
        return InvalidPartitionKeyError(
            f"Empty range: {first!r} was added after {last!r}",
            hint="values are ordered as they were added ('backfiller partitions list')",
        )

    def same_kind(self, other: PartitionScheme) -> bool:
        return isinstance(other, DynamicScheme) and other.dimension == self.dimension


#: the character between the dimensions' values in a multi-dimensional key (no value has it)
DIMENSION_SEPARATOR = "|"
_DIMENSION_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
#: column names a dimension may not take (the columns every stored row has)
_RESERVED_NAMES = frozenset({"partition_key"})


@dataclass(frozen=True)
class Dimension:
    """One dimension of a :class:`MultiScheme`: its name (also the name of its column in the
    asset's table) and its scheme — time windows, static values or a dynamic dimension."""

    name: str
    scheme: PartitionScheme

    def __post_init__(self) -> None:
        if (
            not isinstance(self.name, str)
            or not _DIMENSION_NAME.fullmatch(self.name)
            or self.name in _RESERVED_NAMES
        ):
            raise ConfigError(
                f"Invalid dimension name {self.name!r}: use lower-case letters, digits and '_', "
                "starting with a letter or '_' (it is also the column's name), not partition_key",
                hint='e.g. Dimension("product_line", StaticScheme(("billing", "voice")))',
            )
        if not isinstance(self.scheme, PartitionScheme) or isinstance(self.scheme, MultiScheme):
            raise ConfigError(
                f"Dimension {self.name!r}: its scheme must be a time, static or dynamic scheme, "
                f"not {self.scheme!r}",
                hint="a multi-dimensional scheme lists its dimensions flat: "
                "MultiScheme((Dimension('date', daily), Dimension('product_line', lines)))",
            )


@dataclass(frozen=True)
class MultiScheme(PartitionScheme):
    """Keys with two or more dimensions: one value of each, in the declared order, joined by
    ``|`` (``2026-04-17|billing``). At most one dimension has time windows; a key's window is
    that dimension's window (none when every dimension is static or dynamic).

    The keys are the product of the dimensions' keys, the first dimension varying slowest.
    A range (:meth:`key_range`) is a box: each dimension's range from the first key's value to
    the last key's value. What it costs: the number of cells is the product of the dimensions'
    sizes, and every command looks at each cell (365 days × 3 product lines is 1,095 cells)."""

    dimensions: tuple[Dimension, ...]

    def __post_init__(self) -> None:
        dims = tuple(self.dimensions)
        object.__setattr__(self, "dimensions", dims)
        if len(dims) < 2 or not all(isinstance(d, Dimension) for d in dims):
            raise ConfigError(
                "a multi-dimensional scheme needs two or more Dimension(...) entries",
                hint="MultiScheme((Dimension('date', daily), Dimension('product_line', lines)))",
            )
        names = [d.name for d in dims]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ConfigError(
                f"A multi-dimensional scheme names the dimension(s) {', '.join(twice)} twice",
                hint="give each dimension its own name",
            )
        timed = [d.name for d in dims if isinstance(d.scheme, TimeWindowScheme)]
        if len(timed) > 1:
            raise ConfigError(
                f"A multi-dimensional scheme has more than one time dimension ({', '.join(timed)})",
                hint="keep one time dimension; the others are static or dynamic",
            )

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.dimensions)

    @property
    def name(self) -> str:
        return " × ".join(f"{d.name} ({d.scheme.name})" for d in self.dimensions)

    @property
    def key_format(self) -> str:
        return DIMENSION_SEPARATOR.join(d.name.upper() for d in self.dimensions) + (
            " (" + "; ".join(f"{d.name}: {d.scheme.key_format}" for d in self.dimensions) + ")"
        )

    @property
    def time_dimension(self) -> Dimension | None:
        """The dimension with time windows, if any."""
        return next((d for d in self.dimensions if isinstance(d.scheme, TimeWindowScheme)), None)

    def dimension(self, name: str) -> Dimension:
        """The dimension called ``name`` (bad input naming the dimensions when none is)."""
        for d in self.dimensions:
            if d.name == name:
                return d
        raise InvalidPartitionKeyError(
            f"Unknown dimension {name!r}: the dimensions are {', '.join(self.names)}",
            hint="pass --dimension NAME=VALUE with one of those names",
        )

    def split(self, key: str) -> tuple[str, ...]:
        """The dimensions' values of ``key``, in order (only its shape is checked)."""
        _check_characters(key, self.key_format)
        values = tuple(key.split(DIMENSION_SEPARATOR))
        if len(values) != len(self.dimensions):
            raise InvalidPartitionKeyError(
                f"Invalid partition key {key!r} for {self.name}: expected "
                f"{len(self.dimensions)} values joined by {DIMENSION_SEPARATOR!r}, "
                f"{self.key_format}",
                hint="pass a key such as "
                + DIMENSION_SEPARATOR.join(
                    (d.scheme.keys()[:1] or [d.name])[0]
                    if not isinstance(d.scheme, TimeWindowScheme)
                    else d.scheme.format_key(d.scheme.start)
                    for d in self.dimensions
                ),
            )
        return values

    def values_of(self, key: str) -> dict[str, str]:
        """``{dimension: value}`` of a key (its shape checked, not its values)."""
        return dict(zip(self.names, self.split(key), strict=True))

    def spell(self, values: Sequence[str]) -> str:
        """The key of one value per dimension, in order."""
        return DIMENSION_SEPARATOR.join(values)

    def parse(self, key: str, *, now: datetime | None = None) -> str:
        for d, value in zip(self.dimensions, self.split(key), strict=True):
            try:
                d.scheme.parse(value, now=now)
            except InvalidPartitionKeyError as exc:
                raise InvalidPartitionKeyError(
                    f"Invalid partition key {key!r}: its {d.name} — {exc.message}",
                    hint=exc.hint,
                ) from exc
        return key

    def contains(self, key: str) -> bool:
        if not isinstance(key, str) or key.count(DIMENSION_SEPARATOR) != len(self.dimensions) - 1:
            return False
        return all(
            d.scheme.contains(v)
            for d, v in zip(self.dimensions, key.split(DIMENSION_SEPARATOR), strict=True)
        )

    def window(self, key: str) -> Window | None:
        self.parse(key)
        timed = self.time_dimension
        if timed is None:
            return None
        return timed.scheme.window(self.values_of(key)[timed.name])

    def keys(self, *, now: datetime | None = None) -> list[str]:
        return self.combine([d.scheme.keys(now=now) for d in self.dimensions])

    def combine(self, values: Sequence[Sequence[str]]) -> list[str]:
        """The keys of one value of each of ``values`` (one list per dimension), the first
        dimension varying slowest."""
        return [self.spell(combo) for combo in product(*values)]

    def key_range(self, first: str, last: str) -> list[str]:
        lows, highs = self.split(self.parse(first)), self.split(self.parse(last))
        return self.combine(
            [
                d.scheme.key_range(low, high)
                for d, low, high in zip(self.dimensions, lows, highs, strict=True)
            ]
        )

    def same_kind(self, other: PartitionScheme) -> bool:
        return (
            isinstance(other, MultiScheme)
            and other.names == self.names
            and all(
                a.scheme.same_kind(b.scheme)
                for a, b in zip(self.dimensions, other.dimensions, strict=True)
            )
        )

    def with_values(self, dimension: str, values: Sequence[str]) -> MultiScheme:
        """The same scheme whose dynamic ``dimension`` has ``values`` (as the ledger says)."""
        return MultiScheme(
            tuple(
                Dimension(d.name, DynamicScheme(d.scheme.dimension, tuple(values)))
                if isinstance(d.scheme, DynamicScheme) and d.scheme.dimension == dimension
                else d
                for d in self.dimensions
            )
        )

    def dynamic_dimensions(self) -> list[str]:
        """The names (in the ledger) of its dynamic dimensions."""
        return [d.scheme.dimension for d in self.dimensions if isinstance(d.scheme, DynamicScheme)]


def dimension_columns(scheme: PartitionScheme) -> tuple[str, ...]:
    """The columns an asset of ``scheme`` has besides ``partition_key``, one per dimension of
    a multi-dimensional scheme (none for a single-dimension scheme)."""
    return scheme.names if isinstance(scheme, MultiScheme) else ()


def dimension_values(scheme: PartitionScheme, key: str) -> dict[str, str] | None:
    """``{dimension: value}`` of ``key`` for a multi-dimensional scheme; ``None`` otherwise."""
    return scheme.values_of(key) if isinstance(scheme, MultiScheme) else None


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
        if len(text) == 4:  # a year
            text += "-01-01"
        if len(text) == 7:  # a month
            text += "-01"
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ConfigError(
            f"Invalid partition start {text!r}: expected YYYY-MM-DD or an ISO 8601 timestamp"
        ) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=ZoneInfo(timezone))


#: the key a scheme with offsets gets unless ``key_format`` says otherwise ("": the local start
#: with its UTC offset)
_OFFSET_KEY_PATTERNS = {
    Granularity.HOURLY: "",
    Granularity.DAILY: "%Y-%m-%d",
    Granularity.WEEKLY: "%Y-%m-%d",
    Granularity.MONTHLY: "%Y-%m",
    Granularity.YEARLY: "%Y",
}


def _offset_cron(
    granularity: Granularity, minute: int, hour: int, day: int, week_starts_on: int
) -> str:
    """The cron schedule of a granularity whose windows start ``minute``, ``hour`` and ``day``
    into it; the setting that does not fit it is a :class:`ConfigError`."""

    def check(name: str, value: int, low: int, high: int, why: str = "") -> None:
        if value and high == 0:
            raise ConfigError(
                f"[partitions] {name} does not apply to {granularity.value} partitions{why}",
                hint=f"remove {name}, or use kind = 'cron' with a schedule",
            )
        if not low <= value <= high:
            raise ConfigError(
                f"[partitions] {name} = {value} is out of range for {granularity.value} "
                f"partitions: it must be {low} to {high}{why}",
                hint=f"set {name} from {low} to {high}, or use kind = 'cron' with a schedule",
            )

    g = granularity
    check("minute_offset", minute, 0, 59)
    check("hour_offset", hour, 0, 0 if g is Granularity.HOURLY else 23)
    if g is Granularity.MONTHLY:
        check("day_offset", day, 0, 28, " (the day of the month; 0 is the 1st)")
    elif g is Granularity.WEEKLY:
        check("day_offset", day, 0, 0, " (their windows start on week_starts_on)")
    else:
        check("day_offset", day, 0, 0)
    if g is Granularity.HOURLY:
        return f"{minute} * * * *"
    if g is Granularity.DAILY:
        return f"{minute} {hour} * * *"
    if g is Granularity.WEEKLY:
        return f"{minute} {hour} * * {(week_starts_on + 1) % 7}"  # cron counts from Sunday
    if g is Granularity.MONTHLY:
        return f"{minute} {hour} {max(day, 1)} * *"
    return f"{minute} {hour} 1 1 *"


def scheme_from_config(
    *,
    kind: str = "daily",
    start: str | None = None,
    end: str | None = None,
    timezone: str = "UTC",
    values: Sequence[str] = (),
    week_starts_on: int = 0,
    cron: str = "",
    minute_offset: int = 0,
    hour_offset: int = 0,
    day_offset: int = 0,
    end_offset: int = 0,
    key_format: str = "",
    dimension: str = "",
) -> PartitionScheme:
    """Build a scheme from the plain values of a config file (for a dynamic scheme,
    ``values`` are the dimension's current values, read from the ledger).

    ``kind = "cron"`` takes its windows from ``cron`` (5 fields); an hourly, daily, weekly,
    monthly or yearly scheme whose windows start later into the hour, day or month
    (``minute_offset``, ``hour_offset``, ``day_offset``) is the cron schedule that says so.
    ``key_format`` (strftime) spells the keys of a time scheme another way.
    """
    timed = {
        "cron": cron,
        "minute_offset": minute_offset,
        "hour_offset": hour_offset,
        "day_offset": day_offset,
        "end_offset": end_offset,
        "key_format": key_format,
    }
    if dimension and kind != "dynamic":
        raise ConfigError(
            f"[partitions] dimension is set but kind is {kind!r}",
            hint="set kind = 'dynamic' for keys added at run time, or remove dimension",
        )
    if kind == "static":
        used = [name for name, value in timed.items() if value]
        if used:
            raise ConfigError(
                f"[partitions] {', '.join(used)} do(es) not apply to static partitions",
                hint="remove them, or use a time partition kind",
            )
        return StaticScheme(tuple(values))
    if kind == "dynamic":
        used = [name for name, value in timed.items() if value]
        if used:
            raise ConfigError(
                f"[partitions] {', '.join(used)} do(es) not apply to dynamic partitions",
                hint="remove them, or use a time partition kind",
            )
        if not dimension:
            raise ConfigError(
                "a dynamic partition scheme needs a dimension name",
                hint='set [partitions] dimension, e.g. dimension = "product_line"',
            )
        return DynamicScheme(dimension, tuple(values))
    if kind == "cron":
        if not cron.strip():
            raise ConfigError(
                "a cron partition scheme needs [partitions] cron",
                hint="set cron to a 5-field schedule, e.g. '*/15 * * * *'",
            )
        offsets = [n for n in ("minute_offset", "hour_offset", "day_offset") if timed[n]]
        if offsets:
            raise ConfigError(
                f"[partitions] {', '.join(offsets)} do(es) not apply to a cron schedule",
                hint="write the minute, hour and day into the schedule itself",
            )
        granularity = Granularity.DAILY
    else:
        try:
            granularity = Granularity(kind)
        except ValueError as exc:
            raise ConfigError(
                f"Unknown partition kind {kind!r}",
                hint="use one of hourly, daily, weekly, monthly, yearly, cron, static, dynamic",
            ) from exc
        if cron:
            raise ConfigError(
                f"[partitions] cron is set but kind is {kind!r}",
                hint="set kind = 'cron' to take the windows from the schedule",
            )
    if start is None:
        raise ConfigError(f"a {kind} partition scheme needs a start date")
    tz_probe = TimeWindowScheme(timezone=timezone)  # validates the zone
    first = _parse_start(start, tz_probe.timezone)
    last = _parse_start(end, timezone) if end else None
    if kind != "cron":
        cron = _offset_cron(granularity, minute_offset, hour_offset, day_offset, week_starts_on)
        if not (minute_offset or hour_offset or day_offset or key_format):
            return TimeWindowScheme(
                granularity=granularity,
                start=first,
                end=last,
                timezone=timezone,
                week_starts_on=week_starts_on,
                end_offset=end_offset,
            )
        key_format = key_format or _OFFSET_KEY_PATTERNS[granularity]
    return CronScheme(
        granularity=granularity,
        start=first,
        end=last,
        timezone=timezone,
        week_starts_on=week_starts_on,
        end_offset=end_offset,
        cron=cron,
        key_pattern=key_format,
    )
