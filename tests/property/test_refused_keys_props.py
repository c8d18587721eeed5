"""A scheme's ``refused_keys`` — which a manifest's keys are checked with, a long list first
against the keys the calendar lists — refuses exactly the keys ``parse`` refuses, with the
same message, in order: for any scheme kind, zone, bounds and mix of keys (inside, before,
after, misspelled, repeated)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fast_loop import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from backfiller.errors import InvalidPartitionKeyError
from backfiller.partitions import Granularity, PartitionScheme, TimeWindowScheme


def _parsed(scheme: PartitionScheme, keys: list[str]) -> list[tuple[int, str]]:
    refused = []
    for i, key in enumerate(keys):
        try:
            scheme.parse(key)
        except InvalidPartitionKeyError as exc:
            refused.append((i, exc.message))
    return refused


_KEY_SPELLINGS = st.sampled_from(
    ["%Y-%m-%d", "%Y-%m", "%Y", "%Y-%m-%dT%H", "%Y-%m-%d-x", "%d.%m.%Y"]
)


@settings(max_examples=examples(200), deadline=None)
@given(
    granularity=st.sampled_from(list(Granularity)),
    zone=st.sampled_from(["UTC", "Europe/Berlin"]),
    start=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2030, 1, 1)),
    length=st.integers(min_value=1, max_value=3000),
    bounded=st.booleans(),
    moments=st.lists(
        st.tuples(st.integers(min_value=-400, max_value=4000), _KEY_SPELLINGS), max_size=300
    ),
    listed=st.integers(min_value=0, max_value=400),
)
def test_refused_keys_are_the_keys_parse_refuses(
    granularity: Granularity,
    zone: str,
    start: datetime,
    length: int,
    bounded: bool,
    moments: list[tuple[int, str]],
    listed: int,
) -> None:
    step = timedelta(hours=1) if granularity is Granularity.HOURLY else timedelta(days=1)
    start = start.replace(tzinfo=UTC)
    try:
        scheme = TimeWindowScheme(
            granularity=granularity,
            start=start,
            end=start + step * length if bounded else None,
            timezone=zone,
        )
    except Exception:  # a scheme holding no whole window
        return
    # the scheme's own keys (enough of them to take the listed path), then keys of any spelling
    keys = scheme._keys_between(start, start + step * listed)
    keys += [(start + step * n).strftime(spelling) for n, spelling in moments]
    refused = [(i, exc.message) for i, exc in scheme.refused_keys(keys)]
    assert refused == _parsed(scheme, keys)


def test_ten_years_of_days_take_the_listed_path() -> None:
    scheme = TimeWindowScheme(
        granularity=Granularity.DAILY,
        start=datetime(2016, 1, 1, tzinfo=UTC),
        end=datetime(2026, 1, 1, tzinfo=UTC),
    )
    keys = scheme._keys_between(scheme.start, datetime(2026, 1, 1, tzinfo=UTC))
    keys += ["2015-12-31", "2026-01-01", "2020-02-30", "2020-1-5", keys[7]]
    listed = scheme._listed_around(keys)
    assert listed is not None and len(listed) == 3653  # the calendar answered
    refused = [(i, exc.message) for i, exc in scheme.refused_keys(keys)]
    assert [i for i, _ in refused] == [3653, 3654, 3655, 3656]  # the repeat is a valid key
    assert refused == _parsed(scheme, keys)


@settings(max_examples=examples(150), deadline=None)
@given(
    granularity=st.sampled_from(
        [Granularity.DAILY, Granularity.WEEKLY, Granularity.MONTHLY, Granularity.YEARLY]
    ),
    start=st.dates(min_value=datetime(2000, 1, 1).date(), max_value=datetime(2030, 1, 1).date()),
    length=st.integers(min_value=1, max_value=2000),
    bounded=st.booleans(),
    week_starts_on=st.integers(min_value=0, max_value=6),
    offsets=st.lists(st.integers(min_value=-60, max_value=2100), min_size=65, max_size=300),
)
def test_the_listed_path_refuses_what_parse_refuses(
    granularity: Granularity,
    start: object,
    length: int,
    bounded: bool,
    week_starts_on: int,
    offsets: list[int],
) -> None:
    """Keys spelled as the scheme spells them, some before its start or past its end: the
    calendar's listing answers (a UTC scheme of days, weeks, months or years), every key it
    lists is one ``parse`` accepts, and the refusals are ``parse``'s."""
    first = datetime(start.year, start.month, start.day, tzinfo=UTC)  # type: ignore[attr-defined]
    try:
        scheme = TimeWindowScheme(
            granularity=granularity,
            start=first,
            end=first + timedelta(days=length) if bounded else None,
            week_starts_on=week_starts_on,
        )
    except Exception:  # a scheme holding no whole window
        return
    keys = [scheme.key_for(first + timedelta(days=n)) for n in offsets]
    listed = scheme._listed_around(keys)
    span_days = (max(offsets) - min(offsets)) + 400
    if span_days <= 4 * (len(keys) + 366):
        assert listed is not None  # the calendar answered
    assert all(scheme.contains(k) for k in listed or ())
    refused = [(i, exc.message) for i, exc in scheme.refused_keys(keys)]
    assert refused == _parsed(scheme, keys)
