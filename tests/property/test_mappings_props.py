"""Partition mappings against brute force, on generated schemes (hourly, daily, weekly, monthly,
cron every 6 hours and monthly on the 12th at 03:15; unaligned starts and ends; zones whose clock
changes, by an hour or by half an hour) and offsets:

- the upstream keys of a downstream key are exactly the upstream windows that overlap the
  downstream window moved by the offsets — those within the upstream's bounds are read, those
  outside are missing (reported; dropped only with ``allow_missing``);
- ``downstream_keys`` is the exact inverse of ``upstream_keys``;
- a lag (both offsets negative) never reads the current window;
- fan-in (a week or month reads its days or hours) and fan-out (each day or hour reads its week
  or month) round-trip.

The brute force walks the windows one key at a time through ``key_for`` and ``window`` and
decides bounds with ``contains`` (``parse``), not through the grid the mappings walk."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from fast_loop import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from backfiller.mappings import TimeWindowMapping
from backfiller.partitions import TimeWindowScheme, scheme_from_config

PROPS = settings(max_examples=examples(120), deadline=None, database=None)

ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata")
#: how long each kind's generated scheme runs (so that a scheme has a few dozen keys at most)
SPANS = {
    "hourly": (2, 6),
    "every6h": (5, 20),
    "daily": (20, 70),
    "weekly": (60, 200),
    "monthly": (150, 500),
    "12th": (150, 500),
}
#: cron schedules, by the name the kinds above use
CRONS = {"every6h": "0 */6 * * *", "12th": "15 3 12 * *"}
ONE_US = timedelta(microseconds=1)


@st.composite
def schemes(
    draw: st.DrawFn, kinds: tuple[str, ...] = tuple(SPANS), zone: str = ""
) -> TimeWindowScheme:
    kind = draw(st.sampled_from(kinds))
    zone = zone or draw(st.sampled_from(ZONES))
    # around the clock changes of 2026 (March/April and October)
    first = draw(st.sampled_from([date(2026, 3, 20), date(2026, 9, 25), date(2026, 10, 1)]))
    start = datetime(first.year, first.month, first.day) + timedelta(
        hours=draw(st.integers(0, 24 * 12)), minutes=draw(st.sampled_from([0, 0, 30]))
    )
    low, high = SPANS[kind]
    end = start + timedelta(days=draw(st.integers(low, high)), hours=draw(st.integers(0, 23)))
    scheme = scheme_from_config(
        kind="cron" if kind in CRONS else kind,
        cron=CRONS.get(kind, ""),
        start=start.isoformat(),
        end=end.isoformat(),
        timezone=zone,
        week_starts_on=draw(st.integers(0, 6)) if kind == "weekly" else 0,
    )
    assert isinstance(scheme, TimeWindowScheme)
    return scheme


def pairs() -> st.SearchStrategy[tuple[TimeWindowScheme, TimeWindowScheme]]:
    """(downstream, upstream): hourly only next to hourly, 6-hourly or daily (few keys per
    window)."""
    fine = st.tuples(
        schemes(("hourly", "every6h", "daily")), schemes(("hourly", "every6h", "daily"))
    )
    coarse = st.tuples(
        schemes(("daily", "weekly", "monthly", "12th")),
        schemes(("daily", "weekly", "monthly", "12th")),
    )
    return st.one_of(fine, coarse)


offsets = st.tuples(st.integers(-3, 2), st.integers(-3, 2)).map(sorted)


def _moved(scheme: TimeWindowScheme, key: str, windows: int) -> str:
    """The key ``windows`` windows after (before) ``key``, one window at a time."""
    for _ in range(windows):
        key = scheme.key_for(scheme.window(key).end_utc)
    for _ in range(-windows):
        key = scheme.key_for(scheme.window(key).start_utc - ONE_US)
    return key


def brute(
    key: str, down: TimeWindowScheme, up: TimeWindowScheme, first: int, last: int
) -> tuple[list[str], list[str]]:
    """The upstream keys overlapping the moved span of ``key``: (within bounds, outside)."""
    begin = down.window(_moved(down, key, first)).start_utc
    stop = down.window(_moved(down, key, last)).end_utc
    inside: list[str] = []
    outside: list[str] = []
    k = up.key_for(begin)
    while up.window(k).start_utc < stop:
        (inside if up.contains(k) else outside).append(k)
        k = up.key_for(up.window(k).end_utc)
    return inside, outside


@PROPS
@given(pairs(), offsets, st.data())
def test_upstream_keys_are_the_upstream_windows_overlapping_the_moved_window(
    schemes_: tuple[TimeWindowScheme, TimeWindowScheme], span: list[int], data: st.DataObject
) -> None:
    down, up = schemes_
    first, last = span
    mapping = TimeWindowMapping(start_offset=first, end_offset=last)
    key = data.draw(st.sampled_from(down.keys()))
    inside, outside = brute(key, down, up, first, last)
    assert mapping.upstream_keys(key, down, up) == inside
    assert mapping.missing_upstream_keys(key, down, up) == outside
    allowed = TimeWindowMapping(start_offset=first, end_offset=last, allow_missing=True)
    assert allowed.upstream_keys(key, down, up) == inside
    assert allowed.missing_upstream_keys(key, down, up) == []
    if first == last == 0:
        assert TimeWindowMapping().upstream_keys(key, down, up) == inside
    if first < 0 and last == 0:
        assert TimeWindowMapping(lookback=-first).upstream_keys(key, down, up) == inside


@PROPS
@given(pairs(), offsets, st.data())
def test_downstream_keys_are_the_inverse_of_upstream_keys(
    schemes_: tuple[TimeWindowScheme, TimeWindowScheme], span: list[int], data: st.DataObject
) -> None:
    down, up = schemes_
    mapping = TimeWindowMapping(start_offset=span[0], end_offset=span[1])
    up_key = data.draw(st.sampled_from(up.keys()))
    down_keys = down.keys()
    readers = [k for k in down_keys if up_key in mapping.upstream_keys(k, down, up)]
    assert mapping.downstream_keys(up_key, up, down) == readers


@PROPS
@given(pairs(), st.integers(1, 3), st.integers(0, 2), st.data())
def test_a_lag_never_reads_the_current_window(
    schemes_: tuple[TimeWindowScheme, TimeWindowScheme],
    windows: int,
    wider: int,
    data: st.DataObject,
) -> None:
    down, up = schemes_
    mapping = TimeWindowMapping(start_offset=-windows - wider, end_offset=-windows)
    key = data.draw(st.sampled_from(down.keys()))
    start = down.window(key).start_utc
    read = mapping.upstream_keys(key, down, up) + mapping.missing_upstream_keys(key, down, up)
    assert read  # a span is never empty
    assert all(up.window(k).start_utc < start for k in read)
    assert key not in mapping.upstream_keys(key, down, down)
    assert key not in TimeWindowMapping.lag(windows).upstream_keys(key, down, down)


@pytest.mark.slow
@PROPS
@given(st.sampled_from(ZONES), st.data())
def test_fan_in_and_fan_out_round_trip(zone: str, data: st.DataObject) -> None:
    coarse = data.draw(schemes(("weekly", "monthly"), zone))
    fine = data.draw(schemes(("daily",), zone) if data.draw(st.booleans()) else schemes(
        ("hourly",), zone))  # fmt: skip
    mapping = TimeWindowMapping()
    every_fine, every_coarse = fine.keys(), coarse.keys()
    fine_keys = set(every_fine)
    for c in every_coarse:
        window = coarse.window(c)
        days = mapping.upstream_keys(c, coarse, fine)  # fan-in: the whole window's keys
        assert days == [k for k in every_fine if window.contains(fine.window(k).start_utc)]
        for d in days:
            assert mapping.downstream_keys(d, fine, coarse) == [c]
            assert mapping.upstream_keys(d, fine, coarse) == [c]  # fan-out: its one window
        assert mapping.downstream_keys(c, coarse, fine) == days
        missing = mapping.missing_upstream_keys(c, coarse, fine)
        assert not set(missing) & fine_keys
        assert len(days) + len(missing) == len(list(fine.grid(window.start_utc, window.end_utc)))
    # every fine key within the coarse scheme's bounds reads exactly one coarse key, and back
    for d in every_fine:
        start = fine.window(d).start_utc
        inside = coarse.start <= start and (coarse.end is None or start < coarse.end)
        ups = mapping.upstream_keys(d, fine, coarse)
        assert len(ups) == (1 if inside else 0)
        assert len(ups) + len(mapping.missing_upstream_keys(d, fine, coarse)) == 1
        if ups:
            assert d in mapping.upstream_keys(ups[0], coarse, fine)


def test_the_generated_schemes_cross_clock_changes() -> None:
    """The schemes above are drawn around the 2026 changes of their zones (Berlin moves on
    29 March and 25 October, Lord Howe by half an hour on 5 April and 4 October)."""
    berlin = scheme_from_config(
        kind="hourly", start="2026-03-29T00:00", end="2026-03-29T05:00", timezone="Europe/Berlin"
    )
    assert isinstance(berlin, TimeWindowScheme)
    assert len(berlin.keys()) == 4  # 02:00 does not exist that night
    assert berlin.window(berlin.keys()[0]).start_utc == datetime(2026, 3, 28, 23, tzinfo=UTC)
