"""Concrete examples for backfiller.partitions: keys, windows, ranges and refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from backfiller.errors import BadInputError, ConfigError, ExitCode, InvalidPartitionKeyError
from backfiller.partitions import (
    CronScheme,
    Granularity,
    StaticScheme,
    TimeWindowScheme,
    Window,
    scheme_from_config,
)

BERLIN = ZoneInfo("Europe/Berlin")
ONE_US = timedelta(microseconds=1)
HOUR = timedelta(hours=1)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def daily() -> TimeWindowScheme:
    scheme = scheme_from_config(kind="daily", start="2026-03-01")
    assert isinstance(scheme, TimeWindowScheme)
    return scheme


@pytest.fixture
def bounded_daily() -> TimeWindowScheme:
    scheme = scheme_from_config(kind="daily", start="2026-03-01", end="2026-04-30")
    assert isinstance(scheme, TimeWindowScheme)
    return scheme


@pytest.fixture
def hourly_berlin() -> TimeWindowScheme:
    scheme = scheme_from_config(kind="hourly", start="2026-01-01", timezone="Europe/Berlin")
    assert isinstance(scheme, TimeWindowScheme)
    return scheme


def assert_bad_key(
    exc_info: pytest.ExceptionInfo[InvalidPartitionKeyError], expected_format: str
) -> None:
    error = exc_info.value
    assert isinstance(error, BadInputError)
    assert error.exit_code == ExitCode.BAD_INPUT == 2
    assert expected_format in str(error)


# -- the seed's daily scheme -----------------------------------------------------------------------


def test_seed_daily_key_renders_exactly_as_the_seed(daily: TimeWindowScheme) -> None:
    window = daily.window("2026-04-17")
    assert window.render() == ("2026-04-17T00:00:00+00:00", "2026-04-17T23:59:59.999999+00:00")
    assert window.start_utc == utc(2026, 4, 17)
    assert window.end_utc == utc(2026, 4, 18)
    assert window.inclusive_end == utc(2026, 4, 17, 23, 59, 59, 999999)


def test_daily_window_is_half_open(daily: TimeWindowScheme) -> None:
    window = daily.window("2026-04-17")
    assert window.contains(utc(2026, 4, 17))
    assert window.contains(utc(2026, 4, 17, 23, 59, 59, 999999))
    assert not window.contains(utc(2026, 4, 18))
    assert not window.contains(utc(2026, 4, 16, 23, 59, 59, 999999))
    # an instant given in another zone is compared as the same instant
    assert window.contains(datetime(2026, 4, 18, 1, 59, tzinfo=BERLIN))
    assert not window.contains(datetime(2026, 4, 18, 2, 0, tzinfo=BERLIN))


def test_daily_key_for_and_format_key(daily: TimeWindowScheme) -> None:
    assert daily.key_for(utc(2026, 4, 17)) == "2026-04-17"
    assert daily.key_for(utc(2026, 4, 17, 23, 59, 59, 999999)) == "2026-04-17"
    assert daily.key_for(datetime(2026, 4, 18, 1, 0, tzinfo=BERLIN)) == "2026-04-17"
    assert daily.format_key(utc(2026, 4, 17)) == "2026-04-17"
    assert daily.key_format == "YYYY-MM-DD"
    assert daily.name == "daily from 2026-03-01 (UTC)"
    with pytest.raises(ValueError, match="aware"):
        daily.key_for(datetime(2026, 4, 17))


def test_key_range_march_to_april_has_61_keys(daily: TimeWindowScheme) -> None:
    keys = daily.key_range("2026-03-01", "2026-04-30")
    assert len(keys) == 61
    assert keys[0] == "2026-03-01"
    assert keys[30] == "2026-03-31"
    assert keys[31] == "2026-04-01"
    assert keys[-1] == "2026-04-30"
    assert len(set(keys)) == 61


def test_key_range_of_one_key_and_reversed_range(daily: TimeWindowScheme) -> None:
    assert daily.key_range("2026-04-17", "2026-04-17") == ["2026-04-17"]
    with pytest.raises(InvalidPartitionKeyError) as exc_info:
        daily.key_range("2026-04-18", "2026-04-17")
    assert exc_info.value.exit_code == 2
    assert "Empty range" in str(exc_info.value)


def test_key_range_refuses_an_invalid_end(daily: TimeWindowScheme) -> None:
    with pytest.raises(InvalidPartitionKeyError) as exc_info:
        daily.key_range("2026-04-01", "2026-04-31")
    assert_bad_key(exc_info, "YYYY-MM-DD")


# -- last_complete / keys with a fixed now ---------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        pytest.param(utc(2026, 4, 18), "2026-04-17", id="exactly-at-midnight"),
        pytest.param(utc(2026, 4, 18, 0, 0, 0, 1), "2026-04-17", id="one-microsecond-after"),
        pytest.param(utc(2026, 4, 18, 13, 30), "2026-04-17", id="midday"),
        pytest.param(utc(2026, 4, 17, 23, 59, 59, 999999), "2026-04-16", id="just-before"),
        pytest.param(utc(2026, 3, 2), "2026-03-01", id="first-window-just-closed"),
        pytest.param(utc(2026, 3, 1, 23, 59), None, id="first-window-still-open"),
        pytest.param(utc(2026, 3, 1), None, id="exactly-at-start"),
        pytest.param(utc(2026, 2, 15), None, id="before-start"),
        pytest.param(utc(2019, 1, 1), None, id="long-before-start"),
    ],
)
def test_last_complete(daily: TimeWindowScheme, now: datetime, expected: str | None) -> None:
    assert daily.last_complete(now) == expected


def test_last_complete_in_another_zone_is_the_same_instant(daily: TimeWindowScheme) -> None:
    # 02:00 in Berlin (summer) is midnight UTC
    assert daily.last_complete(datetime(2026, 4, 18, 2, 0, tzinfo=BERLIN)) == "2026-04-17"
    assert daily.last_complete(datetime(2026, 4, 18, 1, 59, tzinfo=BERLIN)) == "2026-04-16"


def test_last_complete_needs_an_aware_now(daily: TimeWindowScheme) -> None:
    with pytest.raises(ValueError, match="aware"):
        daily.last_complete(datetime(2026, 4, 18))


def test_last_complete_stops_at_the_end(bounded_daily: TimeWindowScheme) -> None:
    assert bounded_daily.last_complete(utc(2030, 1, 1)) == "2026-04-29"
    assert bounded_daily.last_complete(utc(2026, 4, 10)) == "2026-04-09"


def test_keys_with_now(daily: TimeWindowScheme) -> None:
    assert daily.keys(now=utc(2026, 3, 3, 5)) == ["2026-03-01", "2026-03-02"]
    assert daily.keys(now=utc(2026, 3, 1, 5)) == []
    assert daily.keys(now=utc(2026, 2, 1)) == []
    assert len(daily.keys(now=utc(2026, 5, 1))) == 61
    with pytest.raises(ValueError, match="now"):
        daily.keys()


def test_keys_of_a_bounded_scheme(bounded_daily: TimeWindowScheme) -> None:
    keys = bounded_daily.keys()
    assert keys[0] == "2026-03-01"
    assert keys[-1] == "2026-04-29"
    assert len(keys) == 60
    assert bounded_daily.keys(now=utc(2030, 1, 1)) == keys


# -- parse: what is accepted and what is refused ---------------------------------------------------


def test_parse_returns_a_valid_key(daily: TimeWindowScheme) -> None:
    assert daily.parse("2026-04-17") == "2026-04-17"
    assert daily.parse("2026-03-01") == "2026-03-01"
    assert daily.parse("2026-04-17", now=utc(2026, 4, 18)) == "2026-04-17"


@pytest.mark.parametrize(
    "key",
    [
        "2026-4-17",
        "20260417",
        "2026-02-30",
        "2026-04-31",
        "2026-13-01",
        "2026-04-17T00:00",
        "2026-04",
        "17-04-2026",
        "2026-04-17x",
        "\u0662\u0660\u0662\u0666-\u0660\u0664-\u0661\u0667",  # Arabic-Indic digits match \d
    ],
)
def test_parse_refuses_a_wrong_format(daily: TimeWindowScheme, key: str) -> None:
    with pytest.raises(InvalidPartitionKeyError) as exc_info:
        daily.parse(key)
    assert_bad_key(exc_info, "YYYY-MM-DD")


@pytest.mark.parametrize(
    "key",
    [
        "../2026-04-17",
        "2026-04-17'; DROP TABLE x",
        "2026-04-17/x",
        "",
        " 2026-04-17",
        "2026-04-17 ",
        "2026-04-17\n",
        "2026-04-17\\x",
        '2026-04-17"',
        "2026-04-17;",
        "2026-04-17%",
        "2026-04-17*",
        "2026-04-17\x00",
        "2026..04-17",
    ],
)
def test_parse_refuses_path_and_sql_characters(daily: TimeWindowScheme, key: str) -> None:
    with pytest.raises(InvalidPartitionKeyError) as exc_info:
        daily.parse(key)
    assert_bad_key(exc_info, "YYYY-MM-DD")


def test_parse_refuses_a_non_string(daily: TimeWindowScheme) -> None:
    with pytest.raises(InvalidPartitionKeyError) as exc_info:
        daily.parse(None)  # type: ignore[arg-type]
    assert_bad_key(exc_info, "YYYY-MM-DD")


def test_parse_refuses_a_key_before_the_start(daily: TimeWindowScheme) -> None:
    with pytest.raises(InvalidPartitionKeyError) as exc_info:
        daily.parse("2026-02-28")
    error = exc_info.value
    assert error.exit_code == 2
    assert "before the start" in str(error)
    assert "2026-03-01" in str(error)


def test_parse_refuses_a_key_at_or_after_the_end(bounded_daily: TimeWindowScheme) -> None:
    assert bounded_daily.parse("2026-04-29") == "2026-04-29"
    for key in ("2026-04-30", "2026-05-01", "2027-01-01"):
        with pytest.raises(InvalidPartitionKeyError) as exc_info:
            bounded_daily.parse(key)
        assert exc_info.value.exit_code == 2
        assert "end" in str(exc_info.value)


@pytest.mark.parametrize(
    "now",
    [
        utc(2026, 4, 17, 23, 59, 59, 999999),
        utc(2026, 4, 17),
        utc(2026, 4, 10),
        datetime(2026, 4, 18, 1, 59, tzinfo=BERLIN),
    ],
)
def test_parse_refuses_a_window_that_is_not_complete(
    daily: TimeWindowScheme, now: datetime
) -> None:
    with pytest.raises(InvalidPartitionKeyError) as exc_info:
        daily.parse("2026-04-17", now=now)
    assert exc_info.value.exit_code == 2
    assert "not complete" in str(exc_info.value)


@pytest.mark.parametrize(
    ("key", "now"),
    [
        pytest.param("2026-02-28", None, id="before-start"),
        pytest.param("2026-04-30", None, id="at-end"),
        pytest.param("2026-04-17", utc(2026, 4, 17, 12), id="not-complete"),
    ],
)
def test_range_refusals_name_the_expected_format(
    bounded_daily: TimeWindowScheme, key: str, now: datetime | None
) -> None:
    with pytest.raises(InvalidPartitionKeyError) as exc_info:
        bounded_daily.parse(key, now=now)
    assert_bad_key(exc_info, "YYYY-MM-DD")


# -- hourly ----------------------------------------------------------------------------------------


def test_hourly_utc_keys_and_windows() -> None:
    scheme = scheme_from_config(kind="hourly", start="2026-04-01")
    assert isinstance(scheme, TimeWindowScheme)
    assert scheme.granularity is Granularity.HOURLY
    assert scheme.key_for(utc(2026, 4, 17, 5, 59, 59, 999999)) == "2026-04-17T05:00"
    window = scheme.window("2026-04-17T05:00")
    assert window.render() == ("2026-04-17T05:00:00+00:00", "2026-04-17T05:59:59.999999+00:00")
    assert window.end_utc - window.start_utc == HOUR
    assert scheme.parse("2026-04-17T05:00") == "2026-04-17T05:00"
    assert scheme.key_range("2026-04-17T22:00", "2026-04-18T01:00") == [
        "2026-04-17T22:00",
        "2026-04-17T23:00",
        "2026-04-18T00:00",
        "2026-04-18T01:00",
    ]
    assert scheme.last_complete(utc(2026, 4, 17, 6)) == "2026-04-17T05:00"
    assert scheme.last_complete(utc(2026, 4, 17, 5, 59)) == "2026-04-17T04:00"


@pytest.mark.parametrize(
    "key",
    ["2026-04-17T05:30", "2026-04-17 05:00", "2026-04-17T5:00", "2026-04-17", "2026-04-17T24:00"],
)
def test_hourly_refuses_a_wrong_format(key: str) -> None:
    scheme = scheme_from_config(kind="hourly", start="2026-04-01")
    with pytest.raises(InvalidPartitionKeyError) as exc_info:
        scheme.parse(key)
    assert_bad_key(exc_info, "YYYY-MM-DDTHH:00")


def test_hourly_berlin_fall_back_has_both_two_oclocks(hourly_berlin: TimeWindowScheme) -> None:
    keys = hourly_berlin.key_range("2026-10-25T01:00+02:00", "2026-10-25T03:00+01:00")
    assert keys == [
        "2026-10-25T01:00+02:00",
        "2026-10-25T02:00+02:00",
        "2026-10-25T02:00+01:00",
        "2026-10-25T03:00+01:00",
    ]
    first, second = hourly_berlin.window(keys[1]), hourly_berlin.window(keys[2])
    assert first.start_utc == utc(2026, 10, 25, 0)
    assert first.end_utc == second.start_utc == utc(2026, 10, 25, 1)
    assert second.end_utc == utc(2026, 10, 25, 2)
    assert hourly_berlin.key_for(utc(2026, 10, 25, 0, 30)) == "2026-10-25T02:00+02:00"
    assert hourly_berlin.key_for(utc(2026, 10, 25, 1, 30)) == "2026-10-25T02:00+01:00"
    for key in keys:
        assert hourly_berlin.parse(key) == key


def test_hourly_berlin_day_lengths_in_keys(hourly_berlin: TimeWindowScheme) -> None:
    fall = hourly_berlin.key_range("2026-10-25T00:00+02:00", "2026-10-25T23:00+01:00")
    spring = hourly_berlin.key_range("2026-03-29T00:00+01:00", "2026-03-29T23:00+02:00")
    normal = hourly_berlin.key_range("2026-04-17T00:00+02:00", "2026-04-17T23:00+02:00")
    assert (len(fall), len(spring), len(normal)) == (25, 23, 24)
    assert "2026-03-29T01:00+01:00" in spring
    assert "2026-03-29T03:00+02:00" in spring
    assert not any(key.startswith("2026-03-29T02:") for key in spring)


@pytest.mark.parametrize(
    "key",
    [
        "2026-03-29T02:00+01:00",  # the skipped hour, as a wall time
        "2026-03-29T02:00+02:00",
        "2026-04-17T05:00+01:00",  # a real instant, but the wrong offset for Berlin in April
        "2026-04-17T05:00+00:00",
        "2026-04-17T05:00",  # the offset is required outside UTC
        "2026-04-17T05:00Z",
    ],
)
def test_hourly_berlin_refuses_wrong_offsets(hourly_berlin: TimeWindowScheme, key: str) -> None:
    with pytest.raises(InvalidPartitionKeyError) as exc_info:
        hourly_berlin.parse(key)
    assert_bad_key(exc_info, "YYYY-MM-DDTHH:00")


def test_hourly_kolkata_keys_on_the_half_hour_utc() -> None:
    scheme = scheme_from_config(kind="hourly", start="2026-01-01", timezone="Asia/Kolkata")
    assert isinstance(scheme, TimeWindowScheme)
    assert scheme.key_for(utc(2026, 4, 16, 23, 30)) == "2026-04-17T05:00+05:30"
    window = scheme.window("2026-04-17T05:00+05:30")
    assert window.start_utc == utc(2026, 4, 16, 23, 30)
    assert window.render() == ("2026-04-17T05:00:00+05:30", "2026-04-17T05:59:59.999999+05:30")


@pytest.mark.parametrize(
    ("key", "inclusive_end"),
    [
        pytest.param(
            "2026-10-25T02:00+02:00", "2026-10-25T02:59:59.999999+02:00", id="fall-back-first"
        ),
        pytest.param(
            "2026-10-25T02:00+01:00", "2026-10-25T02:59:59.999999+01:00", id="fall-back-second"
        ),
        pytest.param(
            "2026-03-29T01:00+01:00", "2026-03-29T01:59:59.999999+01:00", id="spring-forward"
        ),
    ],
)
def test_hourly_berlin_render_at_dst_transitions(
    hourly_berlin: TimeWindowScheme, key: str, inclusive_end: str
) -> None:
    window = hourly_berlin.window(key)
    assert window.end_utc - window.inclusive_end.astimezone(UTC) == ONE_US
    assert window.render()[1] == inclusive_end


# -- DST days --------------------------------------------------------------------------------------


def test_berlin_dst_days_are_23_and_25_hours_long() -> None:
    scheme = scheme_from_config(kind="daily", start="2026-01-01", timezone="Europe/Berlin")
    spring = scheme.window("2026-03-29")
    fall = scheme.window("2026-10-25")
    normal = scheme.window("2026-04-17")
    assert spring is not None and fall is not None and normal is not None
    assert spring.end_utc - spring.start_utc == timedelta(hours=23)
    assert fall.end_utc - fall.start_utc == timedelta(hours=25)
    assert normal.end_utc - normal.start_utc == timedelta(hours=24)
    assert spring.render() == ("2026-03-29T00:00:00+01:00", "2026-03-29T23:59:59.999999+02:00")
    assert fall.render() == ("2026-10-25T00:00:00+02:00", "2026-10-25T23:59:59.999999+01:00")
    assert spring.start_utc == utc(2026, 3, 28, 23)
    assert fall.end_utc == utc(2026, 10, 25, 23)


# -- weekly ----------------------------------------------------------------------------------------


def test_weekly_weeks_start_on_monday() -> None:
    scheme = scheme_from_config(kind="weekly", start="2026-03-02")
    assert isinstance(scheme, TimeWindowScheme)
    assert scheme.key_for(utc(2026, 4, 17, 12)) == "2026-04-13"  # a Friday
    assert scheme.key_for(utc(2026, 4, 19, 23, 59)) == "2026-04-13"  # the Sunday after
    assert scheme.key_for(utc(2026, 4, 20)) == "2026-04-20"
    window = scheme.window("2026-04-13")
    assert window.start_utc == utc(2026, 4, 13)
    assert window.end_utc == utc(2026, 4, 20)
    assert window.render() == ("2026-04-13T00:00:00+00:00", "2026-04-19T23:59:59.999999+00:00")
    assert scheme.parse("2026-04-13") == "2026-04-13"
    assert scheme.key_range("2026-12-21", "2027-01-11") == [
        "2026-12-21",
        "2026-12-28",
        "2027-01-04",
        "2027-01-11",
    ]


@pytest.mark.parametrize("key", ["2026-04-17", "2026-04-14", "2026-04-19"])
def test_weekly_refuses_a_non_monday_naming_its_week(key: str) -> None:
    scheme = scheme_from_config(kind="weekly", start="2026-03-02")
    with pytest.raises(InvalidPartitionKeyError) as exc_info:
        scheme.parse(key)
    message = str(exc_info.value)
    assert exc_info.value.exit_code == 2
    assert "'2026-04-13'" in message
    assert "Monday" in message
    assert "YYYY-MM-DD" in message


def test_an_unaligned_weekly_start_begins_at_the_next_whole_week() -> None:
    scheme = scheme_from_config(kind="weekly", start="2026-03-04")  # a Wednesday
    assert isinstance(scheme, TimeWindowScheme)
    assert scheme.start == utc(2026, 3, 9)
    assert scheme.name == "weekly from 2026-03-09 (UTC)"
    assert scheme.keys(now=utc(2026, 3, 24)) == ["2026-03-09", "2026-03-16"]
    assert scheme.last_complete(utc(2026, 3, 16)) == "2026-03-09"
    assert scheme.last_complete(utc(2026, 3, 15)) is None
    with pytest.raises(InvalidPartitionKeyError, match="before the start"):
        scheme.parse("2026-03-02")  # the week holding the start is not whole


def test_weekly_starting_on_sunday() -> None:
    scheme = scheme_from_config(kind="weekly", start="2026-03-01", week_starts_on=6)
    assert isinstance(scheme, TimeWindowScheme)
    assert scheme.key_for(utc(2026, 4, 17)) == "2026-04-12"
    with pytest.raises(InvalidPartitionKeyError) as exc_info:
        scheme.parse("2026-04-13")
    assert "Sunday" in str(exc_info.value)
    assert "'2026-04-12'" in str(exc_info.value)


# -- monthly ---------------------------------------------------------------------------------------


def test_monthly_february_2026() -> None:
    scheme = scheme_from_config(kind="monthly", start="2025-01")
    assert isinstance(scheme, TimeWindowScheme)
    window = scheme.window("2026-02")
    assert window.start_utc == utc(2026, 2, 1)
    assert window.end_utc == utc(2026, 3, 1)
    assert window.end_utc - window.start_utc == timedelta(days=28)
    assert window.render() == ("2026-02-01T00:00:00+00:00", "2026-02-28T23:59:59.999999+00:00")
    assert scheme.key_for(utc(2026, 2, 28, 23, 59, 59, 999999)) == "2026-02"
    assert scheme.key_for(utc(2026, 3, 1)) == "2026-03"
    assert scheme.parse("2026-02") == "2026-02"


def test_monthly_december_to_january_rollover() -> None:
    scheme = scheme_from_config(kind="monthly", start="2025-01")
    december = scheme.window("2025-12")
    assert december.start_utc == utc(2025, 12, 1)
    assert december.end_utc == utc(2026, 1, 1)
    assert december.render()[1] == "2025-12-31T23:59:59.999999+00:00"
    assert scheme.key_range("2025-11", "2026-02") == ["2025-11", "2025-12", "2026-01", "2026-02"]
    assert scheme.last_complete(utc(2026, 1, 1)) == "2025-12"
    assert scheme.last_complete(utc(2025, 12, 31, 23, 59)) == "2025-11"


@pytest.mark.parametrize("key", ["2026-13", "2026-2", "2026-00", "2026-02-01", "202602", "2026"])
def test_monthly_refuses_a_wrong_format(key: str) -> None:
    scheme = scheme_from_config(kind="monthly", start="2025-01")
    with pytest.raises(InvalidPartitionKeyError) as exc_info:
        scheme.parse(key)
    assert_bad_key(exc_info, "YYYY-MM")


def test_monthly_berlin_march_loses_an_hour() -> None:
    scheme = scheme_from_config(kind="monthly", start="2025-01", timezone="Europe/Berlin")
    window = scheme.window("2026-03")
    assert window is not None
    assert window.end_utc - window.start_utc == timedelta(days=31) - HOUR
    assert window.render() == ("2026-03-01T00:00:00+01:00", "2026-03-31T23:59:59.999999+02:00")


# -- static ----------------------------------------------------------------------------------------


@pytest.fixture
def products() -> StaticScheme:
    scheme = scheme_from_config(kind="static", values=["cars", "bikes", "boats", "e-scooters"])
    assert isinstance(scheme, StaticScheme)
    return scheme


def test_static_product_lines(products: StaticScheme) -> None:
    assert products.keys() == ["cars", "bikes", "boats", "e-scooters"]
    assert products.keys(now=utc(2026, 4, 17)) == products.keys()
    assert products.parse("bikes") == "bikes"
    assert products.window("bikes") is None
    assert products.key_range("bikes", "e-scooters") == ["bikes", "boats", "e-scooters"]
    assert products.key_range("cars", "cars") == ["cars"]
    assert products.key_format == "one of cars, bikes, boats, e-scooters"


@pytest.mark.parametrize("key", ["planes", "Cars", "", "../cars", "cars'; DROP TABLE x", " cars"])
def test_static_refuses_unknown_keys(products: StaticScheme, key: str) -> None:
    with pytest.raises(InvalidPartitionKeyError) as exc_info:
        products.parse(key)
    assert_bad_key(exc_info, "one of cars, bikes, boats, e-scooters")
    with pytest.raises(InvalidPartitionKeyError):
        products.window(key)


def test_static_reversed_range_is_refused(products: StaticScheme) -> None:
    with pytest.raises(InvalidPartitionKeyError) as exc_info:
        products.key_range("boats", "bikes")
    assert exc_info.value.exit_code == 2


@pytest.mark.parametrize(
    "values",
    [
        ["../etc"],
        ["a b"],
        [""],
        ["a..b"],
        ["x'"],
        ["-lead"],
        ["_lead"],
        ["a/b"],
        ["x" * 129],
        ["ok", "ok"],
        [],
    ],
)
def test_static_scheme_with_bad_keys_is_a_config_error(values: list[str]) -> None:
    with pytest.raises(ConfigError) as exc_info:
        scheme_from_config(kind="static", values=values)
    assert exc_info.value.exit_code == 2


def test_static_key_of_128_characters_is_fine() -> None:
    assert StaticScheme(("x" * 128,)).keys() == ["x" * 128]


def test_static_key_with_trailing_newline_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        StaticScheme(("ok\n",))


# -- configuration errors --------------------------------------------------------------------------


@pytest.mark.parametrize("timezone", ["Mars/Olympus_Mons", "", "../../etc/passwd", "Europe/"])
def test_unknown_time_zone_is_a_config_error(timezone: str) -> None:
    with pytest.raises(ConfigError) as exc_info:
        scheme_from_config(kind="daily", start="2026-03-01", timezone=timezone)
    assert exc_info.value.exit_code == 2
    with pytest.raises(ConfigError):
        TimeWindowScheme(timezone=timezone)


@pytest.mark.parametrize("kind", ["fortnightly", "Daily", "", "minutely"])
def test_unknown_kind_is_a_config_error(kind: str) -> None:
    with pytest.raises(ConfigError) as exc_info:
        scheme_from_config(kind=kind, start="2026-03-01")
    assert exc_info.value.exit_code == 2
    assert repr(kind) in str(exc_info.value)


def test_other_config_errors() -> None:
    with pytest.raises(ConfigError):
        scheme_from_config(kind="daily")  # no start
    with pytest.raises(ConfigError):
        scheme_from_config(kind="daily", start="yesterday")
    with pytest.raises(ConfigError):
        scheme_from_config(kind="daily", start="2026-03-01", end="soon")
    with pytest.raises(ConfigError):
        scheme_from_config(kind="weekly", start="2026-03-02", week_starts_on=7)


@pytest.mark.parametrize(
    ("kind", "start", "timezone"),
    [
        pytest.param("weekly", "9999-12-31", "UTC", id="first-week-past-9999"),
        pytest.param("hourly", "9999-12-31T23:30", "UTC", id="first-hour-past-9999"),
        pytest.param("monthly", "9999-12", "UTC", id="last-month"),
        pytest.param("daily", "0001-01-01", "Europe/Berlin", id="before-year-1-in-utc"),
    ],
)
def test_a_scheme_past_the_representable_dates_is_a_config_error(
    kind: str, start: str, timezone: str
) -> None:
    with pytest.raises(ConfigError, match="years 1 to 9999") as exc_info:
        scheme_from_config(kind=kind, start=start, timezone=timezone)
    assert exc_info.value.exit_code == 2


def test_start_and_end_are_read_in_the_scheme_zone() -> None:
    scheme = scheme_from_config(
        kind="daily", start="2026-03-01", end="2026-04-01", timezone="Europe/Berlin"
    )
    assert isinstance(scheme, TimeWindowScheme)
    assert scheme.start == utc(2026, 2, 28, 23)
    assert scheme.end == utc(2026, 3, 31, 22)
    assert scheme.keys()[-1] == "2026-03-31"


# -- unaligned starts and ends: only whole windows belong to a scheme ---------------------------


@pytest.mark.parametrize(
    ("kind", "start", "first", "timezone"),
    [
        pytest.param("daily", "2026-03-01T06:00", "2026-03-02", "UTC", id="daily"),
        pytest.param("hourly", "2026-04-17T05:30", "2026-04-17T06:00", "UTC", id="hourly"),
        pytest.param("monthly", "2026-03-15", "2026-04", "UTC", id="monthly"),
        pytest.param("weekly", "2026-03-02T00:00:01", "2026-03-09", "UTC", id="weekly"),
        pytest.param("daily", "2026-03-01T00:00Z", "2026-03-02", "Europe/Berlin", id="berlin"),
    ],
)
def test_an_unaligned_start_begins_at_the_first_whole_window(
    kind: str, start: str, first: str, timezone: str
) -> None:
    scheme = scheme_from_config(kind=kind, start=start, timezone=timezone)
    assert isinstance(scheme, TimeWindowScheme)
    assert scheme.format_key(scheme.start) == first
    assert scheme.window(first).start_utc == scheme.start
    assert scheme.name == f"{kind} from {first} ({timezone})"
    assert scheme.keys(now=scheme.window(first).end_utc) == [first]
    assert scheme.last_complete(scheme.window(first).end_utc - ONE_US) is None
    before = scheme.key_for(scheme.start - ONE_US)
    with pytest.raises(InvalidPartitionKeyError, match="before the start"):
        scheme.parse(before)
    # the scheme built again from its own fields is the same scheme
    assert TimeWindowScheme(scheme.granularity, scheme.start, None, timezone) == scheme


def test_an_unaligned_end_keeps_only_whole_windows() -> None:
    scheme = scheme_from_config(kind="daily", start="2026-03-01", end="2026-04-30T12:00")
    assert isinstance(scheme, TimeWindowScheme)
    assert scheme.end == utc(2026, 4, 30)
    keys = scheme.keys()
    assert (keys[0], keys[-1], len(keys)) == ("2026-03-01", "2026-04-29", 60)
    assert scheme.keys(now=utc(2030, 1, 1)) == keys
    assert scheme.keys(now=utc(2026, 4, 30, 18)) == keys
    assert scheme.last_complete(utc(2030, 1, 1)) == "2026-04-29"
    assert scheme.parse("2026-04-29", now=utc(2030, 1, 1)) == "2026-04-29"
    with pytest.raises(InvalidPartitionKeyError, match="past the end") as exc_info:
        scheme.parse("2026-04-30")
    assert exc_info.value.hint is not None and "2026-04-29" in exc_info.value.hint
    with pytest.raises(InvalidPartitionKeyError):
        scheme.key_range("2026-04-28", "2026-04-30")
    assert [k for k, _ in scheme.iter_windows(utc(2026, 4, 28), utc(2026, 5, 2))] == [
        "2026-04-28",
        "2026-04-29",
    ]


@pytest.mark.parametrize(
    ("kind", "end", "last"),
    [
        pytest.param("monthly", "2026-04-15", "2026-03", id="monthly"),
        pytest.param("weekly", "2026-04-19T23:00", "2026-04-06", id="weekly"),
        pytest.param("hourly", "2026-04-17T05:59:59", "2026-04-17T04:00", id="hourly"),
    ],
)
def test_keys_parse_and_last_complete_agree_on_an_unaligned_end(
    kind: str, end: str, last: str
) -> None:
    scheme = scheme_from_config(kind=kind, start="2026-01-01", end=end)
    assert isinstance(scheme, TimeWindowScheme)
    assert scheme.keys()[-1] == last
    assert scheme.last_complete(utc(2030, 1, 1)) == last
    assert scheme.keys(now=utc(2030, 1, 1))[-1] == last
    after = scheme.key_for(scheme.window(last).end_utc)
    with pytest.raises(InvalidPartitionKeyError, match="past the end"):
        scheme.parse(after)


def test_a_scheme_without_a_whole_window_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no whole window") as exc_info:
        scheme_from_config(kind="monthly", start="2026-03-02", end="2026-04-30")
    assert exc_info.value.exit_code == 2
    with pytest.raises(ConfigError, match="no whole window"):
        scheme_from_config(kind="daily", start="2026-03-01", end="2026-03-01")


# -- hourly where the clock moves by other than a whole hour ---------------------------------------


@pytest.mark.parametrize(
    ("zone", "moment", "key", "start", "end", "following"),
    [
        pytest.param(  # +10:30 -> +11:00 at 02:00: 02:00 to 02:29 do not exist
            "Australia/Lord_Howe",
            utc(2026, 10, 3, 15, 45),
            "2026-10-04T01:00+10:30",
            utc(2026, 10, 3, 14, 30),
            utc(2026, 10, 3, 16),
            "2026-10-04T03:00+11:00",
            id="lord-howe-spring",
        ),
        pytest.param(  # +11:00 -> +10:30 at 02:00: 01:30 to 01:59 come twice
            "Australia/Lord_Howe",
            utc(2026, 4, 4, 15, 10),
            "2026-04-05T01:00+11:00",
            utc(2026, 4, 4, 14),
            utc(2026, 4, 4, 15, 30),
            "2026-04-05T02:00+10:30",
            id="lord-howe-fall",
        ),
        pytest.param(  # +12:45 -> +13:45 at 02:45
            "Pacific/Chatham",
            utc(2026, 9, 26, 14, 5),
            "2026-09-27T02:00+12:45",
            utc(2026, 9, 26, 13, 15),
            utc(2026, 9, 26, 14, 15),
            "2026-09-27T04:00+13:45",
            id="chatham-spring",
        ),
        pytest.param(  # +13:45 -> +12:45 at 03:45
            "Pacific/Chatham",
            utc(2026, 4, 4, 14, 5),
            "2026-04-05T03:00+13:45",
            utc(2026, 4, 4, 13, 15),
            utc(2026, 4, 4, 14, 15),
            "2026-04-05T03:00+12:45",
            id="chatham-fall",
        ),
        pytest.param(
            "Asia/Kathmandu",
            utc(2026, 4, 17),
            "2026-04-17T05:00+05:45",
            utc(2026, 4, 16, 23, 15),
            utc(2026, 4, 17, 0, 15),
            "2026-04-17T06:00+05:45",
            id="kathmandu",
        ),
    ],
)
def test_hourly_windows_where_the_clock_moves_by_part_of_an_hour(
    zone: str,
    moment: datetime,
    key: str,
    start: datetime,
    end: datetime,
    following: str,
) -> None:
    scheme = scheme_from_config(kind="hourly", start="2026-01-01", timezone=zone)
    assert isinstance(scheme, TimeWindowScheme)
    assert scheme.key_for(moment) == key
    window = scheme.window(key)
    assert (window.start_utc, window.end_utc) == (start, end)
    assert window.contains(moment)
    assert datetime.fromisoformat(key) == start  # the key is its window's start
    assert scheme.parse(key) == key
    assert scheme.key_for(end) == following
    assert scheme.window(following).start_utc == end
    assert scheme.parse(following) == following
    assert scheme.key_range(key, following) == [key, following]


# -- same_kind and Window --------------------------------------------------------------------------


def test_same_kind(products: StaticScheme) -> None:
    daily_a = scheme_from_config(kind="daily", start="2026-03-01")
    daily_b = scheme_from_config(kind="daily", start="2020-01-01", end="2030-01-01")
    hourly = scheme_from_config(kind="hourly", start="2026-03-01")
    berlin = scheme_from_config(kind="daily", start="2026-03-01", timezone="Europe/Berlin")
    assert daily_a.same_kind(daily_b)
    assert not daily_a.same_kind(hourly)
    assert not daily_a.same_kind(berlin)
    assert not daily_a.same_kind(products)
    assert not products.same_kind(daily_a)
    assert products.same_kind(StaticScheme(("cars", "bikes", "boats", "e-scooters")))
    assert not products.same_kind(StaticScheme(("cars",)))


def test_window_refuses_naive_and_empty() -> None:
    with pytest.raises(ValueError, match="aware"):
        Window(datetime(2026, 4, 17), utc(2026, 4, 18))
    with pytest.raises(ValueError, match="empty"):
        Window(utc(2026, 4, 17), utc(2026, 4, 17))
    with pytest.raises(ValueError, match="empty"):
        Window(utc(2026, 4, 18), utc(2026, 4, 17))
    # across the fall-back, wall times mislead: 02:30+01:00 (01:30Z) is after 02:45+02:00 (00:45Z)
    second_two_thirty = datetime(2026, 10, 25, 2, 30, tzinfo=BERLIN, fold=1)
    first_two_forty_five = datetime(2026, 10, 25, 2, 45, tzinfo=BERLIN, fold=0)
    with pytest.raises(ValueError, match="empty"):
        Window(second_two_thirty, first_two_forty_five)
    window = Window(first_two_forty_five, second_two_thirty)
    assert window.end_utc - window.start_utc == timedelta(minutes=45)
    assert window.contains(utc(2026, 10, 25, 1))


# -- yearly ----------------------------------------------------------------------------------------


def test_yearly_windows() -> None:
    scheme = scheme_from_config(kind="yearly", start="2020", timezone="Europe/Berlin")
    assert isinstance(scheme, TimeWindowScheme)
    assert scheme.key_format == "YYYY"
    assert scheme.keys(now=utc(2026, 4, 17)) == [str(year) for year in range(2020, 2026)]
    window = scheme.window("2024")
    assert window.render() == ("2024-01-01T00:00:00+01:00", "2024-12-31T23:59:59.999999+01:00")
    assert window.end_utc - window.start_utc == timedelta(days=366)
    assert scheme.last_complete(utc(2025, 12, 31, 23)) == "2025"  # midnight in Berlin
    for key in ("2024-01", "24", "2019"):
        with pytest.raises(InvalidPartitionKeyError):
            scheme.parse(key)


# -- cron schedules --------------------------------------------------------------------------------


def cron_scheme(**settings: object) -> CronScheme:
    scheme = scheme_from_config(**{"kind": "cron", "start": "2026-04-17", **settings})  # type: ignore[arg-type]
    assert isinstance(scheme, CronScheme)
    return scheme


def test_cron_every_15_minutes() -> None:
    scheme = cron_scheme(cron="*/15 * * * *")
    assert scheme.name == "cron '*/15 * * * *' from 2026-04-17T00:00 (UTC)"
    assert scheme.keys(now=utc(2026, 4, 17, 1, 10)) == [
        "2026-04-17T00:00",
        "2026-04-17T00:15",
        "2026-04-17T00:30",
        "2026-04-17T00:45",
    ]
    window = scheme.window("2026-04-17T00:45")
    assert (window.start_utc, window.end_utc) == (utc(2026, 4, 17, 0, 45), utc(2026, 4, 17, 1))
    assert scheme.key_for(utc(2026, 4, 17, 13, 14, 59)) == "2026-04-17T13:00"
    assert scheme.last_complete(utc(2026, 4, 17, 13, 15)) == "2026-04-17T13:00"
    for key in ("2026-04-17T00:10", "2026-04-17T00:15+00:00", "2026-04-17"):
        with pytest.raises(InvalidPartitionKeyError) as exc_info:
            scheme.parse(key)
        assert_bad_key(exc_info, "YYYY-MM-DDTHH:MM")


def test_cron_twice_a_day_in_berlin_keys_carry_the_offset() -> None:
    scheme = cron_scheme(cron="0 0,12 * * *", start="2026-03-28", timezone="Europe/Berlin")
    assert scheme.keys(now=utc(2026, 3, 30)) == [
        "2026-03-28T00:00+01:00",
        "2026-03-28T12:00+01:00",
        "2026-03-29T00:00+01:00",
        "2026-03-29T12:00+02:00",
    ]
    window = scheme.window("2026-03-29T00:00+01:00")
    assert window.end_utc - window.start_utc == timedelta(hours=11)  # the clock skips an hour


def test_cron_every_4_hours_and_at_a_time_the_clock_skips() -> None:
    every_4 = cron_scheme(cron="0 */4 * * *")
    assert every_4.key_for(utc(2026, 4, 17, 11)) == "2026-04-17T08:00"
    at_half_past_two = cron_scheme(cron="30 2 * * *", start="2026-03-27", timezone="Europe/Berlin")
    # 02:30 does not exist in Berlin on 2026-03-29: the window starts when the clock resumes
    assert at_half_past_two.keys(now=utc(2026, 3, 31, 1)) == [
        "2026-03-27T02:30+01:00",
        "2026-03-28T02:30+01:00",
        "2026-03-29T03:00+02:00",
        "2026-03-30T02:30+02:00",
    ]


def test_monthly_on_the_12th_at_0315() -> None:
    scheme = scheme_from_config(
        kind="monthly",
        start="2026-01-01",
        day_offset=12,
        hour_offset=3,
        minute_offset=15,
        timezone="Europe/Berlin",
    )
    assert isinstance(scheme, CronScheme)
    assert scheme.cron == "15 3 12 * *"
    assert scheme.keys(now=utc(2026, 4, 13)) == ["2026-01", "2026-02", "2026-03"]
    assert scheme.window("2026-03").render() == (
        "2026-03-12T03:15:00+01:00",
        "2026-04-12T03:14:59.999999+02:00",
    )
    assert scheme.key_for(utc(2026, 1, 12, 2, 15)) == "2026-01"
    assert scheme.key_for(utc(2026, 2, 12, 2, 14)) == "2026-01"


def test_weekly_on_wednesday_at_0415_and_daily_at_an_hour() -> None:
    weekly = scheme_from_config(
        kind="weekly", start="2026-03-01", week_starts_on=2, hour_offset=4, minute_offset=15
    )
    assert isinstance(weekly, CronScheme)
    assert weekly.cron == "15 4 * * 3"
    assert weekly.keys(now=utc(2026, 3, 18, 4, 15)) == ["2026-03-04", "2026-03-11"]
    window = weekly.window("2026-03-11")
    assert (window.start_utc, window.end_utc) == (utc(2026, 3, 11, 4, 15), utc(2026, 3, 18, 4, 15))
    daily = scheme_from_config(kind="daily", start="2026-03-01", hour_offset=6)
    assert daily.keys(now=utc(2026, 3, 3, 6)) == ["2026-03-01", "2026-03-02"]
    hourly = scheme_from_config(kind="hourly", start="2026-03-01", minute_offset=30)
    assert hourly.keys(now=utc(2026, 3, 1, 2))[:1] == ["2026-03-01T00:30"]
    yearly = scheme_from_config(kind="yearly", start="2026", hour_offset=6)
    assert yearly.keys(now=utc(2028, 1, 1, 6)) == ["2026", "2027"]


@pytest.mark.parametrize("end_offset", [1, 0, -1, -2])
def test_end_offset_moves_the_last_key(end_offset: int) -> None:
    scheme = scheme_from_config(kind="daily", start="2026-03-01", end_offset=end_offset)
    now = utc(2026, 3, 10, 12)  # 2026-03-10 is in progress
    last = f"2026-03-{9 + end_offset:02d}"
    keys = scheme.keys(now=now)
    assert keys[-1] == last == scheme.last_complete(now)
    assert len(keys) == 9 + end_offset
    assert scheme.parse(last, now=now) == last
    following = f"2026-03-{10 + end_offset:02d}"
    with pytest.raises(InvalidPartitionKeyError) as exc_info:
        scheme.parse(following, now=now)
    assert ("not complete" if end_offset >= 0 else "held back by end_offset") in str(exc_info.value)


def test_end_offset_stops_at_the_end_and_applies_to_cron() -> None:
    bounded = scheme_from_config(kind="daily", start="2026-03-01", end="2026-03-05", end_offset=1)
    assert bounded.keys(now=utc(2026, 3, 4, 12))[-1] == "2026-03-04"
    assert bounded.keys(now=utc(2026, 3, 9)) == bounded.keys()
    scheme = cron_scheme(cron="*/15 * * * *", end_offset=1)
    assert scheme.last_complete(utc(2026, 4, 17, 0, 20)) == "2026-04-17T00:15"


def test_key_format_for_keys_spelled_another_way() -> None:
    scheme = scheme_from_config(
        kind="daily", start="2026-03-01", timezone="America/New_York", key_format="%Y%m%d"
    )
    assert isinstance(scheme, CronScheme)
    assert scheme.key_format == "%Y%m%d (strftime)"
    assert scheme.keys(now=datetime(2026, 3, 3, tzinfo=ZoneInfo("America/New_York"))) == [
        "20260301",
        "20260302",
    ]
    assert scheme.window("20260308").end_utc - scheme.window("20260308").start_utc == timedelta(
        hours=23
    )
    for key in ("2026-03-02", "20260230", "2026030"):
        with pytest.raises(InvalidPartitionKeyError) as exc_info:
            scheme.parse(key)
        assert_bad_key(exc_info, "%Y%m%d")
    hourly = scheme_from_config(
        kind="hourly", start="2026-10-24", timezone="Europe/Berlin", key_format="%Y%m%d%H%M%z"
    )
    keys = hourly.keys(now=utc(2026, 10, 25, 3))
    assert keys[-3:] == ["202610250200+0200", "202610250200+0100", "202610250300+0100"]


@pytest.mark.parametrize(
    ("key_format", "kind", "problem"),
    [
        pytest.param("%Y-%m", "daily", "have the key", id="coarser-than-the-windows"),
        pytest.param("%Y%m%d%H", "hourly", "have the key", id="repeated-hour-without-offset"),
        pytest.param("%Y/%m/%d", "daily", "'/'", id="a-slash"),
        pytest.param("%Y-%m-%d %H%z", "hourly", "' '", id="a-space"),
        pytest.param("daily", "daily", "have the key", id="no-directive"),
    ],
)
def test_a_key_format_that_does_not_fit_is_a_config_error(
    key_format: str, kind: str, problem: str
) -> None:
    with pytest.raises(ConfigError, match="key_format") as exc_info:
        scheme_from_config(
            kind=kind, start="2026-03-01", timezone="Europe/Berlin", key_format=key_format
        )
    assert problem in str(exc_info.value)
    assert exc_info.value.exit_code == 2


@pytest.mark.parametrize(
    ("cron", "field"),
    [
        pytest.param("60 * * * *", "minute", id="minute"),
        pytest.param("0 24 * * *", "hour", id="hour"),
        pytest.param("0 0 32 * *", "day of month", id="day-of-month"),
        pytest.param("0 0 * 13 *", "month", id="month"),
        pytest.param("0 0 * * MON-XYZ", "day of week", id="day-of-week"),
        pytest.param("0 0 30 2 *", "day of month", id="never"),
        pytest.param("0 * * *", "4 fields, not 5", id="four-fields"),
        pytest.param("0 0 * * * *", "6 fields, not 5", id="six-fields"),
        pytest.param("@daily", "1 fields, not 5", id="nickname"),
    ],
)
def test_an_invalid_cron_is_a_config_error_naming_the_field(cron: str, field: str) -> None:
    with pytest.raises(ConfigError) as exc_info:
        scheme_from_config(kind="cron", cron=cron, start="2026-03-01")
    assert field in str(exc_info.value)
    assert repr(cron) in str(exc_info.value)
    assert exc_info.value.exit_code == 2
    assert exc_info.value.hint is not None and "5 fields" in exc_info.value.hint


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        pytest.param({"kind": "cron"}, "needs [partitions] cron", id="cron-without-schedule"),
        pytest.param({"kind": "daily", "cron": "0 0 * * *"}, "kind = 'cron'", id="cron-not-kind"),
        pytest.param(
            {"kind": "cron", "cron": "0 0 * * *", "hour_offset": 3},
            "hour_offset do(es) not apply to a cron schedule",
            id="offset-with-cron",
        ),
        pytest.param({"kind": "hourly", "hour_offset": 1}, "hour_offset does not apply", id="h"),
        pytest.param({"kind": "daily", "minute_offset": 60}, "minute_offset = 60", id="minute"),
        pytest.param({"kind": "daily", "hour_offset": -1}, "hour_offset = -1", id="hour"),
        pytest.param({"kind": "monthly", "day_offset": 29}, "day_offset = 29", id="day-29"),
        pytest.param({"kind": "weekly", "day_offset": 2}, "week_starts_on", id="weekly-day"),
        pytest.param({"kind": "daily", "end_offset": 5000}, "end_offset", id="end-offset"),
        pytest.param(
            {"kind": "static", "values": ["a"], "key_format": "%Y"}, "static", id="static"
        ),
    ],
)
def test_time_settings_that_do_not_fit_the_kind_are_config_errors(
    settings: dict[str, object], said: str
) -> None:
    with pytest.raises(ConfigError) as exc_info:
        scheme_from_config(start="2026-03-01", **settings)  # type: ignore[arg-type]
    assert said in str(exc_info.value)
    assert exc_info.value.exit_code == 2


def test_cron_schemes_are_the_same_kind_only_as_the_same_schedule() -> None:
    every_15 = cron_scheme(cron="*/15 * * * *")
    assert every_15.same_kind(cron_scheme(cron="*/15 * * * *", start="2020-01-01"))
    assert not every_15.same_kind(cron_scheme(cron="*/30 * * * *"))
    assert not every_15.same_kind(cron_scheme(cron="*/15 * * * *", timezone="Europe/Berlin"))
    daily_cron = cron_scheme(cron="0 0 * * *")
    daily = scheme_from_config(kind="daily", start="2026-04-17")
    assert not daily_cron.same_kind(daily)
    assert not daily.same_kind(daily_cron)


def test_a_cron_scheme_keeps_the_fire_after_a_half_hour_jump_of_the_clock() -> None:
    """Lord Howe Island's clock jumps from 02:00 to 02:30 on 2026-10-04; every six hours, the
    schedule fires at 00:00+10:30, then 06:00+11:00 (cronsim, asked from before the jump,
    stepped over 06:00 to 12:00), and each key parses back to its own window."""
    scheme = scheme_from_config(
        kind="cron",
        cron="0 */6 * * *",
        start="2026-10-03T12:00",
        end="2026-10-05T00:00",
        timezone="Australia/Lord_Howe",
    )
    keys = scheme.keys()
    assert keys[2:5] == [
        "2026-10-04T00:00+10:30",
        "2026-10-04T06:00+11:00",
        "2026-10-04T12:00+11:00",
    ]
    for key in keys:
        window = scheme.window(key)
        assert scheme.key_for(window.start_utc) == key
        assert scheme.key_for(window.end_utc - timedelta(microseconds=1)) == key
    assert scheme.window("2026-10-04T00:00+10:30").end_utc == datetime(2026, 10, 3, 19, tzinfo=UTC)
