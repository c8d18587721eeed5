"""Applying a plan of ranges takes its steps from the ranges as it goes, on real Delta tables
and SQLite: the steps are exactly those the plan lists, in the order a run lists them; the run
is recorded by its plan (not by a list of steps) and rebuilt from it; a run taken in small
stretches publishes, skips and records exactly what it must — also an asset whose partition
reads partitions later in the run order (a month and its days) and whose upstream failed in an
earlier stretch — and its evidence lists every step."""

from __future__ import annotations

import json
import sqlite3
import textwrap
from datetime import date, timedelta
from itertools import chain
from pathlib import Path
from typing import Any

import pytest
from conftest import GAP_DAY, run_steps

from backfiller import Project, load_project
from backfiller.actions import GroupLimits, RunOptions, RunSpec, Step, StepOutcome, StepSource
from backfiller.actions.apply import apply_plan
from backfiller.actions.plan_steps import PlanSteps, plan_steps_of
from backfiller.actions.stretches import ListedSteps
from backfiller.errors import BadInputError
from backfiller.evidence.writer import load_run_evidence
from backfiller.ledger import RunState
from backfiller.planning import Mode, RangePlan, make_plan
from backfiller.planning.planner import compute_plan, request_for
from backfiller.refs import AssetPartition

RAW = "week06/ingestion/raw_ticket_events_partitioned"
SILVER = "week06/silver/ticket_fact_partitioned"
WINDOW = ["2026-04-14", "2026-04-15", "2026-04-16", GAP_DAY, "2026-04-18", "2026-04-19"]


def damage(project: Project) -> None:
    """Several gap reasons: a lost report, a failed attempt, a stale partition."""
    project.partition_report_path(RAW, "2026-04-15").unlink()
    with sqlite3.connect(project.config.ledger_path) as db:
        db.execute(
            "UPDATE partitions SET status = 'failed', last_error = 'boom' "
            "WHERE asset = ? AND partition_key = ?",
            (SILVER, "2026-04-19"),
        )
        db.execute(
            "UPDATE partitions SET status = 'stale' WHERE asset = ? AND partition_key = ?",
            (SILVER, "2026-04-14"),
        )


def listed(project: Project, plan: RangePlan) -> ListedSteps:
    """The plan's steps as a run listing them all takes them (the oracle)."""
    steps = chain(
        (Step(t) for t in plan.iter_work()),
        (Step(t, StepSource.REPORT) for t in plan.iter_reports()),
    )
    rank = {a: i for i, a in enumerate(project.graph.keys)}
    return ListedSteps(tuple(dict.fromkeys(steps)), rank)


@pytest.mark.parametrize(
    "options",
    [{}, {"include_materialized": True}, {"assets": [SILVER]}],
    ids=["gaps", "include-materialized", "one-asset"],
)
def test_a_plans_steps_are_the_steps_it_lists_in_the_same_order(
    april_project: Project, options: dict[str, Any]
) -> None:
    damage(april_project)
    keys = list(april_project.scheme.key_range("2026-04-10", "2026-04-22"))
    request = request_for(keys, Mode.DRY_RUN, "tests").model_copy(update=options)
    plan = compute_plan(april_project, april_project.reader(), request)
    assert isinstance(plan, RangePlan)

    steps, oracle = PlanSteps(plan), listed(april_project, plan)

    assert list(steps) == list(oracle) == list(steps)  # re-iterable
    assert len(steps) == len(list(oracle)) > 0
    if not options:  # both kinds of step
        assert {s.source for s in steps} == {StepSource.COMPUTE, StepSource.REPORT}
    positions = [steps.position(s) for s in steps]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    cells = [AssetPartition(a, k) for a in april_project.graph.keys for k in [*keys, "2026-05-01"]]
    for target in cells:
        assert steps.find(target) == oracle.find(target)
        for source in (StepSource.COMPUTE, StepSource.REPORT):
            step = Step(target, source)
            assert (step in steps) == (step in list(oracle))


@pytest.mark.slow
def test_a_plan_run_is_recorded_by_its_plan_and_its_evidence_lists_every_step(
    april_project: Project,
) -> None:
    project = april_project
    damage(project)
    document = make_plan(project, project.reader(), request_for(WINDOW, Mode.DRY_RUN, "tests"))
    assert isinstance(document, RangePlan)
    expected = list(PlanSteps(document))
    options = RunOptions(window=1, group=GroupLimits(size=2))

    result = apply_plan(project, document, operator="tests", options=options)

    assert result.state is RunState.SUCCEEDED, [s.error for s in result.steps]
    assert [s.target for s in result.steps] == [s.target for s in expected]
    with project.ledger() as ledger:
        run = ledger.runs.get(result.run_id)
        assert run is not None
        assert "steps" not in run.arguments
        assert run.arguments["steps_of_plan"] == document.plan_id
        assert run.arguments["step_count"] == len(expected)
        spec = RunSpec.of_run(run, lambda plan_id: plan_steps_of(ledger, plan_id))
        assert list(spec.steps) == expected
        with pytest.raises(ValueError, match=document.plan_id):
            RunSpec.of_run(run)
        # a recorded count the plan no longer expands to (another version's expansion) is
        # refused: a resumed run never takes other steps than those it began with
        fewer = PlanSteps(document)
        fewer._count -= 1
        with pytest.raises(BadInputError, match=f"{len(expected)} step\\(s\\) of plan"):
            RunSpec.of_run(run, lambda plan_id: fewer)
        with pytest.raises(BadInputError, match="plan-0000000000000000"):
            plan_steps_of(ledger, "plan-0000000000000000")
        for step in expected:  # published by this run (a report re-issued: by the run before)
            record = ledger.partitions.get(*step.target)
            assert record is not None
            assert (record.last_run_id == result.run_id) is (step.source is StepSource.COMPUTE)
    evidence = load_run_evidence(project, project.reader(), result.run_id)
    assert [(p.asset, p.partition_key) for p in evidence.partitions] == [
        tuple(s.target) for s in expected
    ]
    again = compute_plan(project, project.reader(), request_for(WINDOW, Mode.DRY_RUN, "tests"))
    assert isinstance(again, RangePlan)
    assert [(r.first, r.last, r.gap_reason) for r in again.ranges] == [
        (WINDOW[0], WINDOW[-1], None)
    ]


# -- a month read from its days, in stretches of one key ----------------------------------------

DAILY, MONTHLY = "sales/daily", "sales/monthly"
DAYS = [(date(2026, 3, 1) + timedelta(days=i)).isoformat() for i in range(61)]  # March, April
BROKEN_DAY = "2026-03-05"

ASSETS = f"""
from backfiller import Dependency, TimeWindowMapping, asset
from backfiller.partitions import scheme_from_config

MONTHLY = scheme_from_config(kind="monthly", start="2026-03", end="2026-05")


@asset("sales/daily", idempotency_key=("id",))
def daily(context):
    day = context.partition_key
    if day == {BROKEN_DAY!r}:
        raise ValueError("the source of this day is unreadable")
    return [{{"id": f"{{day}}-{{i}}", "day": day, "amount": i + 1}} for i in range(2)]


@asset(
    "sales/monthly",
    idempotency_key=("month",),
    deps=[Dependency("sales/daily", TimeWindowMapping())],
    scheme=MONTHLY,
)
def monthly(context):
    rows = context.upstream("sales/daily").to_pylist()
    return [{{"month": context.partition_key, "days": len({{r["day"] for r in rows}})}}]
"""


def sales(root: Path, environ: dict[str, str]) -> Project:
    (root / "manifests").mkdir(parents=True)
    (root / "backfiller.toml").write_text(
        textwrap.dedent(
            """
            [project]
            name = "sales"
            operator = "ann"
            manifests = "manifests"

            [partitions]
            kind = "daily"
            start = "2026-03-01"
            end = "2026-05-01"
            """
        ),
        encoding="utf-8",
    )
    manifest = {
        "batch_id": "b1",
        "created_at": "2026-05-01T00:00:00+00:00",
        "manifest_id": "sales-manifest-001",
        "partitions": [{"partition_key": d, "expected_record_count": 2} for d in DAYS],
        "schema_version": 1,
        "source": "shop/sales",
    }
    (root / "manifests" / "sales-manifest-001.json").write_text(json.dumps(manifest), "utf-8")
    (root / "assets.py").write_text(ASSETS, encoding="utf-8")
    return load_project(root, environ=environ)


@pytest.mark.parametrize("size", [1, 3], ids=["per-partition", "groups-of-three"])
def test_in_stretches_of_one_key_a_month_waits_for_its_days_and_a_failed_day_skips_it(
    tmp_path: Path, project_environ: dict[str, str], size: int
) -> None:
    project = sales(tmp_path / "sales", project_environ)
    days = [*DAYS[:3], BROKEN_DAY, *DAYS[28:33]]  # around the end of March
    steps = [(MONTHLY, "2026-03"), (MONTHLY, "2026-04"), *((DAILY, d) for d in days)]
    # the months read all their days, most of which are not in this run: only those that are
    # wait (a month's key sorts before its days': it is read first and held back)
    options = RunOptions(window=1, group=GroupLimits(size=size))
    with project.ledger() as ledger:
        result = run_steps(project, ledger, steps, options=options)

    outcomes = {(s.asset, s.partition_key): (s.outcome, s.error) for s in result.steps}
    assert len(outcomes) == len(steps) == len(result.steps)
    assert outcomes.pop((DAILY, BROKEN_DAY))[0] is StepOutcome.FAILED
    month, why = outcomes.pop((MONTHLY, "2026-03"))
    assert month is StepOutcome.SKIPPED
    assert why is not None and BROKEN_DAY in why
    assert {o for o, _ in outcomes.values()} == {StepOutcome.PUBLISHED}
    assert result.state is RunState.FAILED
    # April's month was computed after every April day of the run was published
    april = project.store.read_partitions(MONTHLY, ["2026-04"]).to_pylist()
    assert april == [{"month": "2026-04", "days": 2, "partition_key": "2026-04"}]
