"""A scheme's ``refused_keys`` — which a manifest's keys are checked with, a long list first
against the keys the calendar lists — refuses exactly the keys ``parse`` refuses, with the
same message, in order: for any scheme kind, zone, bounds and mix of keys (inside, before,
after, misspelled, repeated)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

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


@settings(max_examples=200, deadline=None)
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
