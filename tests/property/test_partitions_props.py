"""Properties of backfiller.partitions over random instants, granularities and time zones.

Uniformly random instants almost never land near a DST transition, so half of the instants are
drawn within a few hours of a real transition of the zone (computed once, below).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from fast_loop import examples
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from backfiller.errors import InvalidPartitionKeyError
from backfiller.partitions import Granularity, StaticScheme, TimeWindowScheme, scheme_from_config

ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kolkata")
DST_ZONES = ("Europe/Berlin", "America/New_York", "Australia/Sydney")
LOW = datetime(2020, 1, 1, tzinfo=UTC)
HIGH = datetime(2030, 1, 1, tzinfo=UTC)
ONE_US = timedelta(microseconds=1)
HOUR = timedelta(hours=1)

# how far the second end of a random range may lie from the first, per granularity
MAX_SPAN = {
    Granularity.HOURLY: timedelta(days=10),
    Granularity.DAILY: timedelta(days=400),
    Granularity.WEEKLY: timedelta(weeks=120),
    Granularity.MONTHLY: timedelta(days=3660),
    Granularity.YEARLY: timedelta(days=3660),
}

# the UTC length a window may have, allowing for one DST shift (the zones here shift by 1h)
DURATIONS = {
    Granularity.HOURLY: (HOUR, HOUR),
    Granularity.DAILY: (timedelta(hours=23), timedelta(hours=25)),
    Granularity.WEEKLY: (timedelta(days=7) - HOUR, timedelta(days=7) + HOUR),
    Granularity.MONTHLY: (timedelta(days=28) - HOUR, timedelta(days=31) + HOUR),
    Granularity.YEARLY: (timedelta(days=365) - HOUR, timedelta(days=366) + HOUR),
}

#: 20 examples in the fast loop (``make check``), 200 in the full suite
PROPS = settings(
    max_examples=examples(200),
    deadline=None,
    database=None,
)


@cache
def scheme(granularity: Granularity, zone: str) -> TimeWindowScheme:
    built = scheme_from_config(kind=granularity.value, start="2019-01-01", timezone=zone)
    assert isinstance(built, TimeWindowScheme)
    return built


@cache
def transitions(zone: str) -> tuple[datetime, ...]:
    """The UTC instants in [LOW, HIGH) at which the zone's UTC offset changes."""
    tz = ZoneInfo(zone)
    found: list[datetime] = []
    day = LOW
    while day < HIGH:
        following = day + timedelta(days=1)
        if day.astimezone(tz).utcoffset() != following.astimezone(tz).utcoffset():
            moment = day
            while moment.astimezone(tz).utcoffset() == day.astimezone(tz).utcoffset():
                moment += timedelta(minutes=15)
            found.append(moment)
        day = following
    return tuple(found)


def offset_at(zone: str, moment: datetime) -> timedelta | None:
    return moment.astimezone(ZoneInfo(zone)).utcoffset()


def uniform_instants() -> st.SearchStrategy[datetime]:
    return st.datetimes(
        min_value=LOW.replace(tzinfo=None),
        max_value=(HIGH - ONE_US).replace(tzinfo=None),
        timezones=st.just(UTC),
    )


def near_transition(zone: str, before: timedelta, after: timedelta) -> st.SearchStrategy[datetime]:
    """Instants in ``[t - before, t + after)`` for a DST transition ``t`` of ``zone``."""
    span = int((before + after) / ONE_US)
    return st.builds(
        lambda t, us: t - before + timedelta(microseconds=us),
        st.sampled_from(transitions(zone)),
        st.integers(min_value=0, max_value=span - 1),
    )


def instants(zone: str) -> st.SearchStrategy[datetime]:
    if not transitions(zone):
        return uniform_instants()
    three_hours = timedelta(hours=3)
    return st.one_of(uniform_instants(), near_transition(zone, three_hours, three_hours))


@st.composite
def cases(draw: st.DrawFn) -> tuple[TimeWindowScheme, datetime]:
    granularity = draw(st.sampled_from(Granularity))
    zone = draw(st.sampled_from(ZONES))
    moment = draw(instants(zone))
    # an aware instant in any of the zones is the same instant
    moment = moment.astimezone(ZoneInfo(draw(st.sampled_from(ZONES))))
    return scheme(granularity, zone), moment


@st.composite
def range_cases(draw: st.DrawFn) -> tuple[TimeWindowScheme, datetime, datetime]:
    built, first = draw(cases())
    span = MAX_SPAN[built.granularity]
    second = first + draw(st.timedeltas(min_value=timedelta(0), max_value=span))
    return built, first, min(second, HIGH - ONE_US)


def test_transitions_are_found() -> None:
    assert transitions("UTC") == ()
    assert transitions("Asia/Kolkata") == ()
    for zone in DST_ZONES:
        assert len(transitions(zone)) == 20  # two a year for ten years
    assert datetime(2026, 3, 29, 1, tzinfo=UTC) in transitions("Europe/Berlin")
    assert datetime(2026, 10, 25, 1, tzinfo=UTC) in transitions("Europe/Berlin")


# (a) key_for -> window contains the instant; format_key(start) == key; parse round-trips ----------


@PROPS
@given(cases())
def test_key_for_window_contains_and_round_trips(case: tuple[TimeWindowScheme, datetime]) -> None:
    built, moment = case
    key = built.key_for(moment)
    window = built.window(key)
    assert window.contains(moment)
    assert built.format_key(window.start) == key
    assert built.format_key(window.start_utc) == key
    assert built.parse(key) == key
    assert built.key_for(window.start) == key
    assert built.key_for(window.end_utc - ONE_US) == key
    assert built.key_for(window.end) != key
    low, high = DURATIONS[built.granularity]
    assert low <= window.end_utc - window.start_utc <= high


@PROPS
@given(cases())
def test_a_window_is_complete_exactly_at_its_end(case: tuple[TimeWindowScheme, datetime]) -> None:
    built, moment = case
    key = built.key_for(moment)
    window = built.window(key)
    assert built.parse(key, now=window.end_utc) == key
    with pytest.raises(InvalidPartitionKeyError):
        built.parse(key, now=window.end_utc - ONE_US)
    assert built.last_complete(window.end) == key
    assert built.last_complete(window.end_utc - ONE_US) != key


@PROPS
@given(cases())
def test_last_complete_is_the_latest_closed_window(
    case: tuple[TimeWindowScheme, datetime],
) -> None:
    built, now = case
    current = built.window(built.key_for(now))
    assert current.start_utc <= now < current.end_utc
    last = built.last_complete(now)
    if last is None:
        # only when the window containing now is the scheme's first one
        assert current.start_utc == built.start
        return
    window = built.window(last)
    assert window.end_utc <= now
    # the window right after the last complete one is the open one
    assert window.end_utc == current.start_utc


# (b) key_range tiles [window(a).start, window(b).end) ---------------------------------------------


@PROPS
@given(range_cases())
def test_key_range_tiles_without_gap_or_overlap(
    case: tuple[TimeWindowScheme, datetime, datetime],
) -> None:
    built, first_moment, last_moment = case
    first, last = built.key_for(first_moment), built.key_for(last_moment)
    keys = built.key_range(first, last)
    assert keys[0] == first
    assert keys[-1] == last
    assert len(set(keys)) == len(keys)
    windows = [built.window(key) for key in keys]
    assert windows[0].start_utc == built.window(first).start_utc
    assert windows[-1].end_utc == built.window(last).end_utc
    for window in windows:
        assert window.start_utc < window.end_utc
    for before, after in pairwise(windows):
        assert before.end_utc == after.start_utc
        assert before.start_utc < after.start_utc
    assert [built.key_for(window.start) for window in windows] == keys


@PROPS
@given(range_cases())
def test_reversed_key_range_is_refused(case: tuple[TimeWindowScheme, datetime, datetime]) -> None:
    built, first_moment, last_moment = case
    first, last = built.key_for(first_moment), built.key_for(last_moment)
    assume(first != last)
    with pytest.raises(InvalidPartitionKeyError):
        built.key_range(last, first)


# (c) the rendered inclusive end is exactly one microsecond before the end -------------------------


def assert_inclusive_end_is_one_microsecond_before_end(built: TimeWindowScheme, key: str) -> None:
    window = built.window(key)
    rendered_start, rendered_end = window.render()
    assert datetime.fromisoformat(rendered_start) == window.start_utc
    assert window.end_utc - window.inclusive_end.astimezone(UTC) == ONE_US
    assert window.end_utc - datetime.fromisoformat(rendered_end) == ONE_US


def near_a_transition(built: TimeWindowScheme, key: str) -> bool:
    window = built.window(key)
    return offset_at(built.timezone, window.start_utc - HOUR) != offset_at(
        built.timezone, window.end_utc + HOUR
    )


@PROPS
@given(cases())
def test_render_inclusive_end_is_one_microsecond_before_end(
    case: tuple[TimeWindowScheme, datetime],
) -> None:
    built, moment = case
    key = built.key_for(moment)
    # hourly windows at a DST transition are the known bug below
    assume(built.granularity is not Granularity.HOURLY or not near_a_transition(built, key))
    assert_inclusive_end_is_one_microsecond_before_end(built, key)


@PROPS
@given(
    st.sampled_from(DST_ZONES).flatmap(
        lambda zone: st.tuples(st.just(zone), near_transition(zone, HOUR, timedelta(0)))
    )
)
@example(("Europe/Berlin", datetime(2026, 10, 25, 0, 30, tzinfo=UTC)))
def test_render_hourly_at_dst_transitions(case: tuple[str, datetime]) -> None:
    zone, moment = case
    built = scheme(Granularity.HOURLY, zone)
    assert_inclusive_end_is_one_microsecond_before_end(built, built.key_for(moment))


# (d) a static key range is a contiguous slice -----------------------------------------------------

static_keys = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,20}", fullmatch=True).filter(
    lambda key: ".." not in key
)


@st.composite
def static_cases(draw: st.DrawFn) -> tuple[StaticScheme, int, int]:
    values = draw(st.lists(static_keys, min_size=1, max_size=30, unique=True))
    i = draw(st.integers(min_value=0, max_value=len(values) - 1))
    j = draw(st.integers(min_value=0, max_value=len(values) - 1))
    return StaticScheme(tuple(values)), i, j


@PROPS
@given(static_cases())
def test_static_key_range_is_a_contiguous_slice(case: tuple[StaticScheme, int, int]) -> None:
    built, i, j = case
    values = built.values
    for value in values:
        assert built.parse(value) == value
    if i <= j:
        assert built.key_range(values[i], values[j]) == list(values[i : j + 1])
    else:
        with pytest.raises(InvalidPartitionKeyError):
            built.key_range(values[i], values[j])
    assert built.keys() == list(values)
