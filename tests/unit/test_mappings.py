"""Partition mappings between differently partitioned assets (the reference behaviour is
Dagster's ``TimeWindowPartitionMapping``: offsets counted in downstream windows): lag and lead,
fan-in and fan-out, identity on static and dynamic values, the upstream keys a mapping requires
that do not exist, declarations refused with a message naming what is wrong, and a plan that
never recomputes a partition whose upstream does not exist."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from backfiller.assets import (
    AssetGraph,
    Dependency,
    IdentityMapping,
    TimeWindowMapping,
    sql_asset,
)
from backfiller.errors import ExitCode, GraphError
from backfiller.ledger import PartitionRecord, PartitionStatus
from backfiller.partitions import DynamicScheme, PartitionScheme, StaticScheme, scheme_from_config
from backfiller.planning.gaps import GapReason, PartitionState, ProposedAction, detect_gap
from backfiller.planning.plan import Mode, PlanRequest, build_plan
from backfiller.planning.state import Observation
from backfiller.refs import AssetPartition

DAILY = scheme_from_config(kind="daily", start="2021-05-01")
HOURLY = scheme_from_config(kind="hourly", start="2021-05-01")
MONTHLY = scheme_from_config(kind="monthly", start="2021-01")
WEEKLY = scheme_from_config(kind="weekly", start="2021-05-03")  # Mondays


def node(key: str, *deps: str | Dependency, scheme: PartitionScheme | None = None) -> Any:
    return sql_asset(key, "SELECT 1 AS id", idempotency_key=("id",), deps=deps, scheme=scheme)


# -- time windows: offsets, lag, lead ------------------------------------------------------------


def test_lag_reads_the_previous_window_alone() -> None:
    lag = TimeWindowMapping(start_offset=-1, end_offset=-1)
    assert lag == TimeWindowMapping.lag()
    assert lag.upstream_keys("2021-05-06", DAILY, DAILY) == ["2021-05-05"]
    assert lag.downstream_keys("2021-05-05", DAILY, DAILY) == ["2021-05-06"]
    assert TimeWindowMapping.lag(2).upstream_keys("2021-05-06", DAILY, DAILY) == ["2021-05-04"]


def test_offsets_are_counted_in_downstream_windows() -> None:
    """Dagster's vector: start_offset=-1 from a daily downstream onto an hourly upstream reads
    the 48 hours of the day and the day before."""
    mapping = TimeWindowMapping(start_offset=-1)
    hours = mapping.upstream_keys("2021-05-06", DAILY, HOURLY)
    assert (len(hours), hours[0], hours[-1]) == (48, "2021-05-05T00:00", "2021-05-06T23:00")
    assert mapping.downstream_keys("2021-05-05T13:00", HOURLY, DAILY) == [
        "2021-05-05",
        "2021-05-06",
    ]
    lag = TimeWindowMapping.lag()
    assert lag.upstream_keys("2021-05-06T05:00", HOURLY, DAILY) == ["2021-05-06"]
    assert lag.upstream_keys("2021-05-06T00:00", HOURLY, DAILY) == ["2021-05-05"]


def test_a_lead_reads_the_next_window_too() -> None:
    lead = TimeWindowMapping(end_offset=1)
    assert lead.upstream_keys("2021-05-06", DAILY, DAILY) == ["2021-05-06", "2021-05-07"]
    assert lead.downstream_keys("2021-05-06", DAILY, DAILY) == ["2021-05-05", "2021-05-06"]


def test_lookback_is_a_start_offset() -> None:
    assert TimeWindowMapping(lookback=2).upstream_keys(
        "2021-05-06", DAILY, DAILY
    ) == TimeWindowMapping(start_offset=-2).upstream_keys("2021-05-06", DAILY, DAILY)
    assert TimeWindowMapping(lookback=2).first_offset == -2


# -- fan-in and fan-out -------------------------------------------------------------------------


def test_fan_in_a_month_reads_all_its_days_and_each_day_feeds_its_month() -> None:
    mapping = TimeWindowMapping()
    days = mapping.upstream_keys("2021-05", MONTHLY, DAILY)
    assert days == [f"2021-05-{d:02d}" for d in range(1, 32)]
    assert all(mapping.downstream_keys(d, DAILY, MONTHLY) == ["2021-05"] for d in days)
    assert mapping.missing_upstream_keys("2021-05", MONTHLY, DAILY) == []


def test_fan_out_each_day_reads_its_month_and_a_month_feeds_its_days() -> None:
    mapping = TimeWindowMapping()
    assert mapping.upstream_keys("2021-05-17", DAILY, MONTHLY) == ["2021-05"]
    days = mapping.downstream_keys("2021-05", MONTHLY, DAILY)
    assert days == [f"2021-05-{d:02d}" for d in range(1, 32)]
    # a lag on the downstream's days: the first of the month reads the month before
    lag = TimeWindowMapping.lag()
    assert lag.upstream_keys("2021-06-01", DAILY, MONTHLY) == ["2021-05"]
    assert lag.downstream_keys("2021-05", MONTHLY, DAILY)[-1] == "2021-06-01"


def test_weeks_fan_in_from_days_across_a_month_boundary() -> None:
    mapping = TimeWindowMapping()
    assert mapping.upstream_keys("2021-05-31", WEEKLY, DAILY) == [
        f"2021-{m:02d}-{d:02d}" for m, d in [(5, 31), *((6, d) for d in range(1, 7))]
    ]


# -- what does not exist is missing, not dropped --------------------------------------------------


def test_keys_before_the_upstream_start_are_missing() -> None:
    lag = TimeWindowMapping.lag()
    assert lag.upstream_keys("2021-05-01", DAILY, DAILY) == []
    assert lag.missing_upstream_keys("2021-05-01", DAILY, DAILY) == ["2021-04-30"]
    lookback = TimeWindowMapping(lookback=2)
    assert lookback.upstream_keys("2021-05-01", DAILY, DAILY) == ["2021-05-01"]
    assert lookback.missing_upstream_keys("2021-05-01", DAILY, DAILY) == [
        "2021-04-29",
        "2021-04-30",
    ]
    allowed = TimeWindowMapping(lookback=2, allow_missing=True)
    assert allowed.missing_upstream_keys("2021-05-01", DAILY, DAILY) == []
    assert allowed.upstream_keys("2021-05-01", DAILY, DAILY) == ["2021-05-01"]


def test_keys_past_the_upstream_end_are_missing() -> None:
    ends = scheme_from_config(kind="daily", start="2021-05-01", end="2021-05-15")
    mapping = TimeWindowMapping()
    assert mapping.upstream_keys("2021-05", MONTHLY, ends)[-1] == "2021-05-14"
    missing = mapping.missing_upstream_keys("2021-05", MONTHLY, ends)
    assert missing == [f"2021-05-{d}" for d in range(15, 32)]
    assert mapping.missing_upstream_keys("2021-04", MONTHLY, ends) == [
        f"2021-04-{d:02d}" for d in range(1, 31)
    ]
    # an open-ended upstream has every later window: not yet materialized is not missing
    assert mapping.missing_upstream_keys("2031-05", MONTHLY, DAILY) == []


def test_identity_onto_a_shorter_time_scheme_is_missing_outside_it() -> None:
    later = scheme_from_config(kind="daily", start="2021-05-10")
    identity = IdentityMapping()
    assert identity.upstream_keys("2021-05-09", DAILY, later) == []
    assert identity.missing_upstream_keys("2021-05-09", DAILY, later) == ["2021-05-09"]
    assert identity.upstream_keys("2021-05-10", DAILY, later) == ["2021-05-10"]
    assert identity.downstream_keys("2021-05-09", DAILY, later) == []


def test_identity_on_static_and_dynamic_values() -> None:
    lines = DynamicScheme("product_line", ("billing", "voice"))
    static = StaticScheme(("billing", "voice", "chat"))
    identity = IdentityMapping()
    assert identity.incompatibility(lines, lines) is None
    assert identity.incompatibility(lines, static) is None
    assert identity.upstream_keys("voice", static, lines) == ["voice"]
    # chat is not (or no longer) a value of the upstream's dimension
    assert identity.missing_upstream_keys("chat", static, lines) == ["chat"]
    assert identity.downstream_keys("chat", static, lines) == []
    assert IdentityMapping(allow_missing=True).missing_upstream_keys("chat", static, lines) == []
    why = identity.incompatibility(DynamicScheme("region"), lines)
    assert why is not None and "identity mapping between dynamic region" in why
    assert identity.incompatibility(static, DAILY) is not None


def test_the_graph_names_the_missing_keys_per_upstream() -> None:
    graph = AssetGraph(
        [
            node("raw"),
            node("later", scheme=scheme_from_config(kind="daily", start="2021-05-03")),
            node("lagged", Dependency("raw", TimeWindowMapping.lag()), "raw", "later"),
        ],
        DAILY,
    )
    assert graph.missing_upstream_partitions("lagged", "2021-05-01") == {
        "raw": ["2021-04-30"],
        "later": ["2021-05-01"],
    }
    assert graph.missing_upstream_partitions("lagged", "2021-05-04") == {}
    assert graph.upstream_partitions("lagged", "2021-05-04") == {
        "raw": ["2021-05-03", "2021-05-04"],  # both dependencies' keys, each once
        "later": ["2021-05-04"],
    }


# -- declarations are checked: exit 2, naming what is wrong --------------------------------------


@pytest.mark.parametrize(
    ("build", "says"),
    [
        (lambda: TimeWindowMapping(start_offset=0, end_offset=-1), "start_offset 0 is after"),
        (lambda: TimeWindowMapping(lookback=1, start_offset=-2), "both set where the span"),
        (lambda: TimeWindowMapping(lookback=-1), "lookback must be 0 or more"),
        (lambda: TimeWindowMapping(end_offset=1.5), "end_offset must be a whole number"),
        (lambda: TimeWindowMapping(start_offset=True), "start_offset must be a whole number"),
        (lambda: TimeWindowMapping(end_offset=5000), "end_offset = 5000 is out of range"),
        (lambda: TimeWindowMapping(allow_missing="yes"), "allow_missing must be True or False"),
        (lambda: TimeWindowMapping.lag(0), "windows must be 1 or more"),
        (lambda: IdentityMapping(allow_missing=1), "allow_missing must be True or False"),
        (lambda: Dependency("raw", "lag"), "'lag' is not a partition mapping"),
        (lambda: Dependency(3), "names its upstream asset by its key"),
    ],
)
def test_an_invalid_declaration_is_refused(build: Any, says: str) -> None:
    with pytest.raises(GraphError) as info:
        build()
    assert says in info.value.message
    assert info.value.hint
    assert info.value.exit_code is ExitCode.BAD_INPUT


def test_identity_between_dimensions_is_refused_by_the_graph() -> None:
    with pytest.raises(GraphError, match="identity mapping between dynamic region"):
        AssetGraph(
            [
                node("by_region", scheme=DynamicScheme("region")),
                node("by_line", "by_region", scheme=DynamicScheme("product_line")),
            ],
            DAILY,
        )


# -- the gap and the plan ---------------------------------------------------------------------


def _observation(asset: str, key: str, graph: AssetGraph, *, stored: int = 0) -> Observation:
    record = None
    if stored:
        record = PartitionRecord(
            asset=asset,
            partition_key=key,
            status=PartitionStatus.MATERIALIZED,
            data_version=1,
            row_count=stored,
            fingerprint=None,
            manifest_id="m1",
            manifest_checksum="c",
            upstream_versions={},
            last_run_id="run-1",
            last_error=None,
        )
    return Observation(
        asset=asset,
        partition_key=key,
        manifest_id="m1",
        manifest_checksum="c",
        expected_count=5,
        stored_rows=stored,
        stored_signature=None,
        record=record,
        report_exists=bool(stored),
        upstream_current={up: dict.fromkeys(ks) for up, ks in graph.upstream_partitions(
            asset, key).items()},
        upstream_missing=graph.missing_upstream_partitions(asset, key),
    )  # fmt: skip


def _lag_graph() -> AssetGraph:
    return AssetGraph(
        [
            node("raw"),
            node("lagged", Dependency("raw", TimeWindowMapping.lag())),
            node("rollup", "lagged"),
        ],
        DAILY,
    )


def test_missing_upstream_is_a_gap_that_blocks_the_partition() -> None:
    graph = _lag_graph()
    obs = _observation("lagged", "2021-05-01", graph, stored=5)
    gap = detect_gap(graph.get("lagged"), obs)
    assert gap is not None
    assert gap.reason is GapReason.MISSING_UPSTREAM
    assert gap.proposed_action is ProposedAction.BLOCKED_MISSING_UPSTREAM
    assert not gap.proposed_action.recomputes
    assert "raw 2021-04-30" in gap.detail
    assert PartitionState.of(gap.reason) is PartitionState.MISSING_UPSTREAM
    assert obs.token()["upstream_missing"] == {"raw": ["2021-04-30"]}
    assert "upstream_missing" not in _observation("lagged", "2021-05-02", graph).token()


@pytest.mark.parametrize("include_materialized", [False, True])
def test_a_plan_never_recomputes_a_partition_whose_upstream_is_missing(
    include_materialized: bool,
) -> None:
    graph = _lag_graph()
    keys = ["2021-05-01", "2021-05-02"]
    stored = 5 if include_materialized else 0
    observations = {
        AssetPartition(a, k): _observation(a, k, graph, stored=stored)
        for a in graph.keys
        for k in keys
    }
    plan = build_plan(
        request=PlanRequest(
            keys=keys,
            mode=Mode.DRY_RUN,
            operator="ann",
            include_materialized=include_materialized,
        ),
        graph=graph,
        scheme=DAILY,
        observations=observations,
        project_name="p",
        downstream_impact="none",
        report_path="plan.json",
        now=datetime(2021, 6, 1, tzinfo=UTC),
    )
    first, second = plan.partitions
    # the first day: raw is (re)computed; lagged cannot be, nor rollup through it
    assert first.target_assets == ["raw"]
    assert [(g.asset, g.gap_reason) for g in first.asset_gaps if g.asset == "lagged"] == [
        ("lagged", GapReason.MISSING_UPSTREAM)
    ]
    assert second.target_assets == ["raw", "lagged", "rollup"]
    assert [(a, k) for a, k in plan.work] == [
        ("raw", "2021-05-01"),
        ("raw", "2021-05-02"),
        ("lagged", "2021-05-02"),
        ("rollup", "2021-05-02"),
    ]
