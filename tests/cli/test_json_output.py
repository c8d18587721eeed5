"""``--json``: one JSON document on stdout per command, with ``kind`` and ``version`` and the
keys ``docs/json.md`` documents; messages for people on stderr; errors keep their exit code
and leave stdout empty. The commands run on both ledgers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import GAP_DAY, both_backends, cli_environment

from backfiller import Project
from backfiller.cli.main import main

RAW = "week06/ingestion/raw_ticket_events_partitioned"
SILVER = "week06/silver/ticket_fact_partitioned"
CONSUMERS = ("week07/retrieval_index", "week08/eval_metrics")
WINDOW = ("--start", "2026-04-14", "--end", "2026-04-20")
MATERIALIZED = ["2026-04-14", "2026-04-15", "2026-04-16", "2026-04-18", "2026-04-19", "2026-04-20"]
PLAN_REL = f"reports/week06/backfill/backfill_plan_{GAP_DAY}.json"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "json.md"


@pytest.fixture(autouse=True)
def _cli_environment(monkeypatch: pytest.MonkeyPatch, project_environ: dict[str, str]) -> None:
    """A wide console, no project settings from the environment but the ledger backend's (a
    PostgreSQL ledger's URL)."""
    cli_environment(monkeypatch, project_environ)


def run_json(
    capsys: pytest.CaptureFixture[str], root: Path, *args: str, code: int = 0
) -> dict[str, Any]:
    """Run a command with ``--json``; its exit code must be ``code`` and its stdout exactly
    one JSON document with a kind and version 1."""
    got = main(["--project", str(root), *args, "--json"])
    out, err = capsys.readouterr()
    assert got == code, err
    doc = json.loads(out)
    assert isinstance(doc, dict)
    assert doc["version"] == 1
    assert isinstance(doc["kind"], str)
    return doc


def refused(capsys: pytest.CaptureFixture[str], root: Path, *args: str) -> tuple[int, str]:
    """A refused ``--json`` command: its code and stderr; stdout must be empty."""
    got = main(["--project", str(root), *args, "--json"])
    out, err = capsys.readouterr()
    assert out == ""
    return got, err


def run_id_of(capsys: pytest.CaptureFixture[str], root: Path) -> str:
    runs = run_json(capsys, root, "runs")["runs"]
    assert len(runs) == 1
    run_id: str = runs[0]["run_id"]
    return run_id


# -- status, gaps --------------------------------------------------------------------------


@both_backends
def test_status_counts_each_assets_partitions(
    capsys: pytest.CaptureFixture[str], april_project: Project
) -> None:
    doc = run_json(capsys, april_project.root, "status", *WINDOW)
    assert doc["kind"] == "status"
    assert doc["project"] == "omnisupport"
    assert doc["window"] == {"first": "2026-04-14", "last": "2026-04-20", "count": 7}
    assert [a["asset"] for a in doc["assets"]] == [RAW, SILVER]
    for entry in doc["assets"]:
        assert entry["counts"] == {"materialized": 6, "missing_partition": 1}
        assert entry["partitions"][GAP_DAY] == "missing_partition"
        assert [k for k, s in entry["partitions"].items() if s == "materialized"] == MATERIALIZED


@both_backends
def test_status_of_a_fresh_project_still_parses(
    capsys: pytest.CaptureFixture[str], example_dir: Path
) -> None:
    doc = run_json(capsys, example_dir, "status", *WINDOW)
    for entry in doc["assets"]:
        assert entry["counts"] == {"missing_partition": 7}


@both_backends
def test_gaps_lists_the_gap_of_both_assets(
    capsys: pytest.CaptureFixture[str], april_project: Project
) -> None:
    doc = run_json(capsys, april_project.root, "gaps", *WINDOW)
    assert doc["kind"] == "gaps"
    assert doc["count"] == 2
    assert doc["left_out"] == 0
    assert doc["by_reason"] == {"missing_partition": 2}
    assert {(g["asset"], g["partition_key"]) for g in doc["gaps"]} == {
        (RAW, GAP_DAY),
        (SILVER, GAP_DAY),
    }
    raw = next(g for g in doc["gaps"] if g["asset"] == RAW)
    assert raw["gap_reason"] == "missing_partition"
    assert raw["proposed_action"] == "backfill_partition"
    assert raw["expected_count"] == 3
    assert raw["current_count"] == 0


@both_backends
def test_status_gaps_and_the_plan_use_one_vocabulary(
    capsys: pytest.CaptureFixture[str], april_project: Project
) -> None:
    """Every state ``status`` shows is the reason ``gaps`` gives for that partition (or
    ``materialized`` where it finds none), and the plan's ``gap_reason`` is the same word."""
    from backfiller.planning import GapReason, PartitionState

    root = april_project.root
    april_project.partition_report_path(RAW, "2026-04-15").unlink()  # missing_partition_report
    april_project.partition_report_path(SILVER, "2026-04-19").unlink()
    status = run_json(capsys, root, "status", *WINDOW)
    gaps = run_json(capsys, root, "gaps", *WINDOW)
    reasons = {(g["asset"], g["partition_key"]): g["gap_reason"] for g in gaps["gaps"]}
    shown = {
        (entry["asset"], key): state
        for entry in status["assets"]
        for key, state in entry["partitions"].items()
    }
    assert shown == {cell: reasons.get(cell, "materialized") for cell in shown}
    assert set(shown.values()) == {
        "materialized",
        "missing_partition",
        "missing_partition_report",
    }
    vocabulary = {s.value for s in PartitionState}
    assert vocabulary == {"materialized"} | {r.value for r in GapReason} - {"protected"}
    plan = run_json(capsys, root, "plan", *WINDOW)["plan"]
    keys = iter(plan["request"]["keys"])
    for entry in plan["ranges"]:  # each partition's first gap, in dependency order
        gaps = plan["gap_sets"][entry["gaps"]]
        for key in [next(keys) for _ in range(entry["count"])]:
            first = next((reasons[(a, key)] for a in (RAW, SILVER) if (a, key) in reasons), None)
            assert entry["gap_reason"] == first
            assert {plan["assets"][g["asset"]]: g["gap_reason"] for g in gaps} == {
                a: shown[(a, key)] for a in (RAW, SILVER) if shown[(a, key)] != "materialized"
            }


@both_backends
def test_gaps_with_nothing_to_show_is_still_a_document(
    capsys: pytest.CaptureFixture[str], april_project: Project
) -> None:
    doc = run_json(capsys, april_project.root, "gaps", *WINDOW, "--reason", "check_failed")
    assert doc["gaps"] == []
    assert doc["count"] == 0
    assert doc["left_out"] == 2
    assert doc["filters"] == {
        "reasons": ["check_failed"],
        "needs_action": False,
        "assets": [RAW, SILVER],
    }


# -- plan ----------------------------------------------------------------------------------


@both_backends
def test_plan_prints_the_plan_document_and_where_it_was_written(
    capsys: pytest.CaptureFixture[str], april_project: Project
) -> None:
    root = april_project.root
    doc = run_json(capsys, root, "plan", "--partition", GAP_DAY)
    assert doc["kind"] == "plan"
    assert doc["path"] == PLAN_REL
    assert doc["run"] is None
    assert doc["warnings"] == []
    written = json.loads((root / PLAN_REL).read_text(encoding="utf-8"))
    assert doc["plan"] == written
    assert doc["plan"]["partition_key"] == GAP_DAY
    assert doc["plan"]["expected_input_count"] == 3
    assert doc["plan"]["target_assets"] == [RAW, SILVER]


@pytest.mark.slow
@both_backends
def test_plan_and_apply_prints_the_run_too(
    capsys: pytest.CaptureFixture[str], april_project: Project
) -> None:
    doc = run_json(capsys, april_project.root, "plan", "--partition", GAP_DAY, "--mode", "apply")
    assert doc["run"]["state"] == "succeeded"
    assert {(s["asset"], s["partition_key"], s["outcome"]) for s in doc["run"]["steps"]} == {
        (RAW, GAP_DAY, "published"),
        (SILVER, GAP_DAY, "published"),
    }
    assert run_json(capsys, april_project.root, "gaps", *WINDOW)["count"] == 0


@both_backends
def test_a_zero_expected_input_is_a_warning_in_the_document(
    capsys: pytest.CaptureFixture[str], april_project: Project
) -> None:
    doc = run_json(capsys, april_project.root, "plan", "--partition", "2026-05-02")
    assert doc["plan"]["expected_input_count"] in (None, 0)
    assert len(doc["warnings"]) == 1
    assert "2026-05-02" in doc["warnings"][0]


# -- runs, history, evidence ---------------------------------------------------------------


@both_backends
def test_runs_and_the_attempts_of_one_run(
    capsys: pytest.CaptureFixture[str], april_project: Project
) -> None:
    root = april_project.root
    doc = run_json(capsys, root, "runs")
    assert doc["kind"] == "runs"
    assert doc["count"] == 1
    (run,) = doc["runs"]
    assert run["action"] == "backfill"
    assert run["state"] == "succeeded"
    one = run_json(capsys, root, "runs", "--run", run["run_id"])
    assert one["kind"] == "run"
    assert one["run"] == run
    assert len(one["attempts"]) == 12  # six days x two assets
    assert {(a["asset"], a["partition_key"]) for a in one["attempts"]} == {
        (asset, key) for asset in (RAW, SILVER) for key in MATERIALIZED
    }
    assert all(a["status"] == "succeeded" and a["rows_written"] > 0 for a in one["attempts"])


@both_backends
def test_runs_of_a_fresh_project_is_an_empty_list(
    capsys: pytest.CaptureFixture[str], example_dir: Path
) -> None:
    doc = run_json(capsys, example_dir, "runs")
    assert doc["runs"] == []
    assert doc["count"] == 0


@both_backends
def test_history_names_the_run_behind_each_commit(
    capsys: pytest.CaptureFixture[str], april_project: Project
) -> None:
    root = april_project.root
    run_id = run_id_of(capsys, root)
    doc = run_json(capsys, root, "history", "--asset", RAW, "--limit", "100")
    assert doc["kind"] == "history"
    assert doc["asset"] == RAW
    assert doc["count"] == len(doc["commits"]) > 0
    written = [c for c in doc["commits"] if c["run_id"]]
    assert {c["run_id"] for c in written} == {run_id}
    assert sorted({k for c in written for k in c["partition_keys"]}) == MATERIALIZED


@both_backends
def test_evidence_show_prints_the_evidence_document(
    capsys: pytest.CaptureFixture[str], april_project: Project
) -> None:
    root = april_project.root
    run_id = run_id_of(capsys, root)
    doc = run_json(capsys, root, "evidence", "show", run_id)
    assert doc["kind"] == "evidence"
    assert doc["evidence"]["run"]["id"] == run_id
    assert doc["evidence"]["schema_version"] == 1
    on_disk = json.loads((root / doc["path"]).read_text(encoding="utf-8"))
    assert doc["evidence"] == on_disk


# -- holds, check --------------------------------------------------------------------------


@both_backends
def test_holds_lists_and_filters(
    capsys: pytest.CaptureFixture[str], april_project: Project
) -> None:
    root = april_project.root
    empty = run_json(capsys, root, "holds")
    assert empty["kind"] == "holds"
    assert (empty["count"], empty["holds"]) == (0, [])
    assert main(["--project", str(root), "rerun", "--asset", RAW, "--partition", "2026-04-14"]) == 0
    capsys.readouterr()

    # silver is held by raw; each consumer by raw and by silver
    every = run_json(capsys, root, "holds")
    assert every["count"] == 5
    assert sorted((h["target"], h["kind"], h["cause_asset"]) for h in every["holds"]) == [
        (SILVER, "asset", RAW),
        (CONSUMERS[0], "consumer", RAW),
        (CONSUMERS[0], "consumer", SILVER),
        (CONSUMERS[1], "consumer", RAW),
        (CONSUMERS[1], "consumer", SILVER),
    ]
    assert {h["partition_key"] for h in every["holds"]} == {"2026-04-14"}

    on_silver = run_json(capsys, root, "holds", "--asset", SILVER)
    assert [h["target"] for h in on_silver["holds"]] == [SILVER]
    assert on_silver["left_out"] == 4
    both = run_json(capsys, root, "holds", "--consumer", CONSUMERS[0], "--asset", SILVER)
    assert sorted(h["target"] for h in both["holds"]) == [SILVER, CONSUMERS[0], CONSUMERS[0]]
    assert both["filters"] == {"assets": [SILVER], "consumers": [CONSUMERS[0]], "dimensions": {}}
    assert run_json(capsys, root, "holds", "--asset", RAW)["holds"] == []


@both_backends
def test_holds_refuses_an_unknown_consumer_or_asset(
    capsys: pytest.CaptureFixture[str], april_project: Project
) -> None:
    code, err = refused(capsys, april_project.root, "holds", "--consumer", "week07/retrieval")
    assert code == 2
    assert "Unknown consumer 'week07/retrieval' (did you mean 'week07/retrieval_index'?)" in err
    code, err = refused(capsys, april_project.root, "holds", "--asset", "week06/silver")
    assert code == 2
    assert "week06/silver" in err


@both_backends
def test_check_reports_every_result(
    capsys: pytest.CaptureFixture[str], april_project: Project
) -> None:
    doc = run_json(capsys, april_project.root, "check", "--asset", RAW, "--partition", "2026-04-14")
    assert doc["kind"] == "check"
    assert (doc["asset"], doc["partition_key"]) == (RAW, "2026-04-14")
    assert doc["passed"] is True
    assert doc["blocking_failures"] == []
    names = {r["name"] for r in doc["results"]}
    assert {"row_count_matches_manifest", "idempotency_key_unique"} <= names
    count = next(r for r in doc["results"] if r["name"] == "row_count_matches_manifest")
    assert count["status"] == "passed"
    assert count["expected"] == count["actual"] == 7


# -- errors --------------------------------------------------------------------------------


@both_backends
@pytest.mark.parametrize(
    "args",
    [
        ("plan", "--partition", "2026-04-31"),
        ("plan", "--mode", "wet-run"),
        ("status", "--start", "2026-13-01"),
        ("gaps", "--reason", "nope"),
        ("runs", "--run", "run-nope"),
        ("history", "--asset", "nope"),
        ("evidence", "show", "run-nope"),
        ("check", "--asset", RAW, "--partition", "yesterday-ish"),
    ],
)
def test_an_error_is_exit_2_on_stderr_and_nothing_on_stdout(
    capsys: pytest.CaptureFixture[str], april_project: Project, args: tuple[str, ...]
) -> None:
    code, err = refused(capsys, april_project.root, *args)
    assert code == 2
    assert err.startswith("error:")


def test_every_kind_is_documented() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for kind in ("status", "gaps", "plan", "runs", "run", "history", "holds", "check"):
        assert f'`"kind": "{kind}"`' in text, kind
    assert '`"kind": "evidence"`' in text
