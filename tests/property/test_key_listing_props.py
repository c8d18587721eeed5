"""Listing keys counted on the calendar (a UTC scheme of days, weeks, months or years) gives
exactly the keys that walking the windows one boundary at a time gives: for any start, end,
week start and listing bounds, and in any time zone (the other zones keep the walk)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fast_loop import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from backfiller.partitions import Granularity, TimeWindowScheme

_MOMENTS = st.datetimes(
    min_value=datetime(1999, 1, 1), max_value=datetime(2031, 12, 31), timezones=st.just(UTC)
)


def _walked(scheme: TimeWindowScheme, first: datetime, stop: datetime) -> list[str]:
    return [key for key, _ in scheme.iter_windows(first, stop)]


@settings(max_examples=examples(300), deadline=None)
@given(
    granularity=st.sampled_from(list(Granularity)),
    zone=st.sampled_from(["UTC", "Etc/UTC", "Europe/Berlin", "Pacific/Apia"]),
    start=_MOMENTS,
    length=st.integers(min_value=1, max_value=4000),
    bounded=st.booleans(),
    week_starts_on=st.integers(min_value=0, max_value=6),
    first_shift=st.integers(min_value=-400, max_value=400),
    span=st.integers(min_value=0, max_value=4000),
)
def test_calendar_keys_are_the_walked_keys(
    granularity: Granularity,
    zone: str,
    start: datetime,
    length: int,
    bounded: bool,
    week_starts_on: int,
    first_shift: int,
    span: int,
) -> None:
    step = timedelta(hours=1) if granularity is Granularity.HOURLY else timedelta(days=1)
    try:
        scheme = TimeWindowScheme(
            granularity=granularity,
            start=start,
            end=start + step * length * 40 if bounded else None,
            timezone=zone,
            week_starts_on=week_starts_on,
        )
    except Exception:  # a scheme holding no whole window: nothing to list
        return
    first = start + step * first_shift
    stop = first + step * span
    assert scheme._keys_between(first, stop) == _walked(scheme, first, stop)


@given(days=st.integers(min_value=1, max_value=3650), offset=st.integers(0, 3000))
def test_a_daily_key_range_is_every_day_in_order(days: int, offset: int) -> None:
    scheme = TimeWindowScheme(start=datetime(2015, 1, 1, tzinfo=UTC))
    first = datetime(2015, 1, 1) + timedelta(days=offset)
    last = first + timedelta(days=days - 1)
    keys = scheme.key_range(first.date().isoformat(), last.date().isoformat())
    assert keys == [(first + timedelta(days=i)).date().isoformat() for i in range(days)]
