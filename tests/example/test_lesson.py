"""``backfiller demo --lesson``: the seed's self-check on a fresh copy of the example, run once
per module and ledger backend (~15 s each), then examined: what it printed, what it left
behind, and that the main tables were never damaged.

The lesson keeps to a fresh example's own SQLite ledger (it ignores the caller's ``WEEK06_*``
variables, and the example reads its ledger URL from no other); on PostgreSQL the test hands
the lesson's project the ledger URL, so every step runs against a PostgreSQL ledger."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from conftest import both_backends, ledger_environ
from rich.console import Console

from backfiller import Project, load_project
from backfiller.cli.main import main
from backfiller.lab import lesson as lesson_module
from backfiller.lab.lesson import LessonResult, Snapshot, compare, run_lesson
from backfiller.lab.simulation import read_simulations

pytestmark = pytest.mark.slow  # end to end: the demo, the lesson, subprocesses

RAW = "week06/ingestion/raw_ticket_events_partitioned"
SILVER = "week06/silver/ticket_fact_partitioned"
STRATEGY = "docs/blueprints/week06/week06-partition-backfill-strategy.md"
REPORT = f"reports/week06/partitions/{RAW}/2026-04-17.json"


#: the lesson of each ledger backend (its result, what it printed, its ledger's environment)
_lessons: dict[str, tuple[LessonResult, str, dict[str, str]]] = {}


@pytest.fixture
def lesson(
    ledger_backend: str,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> tuple[LessonResult, str]:
    if ledger_backend not in _lessons:
        ledger: dict[str, str] = {}
        if ledger_backend == "postgres":  # kept for the module (named: not a scratch database)
            server = request.getfixturevalue("postgres_server")
            empty = request.getfixturevalue("postgres_template")
            ledger = ledger_environ(server.create_database(template=empty, name="lesson"))
        folder = tmp_path_factory.mktemp(f"lesson-{ledger_backend}") / "omni"
        buffer = io.StringIO()
        console = Console(file=buffer, width=200, highlight=False, color_system=None)
        with pytest.MonkeyPatch.context() as patch:

            def load(root: Path, environ: dict[str, str]) -> Project:
                project = load_project(root, environ={**environ, **ledger})
                assert project.config.ledger_url == ledger.get("BACKFILLER_LEDGER_URL", "")
                return project

            patch.setattr(lesson_module, "load_project", load)
            result = run_lesson(folder, console)
        _lessons[ledger_backend] = (result, buffer.getvalue(), ledger)
    result, out, _ = _lessons[ledger_backend]
    return result, out


def _load(result: LessonResult) -> Project:
    """The lesson's project, on the lesson's ledger."""
    (environ,) = [e for r, _, e in _lessons.values() if r is result]
    return load_project(result.folder, environ=environ)


@both_backends
def test_it_walks_through_every_step_in_the_seed_order(lesson: tuple[LessonResult, str]) -> None:
    _, out = lesson
    titles = [
        "1. Lay out the seed's pipeline and read its recovery policy",
        "2. Materialize the history 2026-03-01 .. 2026-04-30",
        "3. Simulate gaps safely",
        "4. Find the gaps",
        "5. Plan the boundary as a dry run",
        "6. Apply — after undoing the simulated defect, with the explicit allow flag",
        "7. Checks",
        "8. Evidence",
        "9. Release the held consumers",
        "10. Undo the last simulation",
        "11. The main tables were never damaged",
        "12. Write the recovery strategy",
    ]
    positions = [out.find(t) for t in titles]
    assert -1 not in positions, [t for t, p in zip(titles, positions, strict=True) if p < 0]
    assert positions == sorted(positions)
    for command in (
        "$ backfiller simulate move-report",
        "$ backfiller simulate failing-check",
        "$ backfiller gaps",
        "$ backfiller rerun",
        "$ backfiller plan --start 2026-04-16 --end 2026-04-17 --mode dry-run",
        "--allow-apply-during-simulation",
        "$ backfiller release",
        "$ backfiller simulate undo",
    ):
        assert command in out
    assert "missing_partition_report" in out and "check_failed" in out
    assert "refused (exit 2): --mode apply refused" in out
    assert "the previous data stays visible" in out
    assert "Lesson succeeded." in out


@both_backends
def test_its_last_step_adds_the_product_lines_and_backfills_a_line_added_later(
    lesson: tuple[LessonResult, str],
) -> None:
    """Step 13, on the example's product_lines project: the product lines added as the values
    of a dynamic dimension, the gap day's cells planned and backfilled, a line launched later
    backfilled over the week, its removal refused and then done explicitly, the history."""
    result, out = lesson
    flat = " ".join(out.split())
    step = flat.split("13. The same gap by product line: dynamic product lines", 1)[1]
    shown = [
        "$ backfiller --project product_lines partitions add --dimension product_line "
        '--value billing --value voice --value chat --reason "',
        "added to product_line: billing, voice, chat",
        "$ backfiller --project product_lines gaps --partition 2026-04-17",
        "$ backfiller --project product_lines plan --partition 2026-04-17",
        "Backfill plan plan-",
        "added to product_line: enterprise",
        "$ backfiller --project product_lines plan --start 2026-04-11 --end 2026-04-17",
        "released 7 hold(s)",
        "refused (exit 2): Published data in the partitions of: enterprise",
        "--allow-published",
        "$ backfiller --project product_lines history --asset "
        "week06/silver/ticket_fact_by_product_line",
        "Values added and removed",
        "Lesson succeeded.",
    ]
    positions = [step.find(text) for text in shown]
    assert -1 not in positions, [t for t, p in zip(shown, positions, strict=True) if p < 0]
    assert positions == sorted(positions)
    lines = load_project(result.folder / "product_lines")
    assert lines.reader().dimensions.values("product_line") == ["billing", "voice", "chat"]


@both_backends
def test_the_main_tables_were_never_damaged(lesson: tuple[LessonResult, str]) -> None:
    result, out = lesson
    assert result.damaged == []
    assert result.rewritten == [(SILVER, "2026-04-16")]
    before, after = result.before, result.after
    assert before is not None and after is not None
    assert len(before.fingerprints) == 122
    assert after.fingerprints == before.fingerprints
    moved = {p for p, v in before.data_versions.items() if after.data_versions[p] != v}
    assert moved == {(SILVER, "2026-04-16")}
    assert after.table_versions[RAW] == before.table_versions[RAW]
    assert after.table_versions[SILVER] == (before.table_versions[SILVER] or 0) + 1
    assert "intentionally rewritten: " + SILVER + " 2026-04-16" in out
    # and it is not just the lesson's word for it: the tables, read again
    project = _load(result)
    assert project.store.version(RAW) == before.table_versions[RAW]
    assert (
        project.store.fingerprint(SILVER, "2026-04-16")
        == before.fingerprints[(SILVER, "2026-04-16")]
    )


@both_backends
def test_it_leaves_no_simulation_no_gap_and_no_hold(lesson: tuple[LessonResult, str]) -> None:
    result, _ = lesson
    project = _load(result)
    records = read_simulations(project.config.state_dir)
    assert [r.kind.value for r in records] == ["move_report", "failing_check"]
    assert all(not r.active for r in records)
    assert [r.simulation_id for r in records] == result.simulations
    assert result.remaining_gaps == 0
    assert result.still_held == 0 and result.released > 0
    with project.ledger() as ledger:
        assert ledger.holds.all() == []
    report = json.loads((result.folder / REPORT).read_text(encoding="utf-8"))
    assert report["reissued_by_run_id"] is None  # the original report is back


@both_backends
def test_it_writes_evidence_and_the_strategy(lesson: tuple[LessonResult, str]) -> None:
    result, _ = lesson
    assert result.strategy == result.folder.resolve() / STRATEGY
    text = result.strategy.read_text(encoding="utf-8")
    assert "## Week06 recovery strategy" in text
    gaps = text.split("## Current gaps", 1)[1].split("\n## ", 1)[0]
    rows = [line.split(" | ")[0] for line in gaps.splitlines() if line.startswith("| ")]
    assert rows == ["| gap_reason", "| no_expected_input"]  # only the undeclared days after April
    assert "Nothing is held." in text
    assert len(result.evidence) == 2
    assert all(path.is_file() for path in result.evidence)


def _snapshot(**changes: object) -> Snapshot:
    base = Snapshot(
        table_versions={RAW: 5, SILVER: 5},
        fingerprints={(RAW, "k"): "a", (SILVER, "k"): "b"},
        data_versions={(RAW, "k"): 5, (SILVER, "k"): 5},
    )
    return Snapshot(**{**base.__dict__, **changes})  # type: ignore[arg-type]


def test_compare_names_every_kind_of_damage() -> None:
    before = _snapshot()
    assert compare(before, _snapshot(), []) == ([], [])
    damage, _ = compare(before, _snapshot(fingerprints={(RAW, "k"): "x", (SILVER, "k"): "b"}), [])
    assert damage == [f"{RAW} k: content fingerprint changed"]
    moved = _snapshot(
        data_versions={(RAW, "k"): 5, (SILVER, "k"): 6}, table_versions={RAW: 5, SILVER: 6}
    )
    damage, intended = compare(before, moved, [])
    assert f"{SILVER} k: data version 5 → 6, not planned" in damage
    assert f"{SILVER}: table version 5 → 6, 0 commit(s) planned" in damage
    damage, intended = compare(before, moved, [(SILVER, "k")])
    assert damage == [] and intended == [f"{SILVER} k: data version 5 → 6 (same content)"]


def test_demo_lesson_runs_the_lesson(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    called: list[Path] = []
    monkeypatch.setattr(lesson_module, "run_lesson", lambda folder, console: called.append(folder))
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["demo", "--lesson", "--dir", str(tmp_path / "x")]) == 0
    assert called == [tmp_path / "x"]
    assert os.environ["COLUMNS"] == "200"
