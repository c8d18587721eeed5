""":class:`MultiToSingleDimensionMapping` between a (date × product_line) scheme and a daily
scheme, both ways: a day's total reads every product line of that day, each cell reads its
day; required cells that do not exist are missing (the gap ``missing_upstream``); an inner
time-window mapping moves the day; declarations that cannot map are refused naming why."""

from __future__ import annotations

from typing import Any

import pytest

from backfiller import Dependency, asset
from backfiller.assets import AssetGraph
from backfiller.errors import GraphError
from backfiller.mappings import (
    IdentityMapping,
    MultiToSingleDimensionMapping,
    TimeWindowMapping,
)
from backfiller.partitions import (
    Dimension,
    DynamicScheme,
    MultiScheme,
    StaticScheme,
    scheme_from_config,
)

DAILY = scheme_from_config(kind="daily", start="2026-03-01", end="2026-04-01")
LATER = scheme_from_config(kind="daily", start="2026-03-05", end="2026-04-01")
LINES = StaticScheme(("billing", "voice", "chat"))
CELLS = MultiScheme((Dimension("date", LATER), Dimension("product_line", LINES)))
MAP = MultiToSingleDimensionMapping()


def test_a_day_reads_every_product_line_of_that_day() -> None:
    assert MAP.required_keys("2026-03-10", DAILY, CELLS) == (
        ["2026-03-10|billing", "2026-03-10|voice", "2026-03-10|chat"],
        [],
    )
    assert MAP.downstream_keys("2026-03-10|voice", CELLS, DAILY) == ["2026-03-10"]


def test_cells_of_a_day_the_multi_scheme_does_not_have_are_missing_upstream() -> None:
    # the identity on the date dimension between two daily schemes with different starts
    assert MAP.required_keys("2026-03-02", DAILY, CELLS) == (
        [],
        ["2026-03-02|billing", "2026-03-02|voice", "2026-03-02|chat"],
    )
    allowed = MultiToSingleDimensionMapping(allow_missing=True)
    assert allowed.required_keys("2026-03-02", DAILY, CELLS) == ([], [])


def test_a_day_over_a_dynamic_dimension_without_values_is_missing_not_empty() -> None:
    """Before the first ``partitions add`` there is no cell of the day to read: the day's
    total is missing its upstream (``missing_upstream``, naming the dimension), rather than
    computed over nothing; once a value is added, its cell is what the day reads."""
    none_yet = MultiScheme(
        (Dimension("date", LATER), Dimension("product_line", DynamicScheme("product_line")))
    )
    assert MAP.required_keys("2026-03-10", DAILY, none_yet) == (
        [],
        ["2026-03-10|(no product_line value yet)"],
    )
    assert MAP.required_keys("2026-03-02", DAILY, none_yet) == (
        [],
        ["2026-03-02|(no product_line value yet)"],
    )
    allowed = MultiToSingleDimensionMapping(allow_missing=True)
    assert allowed.required_keys("2026-03-10", DAILY, none_yet) == ([], [])
    voice = none_yet.with_values("product_line", ["voice"])
    assert MAP.required_keys("2026-03-10", DAILY, voice) == (["2026-03-10|voice"], [])
    three = MultiScheme((*voice.dimensions, Dimension("region", DynamicScheme("region"))))
    assert MAP.required_keys("2026-03-10", DAILY, three) == (
        [],
        ["2026-03-10|*|(no region value yet)"],
    )


def test_each_cell_reads_its_day_and_a_lag_the_day_before() -> None:
    assert MAP.required_keys("2026-03-10|chat", CELLS, DAILY) == (["2026-03-10"], [])
    assert MAP.downstream_keys("2026-03-10", DAILY, CELLS) == [
        "2026-03-10|billing",
        "2026-03-10|voice",
        "2026-03-10|chat",
    ]
    lag = MultiToSingleDimensionMapping(mapping=TimeWindowMapping.lag(1))
    assert lag.required_keys("2026-03-10|chat", CELLS, DAILY) == (["2026-03-09"], [])
    assert lag.downstream_keys("2026-03-09", DAILY, CELLS) == [
        "2026-03-10|billing",
        "2026-03-10|voice",
        "2026-03-10|chat",
    ]
    early = scheme_from_config(kind="daily", start="2026-03-05", end="2026-04-01")
    assert lag.required_keys("2026-03-05|chat", CELLS, early) == ([], ["2026-03-04"])


def test_a_static_dimension_maps_onto_a_static_scheme() -> None:
    per_line = MultiToSingleDimensionMapping(dimension="product_line")
    assert per_line.required_keys("voice", LINES, CELLS)[0][:2] == [
        "2026-03-05|voice",
        "2026-03-06|voice",
    ]
    assert MultiToSingleDimensionMapping().incompatibility(CELLS, LINES) is None


def _graph(mapping: Any, up: Any, down: Any) -> AssetGraph:
    def compute(context: Any) -> None:
        raise AssertionError("never computed")

    a = asset("x/up", idempotency_key=("id",), scheme=up)(compute)
    b = asset("x/down", idempotency_key=("id",), deps=[Dependency("x/up", mapping)], scheme=down)(
        compute
    )
    return AssetGraph([a, b], DAILY)


@pytest.mark.parametrize(
    ("mapping", "up", "down", "says"),
    [
        (MAP, CELLS, CELLS, "exactly one of them must be multi-dimensional"),
        (MAP, DAILY, LATER, "exactly one of them must be multi-dimensional"),
        (MultiToSingleDimensionMapping(dimension="colour"), CELLS, DAILY, "no dimension 'colour'"),
        (
            MAP,
            MultiScheme((Dimension("a", LINES), Dimension("b", StaticScheme(("x",))))),
            DAILY,
            "has no time dimension",
        ),
        (IdentityMapping(), CELLS, DAILY, "identity mapping between"),
    ],
)
def test_mappings_that_cannot_map_are_refused_naming_why(
    mapping: Any, up: Any, down: Any, says: str
) -> None:
    with pytest.raises(GraphError, match=says):
        _graph(mapping, up, down)


def test_a_bad_declaration_is_refused() -> None:
    with pytest.raises(GraphError, match="mapping must map one dimension"):
        MultiToSingleDimensionMapping(mapping=MAP)
    with pytest.raises(GraphError, match="allow_missing"):
        MultiToSingleDimensionMapping(allow_missing="yes")  # type: ignore[arg-type]
