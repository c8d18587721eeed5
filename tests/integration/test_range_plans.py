"""Plans over several partitions are ranges (plan schema version 2), on real Delta tables and
SQLite: per partition they say what the per-cell plan says (the oracle: the document a plan
over several partitions was before, still built for one partition and for checking older
plans); apply takes exactly their steps; a change to any one cell's state after planning is
refused (exit 4, naming the asset and keys); an edited or damaged plan file is refused
(exit 2) and nothing is written."""

from __future__ import annotations

import json
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import GAP_DAY, NOW, materialize, tree_fingerprint
from fast_loop import examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from plan_views import per_key

from backfiller import ExitCode, FixedClock, Project, StalePlanError, load_project
from backfiller.actions.apply import apply_plan
from backfiller.errors import PlanFileError
from backfiller.ledger import RunState
from backfiller.planning import Mode, PlanDocument, RangePlan, make_plan, read_plan, write_plan
from backfiller.planning.planner import check_fresh, compute_plan, request_for

RAW = "week06/ingestion/raw_ticket_events_partitioned"
SILVER = "week06/silver/ticket_fact_partitioned"
WINDOW = ["2026-04-14", "2026-04-15", "2026-04-16", GAP_DAY, "2026-04-18", "2026-04-19"]
MATERIALIZED = [k for k in WINDOW if k != GAP_DAY]


SUMMARY = (
    "partition_key", "window_start", "window_end", "mode", "upstream_manifest_id",
    "expected_input_count", "current_output_count", "gap_reason", "gap_summary",
    "proposed_action", "idempotency_guard", "downstream_impact", "operator", "target_assets",
    "report_path", "reason", "include_materialized",
)  # fmt: skip


def damage(project: Project) -> None:
    """Several gap reasons in the window: a lost report, a failed attempt, a changed count."""
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


@pytest.mark.parametrize(
    "options",
    [{}, {"include_materialized": True}, {"assets": [SILVER]}],
    ids=["gaps", "include-materialized", "one-asset"],
)
def test_a_range_plan_says_per_partition_what_the_per_cell_plan_says(
    april_project: Project, options: dict[str, Any]
) -> None:
    damage(april_project)
    keys = list(april_project.scheme.key_range("2026-04-10", "2026-04-22"))
    request = request_for(keys, Mode.DRY_RUN, "tests").model_copy(update=options)
    reader = april_project.reader()

    ranges = compute_plan(april_project, reader, request)
    cells = compute_plan(april_project, reader, request, ranges=False)

    assert isinstance(ranges, RangePlan) and isinstance(cells, PlanDocument)
    assert per_key(ranges) == per_key(cells)
    assert ranges.work == cells.work
    assert list(ranges.iter_reports()) == list(cells.iter_reports())
    assert ranges.work_count == len(cells.work)
    assert ranges.partition_count == len(keys)
    assert ranges.recomputed_assets() == cells.recomputed_assets()
    assert {k: getattr(ranges, k) for k in SUMMARY} == {k: getattr(cells, k) for k in SUMMARY}
    assert len(ranges.ranges) < len(keys)  # consecutive partitions alike are one range
    reasons = {e["gap_reason"] for e in per_key(cells).values()}
    assert len(reasons) >= 3 if not options.get("assets") else len(reasons) >= 2


@pytest.mark.slow
def test_a_range_plan_reads_back_and_is_applied_exactly(april_project: Project) -> None:
    damage(april_project)
    request = request_for(WINDOW, Mode.DRY_RUN, "tests")
    document = make_plan(april_project, april_project.reader(), request)
    path = write_plan(april_project, document)
    assert json.loads(path.read_text("utf-8"))["schema_version"] == 2
    saved = read_plan(path)
    assert saved == document

    result = apply_plan(april_project, saved, operator="tests")

    assert result.state is RunState.SUCCEEDED, [s.error for s in result.steps]
    done = [(s.asset, s.partition_key) for s in result.steps]
    reissued = list(saved.iter_reports())
    assert sorted(done) == sorted({*saved.work, *reissued})
    assert (RAW, GAP_DAY) in done and (SILVER, "2026-04-19") in done
    assert (RAW, "2026-04-15") in reissued
    again = compute_plan(april_project, april_project.reader(), request)
    assert isinstance(again, RangePlan)
    assert [(r.first, r.last, r.gap_reason) for r in again.ranges] == [
        (WINDOW[0], WINDOW[-1], None)
    ]


# -- a change to any one cell is refused ------------------------------------------------------


def _remove_report(project: Project, asset: str, key: str) -> None:
    project.partition_report_path(asset, key).unlink()


def _ledger(column: str, value: object) -> Callable[[Project, str, str], None]:
    def change(project: Project, asset: str, key: str) -> None:
        with sqlite3.connect(project.config.ledger_path) as db:
            db.execute(
                f"UPDATE partitions SET {column} = ? WHERE asset = ? AND partition_key = ?",
                (value, asset, key),
            )

    return change


def _remove_data_file(project: Project, asset: str, key: str) -> None:
    files = project.store.partition_files(asset).to_pylist()
    (path,) = [f["path"] for f in files if f["partition_key"] == key][:1]
    (project.store.path(asset) / path).unlink()


def _protect(project: Project, asset: str, key: str) -> None:
    with project.ledger() as ledger:
        ledger.protections.protect(asset, key, reason="baseline", operator="tests")


def _redeclare(project: Project, asset: str, key: str) -> None:
    for manifest in project.config.manifests_dir.glob("*.json"):
        doc = json.loads(manifest.read_text("utf-8"))
        for partition in doc["partitions"]:
            if partition["partition_key"] == key:
                partition["expected_record_count"] += 1
        manifest.write_text(json.dumps(doc, indent=2), "utf-8")


CHANGES: dict[str, Callable[[Project, str, str], None]] = {
    "report removed": _remove_report,
    "ledger row count": _ledger("row_count", 99),
    "ledger status": _ledger("status", "failed"),
    "ledger data version": _ledger("data_version", 42),
    "ledger consumed upstream": _ledger("upstream_versions", '{"x": {"y": 1}}'),
    "data file removed": _remove_data_file,
    "protected": _protect,
    "manifest count": _redeclare,
}


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="range-plans-") as folder:
        yield Path(folder)


@pytest.mark.slow
@settings(
    max_examples=examples(16),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    change=st.sampled_from(sorted(CHANGES)),
    asset=st.sampled_from([RAW, SILVER]),
    key=st.sampled_from(MATERIALIZED),
)
def test_a_change_to_any_one_cell_makes_the_plan_stale(
    april_template: Path, scratch: Path, change: str, asset: str, key: str
) -> None:
    root = scratch / "omni"
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(april_template, root)
    project = load_project(root, environ={}, clock=FixedClock(NOW))
    document = make_plan(project, project.reader(), request_for(WINDOW, Mode.DRY_RUN, "t"))
    assert isinstance(document, RangePlan)
    check_fresh(project, project.reader(), document)  # unchanged: fresh

    CHANGES[change](project, asset, key)
    project = load_project(root, environ={}, clock=FixedClock(NOW))
    with pytest.raises(StalePlanError) as info:
        check_fresh(project, project.reader(), document)

    assert info.value.exit_code == ExitCode.CONFLICT == 4
    if change == "manifest count":
        changed = f"the manifests' declarations of {WINDOW[0]} .. {WINDOW[-1]} changed"
    else:
        changed = f"{asset} {WINDOW[0]} .. {WINDOW[-1]}: the state changed"
    assert changed in info.value.message


# -- an edited or damaged plan file -----------------------------------------------------------


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return edit


EDITS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "targets of a range": (_set("ranges.0.targets", 1), "differs in: ranges[0].targets"),
    "a range's reason": (
        _set("ranges.1.gap_reason", "count_mismatch"),
        "differs in: ranges[1].gap_reason",
    ),
    "a count in a column": (
        _set("columns.expected_input_count.0", [999, 3]),
        "columns.expected_input_count",
    ),
    "a target set beyond the plan": (_set("ranges.1.targets", 7), "no target set 7"),
    "a range too short": (_set("ranges.0.count", 2), "the ranges cover"),
    "an asset beyond the plan": (_set("gap_sets.1.0.asset", 5), "beyond the plan's 2"),
    "a digest": (_set("state_digests.assets.0.0", "0" * 32), "not the hash of its state_digests"),
    "the fingerprint and its digest": (
        lambda d: (
            _set("state_digests.assets.0.0", "0" * 32)(d),
            d.update(state_fingerprint=_fingerprint(d["state_digests"])),
        ),
        "its plan_id is not the one of its request",
    ),
    "an unknown field": (_set("ranges.0.extra", 1), "extra"),
    "a negative count": (_set("ranges.0.count", -1), "count"),
}


def _fingerprint(digests: dict[str, Any]) -> str:
    from backfiller.planning.compact import StateDigests, state_fingerprint_of

    return state_fingerprint_of(StateDigests.model_validate(digests))


@pytest.mark.slow
@pytest.mark.parametrize("edit", sorted(EDITS))
def test_an_edited_range_plan_is_refused_and_nothing_is_written(
    april_project: Project, edit: str
) -> None:
    document = make_plan(
        april_project, april_project.reader(), request_for(WINDOW, Mode.DRY_RUN, "t")
    )
    path = write_plan(april_project, document)
    raw = json.loads(path.read_text("utf-8"))
    change, expected = EDITS[edit]
    change(raw)
    path.write_text(json.dumps(raw, indent=2), "utf-8")
    before = tree_fingerprint(april_project.root)

    with pytest.raises(PlanFileError) as info:
        apply_plan(april_project, read_plan(path), operator="tests")

    assert info.value.exit_code == ExitCode.BAD_INPUT == 2
    assert expected in info.value.message, info.value.message
    assert tree_fingerprint(april_project.root) == before


def test_a_stale_range_plan_is_refused_naming_the_change_and_nothing_is_written(
    april_project: Project,
) -> None:
    document = make_plan(
        april_project, april_project.reader(), request_for(WINDOW, Mode.DRY_RUN, "t")
    )
    path = write_plan(april_project, document)
    materialize(april_project, [GAP_DAY], [RAW])  # another operator filled part of the gap
    before = tree_fingerprint(april_project.root)

    with pytest.raises(StalePlanError) as info:
        apply_plan(april_project, read_plan(path), operator="tests")

    assert info.value.exit_code == ExitCode.CONFLICT
    assert f"{RAW} {WINDOW[0]} .. {WINDOW[-1]}: the state changed" in info.value.message
    assert f"{SILVER} " not in info.value.message.split("stale")[1]
    assert tree_fingerprint(april_project.root) == before


@pytest.mark.slow
def test_a_plan_of_one_asset_is_stale_when_the_upstream_it_reads_moves(
    april_project: Project,
) -> None:
    request = request_for(WINDOW, Mode.DRY_RUN, "t").model_copy(update={"assets": [SILVER]})
    document = make_plan(april_project, april_project.reader(), request)
    assert isinstance(document, RangePlan) and document.assets == [SILVER]
    assert list(document.state_digests.upstream) == [RAW]
    check_fresh(april_project, april_project.reader(), document)

    materialize(april_project, [GAP_DAY], [RAW])  # the upstream's versions move

    with pytest.raises(StalePlanError) as info:
        check_fresh(april_project, april_project.reader(), document)
    assert f"{RAW} (upstream): its recorded data versions changed" in info.value.message
    assert f"{SILVER} {WINDOW[0]}" not in info.value.message
