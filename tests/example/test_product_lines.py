"""The bundled example's product-line pipeline (examples/omnisupport/product_lines): the silver
ticket facts partitioned by day × product line (billing, voice, chat — derived from each
ticket event) and a daily rollup of every product line of the day, on a real copy of the
example (Delta tables, SQLite ledger). History up to 2026-04-16, then the gap day 2026-04-17:
its multi-dimensional gap, its plan, apply, checks, evidence, a republished day held and
released, and the restore of one cell; each cell's rows checked against the seed's ticket
events read directly."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import GAP_DAY, cli_environment, tree_fingerprint
from deltalake import DeltaTable

from backfiller.cli.main import main
from backfiller.project import load_project

RAW = "week06/ingestion/raw_ticket_events_partitioned"
BY_LINE = "week06/silver/ticket_fact_by_product_line"
ROLLUP = "week06/gold/daily_product_line_rollup"
LINES = ("billing", "voice", "chat")
CELLS = [f"{GAP_DAY}|{line}" for line in LINES]


@pytest.fixture(autouse=True)
def _cli_environment(monkeypatch: pytest.MonkeyPatch, project_environ: dict[str, str]) -> None:
    cli_environment(monkeypatch, project_environ)


@pytest.fixture
def root(example_dir: Path) -> Path:
    return example_dir / "product_lines"


def ok(capsys: pytest.CaptureFixture[str], root: Path, *args: str) -> str:
    code = main(["--project", str(root), *args])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def run_json(capsys: pytest.CaptureFixture[str], root: Path, *args: str) -> dict[str, Any]:
    doc = json.loads(ok(capsys, root, *args, "--json"))
    assert isinstance(doc, dict)
    return doc


def seed_lines(example: Path, day: str) -> Counter[str]:
    """Per product line, the tickets of ``day`` in the seed, derived independently: billing
    when the event is about billing, else voice by phone, else chat."""
    found: Counter[str] = Counter()
    seen: set[str] = set()
    for line in (example / f"data/seed/ticket_events/{day}.jsonl").read_text("utf-8").splitlines():
        if not line.strip():
            continue
        event = json.loads(line)
        if event["ticket_id"] in seen or not event["event_time"].startswith(day):
            continue
        seen.add(event["ticket_id"])
        if event["product_line"] == "billing":
            found["billing"] += 1
        elif event["channel"] == "phone":
            found["voice"] += 1
        else:
            found["chat"] += 1
    return found


def cell_rows(root: Path, key: str) -> list[dict[str, Any]]:
    table = load_project(root, environ={}).store.read_partitions(BY_LINE, [key])
    assert table is not None
    return sorted(table.to_pylist(), key=lambda r: str(r["ticket_id"]))


def cell_files(root: Path, line: str) -> dict[str, str]:
    lake = root / "data/lake" / BY_LINE
    return {k: v for k, v in tree_fingerprint(lake).items() if f"{GAP_DAY}%7C{line}" in k}


def test_a_product_line_gap_is_planned_backfilled_checked_released_and_restored(
    capsys: pytest.CaptureFixture[str], root: Path
) -> None:
    history = run_json(
        capsys, root, "plan", "--start", "2026-04-10", "--end", "2026-04-16", "--mode", "apply"
    )
    assert history["run"]["state"] == "succeeded"

    # the gap: the day's raw events, its three product-line cells and its rollup
    gaps = run_json(capsys, root, "gaps", "--partition", GAP_DAY)
    assert [(g["asset"], g["partition_key"], g["gap_reason"]) for g in gaps["gaps"]] == [
        (RAW, GAP_DAY, "missing_partition"),
        (ROLLUP, GAP_DAY, "missing_partition"),
        *((BY_LINE, cell, "missing_partition") for cell in CELLS),
    ]

    # the plan (dry-run): each cell with its date and product line
    plan = run_json(capsys, root, "plan", "--partition", GAP_DAY)
    entries = {e["partition_key"]: e for e in plan["plan"]["partitions"]}
    assert list(entries) == [GAP_DAY, *CELLS]
    assert entries[GAP_DAY]["target_assets"] == [RAW, ROLLUP]
    assert entries[GAP_DAY]["upstream_manifest_id"] == "week06-seed-manifest-001"
    for line, cell in zip(LINES, CELLS, strict=True):
        assert entries[cell]["dimensions"] == {"date": GAP_DAY, "product_line": line}
        assert entries[cell]["target_assets"] == [BY_LINE]
        assert entries[cell]["upstream_manifest_id"] == "week06-seed-manifest-001"

    # apply: each cell holds exactly its product line's tickets of the day
    ok(capsys, root, "apply", str(root / plan["path"]))
    expected = seed_lines(root.parent, GAP_DAY)
    assert sum(expected.values()) > 0
    for line, cell in zip(LINES, CELLS, strict=True):
        got = cell_rows(root, cell)
        assert len(got) == expected[line]
        assert {(r["date"], r["product_line"], r["partition_key"]) for r in got} <= {
            (GAP_DAY, line, cell)
        }
    table = DeltaTable(str(root / "data/lake" / BY_LINE))
    assert table.metadata().partition_columns == ["partition_key", "date", "product_line"]
    rollup = load_project(root, environ={}).store.read_partitions(ROLLUP, [GAP_DAY])
    assert rollup is not None
    [day] = rollup.to_pylist()
    assert (day["billing_tickets"], day["voice_tickets"], day["chat_tickets"]) == tuple(
        expected[line] for line in LINES
    )
    assert day["total_tickets"] == sum(expected.values())
    assert run_json(capsys, root, "gaps", "--partition", GAP_DAY)["gaps"] == []

    # checks of one cell, and the run's evidence naming every cell
    out = ok(capsys, root, "check", "--asset", BY_LINE, "--partition", CELLS[2])
    assert "in_window(event_time)" in out
    evidence = sorted((root / "reports/evidence").glob("*.json"))[-1]
    published = {
        (p["asset"], p["partition_key"]) for p in json.loads(evidence.read_text())["partitions"]
    }
    assert {(BY_LINE, cell) for cell in CELLS} | {(ROLLUP, GAP_DAY)} <= published

    # a republished cell holds the day's rollup until its run is released
    before = {line: cell_rows(root, cell) for line, cell in zip(LINES, CELLS, strict=True)}
    version = DeltaTable(str(root / "data/lake" / BY_LINE)).version()
    others = {line: cell_files(root, line) for line in ("billing", "voice")}
    ok(capsys, root, "rerun", "--asset", BY_LINE, "--partition", CELLS[2], "--reason", "x")
    assert {line: cell_files(root, line) for line in others} == others
    code = main(["--project", str(root), "ready", ROLLUP, GAP_DAY])
    out, _ = capsys.readouterr()
    assert code == 1 and f"held: {BY_LINE} {CELLS[2]} republished" in out
    run_id = run_json(capsys, root, "history", "--asset", BY_LINE)["commits"][0]["run_id"]
    ok(capsys, root, "release", "--run", run_id)
    assert ok(capsys, root, "ready", ROLLUP, GAP_DAY).startswith("ready")

    # restore the chat cell to the version the plan published: the same rows as then, the
    # other cells' files untouched
    ok(
        capsys,
        root,
        "restore",
        "--asset",
        BY_LINE,
        "--partition",
        CELLS[2],
        "--to-version",
        str(version),
        "--reason",
        "lesson",
    )
    assert cell_rows(root, CELLS[2]) == before["chat"]
    assert {line: cell_files(root, line) for line in others} == others
    status = {
        a["asset"]: a
        for a in run_json(capsys, root, "status", "--start", GAP_DAY, "--end", GAP_DAY)["assets"]
    }
    assert status[BY_LINE]["partitions"] == dict.fromkeys(CELLS, "materialized")
