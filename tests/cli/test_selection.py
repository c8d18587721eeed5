"""Choosing assets: ``--asset NAME`` and ``--select PATTERN`` (fnmatch over asset keys, both
repeatable) on status, gaps and plan; a name or pattern that chooses nothing is exit 2 with
the nearest thing that would have matched, and writes nothing. The commands run on both
ledgers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    GAP_DAY,
    both_backends,
    cli_environment,
    environ_ledger_fingerprint,
    tree_fingerprint,
)

from backfiller import Project
from backfiller.cli.main import main
from backfiller.errors import BadInputError
from backfiller.selection import select_assets

RAW = "week06/ingestion/raw_ticket_events_partitioned"
SILVER = "week06/silver/ticket_fact_partitioned"
WINDOW = ("--start", "2026-04-14", "--end", "2026-04-20")


@pytest.fixture(autouse=True)
def _cli_environment(monkeypatch: pytest.MonkeyPatch, project_environ: dict[str, str]) -> None:
    """A wide console, no project settings from the environment but the ledger backend's (a
    PostgreSQL ledger's URL)."""
    cli_environment(monkeypatch, project_environ)


def run_json(capsys: pytest.CaptureFixture[str], root: Path, *args: str) -> dict[str, Any]:
    code = main(["--project", str(root), *args, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    doc: dict[str, Any] = json.loads(out)
    return doc


def written(root: Path) -> dict[str, str]:
    """The project's files, without Python's caches and SQLite's side files, and a PostgreSQL
    ledger's tables."""
    found = {
        k: v
        for k, v in tree_fingerprint(root).items()
        if "__pycache__" not in k and not k.endswith(("-wal", "-shm"))
    }
    return found | environ_ledger_fingerprint()


# -- the rule ------------------------------------------------------------------------------

KEYS = ["a/raw/events", "a/silver/facts", "b/silver/facts", "b/gold/metrics"]


def test_nothing_given_is_every_asset() -> None:
    assert select_assets(KEYS) is None


def test_names_and_patterns_choose_in_graph_order() -> None:
    assert select_assets(KEYS, patterns=["*/silver/*"]) == ["a/silver/facts", "b/silver/facts"]
    assert select_assets(KEYS, ["b/gold/metrics"], ["a/*"]) == [
        "a/raw/events",
        "a/silver/facts",
        "b/gold/metrics",
    ]
    assert select_assets(KEYS, patterns=["b/*", "*/facts"]) == [
        "a/silver/facts",
        "b/silver/facts",
        "b/gold/metrics",
    ]
    assert select_assets(KEYS, patterns=["a/s?lver/[f]acts"]) == ["a/silver/facts"]


def test_patterns_are_case_sensitive_and_match_the_whole_key() -> None:
    with pytest.raises(BadInputError, match=r"'A/\*' matches no asset"):
        select_assets(KEYS, patterns=["A/*"])
    with pytest.raises(BadInputError) as caught:
        select_assets(KEYS, patterns=["silver/*"])
    assert "(did you mean '*silver/*'? it matches a/silver/facts, b/silver/facts)" in str(
        caught.value
    )


def test_an_unknown_name_suggests_the_nearest() -> None:
    with pytest.raises(BadInputError, match=r"Unknown asset 'a/silver/fact' \(did you mean "):
        select_assets(KEYS, ["a/silver/fact"])


# -- the commands --------------------------------------------------------------------------


@both_backends
def test_status_shows_only_the_selected_assets(
    capsys: pytest.CaptureFixture[str], april_project: Project
) -> None:
    doc = run_json(capsys, april_project.root, "status", *WINDOW, "--select", "*/silver/*")
    assert [a["asset"] for a in doc["assets"]] == [SILVER]
    assert main(["--project", str(april_project.root), "status", *WINDOW, "--asset", RAW]) == 0
    out = capsys.readouterr().out
    assert RAW in out
    assert SILVER not in out


@both_backends
def test_gaps_of_the_selected_assets_say_what_they_left_out(
    capsys: pytest.CaptureFixture[str], april_project: Project
) -> None:
    doc = run_json(capsys, april_project.root, "gaps", *WINDOW, "--select", "week06/ingestion/*")
    assert [(g["asset"], g["partition_key"]) for g in doc["gaps"]] == [(RAW, GAP_DAY)]
    assert doc["left_out"] == 1
    assert doc["filters"]["assets"] == [RAW]
    both = run_json(
        capsys, april_project.root, "gaps", *WINDOW, "--select", "*silver*", "--asset", RAW
    )
    assert both["count"] == 2
    assert both["filters"]["assets"] == [RAW, SILVER]


@both_backends
def test_plan_of_the_selected_assets_records_them(
    capsys: pytest.CaptureFixture[str], april_project: Project
) -> None:
    doc = run_json(capsys, april_project.root, "plan", "--partition", GAP_DAY, "--asset", RAW)
    assert doc["plan"]["request"]["assets"] == [RAW]
    assert doc["plan"]["target_assets"] == [RAW]
    every = run_json(capsys, april_project.root, "plan", "--partition", GAP_DAY)
    assert every["plan"]["request"]["assets"] is None
    assert every["plan"]["target_assets"] == [RAW, SILVER]


@both_backends
@pytest.mark.parametrize("command", [("status", *WINDOW), ("gaps", *WINDOW), ("plan",)])
def test_a_pattern_that_matches_nothing_is_exit_2_and_writes_nothing(
    capsys: pytest.CaptureFixture[str], april_project: Project, command: tuple[str, ...]
) -> None:
    root = april_project.root
    before = written(root)
    code = main(["--project", str(root), *command, "--select", "silver/*"])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert "--select 'silver/*' matches no asset (did you mean '*silver/*'?" in err
    assert written(root) == before
    code = main(["--project", str(root), *command, "--asset", "week06/silver/ticket_facts"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"Unknown asset 'week06/silver/ticket_facts' (did you mean '{SILVER}'?)" in err
    assert written(root) == before


@both_backends
def test_holds_without_a_match_says_what_the_filters_left_out(
    capsys: pytest.CaptureFixture[str], april_project: Project
) -> None:
    root = april_project.root
    assert main(["--project", str(root), "rerun", "--asset", RAW, "--partition", "2026-04-14"]) == 0
    capsys.readouterr()
    assert main(["--project", str(root), "holds", "--asset", RAW]) == 0
    out = capsys.readouterr().out
    assert "5 hold(s) left out by the filters." in out
    assert "No hold matches the filters." in out
