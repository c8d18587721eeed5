"""``backfiller evidence verify|write|show|report`` through the CLI's one error boundary, on
both ledgers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import (
    both_backends,
    cli_environment,
    environ_ledger_fingerprint,
    interrupted_at,
    ledger_fingerprint,
    run_steps,
    tree_fingerprint,
)

from backfiller import ExitCode, Project
from backfiller.cli.evidence import evidence
from backfiller.cli.main import cli, main

RAW = "week06/ingestion/raw_ticket_events_partitioned"
SILVER = "week06/silver/ticket_fact_partitioned"
DAY = "2026-04-16"


pytestmark = both_backends


@pytest.fixture(autouse=True)
def _cli_environment(monkeypatch: pytest.MonkeyPatch, project_environ: dict[str, str]) -> None:
    """A wide console, no project settings from the environment but the ledger backend's (a
    PostgreSQL ledger's URL), and the evidence group registered (whether or not main.py
    registers it yet)."""
    cli_environment(monkeypatch, project_environ)
    monkeypatch.setitem(cli.commands, "evidence", evidence)


@pytest.fixture
def project(example_dir: Path, load: Callable[[Path], Project]) -> Project:
    return load(example_dir)


def _run(project: Project) -> str:
    with project.ledger() as ledger:
        result = run_steps(
            project,
            ledger,
            [(RAW, DAY), (SILVER, DAY)],
            action="backfill",
            operator="carol",
            reason="re-delivered file",
        )
    return result.run_id


def run(capsys: pytest.CaptureFixture[str], root: Path, *args: str) -> tuple[int, str, str]:
    code = main(["--project", str(root), "evidence", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_verify_an_intact_chain(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    _run(project)
    code, out, _ = run(capsys, project.root, "verify")
    assert code == ExitCode.OK
    assert "Evidence chain intact: 1 document(s)." in out


def test_verify_names_a_tampered_file_and_exits_4(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    _run(project)
    (path,) = (project.config.report_dir / "evidence").glob("*.json")
    path.write_text(path.read_text().replace('"carol"', '"mallory"'))
    code, out, err = run(capsys, project.root, "verify")
    assert code == ExitCode.CONFLICT == 4
    assert f"{project.relative(path)} (seq 1): edited: sha256 is" in out
    assert "1 problem(s) in the evidence chain of 1 document(s)" in err
    code, _, err = run(capsys, project.root, "show", path.stem.split("_", 1)[1])
    assert code == ExitCode.CONFLICT
    assert "no longer matches" in err


def test_show_prints_the_summary(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    run_id = _run(project)
    code, out, _ = run(capsys, project.root, "show", run_id)
    assert code == ExitCode.OK
    assert out.startswith(f"{run_id} · backfill · succeeded · by carol\n")
    assert "reason: re-delivered file" in out
    assert f"  {RAW} {DAY}: published" in out and f"  {SILVER} {DAY}: published" in out


def test_show_without_evidence_is_bad_input(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    with interrupted_at("after_settle"):
        _run(project)
    with project.ledger() as ledger:
        (run_id,) = [r.run_id for r in ledger.runs.all()]
    code, _, err = run(capsys, project.root, "show", run_id)
    assert code == ExitCode.BAD_INPUT
    assert f"No evidence was written for run '{run_id}'" in err
    assert f"backfiller evidence write {run_id}" in err
    code, out, _ = run(capsys, project.root, "write", run_id)
    assert code == ExitCode.OK
    assert f"Evidence of {run_id}: reports/week06/evidence/000001_{run_id}.json" in out
    code, out2, _ = run(capsys, project.root, "write", run_id)  # idempotent
    assert (code, out2) == (ExitCode.OK, out)


def test_write_refuses_an_unknown_run(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, project.root, "write", "run-nope")
    assert code == ExitCode.BAD_INPUT
    assert "No run 'run-nope'" in err
    assert not (project.config.report_dir / "evidence").exists()
    # with a run in the ledger: the refusal writes no evidence and leaves the ledger as it was
    _run(project)
    folder = project.config.report_dir / "evidence"
    before = (tree_fingerprint(folder), ledger_fingerprint(project))
    code, _, _ = run(capsys, project.root, "write", "run-nope")
    assert code == ExitCode.BAD_INPUT
    assert (tree_fingerprint(folder), ledger_fingerprint(project)) == before


@pytest.mark.parametrize("command", ["write", "show", "report"])
def test_an_unknown_run_on_a_fresh_project_writes_nothing_not_even_a_ledger(
    project: Project, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    before = (tree_fingerprint(project.root), environ_ledger_fingerprint())
    code, _, err = run(capsys, project.root, command, "run-nope")
    assert code == ExitCode.BAD_INPUT
    assert "No run 'run-nope' in the ledger" in err
    assert (tree_fingerprint(project.root), environ_ledger_fingerprint()) == before


def test_report_md_goes_to_the_default_path(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = _run(project)
    code, out, _ = run(capsys, project.root, "report", run_id)
    assert code == ExitCode.OK
    assert out.strip() == f"Report written to reports/week06/evidence/{run_id}.md"
    text = (project.config.report_dir / "evidence" / f"{run_id}.md").read_text()
    assert f"| {RAW} | {DAY} | published |" in text and "**operator:** carol" in text
    code, out, _ = run(capsys, project.root, "verify")  # a report is not a stray document
    assert code == ExitCode.OK


def test_report_html_to_a_chosen_file(
    project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = _run(project)
    target = tmp_path / "out" / "review.html"
    code, out, _ = run(capsys, project.root, "report", run_id, "--format", "html", "--output",
                       str(target))  # fmt: skip
    assert code == ExitCode.OK
    assert f"Report written to {target}" in out
    page = target.read_text()
    assert page.startswith("<!DOCTYPE html>") and DAY in page and "carol" in page
    assert "<script" not in page and "http" not in page


def test_report_refuses_an_unknown_format(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, _ = run(capsys, project.root, "report", "run-x", "--format", "pdf")
    assert code == ExitCode.BAD_INPUT
