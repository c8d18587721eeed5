"""Properties of multi-dimensional keys (:class:`backfiller.partitions.MultiScheme`) over random
dimensions: a time dimension (hourly, daily, monthly, in zones with clock changes) and one to
three static or dynamic dimensions. Spelling a key from its values and parsing it round-trip;
the keys tile the product of the dimensions (each combination once, in order, the first
dimension varying slowest); a key's window is its time value's window; a range is the box of
the dimensions' ranges; and the selection of a time range with ``--dimension`` values is
exactly the cells whose time window overlaps it and whose values are among those chosen,
checked against brute force."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import product
from typing import Any

import pytest
from fast_loop import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from backfiller import Dependency, asset
from backfiller.asset_keys import select_keys
from backfiller.assets import AssetGraph
from backfiller.errors import InvalidPartitionKeyError
from backfiller.mappings import MultiToSingleDimensionMapping
from backfiller.partitions import (
    Dimension,
    DynamicScheme,
    MultiScheme,
    PartitionScheme,
    StaticScheme,
    TimeWindowScheme,
    scheme_from_config,
)

PROPS = settings(
    max_examples=examples(100),
    deadline=None,
    database=None,
)
ZONES = ("UTC", "Europe/Berlin", "Australia/Lord_Howe", "America/New_York")
NOW = datetime(2026, 6, 1, tzinfo=UTC)

VALUE = st.from_regex(r"[a-z][a-z0-9_-]{0,6}", fullmatch=True)


@st.composite
def time_schemes(draw: st.DrawFn) -> TimeWindowScheme:
    kind = draw(st.sampled_from(["hourly", "daily", "monthly"]))
    zone = draw(st.sampled_from(ZONES))
    start = {"hourly": "2026-03-28", "daily": "2026-03-20", "monthly": "2025-11-01"}[kind]
    end = {"hourly": "2026-03-30", "daily": "2026-04-10", "monthly": "2026-05-01"}[kind]
    built = scheme_from_config(kind=kind, start=start, end=end, timezone=zone)
    assert isinstance(built, TimeWindowScheme)
    return built


@st.composite
def listed_schemes(draw: st.DrawFn, name: str) -> PartitionScheme:
    values = tuple(draw(st.lists(VALUE, min_size=1, max_size=4, unique=True)))
    if draw(st.booleans()):
        return StaticScheme(values)
    return DynamicScheme(name, values)


@st.composite
def multi_schemes(draw: st.DrawFn) -> MultiScheme:
    listed = draw(st.integers(min_value=1, max_value=3))
    dims = [Dimension(f"dim_{i}", draw(listed_schemes(f"dim_{i}"))) for i in range(listed)]
    if draw(st.booleans()) or listed == 1:  # a time dimension, anywhere
        at = draw(st.integers(min_value=0, max_value=len(dims)))
        dims.insert(at, Dimension("when", draw(time_schemes())))
    return MultiScheme(tuple(dims))


def each_keys(scheme: MultiScheme) -> list[list[str]]:
    return [d.scheme.keys(now=NOW) for d in scheme.dimensions]


@PROPS
@given(multi_schemes(), st.data())
def test_spelling_and_parsing_round_trip(scheme: MultiScheme, data: st.DataObject) -> None:
    values = [data.draw(st.sampled_from(keys)) for keys in each_keys(scheme)]
    key = scheme.spell(values)
    assert scheme.parse(key) == key
    assert scheme.contains(key)
    assert list(scheme.split(key)) == values
    assert scheme.values_of(key) == dict(zip(scheme.names, values, strict=True))
    timed = scheme.time_dimension
    window = scheme.window(key)
    if timed is None:
        assert window is None
    else:
        assert window == timed.scheme.window(scheme.values_of(key)[timed.name])
    # one value missing, one too many, or one value that is not a value of its dimension
    for bad in (scheme.spell(values[:-1]), scheme.spell([*values, values[-1]])):
        assert not scheme.contains(bad)
        with pytest.raises(InvalidPartitionKeyError):
            scheme.parse(bad)
    i = data.draw(st.integers(min_value=0, max_value=len(values) - 1))
    wrong = [*values[:i], "zz-not-a-value", *values[i + 1 :]]
    assert not scheme.contains(scheme.spell(wrong))
    with pytest.raises(InvalidPartitionKeyError, match=scheme.names[i]):
        scheme.parse(scheme.spell(wrong))


@PROPS
@given(multi_schemes())
def test_the_keys_tile_the_product_of_the_dimensions(scheme: MultiScheme) -> None:
    keys = scheme.keys(now=NOW)
    expected = ["|".join(combo) for combo in product(*each_keys(scheme))]
    assert keys == expected
    assert len(set(keys)) == len(keys)
    for key in keys:
        assert scheme.parse(key, now=NOW) == key


@PROPS
@given(multi_schemes(), st.data())
def test_a_range_is_the_box_of_the_dimensions_ranges(
    scheme: MultiScheme, data: st.DataObject
) -> None:
    lows, highs = [], []
    for keys in each_keys(scheme):
        i = data.draw(st.integers(min_value=0, max_value=len(keys) - 1))
        j = data.draw(st.integers(min_value=i, max_value=len(keys) - 1))
        lows.append(keys[i])
        highs.append(keys[j])
    box = scheme.key_range(scheme.spell(lows), scheme.spell(highs))
    expected = [
        scheme.spell(combo)
        for combo in product(
            *[
                keys[keys.index(low) : keys.index(high) + 1]
                for keys, low, high in zip(each_keys(scheme), lows, highs, strict=True)
            ]
        )
    ]
    assert box == expected


def _graph(scheme: MultiScheme, single: TimeWindowScheme) -> AssetGraph:
    def compute(context: Any) -> None:
        raise AssertionError("never computed")

    cells = asset("m/cells", idempotency_key=("id",), scheme=scheme)(compute)
    total = asset(
        "m/total",
        idempotency_key=("id",),
        deps=[Dependency("m/cells", MultiToSingleDimensionMapping())],
        scheme=single,
    )(compute)
    return AssetGraph([cells, total], single)


@PROPS
@given(multi_schemes(), st.data())
def test_selecting_a_time_range_and_dimension_values_is_brute_force(
    scheme: MultiScheme, data: st.DataObject
) -> None:
    timed = scheme.time_dimension
    if timed is None:  # selection by time needs a time dimension
        return
    assert isinstance(timed.scheme, TimeWindowScheme)
    days = timed.scheme.keys(now=NOW)
    i = data.draw(st.integers(min_value=0, max_value=len(days) - 1))
    j = data.draw(st.integers(min_value=i, max_value=len(days) - 1))
    chosen: dict[str, list[str]] = {}
    for d in scheme.dimensions:
        if d is not timed and data.draw(st.booleans()):
            chosen[d.name] = data.draw(
                st.lists(st.sampled_from(d.scheme.keys()), min_size=1, unique=True)
            )
    graph = _graph(scheme, timed.scheme)
    selected = select_keys(
        graph,
        ["m/cells"],
        partition=None,
        start=days[i],
        end=days[j],
        now=NOW,
        dimensions=chosen,
    )
    first, last = timed.scheme.window(days[i]), timed.scheme.window(days[j])
    expected = [
        key
        for key in scheme.keys(now=NOW)
        if (w := scheme.window(key)) is not None
        and w.start_utc < last.end_utc
        and w.end_utc > first.start_utc
        and all(scheme.values_of(key)[n] in vs for n, vs in chosen.items())
    ]
    assert sorted(selected) == sorted(expected)
    # and the total of each selected day reads exactly that day's cells, with every value
    mapping = MultiToSingleDimensionMapping()
    for day in days[i : j + 1]:
        present, missing = mapping.required_keys(day, timed.scheme, scheme)
        assert missing == []
        assert sorted(present) == sorted(
            k for k in scheme.keys(now=NOW) if scheme.values_of(k)[timed.name] == day
        )
        for cell in present:
            assert mapping.downstream_keys(cell, scheme, timed.scheme) == [day]


def test_one_dimension_or_two_time_dimensions_or_a_reused_name_are_refused() -> None:
    from backfiller.errors import ConfigError

    daily = scheme_from_config(kind="daily", start="2026-03-01")
    lines = StaticScheme(("billing", "voice"))
    with pytest.raises(ConfigError, match="two or more"):
        MultiScheme((Dimension("date", daily),))
    with pytest.raises(ConfigError, match="more than one time dimension"):
        MultiScheme((Dimension("a", daily), Dimension("b", daily)))
    with pytest.raises(ConfigError, match="twice"):
        MultiScheme((Dimension("a", daily), Dimension("a", lines)))
    with pytest.raises(ConfigError, match="Invalid dimension name"):
        Dimension("partition_key", lines)
    with pytest.raises(ConfigError, match="Invalid dimension name"):
        Dimension("Product Line", lines)
    with pytest.raises(ConfigError, match="time, static or dynamic"):
        Dimension("x", MultiScheme((Dimension("date", daily), Dimension("line", lines))))
