"""``backfiller plan --start K --end K`` prints the plan's ranges, not a line per partition, and
writes a plan of ranges; ``apply`` refuses such a file once edited (exit 2, nothing written) or
once its state moved (exit 4), and applies it as it was made."""

from __future__ import annotations

import io
import json

import pytest
from cli_calls import run
from conftest import GAP_DAY, both_backends, cli_environment, tree_fingerprint
from rich.console import Console

from backfiller import Project
from backfiller.cli.render import print_plan
from backfiller.planning.planner import read_plan

RAW = "week06/ingestion/raw_ticket_events_partitioned"
WINDOW = ("--start", "2026-04-14", "--end", "2026-04-20")
PLAN = "reports/week06/backfill/backfill_plan_2026-04-14_2026-04-20.json"

pytestmark = both_backends


@pytest.fixture(autouse=True)
def _cli_environment(monkeypatch: pytest.MonkeyPatch, project_environ: dict[str, str]) -> None:
    """The CLI reads the test's ledger (a PostgreSQL one by its URL)."""
    cli_environment(monkeypatch, project_environ)


def test_the_plan_prints_its_ranges_and_writes_them(
    capsys: pytest.CaptureFixture[str], april_project: Project
) -> None:
    root = april_project.root
    april_project.partition_report_path(RAW, "2026-04-19").unlink()

    code, out, err = run(capsys, root, "plan", *WINDOW, "--mode", "dry-run")

    assert code == 0, err
    assert "7 partitions by state: 5 materialized, 1 missing_partition, 1" in out
    assert "5 ranges" in out
    lines = [line for line in out.splitlines() if "(" in line and ".." in line]
    assert any("2026-04-14 .. 2026-04-16 (3)" in line for line in lines)
    assert any(
        f"{GAP_DAY} (1)" in line and "backfill_partition" in line for line in out.splitlines()
    )
    saved = json.loads((root / PLAN).read_text("utf-8"))
    assert saved["schema_version"] == 2
    assert [(r["first"], r["count"]) for r in saved["ranges"]] == [
        ("2026-04-14", 3), (GAP_DAY, 1), ("2026-04-18", 1), ("2026-04-19", 1), ("2026-04-20", 1),
    ]  # fmt: skip
    assert "partitions" not in saved and "state" not in saved


def test_the_ranges_are_aligned_columns_with_the_targets_last_and_none_is_no_table(
    capsys: pytest.CaptureFixture[str], april_project: Project
) -> None:
    root = april_project.root
    code, out, err = run(capsys, root, "plan", *WINDOW, "--mode", "dry-run")
    assert code == 0, err
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.lstrip().startswith("partitions"))
    header, rows = lines[at], lines[at + 1 : at + 1 + 2]
    assert header.split() == ["partitions", "state", "proposed", "action", "gaps", "targets"]
    for column in ("state", "proposed action", "gaps", "targets"):  # each row under its header
        assert all(row[header.index(column) - 1] == " " for row in rows), (column, rows)
    assert RAW in rows[1][header.index("targets") :]  # the gap's row: its targets last
    document = read_plan(root / PLAN)
    empty = io.StringIO()
    print_plan(Console(file=empty, width=100), document.model_copy(update={"ranges": []}))
    assert empty.getvalue().rstrip().endswith("0 ranges")  # no header over nothing
    assert "partitions  " not in empty.getvalue()


@pytest.mark.slow
def test_apply_refuses_an_edited_plan_of_ranges_then_applies_the_real_one(
    capsys: pytest.CaptureFixture[str], april_project: Project
) -> None:
    root = april_project.root
    assert run(capsys, root, "plan", *WINDOW, "--mode", "dry-run")[0] == 0
    path = root / PLAN
    original = path.read_text("utf-8")
    edited = json.loads(original)
    edited["ranges"][0]["targets"] = edited["ranges"][1]["targets"]  # recompute good days
    path.write_text(json.dumps(edited, indent=2), "utf-8")
    before = tree_fingerprint(root)

    code, _, err = run(capsys, root, "apply", str(path))

    assert code == 2, err
    assert "differs in: ranges[0].targets" in err
    assert tree_fingerprint(root) == before

    path.write_text(original, "utf-8")
    code, out, err = run(capsys, root, "apply", str(path))
    assert code == 0, err
    assert "2 published" in out

    code, _, err = run(capsys, root, "apply", str(path))  # applied once: the state moved
    assert code == 4, err
