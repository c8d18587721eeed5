"""Applying a saved plan: exactly that plan, on real Delta tables and either ledger (SQLite and
PostgreSQL: every test runs on both); refused when it is stale or not a backfill; idempotent on
reruns."""

from __future__ import annotations

import hashlib
import json
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pytest
from conftest import GAP_DAY, both_backends, ledger_fingerprint, materialize, tree_fingerprint

from backfiller import (
    CommitInfo,
    ExitCode,
    PreconditionError,
    Project,
    StalePlanError,
)
from backfiller.actions import StepOutcome
from backfiller.actions.apply import apply_plan
from backfiller.errors import ConflictError, PlanFileError
from backfiller.ledger import PartitionStatus, RunState
from backfiller.planning import GapReason, Mode, PlanDocument, find_gaps, make_plan, read_plan
from backfiller.planning import write_plan as save_plan
from backfiller.planning.planner import PlanRequest, request_for

RAW = "week06/ingestion/raw_ticket_events_partitioned"
SILVER = "week06/silver/ticket_fact_partitioned"
MANIFEST_ID = "week06-seed-manifest-001"
OTHER_DAYS = ["2026-04-14", "2026-04-15", "2026-04-16", "2026-04-18", "2026-04-19", "2026-04-20"]
GAP_TICKETS = ["TCK-20260417-0001", "TCK-20260417-0002", "TCK-20260417-0003"]


pytestmark = both_backends


def plan(
    project: Project,
    keys: list[str],
    *,
    include_materialized: bool = False,
    reason: str | None = None,
) -> PlanDocument:
    """Make, save and read back a plan, the way an operator reviews it."""
    request = request_for(
        keys, Mode.DRY_RUN, "tests", reason=reason, include_materialized=include_materialized
    )
    return read_plan(save_plan(project, make_plan(project, project.reader(), request)))


def fingerprints(project: Project, keys: list[str]) -> dict[tuple[str, str], str | None]:
    return {(a, k): project.store.fingerprint(a, k) for a in (RAW, SILVER) for k in keys}


def world(project: Project) -> dict[str, dict[str, str]]:
    """Store files, the ledger (the SQLite file's bytes, or the PostgreSQL tables' rows) and
    the reports (plans excluded)."""
    return {
        "store": tree_fingerprint(project.config.store_path),
        "ledger": ledger_fingerprint(project),
        "reports": {
            k: v
            for k, v in tree_fingerprint(project.config.report_dir).items()
            if not k.startswith("backfill/")
        },
    }


def ticket_ids(project: Project, asset: str, key: str) -> list[str]:
    data = project.store.read_partition(asset, key)
    assert data is not None
    return sorted(data.column("ticket_id").to_pylist())


@pytest.mark.slow
def test_apply_fills_the_gap_and_records_it(april_project: Project) -> None:
    document = plan(april_project, [GAP_DAY])
    others = fingerprints(april_project, OTHER_DAYS)
    versions = {a: april_project.store.version(a) for a in (RAW, SILVER)}

    result = apply_plan(april_project, document, operator="alice")

    assert result.state is RunState.SUCCEEDED
    assert result.plan_id == document.plan_id
    assert [(s.asset, s.partition_key, s.outcome, s.rows) for s in result.steps] == [
        (RAW, GAP_DAY, StepOutcome.PUBLISHED, 3),
        (SILVER, GAP_DAY, StepOutcome.PUBLISHED, 3),
    ]
    store = april_project.store
    for asset in (RAW, SILVER):
        assert store.partition_counts(asset)[GAP_DAY] == 3
        assert ticket_ids(april_project, asset, GAP_DAY) == GAP_TICKETS
        assert store.version(asset) == (versions[asset] or 0) + 1
        assert store.history(asset)[0].metadata["backfiller.plan_id"] == document.plan_id
        assert store.history(asset)[0].metadata["backfiller.run_id"] == result.run_id
    assert fingerprints(april_project, OTHER_DAYS) == others

    with april_project.ledger() as ledger:
        for step in result.steps:
            record = ledger.partitions.get(step.asset, GAP_DAY)
            assert record is not None
            assert record.status is PartitionStatus.MATERIALIZED
            assert record.row_count == 3
            assert record.data_version == store.version(step.asset)
            assert record.manifest_id == MANIFEST_ID
            assert record.last_run_id == result.run_id
        run = ledger.runs.get(result.run_id)
        assert run is not None
        assert run.state is RunState.SUCCEEDED
        assert run.plan_id == document.plan_id
        assert run.operator == "alice"
        saved_plan = ledger.runs.plan(document.plan_id)
        assert saved_plan is not None
        assert saved_plan.state_fingerprint == document.state_fingerprint
        # the ledger cites the applied plan's immutable copy, not the working plan file
        assert saved_plan.path == f"reports/week06/backfill/applied/{document.plan_id}.json"
        archived = json.loads((april_project.root / saved_plan.path).read_text(encoding="utf-8"))
        assert archived == document.to_dict()

    for asset in (RAW, SILVER):
        report = json.loads(
            april_project.partition_report_path(asset, GAP_DAY).read_text(encoding="utf-8")
        )
        assert report["row_count"] == 3
        assert report["previous_row_count"] is None
        assert report["plan_id"] == document.plan_id
        assert report["run_id"] == result.run_id
        assert report["manifest_id"] == MANIFEST_ID
        assert report["window_start"] == "2026-04-17T00:00:00+00:00"
        assert report["idempotency_guard"] == "ticket_id + partition_key"


def test_a_plan_is_refused_once_the_world_changed_and_nothing_is_written(
    april_project: Project,
) -> None:
    document = plan(april_project, [GAP_DAY])
    materialize(april_project, [GAP_DAY], [RAW])  # someone filled raw meanwhile
    before = world(april_project)
    with april_project.ledger() as ledger:
        runs_before = len(ledger.runs.all())

    with pytest.raises(StalePlanError) as info:
        apply_plan(april_project, document, operator="tests")

    assert info.value.exit_code == ExitCode.CONFLICT == 4
    assert document.plan_id in info.value.message
    assert f"{RAW} {GAP_DAY}:" in info.value.message
    assert "stored_rows: 0 -> 3" in info.value.message
    assert world(april_project) == before
    with april_project.ledger() as ledger:
        assert len(ledger.runs.all()) == runs_before
        assert ledger.runs.plan(document.plan_id) is None
        assert ledger.partitions.get(SILVER, GAP_DAY) is None


def test_applying_the_same_plan_twice_names_the_run_that_applied_it(
    april_project: Project,
) -> None:
    document = plan(april_project, [GAP_DAY])
    first = apply_plan(april_project, document, operator="tests")
    assert first.state is RunState.SUCCEEDED
    before = world(april_project)

    with pytest.raises(StalePlanError) as info:
        apply_plan(april_project, document, operator="tests")

    assert info.value.exit_code == ExitCode.CONFLICT
    assert info.value.message.startswith(
        f"Plan {document.plan_id} was already applied by run {first.run_id} at "
    )
    assert info.value.message.endswith("(succeeded)")
    assert "make a new plan" in str(info.value.hint)
    assert world(april_project) == before


def test_a_stale_plan_after_a_manifest_change_names_the_manifest(
    april_project: Project, load: Callable[[Path], Project]
) -> None:
    document = plan(april_project, [GAP_DAY])
    path = april_project.config.manifests_dir / f"{MANIFEST_ID}.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    (entry,) = [p for p in manifest["partitions"] if p["partition_key"] == GAP_DAY]
    entry["expected_record_count"] = 4
    path.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    project = load(april_project.root)
    before = world(project)

    with pytest.raises(StalePlanError) as info:
        apply_plan(project, document, operator="tests")

    assert f"manifest {MANIFEST_ID} changed" in info.value.message
    assert f"{RAW} {GAP_DAY}:" in info.value.message
    assert world(project) == before


def test_a_plan_without_an_upstream_manifest_is_not_a_backfill(april_project: Project) -> None:
    document = plan(april_project, [GAP_DAY])
    gamble = document.model_copy(
        update={
            "partitions": [
                e.model_copy(update={"upstream_manifest_id": None}) for e in document.partitions
            ]
        }
    )
    before = world(april_project)

    with pytest.raises(PreconditionError) as info:
        apply_plan(april_project, gamble, operator="tests")

    assert info.value.exit_code == ExitCode.BAD_INPUT == 2
    assert info.value.message.startswith("not a backfill")
    assert f"{GAP_DAY}: missing upstream_manifest_id" in info.value.message
    assert world(april_project) == before
    assert april_project.store.partition_counts(RAW).get(GAP_DAY) is None


@pytest.mark.slow
def test_rerunning_materialized_partitions_never_duplicates_rows(april_project: Project) -> None:
    first = apply_plan(april_project, plan(april_project, [GAP_DAY]), operator="tests")
    assert first.state is RunState.SUCCEEDED
    content = fingerprints(april_project, [GAP_DAY])

    rerun = plan(april_project, [GAP_DAY], include_materialized=True, reason="x")
    assert rerun.gap_reason is None
    assert rerun.work == [(RAW, GAP_DAY), (SILVER, GAP_DAY)]
    result = apply_plan(april_project, rerun, operator="tests")

    assert result.state is RunState.SUCCEEDED
    assert [s.outcome for s in result.steps] == [StepOutcome.PUBLISHED] * 2
    assert [s.rows_before for s in result.steps] == [3, 3]
    for asset in (RAW, SILVER):
        data = april_project.store.read_partition(asset, GAP_DAY)
        assert data is not None
        assert data.num_rows == 3
        keys = list(
            zip(
                data.column("ticket_id").to_pylist(),
                data.column("partition_key").to_pylist(),
                strict=True,
            )
        )
        assert len(set(keys)) == 3
        assert april_project.store.partition_counts(asset)[GAP_DAY] == 3
    assert fingerprints(april_project, [GAP_DAY]) == content
    with april_project.ledger() as ledger:
        run = ledger.runs.get(result.run_id)
        assert run is not None and run.reason == "x"
        record = ledger.partitions.get(RAW, GAP_DAY)
        assert record is not None and record.row_count == 3
    assert find_gaps(april_project, april_project.reader(), [GAP_DAY]) == []


def test_a_redelivered_event_is_dropped_not_duplicated(
    april_project: Project, load: Callable[[Path], Project]
) -> None:
    root = april_project.root
    source = root / "data/seed/ticket_events/2026-04-17.jsonl"
    lines = source.read_text(encoding="utf-8").splitlines()
    redelivered = root / "data/seed/ticket_events/2026-04-17.redelivered.jsonl"
    # the first event arrives twice
    redelivered.write_text("\n".join([lines[0], lines[0], *lines[1:]]) + "\n", encoding="utf-8")
    path = root / "data/manifests" / f"{MANIFEST_ID}.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    (entry,) = [p for p in manifest["partitions"] if p["partition_key"] == GAP_DAY]
    entry["input_files"] = [
        {
            "path": "data/seed/ticket_events/2026-04-17.redelivered.jsonl",
            "sha256": hashlib.sha256(redelivered.read_bytes()).hexdigest(),
        }
    ]
    path.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    project = load(root)

    result = apply_plan(project, plan(project, [GAP_DAY]), operator="tests")

    assert result.state is RunState.SUCCEEDED
    assert ticket_ids(project, RAW, GAP_DAY) == GAP_TICKETS


def test_a_missing_report_is_reissued_without_recomputing(april_project: Project) -> None:
    key = "2026-04-15"
    report = april_project.partition_report_path(RAW, key)
    original = json.loads(report.read_text(encoding="utf-8"))
    report.unlink()
    store_files = tree_fingerprint(april_project.config.store_path)
    document = plan(april_project, [key])
    assert document.work == []

    result = apply_plan(april_project, document, operator="tests")

    assert result.state is RunState.SUCCEEDED
    assert [(s.asset, s.outcome, s.rows) for s in result.steps] == [
        (RAW, StepOutcome.REPORT_REISSUED, 5)
    ]
    assert tree_fingerprint(april_project.config.store_path) == store_files
    reissued = json.loads(report.read_text(encoding="utf-8"))
    assert reissued["reissued_by_run_id"] == result.run_id
    assert reissued["run_id"] == original["run_id"]
    assert reissued["fingerprint"] == original["fingerprint"]
    assert reissued["data_version"] == original["data_version"]
    # the same report, built by the same code from the same record: only the re-issue differs
    assert {**reissued, "reissued_by_run_id": None} == original
    assert find_gaps(april_project, april_project.reader(), [key]) == []


def test_a_missing_report_of_a_sql_asset_is_reissued(april_project: Project) -> None:
    key = "2026-04-14"
    april_project.partition_report_path(SILVER, key).unlink()

    result = apply_plan(april_project, plan(april_project, [key]), operator="tests")

    assert [(s.asset, s.outcome, s.error) for s in result.steps] == [
        (SILVER, StepOutcome.REPORT_REISSUED, None)
    ]
    assert april_project.partition_report_path(SILVER, key).is_file()


def test_a_failed_reissue_is_recorded_as_a_failed_run(april_project: Project) -> None:
    key = "2026-04-15"
    data = april_project.store.read_partition(RAW, key)
    assert data is not None
    index = data.schema.get_field_index("subject")
    tampered = data.set_column(index, "subject", pc.utf8_upper(data.column("subject")))
    april_project.store.write_partitions(RAW, tampered, [key], CommitInfo(run_id="tamper"))
    april_project.partition_report_path(RAW, key).unlink()

    result = apply_plan(april_project, plan(april_project, [key]), operator="tests")

    (step,) = result.steps
    assert step.outcome is StepOutcome.FAILED
    assert step.error is not None and "differs from the ledger" in step.error
    assert result.state is RunState.FAILED
    with april_project.ledger() as ledger:
        run = ledger.runs.get(result.run_id)
    assert run is not None
    assert run.state is RunState.FAILED


# -- a small custom project: an asset without deduplication -------------------------------

CUSTOM = "custom/orders"
DAY = "2026-01-02"

TOML = """\
[project]
name = "custom"
assets_module = "custom_orders_assets"
store = "data/lake"
manifests = "data/manifests"
report_dir = "reports"
operator = "tests"

[partitions]
kind = "daily"
start = "2026-01-01"
"""

ASSETS = '''\
"""Orders of one day, read from orders.json (which the test rewrites)."""

import json
from pathlib import Path

import pyarrow as pa

from backfiller import AssetContext, asset

SCHEMA = pa.schema([("order_id", pa.string()), ("amount", pa.int64())])


@asset("custom/orders", idempotency_key=("order_id", "partition_key"))
def orders(context: AssetContext) -> pa.Table:
    rows = json.loads(Path(context.project_root, "orders.json").read_text(encoding="utf-8"))
    return pa.Table.from_pylist(rows, schema=SCHEMA)
'''

MANIFEST = {
    "schema_version": 1,
    "manifest_id": "custom-manifest-001",
    "source": "tests",
    "batch_id": "custom-batch-001",
    "created_at": "2026-01-03T00:00:00+00:00",
    "partitions": [{"partition_key": DAY, "expected_record_count": 2, "input_files": []}],
}


@pytest.fixture
def custom_project(tmp_path: Path, load: Callable[[Path], Project]) -> Project:
    root = tmp_path / "custom"
    (root / "data/manifests").mkdir(parents=True)
    (root / "backfiller.toml").write_text(TOML, encoding="utf-8")
    (root / "custom_orders_assets.py").write_text(textwrap.dedent(ASSETS), encoding="utf-8")
    (root / "data/manifests/custom-manifest-001.json").write_text(
        json.dumps(MANIFEST), encoding="utf-8"
    )
    return load(root)


def set_orders(project: Project, rows: list[dict[str, object]]) -> None:
    (project.root / "orders.json").write_text(json.dumps(rows), encoding="utf-8")


def test_duplicate_keys_in_a_non_deduplicating_asset_fail_the_step(
    custom_project: Project,
) -> None:
    project = custom_project
    set_orders(project, [{"order_id": "o-1", "amount": 10}, {"order_id": "o-2", "amount": 20}])
    first = apply_plan(project, plan(project, [DAY]), operator="tests")
    assert first.state is RunState.SUCCEEDED
    assert project.store.partition_counts(CUSTOM) == {DAY: 2}
    visible = project.store.fingerprint(CUSTOM, DAY)
    version = project.store.version(CUSTOM)

    set_orders(
        project,
        [
            {"order_id": "o-1", "amount": 10},
            {"order_id": "o-1", "amount": 11},
            {"order_id": "o-3", "amount": 30},
        ],
    )
    result = apply_plan(
        project, plan(project, [DAY], include_materialized=True, reason="x"), operator="tests"
    )

    assert result.state is RunState.FAILED
    (step,) = result.steps
    assert step.outcome is StepOutcome.FAILED
    assert step.error is not None
    assert "1 duplicate idempotency key(s)" in step.error
    assert "'order_id': 'o-1'" in step.error
    assert "o-3" not in step.error
    assert project.store.version(CUSTOM) == version
    assert project.store.fingerprint(CUSTOM, DAY) == visible
    data = project.store.read_partition(CUSTOM, DAY)
    assert data is not None
    assert sorted(data.column("order_id").to_pylist()) == ["o-1", "o-2"]
    with project.ledger() as ledger:
        run = ledger.runs.get(result.run_id)
        assert run is not None and run.state is RunState.FAILED
        assert run.error is not None and "o-1" in run.error
        record = ledger.partitions.get(CUSTOM, DAY)
        assert record is not None
        assert record.status is PartitionStatus.FAILED
        assert record.row_count == 2
    (gap,) = find_gaps(project, project.reader(), [DAY])
    assert gap.reason is GapReason.FAILED_RUN


@pytest.mark.slow
@pytest.mark.parametrize(
    "fields",
    [
        {"assets": [RAW]},
        {"assets": [RAW, SILVER], "include_materialized": True},
        {"reason": "late delivery", "include_materialized": True},
        {"mode": Mode.APPLY, "assets": [SILVER], "include_materialized": True},
    ],
    ids=["assets", "assets-and-materialized", "reason", "apply-mode-one-asset"],
)
def test_a_plan_made_through_the_api_with_any_request_field_applies(
    april_project: Project, fields: dict[str, object]
) -> None:
    request = PlanRequest(
        keys=[GAP_DAY, "2026-04-18"],
        mode=fields.pop("mode", Mode.DRY_RUN),
        operator="api",
        **fields,
    )
    document = read_plan(
        save_plan(april_project, make_plan(april_project, april_project.reader(), request))
    )
    assert document.request == request

    result = apply_plan(april_project, document, operator="api")

    assert result.state is RunState.SUCCEEDED, [s.error for s in result.steps]
    assert sorted((s.asset, s.partition_key) for s in result.steps) == sorted(document.work)
    assert document.work, "the plan has work to apply"


def test_a_plan_whose_request_was_edited_is_refused(april_project: Project) -> None:
    document = plan(april_project, [GAP_DAY])
    path = april_project.root / document.report_path
    data = json.loads(path.read_text(encoding="utf-8"))
    data["request"]["assets"] = [SILVER]
    path.write_text(json.dumps(data), encoding="utf-8")
    before = world(april_project)

    with pytest.raises(PlanFileError, match="edited"):
        apply_plan(april_project, read_plan(path), operator="mallory")

    assert world(april_project) == before


@pytest.mark.slow
def test_replanning_after_apply_leaves_the_applied_plan_and_its_evidence_intact(
    april_project: Project,
) -> None:
    from backfiller.evidence.chain import ProblemKind, verify_chain

    document = plan(april_project, [GAP_DAY])
    result = apply_plan(april_project, document, operator="alice")
    assert result.state is RunState.SUCCEEDED
    # the same partition planned again: the working plan file is rewritten
    again = plan(april_project, [GAP_DAY], include_materialized=True, reason="again")
    assert again.report_path == document.report_path
    with april_project.ledger() as ledger:
        assert verify_chain(april_project, ledger) == []
        cited = ledger.runs.plan(document.plan_id)
        assert cited is not None
        # tampering with the applied plan is named by evidence verify
        path = april_project.root / cited.path
        path.write_text(
            path.read_text(encoding="utf-8")
            .replace("alice", "mallory")
            .replace('"tests"', '"mallory"'),
            encoding="utf-8",
        )
        problems = verify_chain(april_project, ledger)
    assert [p.kind for p in problems] == [ProblemKind.PLAN_CHANGED]
    assert cited.path in problems[0].detail


def test_a_plan_with_nothing_to_do_is_refused_and_writes_nothing(april_project: Project) -> None:
    document = plan(april_project, ["2026-04-16"])
    assert document.work == []
    before = world(april_project)

    with pytest.raises(PreconditionError, match="has nothing to do") as info:
        apply_plan(april_project, document, operator="alice")

    assert info.value.exit_code == ExitCode.BAD_INPUT
    assert world(april_project) == before


def test_a_plan_with_nothing_to_do_while_another_run_writes_its_partitions_is_a_conflict(
    april_project: Project,
) -> None:
    """A plan made while another run is writing its partitions saw that run's writes half
    recorded: "nothing to do" would not be the truth, the conflict is (exit 4)."""
    document = plan(april_project, ["2026-04-16"])
    assert document.work == []
    with april_project.ledger() as ledger:
        ledger.leases.acquire(
            SILVER, "2026-04-16", holder="bob", plan_id="plan-b", run_id="run-b", ttl_seconds=600
        )
    before = world(april_project)

    with pytest.raises(ConflictError, match="being written by another run") as info:
        apply_plan(april_project, document, operator="alice")

    assert info.value.exit_code == ExitCode.CONFLICT
    assert "run-b" in info.value.message
    assert world(april_project) == before


def test_a_plan_with_nothing_to_do_made_before_the_world_changed_is_stale(
    april_project: Project,
) -> None:
    """Nothing to do when it was made, but the state moved since (here a partition report is
    gone): the plan is stale (exit 4), which is the truth before "nothing to do"."""
    document = plan(april_project, ["2026-04-16"])
    assert document.work == []
    april_project.partition_report_path(SILVER, "2026-04-16").unlink()
    before = world(april_project)

    with pytest.raises(StalePlanError) as info:
        apply_plan(april_project, document, operator="alice")

    assert info.value.exit_code == ExitCode.CONFLICT
    assert world(april_project) == before


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda d: d.update(operator="mallory"), "operator"),
        (
            lambda d: d["partitions"][0].update(target_assets=[SILVER]),
            "partitions[0].target_assets",
        ),
    ],
    ids=["operator", "nested"],
)
def test_an_edited_plan_names_the_field_that_was_edited(
    april_project: Project, edit: Callable[[dict[str, Any]], None], named: str
) -> None:
    document = plan(april_project, [GAP_DAY])
    path = april_project.root / document.report_path
    data = json.loads(path.read_text(encoding="utf-8"))
    edit(data)
    path.write_text(json.dumps(data), encoding="utf-8")
    before = world(april_project)

    with pytest.raises(PlanFileError) as info:
        apply_plan(april_project, read_plan(path), operator="alice")

    assert f"(differs in: {named});" in info.value.message
    assert world(april_project) == before
