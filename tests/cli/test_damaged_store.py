"""A damaged store is named, never reported as healthy: a data file deleted behind the tool's
back shows as a missing partition in ``gaps`` and ``status``, ``verify`` names it (exit 4),
reading it is a clear exit 2 instead of a raw I/O message, and a rerun repairs it; a Delta log
with a truncated or missing commit file (the first, or one between others) is a clear exit 2
naming the table for every command, with nothing written (to the project folder nor to a
PostgreSQL ledger). On both ledgers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import both_backends, environ_ledger_fingerprint, tree_fingerprint
from deltalake import DeltaTable

from backfiller import Project
from backfiller.cli.main import main
from backfiller.errors import ExitCode
from backfiller.store import CommitInfo

RAW = "week06/ingestion/raw_ticket_events_partitioned"
SILVER = "week06/silver/ticket_fact_partitioned"
KEY = "2026-04-15"


pytestmark = both_backends


@pytest.fixture(autouse=True)
def _wide(monkeypatch: pytest.MonkeyPatch, project_environ: dict[str, str]) -> None:
    """A wide console, no project settings from the environment but the ledger backend's (a
    PostgreSQL ledger's URL)."""
    monkeypatch.setenv("COLUMNS", "250")
    for name in list(os.environ):
        if name.startswith(("WEEK06_", "BACKFILLER_")):
            monkeypatch.delenv(name)
    for name, value in project_environ.items():
        monkeypatch.setenv(name, value)


def run(capsys: pytest.CaptureFixture[str], root: Path, *args: str) -> tuple[int, str, str]:
    code = main(["--project", str(root), *args])
    out, err = capsys.readouterr()
    return code, out, err


def one_line(text: str) -> str:
    return " ".join(text.split())


def delete_data_file(project: Project, asset: str, key: str) -> Path:
    table = project.store.path(asset)
    (path,) = [p for p in DeltaTable(str(table)).file_uris() if f"partition_key={key}/" in p]
    file = Path(path.removeprefix("file://"))
    file.unlink()
    return file


def files(root: Path) -> dict[str, str]:
    """The project folder's files and a PostgreSQL ledger's tables, as digests."""
    found = {k: v for k, v in tree_fingerprint(root).items() if "__pycache__" not in k}
    return found | environ_ledger_fingerprint()


@pytest.mark.slow
def test_a_deleted_data_file_is_a_gap_a_verify_problem_and_a_clear_error(
    april_project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    root = april_project.root
    assert run(capsys, root, "verify")[0] == ExitCode.OK
    delete_data_file(april_project, RAW, KEY)

    code, out, _ = run(capsys, root, "gaps", "--each", "--start", KEY, "--end", KEY)
    assert code == 0
    assert "No gaps" not in out
    assert "missing_partition" in out and "data file(s) of this partition that are gone" in (
        one_line(out)
    )

    code, out, _ = run(capsys, root, "status", "--start", KEY, "--end", KEY)
    assert code == 0
    assert f"{RAW}  (1 missing_partition)" in out

    code, out, err = run(capsys, root, "verify")
    assert code == ExitCode.CONFLICT
    assert f"✗ {RAW} {KEY}: 1 data file(s) that the Delta log references are gone" in out
    assert "1 problem(s) in 12 published partition(s)" in one_line(err)

    before = files(root)
    code, _, err = run(capsys, root, "check", "--asset", RAW, "--partition", KEY)
    assert code == ExitCode.BAD_INPUT
    assert f"A data file of {RAW} {KEY} that the Delta log references is gone" in one_line(err)
    assert "No such file" not in err
    assert files(root) == before

    # a rerun repairs it
    code, out, err = run(capsys, root, "rerun", "--asset", RAW, "--partition", KEY)
    assert code == 0, out + err
    assert run(capsys, root, "verify")[0] == ExitCode.OK
    assert "No gaps" in run(capsys, root, "gaps", "--start", KEY, "--end", KEY)[1]


@pytest.mark.parametrize("damage", ["truncated", "missing", "gap"])
@pytest.mark.parametrize("command", [["status"], ["gaps"], ["plan", "--partition", "2026-04-17"]])
def test_a_damaged_delta_log_is_exit_2_naming_the_table_for_every_command(
    april_project: Project, capsys: pytest.CaptureFixture[str], damage: str, command: list[str]
) -> None:
    """Commit 1 truncated; the first commit (the table's schema) gone; a commit gone between
    two others. (A last commit gone is not damage anyone can see: the log is then a shorter
    history — the example's partitions are published by one group commit, commit 1.)"""
    root = april_project.root
    log = april_project.store.path(SILVER) / "_delta_log"
    commit = log / "00000000000000000001.json"
    if damage == "truncated":
        commit.write_text(commit.read_text(encoding="utf-8")[:40], encoding="utf-8")
    elif damage == "missing":
        (log / "00000000000000000000.json").unlink()
    else:
        rows = april_project.store.read_partition(SILVER, KEY)
        assert rows is not None
        assert (
            april_project.store.write_partitions(SILVER, rows, [KEY], CommitInfo("same rows")) == 2
        )
        commit.unlink()
    before = files(root)

    code, out, err = run(capsys, root, *command)

    assert code == ExitCode.BAD_INPUT, out + err
    text = one_line(err)
    assert f"The Delta log of {SILVER} at" in text and "is damaged" in text
    assert "restore the table's _delta_log from a backup" in text
    assert "Traceback" not in err
    assert files(root) == before


def test_a_report_that_cannot_be_written_stops_the_run_naming_the_cause_and_resume_finishes(
    april_project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    root = april_project.root
    report = april_project.partition_report_path(RAW, KEY)
    folder = report.parent
    # a file where the reports folder must be: a real OS error, whoever runs the tests
    for existing in folder.iterdir():
        existing.unlink()
    folder.rmdir()
    folder.write_text("not a folder", encoding="utf-8")

    code, out, err = run(capsys, root, "rerun", "--asset", RAW, "--partition", KEY)

    assert code == ExitCode.UNEXPECTED, out + err
    text = one_line(err)
    assert f"Cannot write the partition report of {RAW} {KEY}: File exists ({folder})" in text
    assert "Cannot fail a partition" not in text and "Traceback" not in text
    (run_id,) = [r.run_id for r in april_project.reader().runs.all() if r.action == "rerun"]
    assert f"'backfiller resume {run_id}'" in text
    record = april_project.reader().partitions.get(RAW, KEY)
    assert record is not None and record.last_run_id == run_id  # published and recorded

    folder.unlink()  # the cause is fixed
    code, out, err = run(capsys, root, "resume", run_id)
    assert code == 0, out + err
    assert report.is_file()
    run_record = april_project.reader().runs.get(run_id)
    assert run_record is not None and run_record.state.value == "succeeded"
