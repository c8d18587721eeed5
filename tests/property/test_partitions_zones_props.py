"""Properties of time-window schemes in every IANA zone whose clock changes between 2020 and 2030.

Every scheme (hourly, daily, weekly with each week start, monthly, yearly, and cron schedules:
every 15 minutes, every 4 hours, twice a day, at a time the clock skips, weekly, monthly and
yearly at a time of day, with keys spelled by strftime) in every such zone:
``parse(format(key))`` round-trips, windows tile the UTC line without gap or overlap, the window
of ``key_for(instant)`` contains the instant, and ``keys`` / ``parse`` / ``last_complete`` /
``keys(now=...)`` agree, also when ``start`` and ``end`` are not on window boundaries.

The zones and their clock changes are found from ``zoneinfo`` itself (the offset sampled every
week, each change then located to the microsecond), so a new tzdata release is swept as it is.
Hypothesis draws zones, schemes and instants (half of them within hours of a clock change); a
deterministic sweep checks every clock change of every zone.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from itertools import pairwise
from zoneinfo import ZoneInfo, available_timezones

import pytest
from fast_loop import examples
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from backfiller.assets import TimeWindowMapping
from backfiller.errors import ConfigError, InvalidPartitionKeyError
from backfiller.partitions import CronScheme, Granularity, TimeWindowScheme

LOW = datetime(2020, 1, 1, tzinfo=UTC)
HIGH = datetime(2030, 1, 1, tzinfo=UTC)
ONE_US = timedelta(microseconds=1)
HOUR = timedelta(hours=1)
WEEK = timedelta(weeks=1)
#: zones whose offset is not a whole number of hours but never changes, and plain ones
FIXED_ZONES = ("UTC", "Asia/Kathmandu", "Asia/Kolkata", "Pacific/Marquesas", "Pacific/Kiritimati")
#: the largest clock change of any zone (Antarctica/Casey moved between +08 and +11)
LARGEST_CHANGE = timedelta(hours=3)
#: how far an unaligned end may lie after an unaligned start, per granularity
MAX_SPAN = {
    Granularity.HOURLY: timedelta(days=3),
    Granularity.DAILY: timedelta(days=40),
    Granularity.WEEKLY: timedelta(weeks=30),
    Granularity.MONTHLY: timedelta(days=800),
    Granularity.YEARLY: timedelta(days=3000),
}

#: a tenth of the examples in the fast loop (``make check``); all of them in the full suite
PROPS = settings(
    max_examples=examples(500),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def offset(zone: ZoneInfo, moment: datetime) -> timedelta:
    found = moment.astimezone(zone).utcoffset()
    assert found is not None
    return found


def _change(zone: ZoneInfo, before: datetime, after: datetime) -> datetime:
    """The first instant in ``(before, after]`` with ``after``'s offset."""
    target = offset(zone, after)
    while after - before > ONE_US:
        middle = before + (after - before) // 2
        if offset(zone, middle) == target:
            after = middle
        else:
            before = middle
    return after


@cache
def transitions(name: str) -> tuple[datetime, ...]:
    """The UTC instants in ``[LOW, HIGH)`` at which the zone's offset changes."""
    zone = ZoneInfo(name)
    found: list[datetime] = []
    moment = LOW
    while moment < HIGH:
        following = min(moment + WEEK, HIGH)
        if offset(zone, moment) != offset(zone, following):
            found.append(_change(zone, moment, following))
        moment = following
    return tuple(found)


@cache
def changing_zones() -> tuple[str, ...]:
    """Every IANA zone with at least one clock change between 2020 and 2030."""
    return tuple(name for name in sorted(available_timezones()) if transitions(name))


@dataclass(frozen=True)
class Kind:
    """A kind of scheme: a granularity (with its week start), or a cron schedule (``span``:
    how far apart an unaligned start and end may be drawn)."""

    granularity: Granularity
    week_starts_on: int = 0
    cron: str = ""
    key_pattern: str = ""
    span: timedelta = timedelta(0)

    def build(
        self,
        zone: str,
        start: datetime = datetime(2019, 1, 1, tzinfo=UTC),
        end: datetime | None = None,
    ) -> TimeWindowScheme:
        if self.cron:
            return CronScheme(
                start=start, end=end, timezone=zone, cron=self.cron, key_pattern=self.key_pattern
            )
        return TimeWindowScheme(self.granularity, start, end, zone, self.week_starts_on)

    @property
    def max_span(self) -> timedelta:
        return self.span or MAX_SPAN[self.granularity]


HOURLY, DAILY = Kind(Granularity.HOURLY), Kind(Granularity.DAILY)
DAYS = timedelta(days=1)
CRON_KINDS = (
    Kind(Granularity.HOURLY, cron="*/15 * * * *", span=DAYS / 2),
    Kind(Granularity.HOURLY, cron="0 */4 * * *", span=5 * DAYS),
    Kind(Granularity.DAILY, cron="0 0,12 * * *", span=20 * DAYS),
    Kind(Granularity.DAILY, cron="30 2 * * *", key_pattern="%Y%m%d", span=40 * DAYS),
    Kind(Granularity.WEEKLY, cron="15 4 * * 3", key_pattern="%Y-%m-%d", span=200 * DAYS),
    Kind(Granularity.MONTHLY, cron="15 3 12 * *", key_pattern="%Y-%m", span=800 * DAYS),
    Kind(Granularity.YEARLY, cron="0 0 1 1 *", key_pattern="%Y", span=3000 * DAYS),
)
SCHEME_KINDS = (
    HOURLY,
    DAILY,
    *(Kind(Granularity.WEEKLY, day) for day in range(7)),
    Kind(Granularity.MONTHLY),
    Kind(Granularity.YEARLY),
    *CRON_KINDS,
)


@cache
def scheme(kind: Kind, zone: str) -> TimeWindowScheme:
    return kind.build(zone)


def nominal_length(built: TimeWindowScheme, start: datetime) -> timedelta:
    """A window's length if the clock did not change: an hour, a day, a week, a month."""
    g = built.granularity
    if g is Granularity.HOURLY:
        return HOUR
    if g is Granularity.DAILY:
        return timedelta(days=1)
    if g is Granularity.WEEKLY:
        return WEEK
    local = start.astimezone(built.zone)
    if g is Granularity.YEARLY:
        return timedelta(days=366 if calendar.isleap(local.year) else 365)
    return timedelta(days=calendar.monthrange(local.year, local.month)[1])


def check_window_of(built: TimeWindowScheme, moment: datetime) -> None:
    """The window of ``key_for(moment)``: contains it, round-trips, tiles with its neighbours,
    starts where the local clock starts its hour or day."""
    zone = built.zone
    key = built.key_for(moment)
    window = built.window(key)
    start, end = window.start_utc, window.end_utc
    assert window.contains(moment), (key, moment)
    assert built.parse(key) == key
    assert built.format_key(start) == key
    assert built.key_for(start) == key
    assert built.key_for(end - ONE_US) == key
    # tiling: the next window starts where this one ends, the previous one ends where it starts
    following = built.key_for(end)
    assert following != key
    assert built.window(following).start_utc == end
    previous = built.key_for(start - ONE_US)
    assert previous != key
    assert built.window(previous).end_utc == start
    # where the windows start
    local = start.astimezone(zone)
    changed = offset(zone, start - ONE_US) != offset(zone, start)
    if isinstance(built, CronScheme):
        if not built.key_pattern:
            spelled = datetime.fromisoformat(key)
            assert (spelled if spelled.tzinfo else spelled.replace(tzinfo=UTC)) == start
    elif built.granularity is Granularity.HOURLY:
        assert (local.minute, local.second, local.microsecond) == (0, 0, 0), key
        spelled = datetime.fromisoformat(key)  # the key spells its start, with the offset
        assert (spelled if spelled.tzinfo else spelled.replace(tzinfo=UTC)) == start
        assert abs((end - start) - HOUR) <= abs(offset(zone, end) - offset(zone, start))
    else:
        # local midnight, or the instant the clock jumps over a midnight it skips
        assert local.time() == datetime.min.time() or changed, key
        length, nominal = end - start, nominal_length(built, start)
        if changed or offset(zone, end - ONE_US) != offset(zone, end):
            assert abs(length - nominal) <= LARGEST_CHANGE
        else:  # from midnight to midnight: the clock changes inside count once each
            assert length == nominal - (offset(zone, end) - offset(zone, start)), key
        assert local.date().isoformat().startswith(key) or changed, key


# -- hypothesis over zones, schemes and instants ---------------------------------------------


def zones() -> st.SearchStrategy[str]:
    return st.deferred(
        lambda: st.one_of(st.sampled_from(changing_zones()), st.sampled_from(FIXED_ZONES))
    )


def scheme_kinds() -> st.SearchStrategy[Kind]:
    return st.sampled_from(SCHEME_KINDS)


def uniform_instants() -> st.SearchStrategy[datetime]:
    return st.datetimes(
        min_value=LOW.replace(tzinfo=None),
        max_value=(HIGH - ONE_US).replace(tzinfo=None),
        timezones=st.just(UTC),
    )


def instants(zone: str, around: timedelta = timedelta(hours=3)) -> st.SearchStrategy[datetime]:
    """Uniform in 2020-2030, or within ``around`` of one of the zone's clock changes."""
    changes = transitions(zone)
    if not changes:
        return uniform_instants()
    span = int(2 * around / ONE_US)
    near = st.builds(
        lambda t, us: t - around + timedelta(microseconds=us),
        st.sampled_from(changes),
        st.integers(min_value=0, max_value=span),
    )
    exactly = st.builds(
        lambda t, us: t + timedelta(microseconds=us),
        st.sampled_from(changes),
        st.integers(min_value=-1, max_value=0),
    )
    return st.one_of(uniform_instants(), near, exactly)


@st.composite
def cases(draw: st.DrawFn) -> tuple[TimeWindowScheme, datetime]:
    zone = draw(zones())
    kind = draw(scheme_kinds())
    moment = draw(instants(zone))
    return scheme(kind, zone), moment


@pytest.mark.slow
@PROPS
@given(cases())
@example((scheme(HOURLY, "Australia/Lord_Howe"), datetime(2026, 10, 3, 15, 45, tzinfo=UTC)))
@example((scheme(HOURLY, "Australia/Lord_Howe"), datetime(2026, 4, 4, 15, 10, tzinfo=UTC)))
@example((scheme(HOURLY, "Pacific/Chatham"), datetime(2026, 4, 4, 14, 5, tzinfo=UTC)))
@example((scheme(HOURLY, "Antarctica/Troll"), datetime(2026, 3, 29, 1, 30, tzinfo=UTC)))
@example((scheme(DAILY, "America/Santiago"), datetime(2026, 9, 6, 4, tzinfo=UTC)))
def test_key_for_round_trips_and_tiles_in_every_zone(
    case: tuple[TimeWindowScheme, datetime],
) -> None:
    built, moment = case
    check_window_of(built, moment)


@st.composite
def bounded_cases(
    draw: st.DrawFn, kinds: tuple[Kind, ...]
) -> tuple[str, Kind, datetime, datetime, datetime]:
    """A zone, a scheme kind, an unaligned start and end near clock changes, and a ``now``."""
    zone = draw(zones())
    kind = draw(st.sampled_from(kinds))
    start = draw(instants(zone))
    span = kind.max_span
    end = start + draw(st.timedeltas(min_value=timedelta(0), max_value=span))
    now = start + draw(st.timedeltas(min_value=-span / 10, max_value=span + span / 10))
    return zone, kind, start, end, now


def windows_from(built: TimeWindowScheme, moment: datetime) -> Iterator[tuple[str, datetime]]:
    """The keys and ends of the windows from the one containing ``moment`` on (no bounds)."""
    key = built.key_for(moment)
    while True:
        end = built.window(key).end_utc
        yield key, end
        key = built.key_for(end)


@PROPS
@given(bounded_cases(SCHEME_KINDS[: -len(CRON_KINDS)]))
def test_keys_parse_and_last_complete_agree_with_unaligned_bounds(
    case: tuple[str, Kind, datetime, datetime, datetime],
) -> None:
    check_bounded(case)


@pytest.mark.slow
@settings(PROPS, max_examples=examples(150))  # cron is slow to ask; the slow sweep adds more
@given(bounded_cases(CRON_KINDS))
def test_cron_keys_parse_and_last_complete_agree_with_unaligned_bounds(
    case: tuple[str, Kind, datetime, datetime, datetime],
) -> None:
    check_bounded(case)


def check_bounded(case: tuple[str, Kind, datetime, datetime, datetime]) -> None:
    zone, kind, start, end, now = case
    unbounded = scheme(kind, zone)
    # the whole windows in [start, end), computed from the unbounded scheme
    expected: list[str] = []
    for key, window_end in windows_from(unbounded, start):
        if window_end > end:
            break
        if unbounded.window(key).start_utc >= start:
            expected.append(key)
    try:
        built = kind.build(zone, start, end)
    except ConfigError as exc:
        assert expected == [], exc
        assert "no whole window" in str(exc)
        return
    assert built.keys() == expected
    assert built.name.endswith(f" from {expected[0]} ({zone})")
    assert built.start == built.window(expected[0]).start_utc
    assert built.end == built.window(expected[-1]).end_utc
    assert built.keys(now=built.end + timedelta(days=1)) == expected
    for key in expected:
        assert built.parse(key) == key
    for before, after in pairwise(expected):
        assert built.window(before).end_utc == built.window(after).start_utc
    outside = (unbounded.key_for(built.start - ONE_US), unbounded.key_for(built.end))
    for key in outside:
        with pytest.raises(InvalidPartitionKeyError):
            built.parse(key)
    assert built.key_range(expected[0], expected[-1]) == expected
    # as of ``now``: the complete ones among them
    complete = [key for key in expected if built.window(key).end_utc <= now]
    assert built.keys(now=now) == complete
    assert built.last_complete(now) == (complete[-1] if complete else None)
    for key in complete:
        assert built.parse(key, now=now) == key
    if len(complete) < len(expected):
        with pytest.raises(InvalidPartitionKeyError, match="not complete"):
            built.parse(expected[len(complete)], now=now)
    # and the same scheme built again from its own (normalised) fields
    assert kind.build(zone, built.start, built.end) == built


# -- every clock change of every zone, deterministically -------------------------------------


def sweep_kinds(zone: str, change: datetime, *, crons: bool) -> Iterator[TimeWindowScheme]:
    """The schemes whose boundaries a clock change may hit: hourly, daily, monthly, yearly, the
    weeks that start on the local day of the change or the day after it, and (``crons``) the
    cron schedules."""
    local_day = change.astimezone(ZoneInfo(zone)).weekday()
    yield scheme(HOURLY, zone)
    yield scheme(DAILY, zone)
    yield scheme(Kind(Granularity.WEEKLY, local_day), zone)
    yield scheme(Kind(Granularity.WEEKLY, (local_day + 1) % 7), zone)
    yield scheme(Kind(Granularity.MONTHLY), zone)
    yield scheme(Kind(Granularity.YEARLY), zone)
    if crons:
        for kind in CRON_KINDS:
            yield scheme(kind, zone)


def sweep(zones: tuple[str, ...], *, crons: bool = True) -> tuple[int, list[str]]:
    """Check the windows just before and at every clock change of ``zones``."""
    failures: list[str] = []
    checked = 0
    for zone in zones:
        for change in transitions(zone):
            for built in sweep_kinds(zone, change, crons=crons):
                crons_too = isinstance(built, CronScheme)  # cron schedules are slower
                for moment in (change,) if crons_too else (change - ONE_US, change):
                    try:
                        check_window_of(built, moment)
                    except (AssertionError, ValueError, InvalidPartitionKeyError) as exc:
                        failures.append(f"{built.name} at {moment.isoformat()}: {exc!r}")
                    checked += 1
    return checked, failures


def odd_zones() -> tuple[str, ...]:
    """The zones whose clock moves by other than one hour, or not on the hour, or whose offset
    is not a whole number of hours."""
    found = []
    for name in changing_zones():
        zone = ZoneInfo(name)
        for change in transitions(name):
            moved = offset(zone, change) - offset(zone, change - ONE_US)
            local = change.astimezone(zone)
            if abs(moved) != HOUR or local.minute or offset(zone, change) % HOUR:
                found.append(name)
                break
    return tuple(found)


@pytest.mark.slow
def test_every_clock_change_of_the_zones_that_move_by_part_of_an_hour() -> None:
    zones = odd_zones()
    assert {"Australia/Lord_Howe", "Pacific/Chatham", "Antarctica/Troll"} <= set(zones)
    assert {"America/St_Johns", "Asia/Tehran", "Australia/Adelaide"} <= set(zones)
    checked, failures = sweep(zones, crons=False)  # the slow sweep below has the cron schedules
    assert checked > 500
    assert not failures, f"{len(failures)} of {checked} failed, e.g.\n" + "\n".join(failures[:20])


@pytest.mark.slow
def test_every_clock_change_of_every_zone() -> None:
    checked, failures = sweep(changing_zones())
    assert checked > 10_000
    assert not failures, f"{len(failures)} of {checked} failed, e.g.\n" + "\n".join(failures[:20])


def test_the_zones_swept() -> None:
    found = changing_zones()
    for name in (
        "Europe/Berlin",
        "America/New_York",
        "Australia/Lord_Howe",
        "Pacific/Chatham",
        "Antarctica/Troll",
        "America/Santiago",
        "America/St_Johns",
    ):
        assert name in found
    for name in FIXED_ZONES:
        assert name not in found
    assert len(found) > 100
    assert transitions("Europe/Berlin")[:2] == (
        datetime(2020, 3, 29, 1, tzinfo=UTC),
        datetime(2020, 10, 25, 1, tzinfo=UTC),
    )
    assert len(transitions("Australia/Lord_Howe")) == 20
    largest = max(
        abs(offset(ZoneInfo(name), t) - offset(ZoneInfo(name), t - ONE_US))
        for name in found
        for t in transitions(name)
    )
    assert largest == LARGEST_CHANGE


# -- time-window mappings keep to the bounds of the scheme they map onto ---------------------


@st.composite
def bounded_schemes(draw: st.DrawFn) -> TimeWindowScheme:
    """A scheme with an unaligned start and end in 2026, near a clock change of its zone."""
    zone = draw(zones())
    kind = draw(st.sampled_from(MAPPED_KINDS))
    start = draw(instants(zone))
    end = start + draw(st.timedeltas(min_value=timedelta(days=63), max_value=timedelta(days=120)))
    return kind.build(zone, start, end)


#: daily or coarser schemes (fewer keys) whose windows fit in the 63 days drawn above
MAPPED_KINDS = (
    DAILY,
    *(Kind(Granularity.WEEKLY, day) for day in range(7)),
    Kind(Granularity.MONTHLY),
    *(k for k in CRON_KINDS if k.span >= 20 * DAYS and k.granularity is not Granularity.YEARLY),
)


@settings(PROPS, max_examples=examples(150))
@given(bounded_schemes(), bounded_schemes(), st.integers(min_value=0, max_value=2), st.data())
def test_time_window_mappings_return_only_keys_of_the_scheme_they_map_onto(
    down: TimeWindowScheme, up: TimeWindowScheme, lookback: int, data: st.DataObject
) -> None:
    mapping = TimeWindowMapping(lookback=lookback)
    down_keys, up_keys = down.keys(), up.keys()
    key = data.draw(st.sampled_from(down_keys))
    found = mapping.upstream_keys(key, down, up)
    assert found == [k for k in up_keys if k in set(found)]  # keys of ``up``, in order
    if lookback == 0:
        window = down.window(key)
        overlapping = [
            k
            for k in up_keys
            if up.window(k).start_utc < window.end_utc and window.start_utc < up.window(k).end_utc
        ]
        assert found == overlapping
    up_key = data.draw(st.sampled_from(up_keys))
    found = mapping.downstream_keys(up_key, up, down)
    assert found == [k for k in down_keys if k in set(found)]  # keys of ``down``, in order
    for k in found:
        assert up_key in mapping.upstream_keys(k, down, up)


# -- cron agrees with the built-in schemes where they are the same schedule ----------------------


@PROPS
@given(st.data())
def test_hourly_and_daily_cron_schedules_are_the_hourly_and_daily_schemes(
    data: st.DataObject,
) -> None:
    zone = data.draw(zones())
    moment = data.draw(instants(zone))
    for cron, kind in (("0 * * * *", HOURLY), ("0 0 * * *", DAILY)):
        built, reference = scheme(Kind(kind.granularity, cron=cron), zone), scheme(kind, zone)
        window = built.window(built.key_for(moment))
        expected = reference.window(reference.key_for(moment))
        assert (window.start_utc, window.end_utc) == (expected.start_utc, expected.end_utc)
