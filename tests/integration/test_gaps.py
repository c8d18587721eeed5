"""Gap detection on the real example: every gap reason made by a safe, real manipulation of
manifests, the Delta store, the ledger or the partition reports — on both ledgers (SQLite and
PostgreSQL)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from conftest import GAP_DAY, both_backends, materialize, run_steps

from backfiller import CommitInfo, Project
from backfiller.actions.apply import apply_plan
from backfiller.ledger import PartitionStatus
from backfiller.planning import GapReason, Mode, ProposedAction, find_gaps, make_plan
from backfiller.planning.gaps import detect_gap
from backfiller.planning.planner import request_for
from backfiller.planning.state import observe
from backfiller.refs import AssetPartition

RAW = "week06/ingestion/raw_ticket_events_partitioned"
SILVER = "week06/silver/ticket_fact_partitioned"
MANIFEST_ID = "week06-seed-manifest-001"
APRIL = [f"2026-04-{d}" for d in range(14, 21)]

pytestmark = both_backends

Found = dict[tuple[str, str], tuple[GapReason, ProposedAction, int | None, int]]


def gaps(project: Project, keys: list[str]) -> Found:
    """(asset, key) -> (reason, proposed action, expected count, current count)."""
    return {
        (g.asset, g.partition_key): (g.reason, g.proposed_action, g.expected_count, g.current_count)
        for g in find_gaps(project, project.reader(), keys)
    }


def details(project: Project, keys: list[str]) -> dict[tuple[str, str], str]:
    return {
        (g.asset, g.partition_key): g.detail for g in find_gaps(project, project.reader(), keys)
    }


def manifest_path(project: Project) -> Path:
    return project.config.manifests_dir / f"{MANIFEST_ID}.json"


def edit_declaration(project: Project, key: str, edit: Callable[[dict[str, object]], None]) -> None:
    path = manifest_path(project)
    document = json.loads(path.read_text(encoding="utf-8"))
    (entry,) = [p for p in document["partitions"] if p["partition_key"] == key]
    edit(entry)
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_unmaterialized_day_is_the_only_gap_and_a_missing_partition(
    april_project: Project,
) -> None:
    found = gaps(april_project, APRIL)

    assert found == {
        (RAW, GAP_DAY): (GapReason.MISSING_PARTITION, ProposedAction.BACKFILL_PARTITION, 3, 0),
        (SILVER, GAP_DAY): (GapReason.MISSING_PARTITION, ProposedAction.BACKFILL_PARTITION, 3, 0),
    }
    assert details(april_project, [GAP_DAY])[(RAW, GAP_DAY)] == "expected 3 rows; none stored"


def test_data_removed_behind_the_ledger_is_a_missing_partition(april_project: Project) -> None:
    key = "2026-04-15"
    store = april_project.store
    current = store.read_partition(RAW, key)
    assert current is not None and current.num_rows == 5
    store.write_partitions(RAW, current.slice(0, 0), [key], CommitInfo(run_id="manual-wipe"))
    with april_project.ledger() as ledger:
        record = ledger.partitions.get(RAW, key)
    assert record is not None and record.status is PartitionStatus.MATERIALIZED

    found = gaps(april_project, [key])

    assert found == {
        (RAW, key): (GapReason.MISSING_PARTITION, ProposedAction.BACKFILL_PARTITION, 5, 0)
    }
    assert details(april_project, [key])[(RAW, key)] == (
        f"the ledger records 5 rows (version {record.data_version}); none stored"
    )


def test_a_deleted_partition_report_is_missing_partition_report(april_project: Project) -> None:
    key = "2026-04-14"
    report = april_project.partition_report_path(SILVER, key)
    assert report.is_file()
    report.unlink()

    assert gaps(april_project, [key]) == {
        (SILVER, key): (
            GapReason.MISSING_PARTITION_REPORT,
            ProposedAction.REISSUE_PARTITION_REPORT,
            7,
            7,
        )
    }
    assert ProposedAction.REISSUE_PARTITION_REPORT.value == "reissue_partition_report"


def test_an_extra_stored_row_is_a_count_mismatch(april_project: Project) -> None:
    key = "2026-04-15"
    store = april_project.store
    current = store.read_partition(RAW, key)
    assert current is not None
    extra = current.slice(0, 1)
    extra = extra.set_column(
        extra.schema.get_field_index("ticket_id"), "ticket_id", pa.array(["TCK-EXTRA-0001"])
    )
    store.write_partitions(
        RAW, pa.concat_tables([current, extra]), [key], CommitInfo(run_id="manual-extra")
    )

    found = gaps(april_project, [key])

    assert found == {
        (RAW, key): (GapReason.COUNT_MISMATCH, ProposedAction.REPLAY_FROM_MANIFEST, 5, 6)
    }
    assert found[(RAW, key)][1].value == "replay_from_manifest"
    assert details(april_project, [key])[(RAW, key)] == "6 rows stored, the manifest expects 5"


def test_a_changed_declaration_is_manifest_changed(
    april_project: Project, load: Callable[[Path], Project]
) -> None:
    key = "2026-04-16"
    root = april_project.root
    original = root / "data/seed/ticket_events/2026-04-16.jsonl"
    corrected = root / "data/seed/ticket_events/2026-04-16.v2.jsonl"
    lines = original.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 5
    corrected.write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")

    def edit(entry: dict[str, object]) -> None:
        entry["expected_record_count"] = 4
        entry["input_files"] = [
            {"path": "data/seed/ticket_events/2026-04-16.v2.jsonl", "sha256": sha256(corrected)}
        ]

    edit_declaration(april_project, key, edit)
    project = load(root)

    found = gaps(project, ["2026-04-15", key])

    action = ProposedAction.REPLAY_WITH_NEW_MANIFEST
    assert found == {
        (RAW, key): (GapReason.MANIFEST_CHANGED, action, 4, 5),
        (SILVER, key): (GapReason.MANIFEST_CHANGED, action, 4, 5),
    }
    assert MANIFEST_ID in details(project, [key])[(RAW, key)]


def test_a_changed_input_checksum_alone_is_manifest_changed(
    april_project: Project, load: Callable[[Path], Project]
) -> None:
    key = "2026-04-16"
    root = april_project.root
    copy = root / "data/seed/ticket_events/2026-04-16.copy.jsonl"
    copy.write_bytes((root / "data/seed/ticket_events/2026-04-16.jsonl").read_bytes() + b"\n")

    def edit(entry: dict[str, object]) -> None:
        entry["input_files"] = [
            {"path": "data/seed/ticket_events/2026-04-16.copy.jsonl", "sha256": sha256(copy)}
        ]

    edit_declaration(april_project, key, edit)

    found = gaps(load(root), [key])

    assert {k: v[0] for k, v in found.items()} == {
        (RAW, key): GapReason.MANIFEST_CHANGED,
        (SILVER, key): GapReason.MANIFEST_CHANGED,
    }


def test_a_failed_attempt_is_a_failed_run(april_project: Project) -> None:
    key = "2026-04-18"
    with april_project.ledger() as ledger:
        ledger.partitions.start(RAW, key, run_id="run-broken", attempt=1, operator="tests")
        ledger.partitions.fail(
            RAW,
            key,
            run_id="run-broken",
            attempt=1,
            operator="tests",
            error="connection reset",
            transient=True,
        )

    found = gaps(april_project, [key])

    assert found == {(RAW, key): (GapReason.FAILED_RUN, ProposedAction.RETRY_OR_RERUN, 12, 12)}
    assert found[(RAW, key)][1].value == "retry_if_transient_else_rerun_after_fix"
    assert "connection reset" in details(april_project, [key])[(RAW, key)]


def test_an_attempt_that_never_finished_is_a_failed_run(april_project: Project) -> None:
    key = "2026-04-19"
    with april_project.ledger() as ledger:
        ledger.partitions.start(SILVER, key, run_id="run-crashed", attempt=1, operator="tests")

    found = gaps(april_project, [key])

    assert found == {(SILVER, key): (GapReason.FAILED_RUN, ProposedAction.RETRY_OR_RERUN, 11, 11)}
    assert "run-crashed" in details(april_project, [key])[(SILVER, key)]


def test_rerunning_the_upstream_makes_the_downstream_upstream_changed(
    april_project: Project,
) -> None:
    key = "2026-04-18"
    with april_project.ledger() as ledger:
        before = ledger.partitions.get(RAW, key)
        result = run_steps(april_project, ledger, [(RAW, key)], action="backfill", operator="tests")
        after = ledger.partitions.get(RAW, key)
    assert result.state.value == "succeeded"
    assert before is not None and after is not None
    assert after.data_version != before.data_version

    found = gaps(april_project, ["2026-04-16", key])

    assert found == {
        (SILVER, key): (GapReason.UPSTREAM_CHANGED, ProposedAction.RERUN_DOWNSTREAM, 12, 12)
    }
    assert found[(SILVER, key)][1].value == "rerun_downstream_after_upstream_checks_pass"
    # marked stale by the run: the gap says by what, in bulk and cell by cell
    why = f"marked stale: {RAW} {key} republished in run {result.run_id}"
    assert details(april_project, [key])[(SILVER, key)] == why
    cell = AssetPartition(SILVER, key)
    observed = observe(april_project, april_project.reader(), [cell])[cell]
    gap = detect_gap(april_project.graph.get(SILVER), observed)
    assert gap is not None and gap.detail == why


def test_a_stale_partition_whose_mark_gave_no_reason_says_it_was_marked(
    april_project: Project,
) -> None:
    key = "2026-04-18"
    with april_project.ledger() as ledger:
        ledger.partitions.mark_stale(SILVER, key, run_id=None, operator="t", reason="")
    assert details(april_project, [key])[(SILVER, key)] == "marked stale in the ledger"
    with april_project.ledger() as ledger:  # a later mark's reason is the one shown
        ledger.partitions.mark_stale(SILVER, key, run_id=None, operator="t", reason="vendor fix")
    assert details(april_project, [key])[(SILVER, key)] == "marked stale: vendor fix"
    with april_project.ledger() as ledger:  # and a newest mark without one: none
        ledger.partitions.mark_stale(SILVER, key, run_id=None, operator="t", reason="")
    assert details(april_project, [key])[(SILVER, key)] == "marked stale in the ledger"


def test_failed_checks_are_check_failed(april_project: Project) -> None:
    key = "2026-04-20"
    with april_project.ledger() as ledger:
        ledger.partitions.start(SILVER, key, run_id="run-checks", attempt=1, operator="tests")
        ledger.partitions.fail(
            SILVER,
            key,
            run_id="run-checks",
            attempt=1,
            operator="tests",
            error="null customer_id in 2 rows",
            transient=False,
            checks=True,
        )

    found = gaps(april_project, [key])

    assert found == {
        (SILVER, key): (GapReason.CHECK_FAILED, ProposedAction.INVESTIGATE_CHECKS, 12, 12)
    }
    assert "null customer_id" in details(april_project, [key])[(SILVER, key)]


def test_rows_without_a_ledger_record_are_orphan_output(
    example_dir: Path, load: Callable[[Path], Project]
) -> None:
    project = load(example_dir)
    key = "2026-04-10"
    orphan = pa.table(
        {
            "ticket_id": ["TCK-20260410-0001", "TCK-20260410-0002"],
            "partition_key": [key, key],
        }
    )
    project.store.write_partitions(RAW, orphan, [key], CommitInfo(run_id="someone-else"))
    assert not project.config.ledger_path.exists()

    found = gaps(project, [key])

    assert found == {
        (RAW, key): (GapReason.ORPHAN_OUTPUT, ProposedAction.RECONCILE_ORPHAN, 9, 2),
        (SILVER, key): (GapReason.MISSING_PARTITION, ProposedAction.BACKFILL_PARTITION, 9, 0),
    }
    assert details(project, [key])[(RAW, key)] == "2 stored rows with no ledger record"


def test_an_undeclared_partition_has_no_expected_input(april_project: Project) -> None:
    key = "2026-05-01"  # a valid daily key after the manifest's last day

    found = gaps(april_project, [key])

    nothing = ProposedAction.NOTHING_TO_DO
    assert found == {
        (RAW, key): (GapReason.NO_EXPECTED_INPUT, nothing, None, 0),
        (SILVER, key): (GapReason.NO_EXPECTED_INPUT, nothing, None, 0),
    }
    assert "declares nothing" in details(april_project, [key])[(RAW, key)]


def test_a_partition_declared_with_zero_records_has_no_expected_input(
    april_project: Project, load: Callable[[Path], Project]
) -> None:
    key = "2026-04-30"
    root = april_project.root
    data_file = root / "data/seed/ticket_events/2026-04-30.jsonl"
    data_file.write_bytes(b"")

    def edit(entry: dict[str, object]) -> None:
        entry["expected_record_count"] = 0
        entry["input_files"] = [
            {"path": "data/seed/ticket_events/2026-04-30.jsonl", "sha256": sha256(data_file)}
        ]

    edit_declaration(april_project, key, edit)
    project = load(root)

    found = gaps(project, [key])

    nothing = ProposedAction.NOTHING_TO_DO
    assert found == {
        (RAW, key): (GapReason.NO_EXPECTED_INPUT, nothing, 0, 0),
        (SILVER, key): (GapReason.NO_EXPECTED_INPUT, nothing, 0, 0),
    }
    assert "declares 0 records" in details(project, [key])[(RAW, key)]


@pytest.mark.slow
def test_applying_the_plan_for_the_gap_day_closes_the_gap(april_project: Project) -> None:
    assert len(gaps(april_project, [GAP_DAY])) == 2
    document = make_plan(
        april_project, april_project.reader(), request_for([GAP_DAY], Mode.APPLY, "tests")
    )

    result = apply_plan(april_project, document, operator="tests")

    assert result.state.value == "succeeded"
    assert gaps(april_project, [GAP_DAY]) == {}
    assert gaps(april_project, APRIL) == {}


def test_materializing_only_the_upstream_leaves_the_downstream_missing(
    example_dir: Path, load: Callable[[Path], Project]
) -> None:
    project = load(example_dir)
    materialize(project, [GAP_DAY], [RAW])

    found = gaps(project, [GAP_DAY])

    assert found == {
        (SILVER, GAP_DAY): (GapReason.MISSING_PARTITION, ProposedAction.BACKFILL_PARTITION, 3, 0)
    }


@pytest.mark.slow
def test_in_batches_of_one_asset_the_gaps_and_states_are_the_same(
    april_project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each batch's Delta tables and reports read in a thread of their own while the batch
    before is classified, on the real store and ledger: the same gaps and states as in one
    batch (with a gap of several kinds in each asset)."""
    from backfiller.planning import classify

    store = april_project.store
    wiped = store.read_partition(RAW, "2026-04-15")
    assert wiped is not None
    store.write_partitions(RAW, wiped.slice(0, 0), ["2026-04-15"], CommitInfo(run_id="wipe"))
    april_project.partition_report_path(SILVER, "2026-04-14").unlink()
    reader = april_project.reader()
    whole_gaps = gaps(april_project, APRIL)
    whole = classify.state_ranges(april_project, reader, APRIL)
    assert len({r.value for r in whole}) >= 3  # materialized and two kinds of gap at least
    monkeypatch.setattr(classify, "BATCH_CELLS", len(APRIL))  # one asset a batch
    assert gaps(april_project, APRIL) == whole_gaps
    assert classify.state_ranges(april_project, reader, APRIL) == whole


def test_in_batches_each_held_batchs_files_are_kept_not_read_again(
    april_project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the next batch's tables are read ahead, the files the store kept of the batch
    the caller holds stay kept: a range plan asks them of it and no log is read twice."""
    from backfiller.planning import classify, compact
    from backfiller.store import delta

    again: list[str] = []
    real = delta.DeltaStore._add_actions

    def counted(self: delta.DeltaStore, asset: str) -> Any:
        again.append(asset)  # a log read again: partition_files found nothing kept
        return real(self, asset)

    monkeypatch.setattr(delta.DeltaStore, "_add_actions", counted)
    monkeypatch.setattr(classify, "BATCH_CELLS", len(APRIL))  # one asset a batch
    batches = 0
    for con in classify.classified_batches(april_project, april_project.reader(), APRIL):
        batch = [a for (a,) in con.execute("SELECT asset FROM assets ORDER BY pos").fetchall()]
        compact._files(april_project, batch)  # as a range plan does with each batch
        batches += 1
    assert batches == 2
    assert again == []
