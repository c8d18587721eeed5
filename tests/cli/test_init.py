"""``backfiller init`` starts a project the other commands work on at once, and
``backfiller.toml`` is found from any subfolder, as git finds its repository. A new project
works on either ledger (SQLite by default, PostgreSQL through ``BACKFILLER_LEDGER_URL``)."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest
from conftest import both_backends, tree_fingerprint

from backfiller import load_project
from backfiller.cli.main import main
from backfiller.errors import ExitCode


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch, project_environ: dict[str, str]) -> None:
    """A wide console, no project settings from the environment but the ledger backend's (a
    PostgreSQL ledger's URL)."""
    monkeypatch.setenv("COLUMNS", "250")
    for name in list(os.environ):
        if name.startswith("BACKFILLER_"):
            monkeypatch.delenv(name)
    for name, value in project_environ.items():
        monkeypatch.setenv(name, value)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@both_backends
def test_init_writes_a_project_that_works_from_a_subfolder(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, project_environ: dict[str, str]
) -> None:
    root = tmp_path / "sales"
    code, out, _ = run(capsys, "init", str(root))
    assert code == 0
    assert f"wrote {root / 'backfiller.toml'}" in out
    deeper = root / "notebooks" / "scratch"
    deeper.mkdir(parents=True)

    code, out, err = run(capsys, "--project", str(deeper), "status")
    assert code == 0, err
    assert "sales/events" in out
    start = tomllib.loads((root / "backfiller.toml").read_text(encoding="utf-8"))
    first_day = start["partitions"]["start"]
    code, out, err = run(capsys, "--project", str(deeper), "rerun", "--asset", "sales/events",
                         "--partition", first_day)  # fmt: skip
    assert code == 0, out + err
    assert "1 published" in out
    assert (root / "data" / "lake" / "sales" / "events" / "_delta_log").is_dir()
    assert not (deeper / "data").exists()  # written to the project, not the subfolder
    project = load_project(root, environ=project_environ)
    assert project.config.ledger_url == project_environ.get("BACKFILLER_LEDGER_URL", "")
    (recorded,) = project.reader().runs.all()  # in the backend's ledger
    assert (recorded.action, recorded.state.value) == ("rerun", "succeeded")
    assert project.config.ledger_path.exists() is not bool(project.config.ledger_url)


def test_init_refuses_a_folder_that_holds_a_project_and_writes_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    root = tmp_path / "p"
    assert run(capsys, "init", str(root))[0] == 0
    before = tree_fingerprint(tmp_path)

    code, _, err = run(capsys, "init", str(root))

    assert code == ExitCode.BAD_INPUT
    assert "holds a project" in " ".join(err.split())
    assert tree_fingerprint(tmp_path) == before


def test_init_refuses_a_name_that_is_not_plain(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(capsys, "init", str(tmp_path / "p"), "--name", "../evil")
    assert code == ExitCode.BAD_INPUT
    assert "is not a plain name" in err
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize(
    ("today", "start"),
    [("2026-03-01", "2026-02-01"), ("2026-03-31", "2026-02-01"), ("2027-01-15", "2026-12-01")],
)
def test_a_new_project_starts_on_the_first_day_of_last_month(
    tmp_path: Path, today: str, start: str
) -> None:
    from datetime import date

    from backfiller.scaffold import init_project

    init_project(tmp_path / "p", today=date.fromisoformat(today))
    config = tomllib.loads((tmp_path / "p" / "backfiller.toml").read_text(encoding="utf-8"))
    assert config["partitions"]["start"] == start
