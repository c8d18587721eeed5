"""The bundled example's product-line pipeline (examples/omnisupport/product_lines): the silver
ticket facts partitioned by day × product line, the product lines a dynamic dimension (added at
run time through ``backfiller partitions add``, recorded with who, when and why), and a daily
rollup of whatever product lines the day has, on a real copy of the example (Delta tables,
SQLite ledger).

The lines the derivation gives (billing, voice, chat) are added; history up to 2026-04-16, then
the gap day 2026-04-17: its multi-dimensional gap, its plan, apply, checks, evidence (verified),
a republished cell held and released, and the restore of one cell, the other cells untouched;
each cell's rows checked against the seed's ticket events read directly. A line launched later
is a gap of every day and is backfilled (its cells empty: no ticket is derived to it — an empty
cell is a partition like any other). Removing a line whose cells hold published data is refused
(exit 2, nothing written) unless asked explicitly, and recorded. Before any line is added, a
day's rollup has nothing to read: ``missing_upstream``, naming the dimension."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cli_calls import ok, run, run_json
from conftest import GAP_DAY, cli_environment, tree_fingerprint
from deltalake import DeltaTable

from backfiller.project import load_project

RAW = "week06/ingestion/raw_ticket_events_partitioned"
BY_LINE = "week06/silver/ticket_fact_by_product_line"
ROLLUP = "week06/gold/daily_product_line_rollup"
LINES = ("billing", "voice", "chat")
CELLS = [f"{GAP_DAY}|{line}" for line in LINES]
WEEK = [f"2026-04-{d}" for d in range(10, 17)]  # the history before the gap day
ADD = ("partitions", "add", "--dimension", "product_line")
REMOVE = ("partitions", "remove", "--dimension", "product_line")


@pytest.fixture(autouse=True)
def _cli_environment(monkeypatch: pytest.MonkeyPatch, project_environ: dict[str, str]) -> None:
    cli_environment(monkeypatch, project_environ)


@pytest.fixture
def root(example_dir: Path) -> Path:
    return example_dir / "product_lines"


def add_lines(capsys: pytest.CaptureFixture[str], root: Path) -> None:
    """The product lines the derivation gives, added as a team would, by the example's
    operator."""
    values = [a for line in LINES for a in ("--value", line)]
    ok(capsys, root, *ADD, *values, "--reason", "the lines the tickets are derived to")


def lines_applied(capsys: pytest.CaptureFixture[str], root: Path, days: list[str]) -> list[str]:
    """The product lines added, then ``days`` (consecutive) planned and applied; ``days``."""
    add_lines(capsys, root)
    ok(capsys, root, "plan", "--start", days[0], "--end", days[-1], "--mode", "apply")
    return days


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


def rows(root: Path, asset: str, key: str) -> list[dict[str, Any]]:
    table = load_project(root, environ={}).store.read_partitions(asset, [key])
    assert table is not None
    return sorted(table.to_pylist(), key=lambda r: json.dumps(r, sort_keys=True, default=str))


def rollup_of(root: Path, day: str) -> dict[str, tuple[int, int]]:
    """The rollup of ``day``: per product line, (its tickets, the day's tickets)."""
    return {r["product_line"]: (r["tickets"], r["day_tickets"]) for r in rows(root, ROLLUP, day)}


def cell_files(root: Path, key: str) -> dict[str, str]:
    """The data files of one cell of the silver table (its partition folder)."""
    lake = root / "data/lake" / BY_LINE
    return {k: v for k, v in tree_fingerprint(lake).items() if key.replace("|", "%7C") in k}


def fingerprints(root: Path, keys: list[str]) -> dict[str, str | None]:
    store = load_project(root, environ={}).store
    return {key: store.fingerprint(BY_LINE, key) for key in keys}


def changes(capsys: pytest.CaptureFixture[str], root: Path) -> list[tuple[str, str, str, str]]:
    """The product-line changes ``history`` shows with the silver asset's commits, as (verb,
    value, operator, reason) — each also with its time and, for a removal, its published
    count, checked here."""
    events = run_json(capsys, root, "history", "--asset", BY_LINE)["dimension_events"]
    listed = run_json(capsys, root, "partitions", "list", "--dimension", "product_line")
    assert events == listed["events"]
    for e in events:
        assert e["dimension"] == "product_line"
        assert datetime.fromisoformat(e["at"]).tzinfo is not None
        assert e["published"] >= 0
    return [(e["verb"], e["value"], e["operator"], e["reason"]) for e in events]


def test_before_any_product_line_a_days_rollup_is_missing_its_upstream(
    capsys: pytest.CaptureFixture[str], root: Path
) -> None:
    """No value yet: no cell, and the rollup of a day is not computed over nothing."""
    assert run_json(capsys, root, "partitions", "list")["values"] == []
    status = {
        a["asset"]: a
        for a in run_json(capsys, root, "status", "--start", GAP_DAY, "--end", GAP_DAY)["assets"]
    }
    assert status[BY_LINE]["partitions"] == {}
    gaps = run_json(capsys, root, "gaps", "--partition", GAP_DAY)["gaps"]
    (rollup,) = [g for g in gaps if g["asset"] == ROLLUP]
    assert rollup["gap_reason"] == "missing_upstream"
    assert f"{BY_LINE} {GAP_DAY}|(no product_line value yet)" in rollup["detail"]
    plan = run_json(capsys, root, "plan", "--partition", GAP_DAY)
    assert plan["plan"]["target_assets"] == [RAW]


def test_a_day_whose_every_product_line_is_empty_has_an_empty_rollup_that_reconciles(
    capsys: pytest.CaptureFixture[str], root: Path
) -> None:
    """The first line a team adds has no ticket yet: its cells are empty, and so is the day's
    rollup, whose reconciliation with them (0 tickets each side) passes: the run succeeds."""
    ok(capsys, root, *ADD, "--value", "enterprise", "--reason", "the first line, launching")
    applied = run_json(capsys, root, "plan", "--partition", GAP_DAY, "--mode", "apply")
    assert applied["run"]["state"] == "succeeded"
    assert rows(root, BY_LINE, f"{GAP_DAY}|enterprise") == []
    assert rows(root, ROLLUP, GAP_DAY) == []
    check = run_json(capsys, root, "check", "--asset", ROLLUP, "--partition", GAP_DAY)
    assert check["passed"] is True


@pytest.mark.slow
def test_the_product_lines_are_added_then_a_gap_is_planned_backfilled_checked_and_restored(
    capsys: pytest.CaptureFixture[str], root: Path
) -> None:
    add_lines(capsys, root)
    assert run_json(capsys, root, "partitions", "list")["values"] == list(LINES)
    why = "the lines the tickets are derived to"
    assert changes(capsys, root) == [("add", line, "student-devbox", why) for line in LINES]

    history = run_json(
        capsys, root, "plan", "--start", WEEK[0], "--end", WEEK[-1], "--mode", "apply"
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

    # apply: each cell holds exactly its product line's tickets of the day (voice has none
    # that day: an empty cell, published); the rollup has a row per line with tickets
    ok(capsys, root, "apply", str(root / plan["path"]))
    expected = seed_lines(root.parent, GAP_DAY)
    assert sum(expected.values()) > 0 and expected["voice"] == 0
    for line, cell in zip(LINES, CELLS, strict=True):
        got = rows(root, BY_LINE, cell)
        assert len(got) == expected[line]
        assert {(r["date"], r["product_line"], r["partition_key"]) for r in got} <= {
            (GAP_DAY, line, cell)
        }
    table = DeltaTable(str(root / "data/lake" / BY_LINE))
    assert table.metadata().partition_columns == ["partition_key", "date", "product_line"]
    total = sum(expected.values())
    assert rollup_of(root, GAP_DAY) == {line: (n, total) for line, n in expected.items() if n}
    assert run_json(capsys, root, "gaps", "--partition", GAP_DAY)["gaps"] == []

    # checks of the empty cell and of one with rows; the evidence names every cell and the
    # chain verifies
    for cell in (CELLS[1], CELLS[2]):
        check = run_json(capsys, root, "check", "--asset", BY_LINE, "--partition", cell)
        assert check["passed"] is True
        assert [r["name"] for r in check["results"]] == [
            "idempotency_key_unique",
            "in_window(event_time)",
        ]
    evidence = sorted((root / "reports/evidence").glob("*.json"))[-1]
    published = {
        (p["asset"], p["partition_key"]) for p in json.loads(evidence.read_text())["partitions"]
    }
    assert {(BY_LINE, cell) for cell in CELLS} | {(ROLLUP, GAP_DAY)} <= published
    assert "Evidence chain intact: 2 document(s)" in ok(capsys, root, "evidence", "verify")

    # a republished cell holds the day's rollup until its run is released
    before = {cell: rows(root, BY_LINE, cell) for cell in CELLS}
    version = DeltaTable(str(root / "data/lake" / BY_LINE)).version()
    others = [CELLS[0], CELLS[1], *(f"{day}|chat" for day in WEEK)]
    files = {cell: cell_files(root, cell) for cell in others}
    prints = fingerprints(root, others)
    ok(capsys, root, "rerun", "--asset", BY_LINE, "--partition", CELLS[2], "--reason", "x")
    assert {cell: cell_files(root, cell) for cell in others} == files
    code, out, _ = run(capsys, root, "ready", ROLLUP, GAP_DAY)
    assert code == 1 and f"held: {BY_LINE} {CELLS[2]} republished" in out
    run_id = run_json(capsys, root, "history", "--asset", BY_LINE)["commits"][0]["run_id"]
    ok(capsys, root, "release", "--run", run_id)
    assert ok(capsys, root, "ready", ROLLUP, GAP_DAY).startswith("ready")
    assert run_json(capsys, root, "holds")["holds"] == []

    # restore the chat cell to the version the plan published: the same rows as then; every
    # other cell's files and content untouched
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
    assert rows(root, BY_LINE, CELLS[2]) == before[CELLS[2]]
    assert {cell: cell_files(root, cell) for cell in others} == files
    assert fingerprints(root, others) == prints
    assert all(prints.values())
    status = {
        a["asset"]: a
        for a in run_json(capsys, root, "status", "--start", GAP_DAY, "--end", GAP_DAY)["assets"]
    }
    assert status[BY_LINE]["partitions"] == dict.fromkeys(CELLS, "materialized")


@pytest.mark.slow
def test_a_product_line_added_later_is_a_gap_of_every_day_and_is_backfilled(
    capsys: pytest.CaptureFixture[str], root: Path
) -> None:
    days = lines_applied(capsys, root, [*WEEK, GAP_DAY])
    rollups = {day: rollup_of(root, day) for day in days}
    assert run_json(capsys, root, "gaps", "--start", days[0], "--end", days[-1])["gaps"] == []

    ok(capsys, root, *ADD, "--value", "enterprise", "--reason", "the enterprise line launched")
    new = [f"{day}|enterprise" for day in days]
    gaps = run_json(capsys, root, "gaps", "--start", days[0], "--end", days[-1])["gaps"]
    assert [(g["asset"], g["partition_key"], g["gap_reason"]) for g in gaps] == [
        (BY_LINE, cell, "missing_partition") for cell in new
    ]

    # the plan: each new cell, and each day's rollup recomputed with it
    plan = run_json(capsys, root, "plan", "--start", days[0], "--end", days[-1])
    targets = {
        e["partition_key"]: e["target_assets"]
        for e in plan["plan"]["partitions"]
        if e["target_assets"]
    }
    assert targets == {**{day: [ROLLUP] for day in days}, **{cell: [BY_LINE] for cell in new}}
    old = fingerprints(root, [f"{day}|{line}" for day in days for line in LINES])
    ok(capsys, root, "apply", str(root / plan["path"]))

    # the new cells are empty partitions (no ticket is derived to enterprise), checked and
    # published; the old cells are untouched and the rollups say the same
    assert run_json(capsys, root, "gaps", "--start", days[0], "--end", days[-1])["gaps"] == []
    status = {
        a["asset"]: a
        for a in run_json(capsys, root, "status", "--start", days[0], "--end", days[-1])["assets"]
    }
    assert {k: v for k, v in status[BY_LINE]["partitions"].items() if "enterprise" in k} == (
        dict.fromkeys(new, "materialized")
    )
    assert len(status[BY_LINE]["partitions"]) == 4 * len(days)
    for cell in new:
        assert rows(root, BY_LINE, cell) == []
    check = run_json(capsys, root, "check", "--asset", BY_LINE, "--partition", new[2])
    assert check["passed"] is True and check["counts"] == {"passed": 2}
    assert fingerprints(root, list(old)) == old
    assert {day: rollup_of(root, day) for day in days} == rollups
    assert changes(capsys, root)[-1] == (
        "add",
        "enterprise",
        "student-devbox",
        "the enterprise line launched",
    )
    assert "Evidence chain intact" in ok(capsys, root, "evidence", "verify")


def test_removing_a_product_line_with_published_data_is_refused_unless_asked_and_recorded(
    capsys: pytest.CaptureFixture[str], root: Path
) -> None:
    days = lines_applied(capsys, root, ["2026-04-16", GAP_DAY])
    expected = seed_lines(root.parent, days[0])
    assert expected["chat"] > 0 and expected["voice"] == 0  # voice's cells: empty, published

    # refused: chat's cells hold rows, voice's are published though empty; nothing written
    before = tree_fingerprint(root)
    code, _, err = run(
        capsys, root, *REMOVE, "--value", "chat", "--value", "voice", "--reason", "retired"
    )
    assert code == 2
    assert "Published data in the partitions of: chat (1 asset(s)), voice (1 asset(s))" in err
    assert "--allow-published" in err
    assert tree_fingerprint(root) == before

    # asked explicitly: removed and recorded, the data stays in the table
    chat = rows(root, BY_LINE, f"{days[0]}|chat")
    out = ok(capsys, root, *REMOVE, "--value", "chat", "--reason", "retired", "--allow-published")
    assert "removed from product_line: chat" in out
    assert "published data in 1 asset(s) stays in the tables" in out
    assert run_json(capsys, root, "partitions", "list")["values"] == ["billing", "voice"]
    events = run_json(capsys, root, "history", "--asset", BY_LINE)["dimension_events"]
    assert (events[-1]["verb"], events[-1]["value"], events[-1]["published"]) == (
        "remove",
        "chat",
        1,
    )
    assert changes(capsys, root)[-1] == ("remove", "chat", "student-devbox", "retired")
    assert len(chat) == expected["chat"]
    assert rows(root, BY_LINE, f"{days[0]}|chat") == chat
    status = {
        a["asset"]: a
        for a in run_json(capsys, root, "status", "--start", days[0], "--end", days[-1])["assets"]
    }
    assert list(status[BY_LINE]["partitions"]) == [
        f"{day}|{line}" for day in days for line in ("billing", "voice")
    ]
    # removing it again: not a current value (exit 2, nothing written)
    before = tree_fingerprint(root)
    code, _, err = run(capsys, root, *REMOVE, "--value", "chat", "--reason", "again")
    assert code == 2 and "Not a current value of product_line: chat" in err
    assert tree_fingerprint(root) == before


@pytest.mark.slow
def test_the_rollups_that_counted_a_removed_line_are_stale_until_recomputed(
    capsys: pytest.CaptureFixture[str], root: Path
) -> None:
    days = lines_applied(capsys, root, ["2026-04-16", GAP_DAY])
    counted = rollup_of(root, days[0])
    assert counted["chat"][0] > 0
    window = ("--start", days[0], "--end", days[-1])
    assert run_json(capsys, root, "gaps", *window, "--needs-action")["gaps"] == []

    out = ok(capsys, root, *REMOVE, "--value", "chat", "--reason", "retired", "--allow-published")
    assert "marked 2 downstream partition(s) stale: " in out
    # the removal and the stale marks are one change: each rollup says why it is stale
    gaps = run_json(capsys, root, "gaps", *window, "--needs-action")["gaps"]
    assert sorted((g["asset"], g["partition_key"], g["gap_reason"]) for g in gaps) == [
        (ROLLUP, day, "upstream_changed") for day in days
    ]
    with load_project(root, environ={}).ledger() as ledger:
        events = ledger.partitions.events(ROLLUP, days[0])
    assert events[-1]["verb"] == "mark_stale"
    assert "product_line value(s) chat removed with published data" in json.dumps(events[-1])
    assert rollup_of(root, days[0]) == counted  # nothing rewritten yet

    plan = run_json(capsys, root, "plan", *window)
    assert {
        (e["partition_key"], tuple(e["target_assets"]))
        for e in plan["plan"]["partitions"]
        if e["target_assets"]
    } == {(day, (ROLLUP,)) for day in days}
    ok(capsys, root, "apply", str(root / plan["path"]))
    # the day's lines but chat, each with its tickets; the day's total without chat's
    kept = {line: n for line, (n, _) in counted.items() if line != "chat"}
    assert kept and rollup_of(root, days[0]) == {
        line: (n, sum(kept.values())) for line, n in kept.items()
    }
    assert run_json(capsys, root, "gaps", *window, "--needs-action")["gaps"] == []


@pytest.mark.slow
def test_a_removal_whose_stale_marks_fail_is_undone_whole(
    capsys: pytest.CaptureFixture[str], root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The removal and the stale marks are one ledger transaction: when a mark fails, the
    value stays current, no removal is recorded, and no rollup is marked."""
    from backfiller.ledger.partitions import SqlPartitionBook

    days = lines_applied(capsys, root, ["2026-04-16", GAP_DAY])
    history = changes(capsys, root)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the disk went away")

    monkeypatch.setattr(SqlPartitionBook, "mark_stale", broken)
    code, _, err = run(
        capsys, root, *REMOVE, "--value", "chat", "--reason", "retired", "--allow-published"
    )
    assert code == 1 and "the disk went away" in err
    monkeypatch.undo()
    assert run_json(capsys, root, "partitions", "list")["values"] == list(LINES)
    assert changes(capsys, root) == history  # no removal recorded
    window = ("--start", days[0], "--end", days[-1])
    assert run_json(capsys, root, "gaps", *window, "--needs-action")["gaps"] == []
