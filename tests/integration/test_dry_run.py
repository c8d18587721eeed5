"""A dry run only reads: it writes the plan file and nothing else. The plan carries the
lesson's fields, validates against its published schema and has a deterministic id. On both
ledgers: "nothing else" covers the SQLite file or the PostgreSQL tables."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    GAP_DAY,
    NOW,
    both_backends,
    ledger_fingerprint,
    materialize,
    tree_fingerprint,
)

from backfiller import FixedClock, Project, load_project
from backfiller.planning import (
    GapReason,
    Mode,
    PlanDocument,
    RangePlan,
    make_plan,
    read_plan,
    write_plan,
)
from backfiller.planning.planner import compute_plan, request_for

RAW = "week06/ingestion/raw_ticket_events_partitioned"
SILVER = "week06/silver/ticket_fact_partitioned"
PLAN_FILE = "backfill/backfill_plan_2026-04-17.json"
SCHEMA_FILE = Path(__file__).resolve().parents[2] / (
    "contracts/backfill_plan/backfill_plan.schema.json"
)


pytestmark = both_backends


def cell_plan(project: Project, reader: Any, request: Any) -> Any:
    return compute_plan(project, reader, request, ranges=False)


def ledger_files(project: Project) -> dict[str, str]:
    """The ledger file and its -wal/-shm companions that exist, with their digests; on
    PostgreSQL, the digests of its tables' rows."""
    if project.config.ledger_url:
        return ledger_fingerprint(project)
    path = project.config.ledger_path
    return {
        name: digest
        for name, digest in tree_fingerprint(path.parent).items()
        if name in {path.name, f"{path.name}-wal", f"{path.name}-shm"}
    }


def snapshot(project: Project) -> dict[str, dict[str, str]]:
    return {
        "store": tree_fingerprint(project.config.store_path),
        "ledger": ledger_files(project),
        "state_dir": tree_fingerprint(project.config.state_dir),
        "reports": tree_fingerprint(project.config.report_dir),
    }


def dry_run(
    project: Project, keys: list[str], operator: str = "tests"
) -> tuple[PlanDocument, Path]:
    document = make_plan(project, project.reader(), request_for(keys, Mode.DRY_RUN, operator))
    return document, write_plan(project, document)


def test_a_dry_run_writes_only_the_plan_file(april_project: Project) -> None:
    before = snapshot(april_project)
    assert before["store"] and before["reports"]
    ledger = "partitions" if april_project.config.ledger_url else "ledger.db"
    assert ledger in before["ledger"]

    _, path = dry_run(april_project, [GAP_DAY])
    after = snapshot(april_project)

    assert path == april_project.config.report_dir / PLAN_FILE
    assert after["store"] == before["store"]
    # the ledger's bytes, and those of any -wal/-shm that already existed, are unchanged
    assert {k: after["ledger"].get(k) for k in before["ledger"]} == before["ledger"]
    added = set(after["reports"]) - set(before["reports"])
    assert added == {PLAN_FILE}
    assert {k: v for k, v in after["reports"].items() if k != PLAN_FILE} == before["reports"]


def test_a_dry_run_leaves_the_state_folder_untouched(april_project: Project) -> None:
    before = snapshot(april_project)

    dry_run(april_project, [GAP_DAY])

    assert snapshot(april_project)["state_dir"] == before["state_dir"]


def test_a_dry_run_on_a_fresh_project_creates_no_ledger_and_no_store(
    example_dir: Path, no_ledger_environ: dict[str, str], clock: FixedClock
) -> None:
    project = load_project(example_dir, environ=no_ledger_environ, clock=clock)
    config = project.config
    assert config.ledger_url == no_ledger_environ.get("BACKFILLER_LEDGER_URL", "")
    assert not config.ledger_path.exists()
    assert ledger_files(project) == {}
    assert not config.state_dir.exists()
    assert not config.store_path.exists()
    assert not config.report_dir.exists()

    document, path = dry_run(project, [GAP_DAY])

    assert not config.ledger_path.exists()
    assert ledger_files(project) == {}  # no file, no table
    assert not config.state_dir.exists()
    assert not config.store_path.exists()
    assert tree_fingerprint(config.report_dir).keys() == {PLAN_FILE}
    assert path.is_file()
    assert document.gap_reason is not None and document.gap_reason.value == "missing_partition"
    assert document.expected_input_count == 3
    assert document.current_output_count == 0
    assert document.work == [(RAW, GAP_DAY), (SILVER, GAP_DAY)]


def test_the_plan_carries_the_lessons_fields(april_project: Project) -> None:
    document, path = dry_run(april_project, [GAP_DAY], operator="student-devbox")
    saved: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))

    expected = {
        "partition_key": "2026-04-17",
        "window_start": "2026-04-17T00:00:00+00:00",
        "window_end": "2026-04-17T23:59:59.999999+00:00",
        "mode": "dry-run",
        "upstream_manifest_id": "week06-seed-manifest-001",
        "expected_input_count": 3,
        "current_output_count": 0,
        "gap_reason": "missing_partition",
        "proposed_action": "backfill_partition",
        "idempotency_guard": "ticket_id + partition_key",
        "operator": "student-devbox",
        "target_assets": [RAW, SILVER],
        "report_path": "reports/week06/backfill/backfill_plan_2026-04-17.json",
    }
    assert {k: saved[k] for k in expected} == expected
    (entry,) = saved["partitions"]
    assert {k: entry[k] for k in expected} == expected
    for impact in (saved["downstream_impact"], entry["downstream_impact"]):
        assert "week07/retrieval_index" in impact
        assert "week08/eval_metrics" in impact
    assert saved["action"] == "backfill"
    assert saved["project"] == "omnisupport"
    assert saved["created_at"] == "2026-12-01T12:00:00Z"
    assert saved["gap_summary"] == {"missing_partition": 1}
    assert [g["asset"] for g in entry["asset_gaps"]] == [RAW, SILVER]
    assert sorted(saved["state"]) == [f"{RAW}|{GAP_DAY}", f"{SILVER}|{GAP_DAY}"]
    # the saved file is the document, and it reads back to the same document
    assert saved == document.to_dict()
    assert read_plan(path) == document


def test_the_plan_validates_against_the_published_schema(april_project: Project) -> None:
    from jsonschema import Draft202012Validator  # a second to import: where used

    _, path = dry_run(april_project, [GAP_DAY])
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)

    saved = json.loads(path.read_text(encoding="utf-8"))
    assert [e.message for e in validator.iter_errors(saved)] == []

    # the schema is not vacuous: it refuses a plan that lost a seed field or has a bad id
    broken = {k: v for k, v in saved.items() if k != "upstream_manifest_id"}
    assert not validator.is_valid(broken)
    assert not validator.is_valid({**saved, "plan_id": "plan-XYZ"})
    assert not validator.is_valid({**saved, "created_at": "yesterday"})


@pytest.mark.slow
def test_the_plan_id_is_deterministic(
    april_project: Project, project_environ: dict[str, str]
) -> None:
    first, _ = dry_run(april_project, [GAP_DAY])
    again, _ = dry_run(april_project, [GAP_DAY])
    next_year = FixedClock(NOW.replace(year=2027))
    later_project = load_project(april_project.root, environ=project_environ, clock=next_year)
    later, _ = dry_run(later_project, [GAP_DAY])

    assert first.plan_id == again.plan_id == later.plan_id
    assert first.state_fingerprint == again.state_fingerprint == later.state_fingerprint
    assert later.created_at != first.created_at

    other_request, _ = dry_run(april_project, [GAP_DAY], operator="someone-else")
    assert other_request.plan_id != first.plan_id
    assert other_request.state_fingerprint == first.state_fingerprint

    materialize(april_project, [GAP_DAY], [RAW])  # the state moves
    moved, _ = dry_run(april_project, [GAP_DAY])
    assert moved.state_fingerprint != first.state_fingerprint
    assert moved.plan_id != first.plan_id


def test_a_window_plan_recomputes_only_the_gap_day(april_project: Project) -> None:
    keys = april_project.scheme.key_range("2026-04-14", "2026-04-20")
    before = snapshot(april_project)

    document, path = dry_run(april_project, keys)

    assert path == april_project.plan_dir / "backfill_plan_2026-04-14_2026-04-20.json"
    assert (
        document.report_path == "reports/week06/backfill/backfill_plan_2026-04-14_2026-04-20.json"
    )
    assert document.work == [(RAW, GAP_DAY), (SILVER, GAP_DAY)]
    assert isinstance(document, RangePlan)  # several partitions: ranges
    spans = [(r.first, r.last, r.count, r.gap_reason) for r in document.ranges]
    assert spans == [
        ("2026-04-14", "2026-04-16", 3, None),
        (GAP_DAY, GAP_DAY, 1, GapReason.MISSING_PARTITION),
        ("2026-04-18", "2026-04-20", 3, None),
    ]
    assert [k for k, _, _ in document.declared()] == keys
    assert document.partition_key == "2026-04-14..2026-04-20"
    assert document.window_start == "2026-04-14T00:00:00+00:00"
    assert document.window_end == "2026-04-20T23:59:59.999999+00:00"
    assert document.expected_input_count == 7 + 5 + 5 + 3 + 12 + 11 + 12
    assert document.current_output_count == 7 + 5 + 5 + 0 + 12 + 11 + 12
    assert document.gap_summary == {"missing_partition": 1}
    assert document.target_assets == [RAW, SILVER]
    after = snapshot(april_project)
    assert after["store"] == before["store"]
    assert set(after["reports"]) - set(before["reports"]) == {
        "backfill/backfill_plan_2026-04-14_2026-04-20.json"
    }


def test_the_plan_of_the_example_is_the_one_made_before_gaps_were_classified_in_bulk(
    example_dir: Path,
) -> None:
    """The plan's content, id and state fingerprint over two months of the fresh example are
    the ones the per-cell code made (recorded from it): reading the state in bulk for
    ``status`` and ``gaps`` changed nothing a plan holds."""
    project = load_project(example_dir, environ={}, clock=FixedClock(NOW))
    keys = list(project.scheme.key_range("2026-03-01", "2026-04-30"))

    # the per-cell document (schema version 1) that a plan over several partitions was
    # before plans of ranges, and that apply still checks when given one
    document = cell_plan(project, project.reader(), request_for(keys, Mode.DRY_RUN, "tests"))

    assert isinstance(document, PlanDocument)
    assert document.plan_id == "plan-af1cdbeb06758fdc"
    assert document.state_fingerprint == (
        "280c024a1d21193bbdc400aafb8c4472d73e4f6f60b8dd111f904d473f173f95"
    )
    content = json.dumps(document.to_dict(), sort_keys=True).encode("utf-8")
    assert hashlib.sha256(content).hexdigest() == (
        "be46a08e91936864aff04d67bfd9a937bd56d0024e4828cec4f2acfd61428c4b"
    )
