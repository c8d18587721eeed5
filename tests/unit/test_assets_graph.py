"""Assets, the asset graph and partition mappings; the engine's Arrow conversion and table
fingerprints."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from backfiller import Project
from backfiller.assets import (
    Asset,
    AssetContext,
    AssetGraph,
    Dependency,
    IdentityMapping,
    TimeWindowMapping,
    asset,
    sql_asset,
)
from backfiller.engine import ComputeResultError, fingerprint_table, to_arrow
from backfiller.errors import ExitCode, GraphError
from backfiller.partitions import PartitionScheme, scheme_from_config

RAW = "week06/ingestion/raw_ticket_events_partitioned"
SILVER = "week06/silver/ticket_fact_partitioned"

DAILY = scheme_from_config(kind="daily", start="2026-03-01")
MONTHLY = scheme_from_config(kind="monthly", start="2026-03")


def node(
    key: str,
    deps: Iterable[str | Dependency] = (),
    scheme: PartitionScheme | None = None,
) -> Asset:
    return sql_asset(key, "SELECT 1 AS id", idempotency_key=("id",), deps=deps, scheme=scheme)


# -- graph validation -------------------------------------------------------------------------


def test_cycle_is_named() -> None:
    with pytest.raises(GraphError) as info:
        AssetGraph([node("a", ["b"]), node("b", ["c"]), node("c", ["a"])], DAILY)
    assert info.value.message == "Asset graph has a cycle: a -> b -> c -> a"
    assert info.value.exit_code is ExitCode.BAD_INPUT


def test_self_dependency_is_a_cycle() -> None:
    with pytest.raises(GraphError) as info:
        AssetGraph([node("loop", ["loop"])], DAILY)
    assert info.value.message == "Asset graph has a cycle: loop -> loop"


def test_unknown_upstream_names_both_assets() -> None:
    with pytest.raises(GraphError) as info:
        AssetGraph([node("silver", ["bronze"])], DAILY)
    assert info.value.message == "Asset 'silver' depends on unknown asset 'bronze'"
    assert info.value.asset == "silver"


def test_identity_between_daily_and_monthly_is_refused() -> None:
    with pytest.raises(GraphError) as info:
        AssetGraph([node("daily_up"), node("monthly_down", ["daily_up"], MONTHLY)], DAILY)
    message = info.value.message
    assert message.startswith("Assets 'daily_up' -> 'monthly_down': incompatible partitions")
    assert "identity mapping between daily from 2026-03-01 (UTC)" in message
    assert "monthly from 2026-03 (UTC)" in message
    assert info.value.hint is not None
    assert "TimeWindowMapping" in info.value.hint


def test_identity_between_time_zones_is_refused() -> None:
    berlin = scheme_from_config(kind="daily", start="2026-03-01", timezone="Europe/Berlin")
    with pytest.raises(GraphError, match=r"\(UTC\) and daily from 2026-03-01 \(Europe/Berlin\)"):
        AssetGraph([node("up"), node("down", ["up"], berlin)], DAILY)


def test_time_window_mapping_between_daily_and_monthly_is_accepted() -> None:
    graph = AssetGraph(
        [node("days"), node("months", [Dependency("days", TimeWindowMapping())], MONTHLY)],
        DAILY,
    )
    ups = graph.upstream_partitions("months", "2026-04")["days"]
    assert ups[0] == "2026-04-01"
    assert ups[-1] == "2026-04-30"
    assert len(ups) == 30
    assert graph.downstream_closure([("days", "2026-04-17")], include_targets=False) == [
        ("months", "2026-04")
    ]


@pytest.mark.parametrize("key", ["Bad Key", "/x", "x/", "a//b", "UPPER", "-dash", "a b", ""])
def test_invalid_asset_keys(key: str) -> None:
    with pytest.raises(GraphError, match="Invalid asset key"):
        node(key)


def test_valid_asset_keys() -> None:
    assert node("week06/silver/ticket_fact_partitioned").key == SILVER
    assert node("a-b_c/0").key == "a-b_c/0"


def test_asset_without_idempotency_key() -> None:
    with pytest.raises(GraphError) as info:
        sql_asset("x", "SELECT 1", idempotency_key=())
    assert info.value.message == "Asset 'x' declares no idempotency key"
    with pytest.raises(GraphError, match="declares no idempotency key"):

        @asset("y", idempotency_key=[])
        def y(context: AssetContext) -> list[dict[str, int]]:
            return []


def test_asset_needs_exactly_one_of_function_or_sql() -> None:
    with pytest.raises(GraphError, match="exactly one of a function or SQL"):
        Asset(key="x", idempotency_key=("id",))
    with pytest.raises(GraphError, match="exactly one of a function or SQL"):
        Asset(key="x", idempotency_key=("id",), sql="SELECT 1", compute=lambda c: [])


def test_duplicate_asset_is_refused() -> None:
    with pytest.raises(GraphError, match="Asset 'a' is defined twice"):
        AssetGraph([node("a"), node("a")], DAILY)


def test_idempotency_guard_rendering() -> None:
    a = node("x")
    assert a.idempotency_guard == "id"
    b = sql_asset("y", "SELECT 1", idempotency_key=["ticket_id", "partition_key"])
    assert b.idempotency_guard == "ticket_id + partition_key"


def test_decorated_asset() -> None:
    @asset("raw", idempotency_key=["ticket_id"], deps=["up"], uses_manifest=True)
    def raw(context: AssetContext) -> list[dict[str, int]]:
        """Raw rows.

        More text."""
        return []

    assert isinstance(raw, Asset)
    assert raw.description == "Raw rows."
    assert raw.upstream_keys == ("up",)
    assert raw.deps == (Dependency("up", IdentityMapping()),)
    assert raw.uses_manifest is True
    assert raw.sql is None


def test_graph_order_and_lookup() -> None:
    graph = AssetGraph([node("c", ["b"]), node("b", ["a"]), node("a"), node("z")], DAILY)
    assert graph.keys == ["a", "b", "c", "z"]
    assert [a.key for a in graph.roots()] == ["a", "z"]
    assert graph.downstream_of("a") == ["b"]
    assert "b" in graph
    assert "nope" not in graph
    assert len(graph) == 4
    with pytest.raises(GraphError, match="Unknown asset 'nope'") as info:
        graph.get("nope")
    assert info.value.hint == "known assets: a, b, c, z"


# -- time-window mappings ---------------------------------------------------------------------


def test_time_window_lookback_daily_to_daily() -> None:
    mapping = TimeWindowMapping(lookback=2)
    assert mapping.upstream_keys("2026-04-17", DAILY, DAILY) == [
        "2026-04-15",
        "2026-04-16",
        "2026-04-17",
    ]
    assert mapping.downstream_keys("2026-04-17", DAILY, DAILY) == [
        "2026-04-17",
        "2026-04-18",
        "2026-04-19",
    ]
    # across a month boundary
    assert mapping.upstream_keys("2026-04-01", DAILY, DAILY) == [
        "2026-03-30",
        "2026-03-31",
        "2026-04-01",
    ]


def test_time_window_lookback_is_clipped_at_the_scheme_bounds() -> None:
    mapping = TimeWindowMapping(lookback=2)
    assert mapping.upstream_keys("2026-03-01", DAILY, DAILY) == ["2026-03-01"]
    assert mapping.upstream_keys("2026-03-02", DAILY, DAILY) == ["2026-03-01", "2026-03-02"]
    bounded = scheme_from_config(kind="daily", start="2026-03-01", end="2026-04-30")
    assert mapping.downstream_keys("2026-04-28", DAILY, bounded) == ["2026-04-28", "2026-04-29"]


def test_time_window_mappings_keep_to_the_end_of_the_scheme_they_map_onto() -> None:
    mapping = TimeWindowMapping()
    ends_mid_april = scheme_from_config(kind="daily", start="2026-03-01", end="2026-04-15")
    ups = mapping.upstream_keys("2026-04", MONTHLY, ends_mid_april)
    assert (ups[0], ups[-1], len(ups)) == ("2026-04-01", "2026-04-14", 14)
    assert mapping.upstream_keys("2026-05", MONTHLY, ends_mid_april) == []
    # a month that is not whole before the end (April) is not a key of the monthly scheme
    monthly_to_mid_april = scheme_from_config(kind="monthly", start="2026-03", end="2026-04-15")
    assert mapping.downstream_keys("2026-04-10", DAILY, monthly_to_mid_april) == []
    assert mapping.downstream_keys("2026-03-31", DAILY, monthly_to_mid_april) == ["2026-03"]
    lookback = TimeWindowMapping(lookback=1)
    assert lookback.downstream_keys("2026-03-31", DAILY, monthly_to_mid_april) == ["2026-03"]
    assert lookback.downstream_keys("2026-04-13", DAILY, ends_mid_april) == [
        "2026-04-13",
        "2026-04-14",
    ]
    assert lookback.downstream_keys("2026-04-14", DAILY, ends_mid_april) == ["2026-04-14"]


def test_time_window_without_lookback_is_identity_for_same_schemes() -> None:
    mapping = TimeWindowMapping()
    assert mapping.upstream_keys("2026-04-17", DAILY, DAILY) == ["2026-04-17"]
    assert mapping.downstream_keys("2026-04-17", DAILY, DAILY) == ["2026-04-17"]


def test_time_window_daily_into_monthly_with_lookback() -> None:
    mapping = TimeWindowMapping(lookback=1)
    assert mapping.downstream_keys("2026-04-30", DAILY, MONTHLY) == ["2026-04", "2026-05"]
    ups = mapping.upstream_keys("2026-04", MONTHLY, DAILY)
    assert (ups[0], ups[-1], len(ups)) == ("2026-03-01", "2026-04-30", 31 + 30)


def test_negative_lookback_is_refused() -> None:
    with pytest.raises(GraphError, match="lookback must be 0 or more"):
        TimeWindowMapping(lookback=-1)


def test_time_window_mapping_needs_time_schemes() -> None:
    static = scheme_from_config(kind="static", values=["a", "b"])
    with pytest.raises(GraphError, match="time-window mapping between static"):
        AssetGraph(
            [node("s", scheme=static), node("d", [Dependency("s", TimeWindowMapping())])],
            DAILY,
        )


def test_closure_with_lookback() -> None:
    graph = AssetGraph(
        [
            node("up"),
            node("mid", [Dependency("up", TimeWindowMapping(lookback=2))]),
            node("down", ["mid"]),
        ],
        DAILY,
    )
    assert graph.upstream_partitions("mid", "2026-04-17") == {
        "up": ["2026-04-15", "2026-04-16", "2026-04-17"]
    }
    assert graph.downstream_closure([("up", "2026-04-17")]) == [
        ("up", "2026-04-17"),
        ("mid", "2026-04-17"),
        ("mid", "2026-04-18"),
        ("mid", "2026-04-19"),
        ("down", "2026-04-17"),
        ("down", "2026-04-18"),
        ("down", "2026-04-19"),
    ]


# -- the example graph ------------------------------------------------------------------------


def test_example_downstream_closure(example_dir: Path, load: Callable[[Path], Project]) -> None:
    graph = load(example_dir).graph
    assert graph.downstream_closure([(RAW, "2026-04-17")]) == [
        (RAW, "2026-04-17"),
        (SILVER, "2026-04-17"),
    ]
    assert graph.downstream_closure([(RAW, "2026-04-17")], include_targets=False) == [
        (SILVER, "2026-04-17")
    ]
    assert graph.downstream_closure([(SILVER, "2026-04-17")]) == [(SILVER, "2026-04-17")]
    assert graph.upstream_partitions(SILVER, "2026-04-17") == {RAW: ["2026-04-17"]}
    assert graph.get(RAW).idempotency_guard == "ticket_id + partition_key"
    assert graph.get(SILVER).idempotency_guard == "ticket_id + partition_key"


# -- to_arrow ---------------------------------------------------------------------------------


def test_to_arrow_accepts_a_table() -> None:
    table = pa.table({"id": [1, 2]})
    assert to_arrow(table) is table


def test_to_arrow_accepts_a_list_of_dicts() -> None:
    table = to_arrow([{"id": 1, "name": "a"}, {"id": 2, "name": None}])
    assert table.column_names == ["id", "name"]
    assert table.to_pylist() == [{"id": 1, "name": "a"}, {"id": 2, "name": None}]


def test_to_arrow_accepts_a_duckdb_relation() -> None:
    con = duckdb.connect()
    try:
        relation = con.sql("SELECT * FROM range(3) t(id)")
        table = to_arrow(relation)
    finally:
        con.close()
    assert isinstance(table, pa.Table)
    assert table.column("id").to_pylist() == [0, 1, 2]


def test_to_arrow_accepts_a_record_batch_reader() -> None:
    table = pa.table({"id": [1, 2, 3]})
    reader = pa.RecordBatchReader.from_batches(table.schema, table.to_batches())
    assert to_arrow(reader).equals(table)


@pytest.mark.parametrize("value", [42, "rows", None, {"id": [1]}, [{"id": 1}, 2]])
def test_to_arrow_refuses_non_tabular(value: object) -> None:
    with pytest.raises(ComputeResultError) as info:
        to_arrow(value)
    assert f"An asset returned {type(value).__name__}, which is not tabular" in str(info.value)
    assert info.value.exit_code is ExitCode.UNEXPECTED


# -- fingerprint_table ------------------------------------------------------------------------


def _rows() -> list[dict[str, object]]:
    return [
        {"ticket_id": f"T-{i}", "priority": p, "n": i, "score": i / 4, "note": None}
        for i, p in enumerate(["urgent", "high", "normal", "low", "high", "normal"])
    ]


def _table(rows: list[dict[str, object]], columns: list[str] | None = None) -> pa.Table:
    schema = pa.schema(
        [
            ("ticket_id", pa.string()),
            ("priority", pa.string()),
            ("n", pa.int64()),
            ("score", pa.float64()),
            ("note", pa.string()),
        ]
    )
    table = pa.Table.from_pylist(rows, schema=schema)
    return table.select(columns) if columns else table


def test_fingerprint_ignores_row_and_column_order() -> None:
    base = fingerprint_table(_table(_rows()))
    assert len(base) == 64
    rng = random.Random(7)
    for _ in range(5):
        rows = _rows()
        rng.shuffle(rows)
        columns = ["ticket_id", "priority", "n", "score", "note"]
        rng.shuffle(columns)
        assert fingerprint_table(_table(rows, columns)) == base
    assert fingerprint_table(_table(list(reversed(_rows())))) == base


def test_fingerprint_changes_with_a_value() -> None:
    base = fingerprint_table(_table(_rows()))
    rows = _rows()
    rows[3]["priority"] = "urgent"
    assert fingerprint_table(_table(rows)) != base
    rows = _rows()
    rows[0]["note"] = ""  # NULL and the empty string differ
    assert fingerprint_table(_table(rows)) != base
    rows = _rows()
    rows[5]["score"] = 1.2500001
    assert fingerprint_table(_table(rows)) != base


def test_fingerprint_distinguishes_duplicated_rows() -> None:
    rows = _rows()
    doubled = fingerprint_table(_table([*rows, rows[0]]))
    assert doubled != fingerprint_table(_table(rows))
    # same row count, different multiplicities
    a = _table([rows[0], rows[0], rows[1]])
    b = _table([rows[0], rows[1], rows[1]])
    assert fingerprint_table(a) != fingerprint_table(b)


def test_fingerprint_sees_the_schema() -> None:
    ints = pa.table({"n": pa.array([1, 2], pa.int64())})
    strings = pa.table({"n": pa.array(["1", "2"], pa.string())})
    renamed = pa.table({"m": pa.array([1, 2], pa.int64())})
    prints = {fingerprint_table(t) for t in (ints, strings, renamed)}
    assert len(prints) == 3


def test_fingerprint_of_empty_tables() -> None:
    empty = _table([])
    assert fingerprint_table(empty) == fingerprint_table(_table([]))
    assert fingerprint_table(empty) != fingerprint_table(_table(_rows()[:1]))
    assert fingerprint_table(pa.table({})) != fingerprint_table(empty)


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ({"x": ["a\x1fb"], "y": ["c"]}, {"x": ["a"], "y": ["b\x1fc"]}),
        ({"x": pa.array([None], pa.string())}, {"x": ["\x00"]}),
    ],
    ids=["unit-separator", "null-vs-nul"],
)
def test_fingerprint_is_unambiguous(left: dict[str, object], right: dict[str, object]) -> None:
    assert pa.table(left).to_pylist() != pa.table(right).to_pylist()
    assert fingerprint_table(pa.table(left)) != fingerprint_table(pa.table(right))


_FINGERPRINT_TIMESTAMPTZ = textwrap.dedent(
    """
    from datetime import datetime, timezone
    import pyarrow as pa
    from backfiller.engine import fingerprint_table
    moment = datetime(2026, 4, 17, 10, 30, tzinfo=timezone.utc)
    table = pa.table({"event_time": pa.array([moment], pa.timestamp("us", tz="UTC"))})
    print(fingerprint_table(table))
    """
)


def _fingerprint_in(tz: str) -> str:
    env = {**os.environ, "TZ": tz}
    result = subprocess.run(
        [sys.executable, "-c", _FINGERPRINT_TIMESTAMPTZ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.fixture(scope="module")
def fingerprints_by_zone() -> Iterator[dict[str, str]]:
    yield {tz: _fingerprint_in(tz) for tz in ("UTC", "America/New_York")}


@pytest.mark.slow
def test_fingerprint_is_stable_in_one_zone(fingerprints_by_zone: dict[str, str]) -> None:
    assert len(fingerprints_by_zone["UTC"]) == 64
    assert fingerprints_by_zone["UTC"] == _fingerprint_in("UTC")


def test_fingerprint_does_not_depend_on_the_machine_time_zone(
    fingerprints_by_zone: dict[str, str],
) -> None:
    assert fingerprints_by_zone["UTC"] == fingerprints_by_zone["America/New_York"]
