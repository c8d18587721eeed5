"""Each asset over the keys of its own scheme (:mod:`backfiller.asset_keys`): which cells a
list of keys makes, and what ``--partition`` / ``--start`` / ``--end`` select when the
assets' schemes differ (keys whose windows overlap the named range)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from backfiller import Dependency, TimeWindowMapping, asset
from backfiller.asset_keys import (
    cells,
    every_key,
    judged_by_values,
    require_owned,
    select_keys,
    shared_scheme,
)
from backfiller.assets import AssetGraph
from backfiller.errors import InvalidPartitionKeyError
from backfiller.partitions import Dimension, MultiScheme, StaticScheme, scheme_from_config
from backfiller.refs import AssetPartition

DAILY = scheme_from_config(kind="daily", start="2026-03-01")
MONTHLY = scheme_from_config(kind="monthly", start="2026-03")
WEEKLY = scheme_from_config(kind="weekly", start="2026-03-02")  # Mondays
NOW = datetime(2026, 4, 10, 12, tzinfo=UTC)  # April is not complete yet
D, M, W = "s/daily", "s/monthly", "s/weekly"


def _graph() -> AssetGraph:
    def compute(context: Any) -> None:
        raise AssertionError("never computed")

    def node(key: str, scheme: Any = None, *deps: Dependency) -> Any:
        return asset(key, idempotency_key=("id",), deps=deps, scheme=scheme)(compute)

    return AssetGraph(
        [
            node(D),
            node(M, MONTHLY, Dependency(D, TimeWindowMapping())),
            node(W, WEEKLY, Dependency(D, TimeWindowMapping())),
        ],
        DAILY,
    )


GRAPH = _graph()


def select(*assets: str, **options: str | None) -> list[str]:
    wanted: dict[str, str | None] = {"partition": None, "start": None, "end": None} | options
    return select_keys(GRAPH, list(assets), now=NOW, **wanted)


def test_cells_pair_each_asset_with_the_keys_of_its_own_scheme() -> None:
    keys = ["2026-03-01", "2026-03-02", "2026-03"]
    assert cells(GRAPH, keys) == [
        AssetPartition(D, "2026-03-01"),
        AssetPartition(D, "2026-03-02"),
        AssetPartition(W, "2026-03-02"),  # a Monday: a key of the weekly scheme too
        AssetPartition(M, "2026-03"),
    ]
    # one shared scheme: every asset has every key, as with a single scheme
    assert cells(GRAPH, ["x"], [D]) == [AssetPartition(D, "x")]
    assert shared_scheme(GRAPH, [D, M]) is None
    assert shared_scheme(GRAPH, [M]) == MONTHLY


def test_a_range_selects_each_asset_keys_whose_windows_overlap_it() -> None:
    # two days on either side of a month's end: both months (April is not complete: left out)
    assert select(D, M, start="2026-03-30", end="2026-04-01") == [
        "2026-03-30",
        "2026-03-31",
        "2026-04-01",
        "2026-03",
    ]
    # a month as both bounds: its days, then the month
    march = [f"2026-03-{d:02d}" for d in range(1, 32)]
    assert select(D, M, start="2026-03", end="2026-03") == [*march, "2026-03"]
    # mixed bounds: from the start of the first day to the end of the month
    assert select(D, M, start="2026-03-31", end="2026-03") == ["2026-03-31", "2026-03"]
    # a day range inside a month selects that month, not the next
    assert select(D, M, start="2026-03-02", end="2026-03-03") == [
        "2026-03-02",
        "2026-03-03",
        "2026-03",
    ]


def test_one_partition_selects_it_and_the_overlapping_keys_of_other_schemes() -> None:
    assert select(D, M, partition="2026-03-05") == ["2026-03-05", "2026-03"]
    march = [f"2026-03-{d:02d}" for d in range(1, 32)]
    assert select(D, M, partition="2026-03") == [*march, "2026-03"]
    assert select(M, partition="2026-03") == ["2026-03"]


def test_keys_no_selected_scheme_has_are_refused_naming_every_scheme() -> None:
    with pytest.raises(InvalidPartitionKeyError, match="not a key of any selected asset"):
        select(D, M, partition="2026-13")
    with pytest.raises(InvalidPartitionKeyError, match=r"YYYY-MM-DD.*YYYY-MM"):
        require_owned(GRAPH, ["march"], [D, M])
    with pytest.raises(InvalidPartitionKeyError, match="Empty range"):
        select(D, M, start="2026-03-10", end="2026-03-09")
    with pytest.raises(InvalidPartitionKeyError, match="not complete yet"):
        select(D, M, partition="2026-04")  # April's window has not closed


def test_every_key_of_each_asset() -> None:
    keys = every_key(GRAPH, [D, M], NOW)
    assert keys[0] == "2026-03-01" and keys[-1] == "2026-03"
    assert "2026-04-09" in keys and "2026-04" not in keys


def test_a_key_is_judged_by_the_dimension_values_only_where_its_scheme_has_them() -> None:
    days = scheme_from_config(kind="daily", start="2026-04-01", end="2026-05-01")
    lines = MultiScheme(
        (Dimension("date", days), Dimension("product_line", StaticScheme(("billing", "chat"))))
    )
    chat = {"product_line": ["chat"]}
    assert judged_by_values(lines, "2026-04-17|chat", chat) is True
    assert judged_by_values(lines, "2026-04-17|billing", chat) is False
    assert judged_by_values(days, "2026-04-17", chat) is None  # no such dimension: no say
    assert judged_by_values(lines, "2026-04-17|chat", {"region": ["eu"]}) is None
    # a key recorded before the scheme had its second dimension: not one of its cells
    assert judged_by_values(lines, "2026-04-17", chat) is False
