"""A progress line for ``plan`` and ``gaps`` when they take more than a moment: on stderr
only, only on an interactive terminal, never with ``--json``; stdout is the same with or
without it. The moment is ``PROGRESS_AFTER_SECONDS``: the tests set it to 0 (always shown once
the work reports progress) or to an hour (never shown)."""

from __future__ import annotations

import json

import pytest
from conftest import GAP_DAY, both_backends, cli_environment

from backfiller import Project
from backfiller.cli import context
from backfiller.cli.main import main

pytestmark = both_backends

GAPS = ["gaps", "--start", "2026-04-14", "--end", "2026-04-20"]
PLAN = ["plan", "--partition", GAP_DAY]
BAR = "━"  # what rich draws a progress bar with (and a table's header rule: not on stdout)


@pytest.fixture(autouse=True)
def _cli_environment(monkeypatch: pytest.MonkeyPatch, project_environ: dict[str, str]) -> None:
    cli_environment(monkeypatch, project_environ, columns=120)


def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every console (stdout's and stderr's) an interactive terminal."""
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    monkeypatch.setenv("TTY_INTERACTIVE", "1")


def run(capsys: pytest.CaptureFixture[str], project: Project, *args: str) -> tuple[str, str]:
    code = main(["--project", str(project.root), *args])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    return out, err


@pytest.mark.parametrize(("args", "label"), [(GAPS, "finding gaps"), (PLAN, "planning")])
def test_with_a_terminal_a_progress_line_goes_to_stderr_only(
    april_project: Project,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    label: str,
) -> None:
    terminal(monkeypatch)
    monkeypatch.setattr(context, "PROGRESS_AFTER_SECONDS", 0.0)

    out, err = run(capsys, april_project, *args)

    assert label in err
    assert BAR in err and "100%" in err
    assert label not in out and "100%" not in out
    if args is GAPS:  # stdout is what it is without the line (the plan's id has a time in it)
        monkeypatch.setattr(context, "PROGRESS_AFTER_SECONDS", 3600.0)
        assert run(capsys, april_project, *args) == (out, "")


@pytest.mark.parametrize("args", [GAPS, PLAN], ids=["gaps", "plan"])
def test_quick_work_shows_no_progress_line(
    april_project: Project,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
) -> None:
    terminal(monkeypatch)
    monkeypatch.setattr(context, "PROGRESS_AFTER_SECONDS", 3600.0)

    _, err = run(capsys, april_project, *args)

    assert err == ""


@pytest.mark.slow
@pytest.mark.parametrize("args", [GAPS, PLAN], ids=["gaps", "plan"])
def test_no_progress_line_when_stderr_is_not_a_terminal(
    april_project: Project,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
) -> None:
    monkeypatch.setattr(context, "PROGRESS_AFTER_SECONDS", 0.0)

    out, err = run(capsys, april_project, *args)

    assert err == ""
    assert "100%" not in out


@pytest.mark.parametrize("args", [GAPS, PLAN], ids=["gaps", "plan"])
def test_no_progress_line_with_json_even_on_a_terminal(
    april_project: Project,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
) -> None:
    terminal(monkeypatch)
    monkeypatch.setattr(context, "PROGRESS_AFTER_SECONDS", 0.0)

    out, err = run(capsys, april_project, *args, "--json")

    json.loads(out)
    assert BAR not in err and "%" not in err
