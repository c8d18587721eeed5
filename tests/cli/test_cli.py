"""The command line: exit codes, messages, what each command writes (and what it must not).

Most tests call ``backfiller.cli.main.main(argv)`` in-process (the single error boundary) and
read stdout/stderr through ``capsys``; a few run real subprocesses. The console is made wide
(``COLUMNS``) so that rich does not wrap table cells and messages; the tables are then parsed
cell by cell.

The tests that reach a project's ledger run on both ledgers (SQLite, and PostgreSQL through
``BACKFILLER_LEDGER_URL``); "nothing written" then covers the PostgreSQL ledger's tables too.
Those that stop before any project is read (no project, a broken assets module, ``--version``,
how the console script starts) are the same for either and run once.
"""

from __future__ import annotations

import copy
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_calls import run
from conftest import (
    GAP_DAY,
    both_backends,
    cli_environment,
    environ_ledger_fingerprint,
    materialize,
    tree_fingerprint,
)
from lab_project import LAB_MODULE, write_lab

from backfiller import Project, __version__
from backfiller.cli.main import main

RAW = "week06/ingestion/raw_ticket_events_partitioned"
SILVER = "week06/silver/ticket_fact_partitioned"
ASSETS = (RAW, SILVER)
MANIFEST = "data/manifests/week06-seed-manifest-001.json"
PLAN_REL = f"reports/week06/backfill/backfill_plan_{GAP_DAY}.json"

#: The seed's plan fields, in the order the plan table prints them.
SEED_FIELDS = (
    "partition_key",
    "window_start",
    "window_end",
    "mode",
    "upstream_manifest_id",
    "expected_input_count",
    "current_output_count",
    "gap_reason",
    "proposed_action",
    "idempotency_guard",
    "downstream_impact",
    "operator",
    "target_assets",
    "report_path",
)

SEED_HINT = "confirm that the seed data really has records for"


# -- helpers -------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _cli_environment(monkeypatch: pytest.MonkeyPatch, project_environ: dict[str, str]) -> None:
    """A wide, colourless console and no project settings leaking in from the environment but
    the ledger backend's (a PostgreSQL ledger's URL)."""
    cli_environment(monkeypatch, project_environ)


def files(root: Path) -> dict[str, str]:
    """``tree_fingerprint`` without what is not backfiller's output: Python's bytecode caches
    (importing the project's assets module may write them) and SQLite's WAL side files
    (``ledger.db-wal``/``-shm``, which even a read-only connection to a WAL database creates;
    ``ledger.db`` itself stays compared); with a PostgreSQL ledger, its tables' rows too."""
    found = {
        k: v
        for k, v in tree_fingerprint(root).items()
        if "__pycache__" not in k and not k.endswith(("-wal", "-shm"))
    }
    if (root / "backfiller.toml").is_file():
        found.update(environ_ledger_fingerprint())
    return found


def changed(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """Files added, modified or removed between two fingerprints."""
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))


def table_rows(out: str) -> list[list[str]]:
    """The body rows of every rich table in ``out``, as lists of stripped cells."""
    rows = []
    for line in out.splitlines():
        if line.startswith("│") and line.rstrip().endswith("│"):
            rows.append([cell.strip() for cell in line.rstrip().split("│")[1:-1]])
    return rows


def plan_fields(out: str) -> dict[str, str]:
    """The plan table (field | value) as a dict; wrapped values are joined with newlines."""
    fields: dict[str, str] = {}
    current = None
    for cells in table_rows(out):
        if len(cells) != 2:
            continue
        name, value = cells
        if name:
            current = name
            fields[name] = value
        elif current is not None:
            fields[current] += "\n" + value
    return fields


def gap_rows(out: str) -> set[tuple[str, ...]]:
    """(asset, partition, gap_reason, expected, stored, proposed_action) of the gaps table."""
    return {tuple(cells[:6]) for cells in table_rows(out) if len(cells) == 7 and cells[0]}


def status_summaries(out: str) -> dict[str, str]:
    """asset -> the '(n state, ...)' summary that ``status`` prints next to it."""
    result = {}
    for line in out.splitlines():
        match = re.fullmatch(r"(\S+)  \((.*)\)", line.strip())
        if match and match.group(1) in ASSETS:
            result[match.group(1)] = match.group(2)
    return result


def subprocess_env(**extra: str) -> dict[str, str]:
    """This process's environment without project settings, with the ledger backend's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WEEK06_", "BACKFILLER_"))}
    env.update({k: v for k, v in os.environ.items() if k.endswith("BACKFILLER_LEDGER_URL")})
    env.update(extra)
    return env


def backfiller_command() -> list[str]:
    """The installed console script next to this interpreter (else ``python -m``)."""
    script = shutil.which("backfiller", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "backfiller.cli.main"]


def set_manifest_partition(root: Path, key: str, **fields: Any) -> None:
    path = root / MANIFEST
    doc = json.loads(path.read_text(encoding="utf-8"))
    (part,) = [p for p in doc["partitions"] if p["partition_key"] == key]
    part.update(fields)
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


# -- bad input: exit 2, nothing written ---------------------------------------------------------


@both_backends
def test_unsupported_mode_exits_2_with_the_exact_message(
    capsys: pytest.CaptureFixture[str], example_dir: Path
) -> None:
    before = files(example_dir)
    code, out, err = run(capsys, example_dir, "plan", "--partition", GAP_DAY, "--mode", "foo")
    assert code == 2
    assert "Unsupported backfill mode: 'foo' (supported: dry-run, apply)" in err
    assert err.splitlines()[0] == (
        "error: Unsupported backfill mode: 'foo' (supported: dry-run, apply)"
    )
    assert "Traceback" not in err
    assert "Plan written" not in out
    assert files(example_dir) == before


BAD_KEYS = [
    pytest.param("2026-4-17", "Invalid partition key '2026-4-17'", id="no-zero-padding"),
    pytest.param("2026-02-30", "Invalid partition key '2026-02-30'", id="no-such-day"),
    pytest.param("2026-04-17'; DROP TABLE x", "which no partition key may contain", id="sql"),
    pytest.param("../2026-04-17", "Invalid partition key '../2026-04-17'", id="traversal"),
    pytest.param("2026-02-28", "is before the start", id="before-start"),
    pytest.param("2099-01-01", "is not complete yet", id="future"),
]


@both_backends
@pytest.mark.parametrize(("key", "phrase"), BAD_KEYS)
@pytest.mark.parametrize("command", ["plan", "gaps"])
def test_bad_partition_key_exits_2_and_writes_nothing(
    capsys: pytest.CaptureFixture[str], example_dir: Path, command: str, key: str, phrase: str
) -> None:
    before = files(example_dir)
    args = [command, "--partition", key] + (["--mode", "dry-run"] if command == "plan" else [])
    code, out, err = run(capsys, example_dir, *args)
    assert code == 2, (out, err)
    assert "YYYY-MM-DD" in err
    assert phrase in err
    assert err.startswith("error: ")
    assert "Traceback" not in err
    assert "Plan written" not in out
    assert files(example_dir) == before
    assert not (example_dir / "reports").exists()
    assert not (example_dir / ".backfiller").exists()


@both_backends
def test_bad_key_in_a_window_bound_exits_2(
    capsys: pytest.CaptureFixture[str], example_dir: Path
) -> None:
    before = files(example_dir)
    code, _, err = run(capsys, example_dir, "plan", "--start", "2026-04-14", "--end", "2026-4-20")
    assert code == 2
    assert "Invalid partition key '2026-4-20'" in err
    assert "YYYY-MM-DD" in err
    assert files(example_dir) == before


@both_backends
@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        pytest.param(
            ["plan", "--partition", GAP_DAY, "--start", "2026-04-14", "--end", "2026-04-20"],
            "Pass --partition or --start/--end, not both",
            id="plan-partition-and-start",
        ),
        pytest.param(
            ["gaps", "--partition", GAP_DAY, "--start", "2026-04-14"],
            "Pass --partition or --start/--end, not both",
            id="gaps-partition-and-start",
        ),
        pytest.param(
            ["plan", "--start", "2026-04-14", "--mode", "dry-run"],
            "--start and --end go together",
            id="plan-start-without-end",
        ),
        pytest.param(
            ["plan", "--partition", "2026-04-16", "--include-materialized"],
            "--include-materialized needs --reason",
            id="include-materialized-without-reason",
        ),
        pytest.param(
            ["plan", "--start", "2026-04-20", "--end", "2026-04-14"],
            "comes after",
            id="reversed-window",
        ),
    ],
)
def test_usage_errors_exit_2_and_write_nothing(
    capsys: pytest.CaptureFixture[str], example_dir: Path, args: list[str], phrase: str
) -> None:
    before = files(example_dir)
    code, out, err = run(capsys, example_dir, *args)
    assert code == 2, (out, err)
    assert phrase in err
    assert "Plan written" not in out
    assert files(example_dir) == before


@pytest.mark.parametrize("command", [["status"], ["gaps"], ["plan", "--partition", GAP_DAY]])
@pytest.mark.parametrize("folder", ["missing", "empty"])
def test_no_project_exits_2_naming_backfiller_toml(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, folder: str, command: list[str]
) -> None:
    root = tmp_path / folder
    if folder == "empty":
        root.mkdir()
    code, out, err = run(capsys, root, *command)
    assert code == 2
    assert "No backfiller.toml in" in err
    assert "backfiller.toml" in err.splitlines()[0]
    assert "Traceback" not in err
    assert out == ""
    assert root.exists() is (folder == "empty")
    assert files(tmp_path) == {}


# -- seeing the gap --------------------------------------------------------------------------


@pytest.mark.slow
@both_backends
def test_status_counts_the_april_window(
    capsys: pytest.CaptureFixture[str], april_project: Project
) -> None:
    code, out, err = run(
        capsys, april_project.root, "status", "--start", "2026-04-14", "--end", "2026-04-20"
    )
    assert code == 0, err
    assert "7 partitions 2026-04-14 .. 2026-04-20" in out
    assert status_summaries(out) == {
        RAW: "6 materialized, 1 missing_partition",
        SILVER: "6 materialized, 1 missing_partition",
    }
    # by default, ranges of consecutive partitions in one state
    ranges = [line.strip() for line in out.splitlines() if line.startswith("  ")]
    assert ranges == 2 * [
        "█ 2026-04-14 .. 2026-04-16 (3 partitions) materialized",
        "· 2026-04-17 (1 partition) missing_partition",
        "█ 2026-04-18 .. 2026-04-20 (3 partitions) materialized",
    ]
    # with --each, the grid of April: 13 days of padding, then 14..16 materialized, 17
    # missing, 18..20
    code, out, err = run(
        capsys, april_project.root, "status", "--each", "--start", "2026-04-14", "--end",
        "2026-04-20",
    )  # fmt: skip
    assert code == 0, err
    assert status_summaries(out) == {
        RAW: "6 materialized, 1 missing_partition",
        SILVER: "6 materialized, 1 missing_partition",
    }
    grid = [line.strip() for line in out.splitlines() if line.strip().startswith("2026-04  ")]
    assert [g.split()[-1] for g in grid] == ["███·███", "███·███"]


@both_backends
def test_migrate_brings_an_older_ledger_to_this_version(
    capsys: pytest.CaptureFixture[str], april_project: Project
) -> None:
    """After an upgrade the read-only commands refuse the older ledger and name 'backfiller
    migrate'; it migrates, keeping every record, and running it again changes nothing."""
    from backfiller.ledger.migrations import SCHEMA_VERSION

    root = april_project.root
    with april_project.ledger() as ledger:
        before = {r.partition_key: r for r in ledger.partitions.all(RAW)}
    _downgrade_one_version(april_project)
    code, _, err = run(capsys, root, "status")
    assert code == 2
    assert "run 'backfiller migrate' once to bring it to this version" in err
    code, out, err = run(capsys, root, "migrate")
    assert code == 0, err
    assert f"schema version {SCHEMA_VERSION}" in out
    unchanged = files(root)
    code, out2, _ = run(capsys, root, "migrate")
    assert (code, out2) == (0, out)
    assert files(root) == unchanged
    code, out, err = run(capsys, root, "status", "--start", "2026-04-14", "--end", "2026-04-20")
    assert code == 0, err
    assert {r.partition_key: r for r in april_project.reader().partitions.all(RAW)} == before


def _downgrade_one_version(project: Project) -> None:
    """The ledger as the previous backfiller left it: without the last migration."""
    from backfiller.ledger.migrations import SCHEMA_VERSION

    statements = [
        "DROP INDEX events_by_asset",
        f"DELETE FROM schema_migrations WHERE version = {SCHEMA_VERSION}",
    ]
    if project.config.ledger_url:
        import psycopg

        with psycopg.connect(project.config.ledger_url, autocommit=True) as pg:
            for sql in statements:
                pg.execute(sql)
        return
    import sqlite3

    conn = sqlite3.connect(project.config.ledger_path)
    try:
        for sql in statements:
            conn.execute(sql)
        conn.commit()
    finally:
        conn.close()


@both_backends
def test_status_on_a_fresh_project_is_all_missing(
    capsys: pytest.CaptureFixture[str],
    example_dir: Path,
    no_ledger_environ: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in no_ledger_environ.items():  # PostgreSQL: a database without a ledger
        monkeypatch.setenv(name, value)
    before = files(example_dir)
    code, out, _ = run(
        capsys, example_dir, "status", "--start", "2026-04-14", "--end", "2026-04-20"
    )
    assert code == 0
    assert status_summaries(out) == {RAW: "7 missing_partition", SILVER: "7 missing_partition"}
    assert files(example_dir) == before  # reading the state creates no ledger


@both_backends
def test_gaps_lists_the_missing_partition_for_both_assets(
    capsys: pytest.CaptureFixture[str], april_project: Project
) -> None:
    before = files(april_project.root)
    code, out, err = run(
        capsys, april_project.root, "gaps", "--each", "--start", "2026-04-14", "--end", "2026-04-20"
    )
    assert code == 0, err
    assert "2 gap(s)" in out
    assert gap_rows(out) == {
        (RAW, GAP_DAY, "missing_partition", "3", "0", "backfill_partition"),
        (SILVER, GAP_DAY, "missing_partition", "3", "0", "backfill_partition"),
    }
    assert files(april_project.root) == before


# -- plan and apply --------------------------------------------------------------------------


@both_backends
def test_dry_run_plan_writes_only_the_plan_file_and_prints_the_seed_fields(
    capsys: pytest.CaptureFixture[str], april_project: Project
) -> None:
    root = april_project.root
    before = files(root)
    code, out, err = run(capsys, root, "plan", "--partition", GAP_DAY, "--mode", "dry-run")
    assert code == 0, err
    assert f"Plan written to {PLAN_REL}" in out.splitlines()
    assert changed(before, files(root)) == [PLAN_REL]
    assert SEED_HINT not in out

    shown = plan_fields(out)
    assert [f for f in SEED_FIELDS if f not in shown] == []
    assert shown["partition_key"] == GAP_DAY
    assert shown["window_start"] == "2026-04-17T00:00:00+00:00"
    assert shown["window_end"] == "2026-04-17T23:59:59.999999+00:00"
    assert shown["mode"] == "dry-run"
    assert shown["upstream_manifest_id"] == "week06-seed-manifest-001"
    assert shown["expected_input_count"] == "3"
    assert shown["current_output_count"] == "0"
    assert shown["gap_reason"] == "missing_partition"
    assert shown["proposed_action"] == "backfill_partition"
    assert shown["idempotency_guard"] == "ticket_id + partition_key"
    assert shown["operator"] == "student-devbox"
    assert shown["target_assets"] == f"{RAW}\n{SILVER}"
    assert shown["report_path"] == PLAN_REL

    data = json.loads((root / PLAN_REL).read_text(encoding="utf-8"))
    assert re.fullmatch(r"plan-[0-9a-f]{16}", data["plan_id"])
    assert shown["plan_id"] == data["plan_id"]
    assert data["partition_key"] == GAP_DAY
    assert data["mode"] == "dry-run"
    assert data["expected_input_count"] == 3
    assert data["current_output_count"] == 0
    assert data["gap_reason"] == "missing_partition"
    assert data["target_assets"] == [RAW, SILVER]
    assert data["report_path"] == PLAN_REL
    assert [e["partition_key"] for e in data["partitions"]] == [GAP_DAY]


@both_backends
def test_same_state_gives_the_same_plan_id(
    capsys: pytest.CaptureFixture[str], april_project: Project
) -> None:
    root = april_project.root
    assert run(capsys, root, "plan", "--partition", GAP_DAY)[0] == 0
    first = json.loads((root / PLAN_REL).read_text(encoding="utf-8"))
    assert run(capsys, root, "plan", "--partition", GAP_DAY)[0] == 0
    second = json.loads((root / PLAN_REL).read_text(encoding="utf-8"))
    assert first["plan_id"] == second["plan_id"]
    assert first["state_fingerprint"] == second["state_fingerprint"]


@pytest.mark.slow
@both_backends
def test_apply_the_plan_then_the_gap_is_gone(
    capsys: pytest.CaptureFixture[str], april_project: Project
) -> None:
    root = april_project.root
    assert run(capsys, root, "plan", "--partition", GAP_DAY, "--mode", "dry-run")[0] == 0

    code, out, err = run(capsys, root, "apply", str(root / PLAN_REL))
    assert code == 0, (out, err)
    steps = {(r[0], r[1]): r for r in table_rows(out) if len(r) == 7 and r[0]}
    assert set(steps) == {(RAW, GAP_DAY), (SILVER, GAP_DAY)}
    assert all(r[2] == "published" and r[4] == "3" for r in steps.values()), steps
    assert "2 published" in out.splitlines()

    code, out, _ = run(
        capsys, root, "gaps", "--each", "--start", "2026-04-14", "--end", "2026-04-20"
    )
    assert code == 0
    assert "No gaps" in out
    assert not any(row[1] == GAP_DAY for row in gap_rows(out))

    code, out, _ = run(capsys, root, "status", "--start", "2026-04-14", "--end", "2026-04-20")
    assert code == 0
    assert status_summaries(out) == {RAW: "7 materialized", SILVER: "7 materialized"}


def _materialize_the_gap(root: Path, load: Callable[[Path], Project]) -> str:
    materialize(load(root), [GAP_DAY])
    return RAW


def _redeclare_the_gap(root: Path, load: Callable[[Path], Project]) -> str:
    set_manifest_partition(root, GAP_DAY, expected_record_count=4)
    return "manifest week06-seed-manifest-001 changed"


@both_backends
@pytest.mark.parametrize(
    "change",
    [
        pytest.param(_materialize_the_gap, id="materialized-meanwhile"),
        pytest.param(_redeclare_the_gap, id="manifest-changed"),
    ],
)
def test_apply_a_stale_plan_exits_4_and_names_the_partition(
    capsys: pytest.CaptureFixture[str],
    april_project: Project,
    load: Callable[[Path], Project],
    change: Callable[[Path, Callable[[Path], Project]], str],
) -> None:
    root = april_project.root
    assert run(capsys, root, "plan", "--partition", GAP_DAY)[0] == 0
    plan_id = json.loads((root / PLAN_REL).read_text(encoding="utf-8"))["plan_id"]
    phrase = change(root, load)
    before = files(root)

    code, out, err = run(capsys, root, "apply", str(root / PLAN_REL))
    assert code == 4, (out, err)
    assert f"Plan {plan_id} is stale" in err
    assert f"{RAW} {GAP_DAY}:" in err
    assert phrase in err
    assert "make a new plan" in err
    assert changed(before, files(root)) == []


@pytest.mark.slow
@both_backends
def test_apply_the_same_plan_twice_is_refused(
    capsys: pytest.CaptureFixture[str], april_project: Project
) -> None:
    root = april_project.root
    assert run(capsys, root, "plan", "--partition", GAP_DAY)[0] == 0
    assert run(capsys, root, "apply", str(root / PLAN_REL))[0] == 0
    code, _, err = run(capsys, root, "apply", str(root / PLAN_REL))
    assert code == 4
    assert "was already applied by run run-" in " ".join(err.split())
    assert "{" not in err  # no Python dict text


def _not_json(doc: dict[str, Any]) -> str:
    return "{not json"


def _missing_fields(doc: dict[str, Any]) -> str:
    doc = copy.deepcopy(doc)
    del doc["window_start"], doc["idempotency_guard"]
    return json.dumps(doc)


def _null_backfill_fields(doc: dict[str, Any]) -> str:
    doc = copy.deepcopy(doc)
    for part in (doc, *doc["partitions"]):
        part["window_end"] = None
        part["upstream_manifest_id"] = None
    return json.dumps(doc)


def _a_list(doc: dict[str, Any]) -> str:
    return "[]"


@both_backends
@pytest.mark.parametrize(
    ("content", "phrases"),
    [
        pytest.param(_not_json, ["is not valid JSON"], id="not-json"),
        pytest.param(
            _missing_fields,
            [
                "does not match the plan schema",
                "'window_start' is a required property",
                "'idempotency_guard' is a required property",
            ],
            id="missing-fields",
        ),
        pytest.param(
            _null_backfill_fields,
            ["not a backfill", f"{GAP_DAY}: missing window_end, upstream_manifest_id"],
            id="null-backfill-fields",
        ),
        pytest.param(_a_list, ["does not match the plan schema", "is not of type 'object'"]),
        pytest.param(None, ["Plan file not found"], id="no-such-file"),
    ],
)
def test_apply_a_bad_plan_file_exits_2_naming_the_problem(
    capsys: pytest.CaptureFixture[str],
    example_dir: Path,
    content: Callable[[dict[str, Any]], str] | None,
    phrases: list[str],
) -> None:
    assert run(capsys, example_dir, "plan", "--partition", GAP_DAY)[0] == 0
    good = json.loads((example_dir / PLAN_REL).read_text(encoding="utf-8"))
    bad = example_dir / "reports" / "bad_plan.json"
    if content is not None:
        bad.write_text(content(good), encoding="utf-8")
    before = files(example_dir)

    code, out, err = run(capsys, example_dir, "apply", str(bad))
    assert code == 2, (out, err)
    for phrase in phrases:
        assert phrase in err
    assert str(bad) in err or "not a backfill" in err
    assert "Traceback" not in err
    assert files(example_dir) == before
    assert not (example_dir / ".backfiller").exists()
    assert not (example_dir / "data" / "lake").exists()


@both_backends
def test_zero_expected_input_prints_the_seed_hint(
    capsys: pytest.CaptureFixture[str], example_dir: Path
) -> None:
    day = "2026-04-18"
    set_manifest_partition(example_dir, day, expected_record_count=0, input_files=[])

    code, out, _ = run(capsys, example_dir, "gaps", "--each", "--partition", day)
    assert code == 0
    assert gap_rows(out) == {
        (RAW, day, "no_expected_input", "0", "0", "nothing_to_do"),
        (SILVER, day, "no_expected_input", "0", "0", "nothing_to_do"),
    }

    code, out, _ = run(capsys, example_dir, "plan", "--partition", day, "--mode", "dry-run")
    assert code == 0
    assert f"{SEED_HINT} {day}" in out
    assert (
        "Expected input is 0: first confirm that the seed data really has records for "
        f"{day} (and that the manifest declares them)." in out.splitlines()
    )
    shown = plan_fields(out)
    assert shown["expected_input_count"] == "0"
    assert shown["gap_reason"] == "no_expected_input"
    assert shown["proposed_action"] == "nothing_to_do"
    assert shown["target_assets"] == "(none)"
    data = json.loads(
        (example_dir / f"reports/week06/backfill/backfill_plan_{day}.json").read_text("utf-8")
    )
    assert data["expected_input_count"] == 0
    assert data["target_assets"] == []

    # in a window, the hint names only the empty day
    code, out, _ = run(capsys, example_dir, "plan", "--start", GAP_DAY, "--end", day)
    assert code == 0
    assert f"{SEED_HINT} {day} (and" in out
    assert f"{SEED_HINT} {GAP_DAY}" not in out


# -- tracebacks, version ------------------------------------------------------------------


@pytest.mark.parametrize("debug", [True, False])
def test_debug_shows_the_traceback_only_when_asked(
    capsys: pytest.CaptureFixture[str], example_dir: Path, debug: bool
) -> None:
    argv = ["--project", str(example_dir), *(["--debug"] if debug else []), "plan", "--mode", "x"]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2
    assert "Unsupported backfill mode: 'x'" in err
    if debug:
        assert "Traceback (most recent call last)" in err
        assert "UnsupportedModeError" in err
    else:
        assert "Traceback" not in err
        assert "UnsupportedModeError" not in err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    out, _ = capsys.readouterr()
    assert out.strip() == f"backfiller, version {__version__}"
    assert __version__ == importlib.metadata.version("backfiller")


def test_unknown_option_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], example_dir: Path
) -> None:
    code, _, err = run(capsys, example_dir, "plan", "--bogus")
    assert code == 2
    assert "No such option" in err
    assert "--bogus" in err


# -- real processes ------------------------------------------------------------------------

FOO_MODE = ("plan", "--partition", GAP_DAY, "--mode", "foo")


@pytest.mark.slow
def test_console_script_version() -> None:
    proc = subprocess.run(
        [*backfiller_command(), "--version"],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=subprocess_env(),
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"backfiller, version {__version__}"


@pytest.mark.slow
def test_subprocess_unsupported_mode_exits_2(example_dir: Path) -> None:
    before = files(example_dir)
    proc = subprocess.run(
        [*backfiller_command(), "--project", str(example_dir), *FOO_MODE],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=subprocess_env(),
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "Unsupported backfill mode: 'foo' (supported: dry-run, apply)" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert files(example_dir) == before


@pytest.mark.slow
def test_python_dash_m_entry_point(example_dir: Path) -> None:
    before = files(example_dir)
    proc = subprocess.run(
        [sys.executable, "-m", "backfiller.cli.main", "--project", str(example_dir), *FOO_MODE],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=subprocess_env(),
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Unsupported backfill mode: 'foo' (supported: dry-run, apply)" in proc.stderr
    assert files(example_dir) == before


@pytest.mark.slow
@both_backends
def test_subprocess_bad_key_exits_2_and_a_good_one_writes_the_plan(example_dir: Path) -> None:
    command = [*backfiller_command(), "--project", str(example_dir), "plan", "--partition"]
    before = files(example_dir)
    proc = subprocess.run(
        [*command, "2026-02-30"],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=subprocess_env(),
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "YYYY-MM-DD" in proc.stderr
    assert files(example_dir) == before

    proc = subprocess.run(
        [*command, GAP_DAY],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=subprocess_env(),
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"Plan written to {PLAN_REL}" in proc.stdout
    assert changed(before, files(example_dir)) == [PLAN_REL]


# -- regressions: bugs found by these tests, fixed in src ------


@both_backends
@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["plan", "--partition", ""], id="plan-partition"),
        pytest.param(["plan", "--start", "", "--end", ""], id="plan-window"),
        pytest.param(["plan", "--partition", "", "--mode", "apply"], id="plan-apply"),
    ],
)
def test_empty_partition_key_is_bad_input(
    capsys: pytest.CaptureFixture[str], example_dir: Path, args: list[str]
) -> None:
    before = files(example_dir)
    code, _, err = run(capsys, example_dir, *args)
    assert code == 2
    assert "YYYY-MM-DD" in err
    assert files(example_dir) == before


@both_backends
def test_apply_a_directory_is_bad_input(
    capsys: pytest.CaptureFixture[str], example_dir: Path
) -> None:
    code, _, err = run(capsys, example_dir, "apply", str(example_dir / "data"))
    assert code == 2
    assert "unexpected error" not in err


def _edit_entry_key(doc: dict[str, Any], key: str) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    doc["partitions"][0]["partition_key"] = key
    return doc


def _edit_state_key(doc: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    doc["state"] = {"no-separator": {}}
    return doc


def _edit_target(doc: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    doc["partitions"][0]["target_assets"] = ["week06/no/such_asset"]
    return doc


@both_backends
@pytest.mark.parametrize(
    ("edit", "codes"),
    [
        pytest.param(
            lambda d: _edit_entry_key(d, "2026-04-16"),
            (2, 4),
            id="entry-key-outside-the-fingerprinted-state",
        ),
        pytest.param(lambda d: _edit_entry_key(d, "../x"), (2,), id="invalid-entry-key"),
        pytest.param(_edit_state_key, (2,), id="state-key-without-separator"),
        pytest.param(_edit_target, (2,), id="unknown-target-asset"),
    ],
)
def test_apply_an_edited_plan_is_refused_and_writes_nothing(
    capsys: pytest.CaptureFixture[str],
    example_dir: Path,
    edit: Callable[[dict[str, Any]], dict[str, Any]],
    codes: tuple[int, ...],
) -> None:
    assert run(capsys, example_dir, "plan", "--partition", GAP_DAY)[0] == 0
    plan = example_dir / PLAN_REL
    doc = json.loads(plan.read_text(encoding="utf-8"))
    plan.write_text(json.dumps(edit(doc), indent=2), encoding="utf-8")
    before = files(example_dir)

    code, out, err = run(capsys, example_dir, "apply", str(plan))
    assert code in codes, (code, out, err)
    assert "unexpected error" not in err
    assert files(example_dir) == before
    assert not (example_dir / "data" / "lake").exists()


# -- whole-project answers ------------------------------------------------------------------


@pytest.mark.slow
@both_backends
def test_gaps_without_options_looks_at_the_whole_range_and_says_so(
    capsys: pytest.CaptureFixture[str], april_project: Project
) -> None:
    root = april_project.root
    report = april_project.partition_report_path(RAW, "2026-04-15")
    report.unlink()  # another partition's report is missing, not the default one

    code, out, _ = run(capsys, root, "gaps", "--each")

    assert code == 0
    # the CLI's clock is the system's: the range ends at the last complete day
    first = april_project.scheme.keys(now=april_project.clock())[0]
    assert re.search(rf"Looked at {first} \.\. \d{{4}}-\d\d-\d\d \(\d+ partition\(s\)\)\.", out)
    assert "No gaps" not in out
    missing = [r for r in gap_rows(out) if r[2] == "missing_partition_report"]
    assert [(r[0], r[1]) for r in missing] == [(RAW, "2026-04-15")]


@both_backends
@pytest.mark.parametrize("bound", ["--start", "--end"])
def test_status_and_gaps_take_either_bound_alone(
    capsys: pytest.CaptureFixture[str], april_project: Project, bound: str
) -> None:
    first = april_project.scheme.keys(now=april_project.clock())[0]
    for command in ("status", "gaps"):
        code, out, err = run(capsys, april_project.root, command, bound, "2026-04-16")
        assert code == 0, (command, err)
    if bound == "--end":
        assert f"Looked at {first} .. 2026-04-16 (47 partition(s))." in out
    else:
        assert re.search(r"Looked at 2026-04-16 \.\. \d{4}-\d\d-\d\d ", out)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("def broken(:\n", "does not parse: invalid syntax at "),
        ("raise RuntimeError('boom')\n", "raised RuntimeError: boom"),
    ],
    ids=["syntax-error", "raises"],
)
def test_a_broken_assets_module_is_exit_2_without_a_traceback(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, source: str, message: str
) -> None:
    root = write_lab(tmp_path / "lab")
    (root / f"{LAB_MODULE}.py").write_text(source, encoding="utf-8")

    code, out, err = run(capsys, root, "status")

    assert code == 2
    assert message in " ".join(err.split())
    assert "Traceback" not in err + out


def test_debug_is_accepted_after_the_subcommand(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    root = write_lab(tmp_path / "lab")
    (root / f"{LAB_MODULE}.py").write_text("def broken(:\n", encoding="utf-8")

    code, _, err = run(capsys, root, "status", "--debug")

    assert code == 2
    assert "No such option" not in err
    assert "Traceback" in err


@both_backends
def test_status_and_gaps_use_the_same_word_for_undeclared_days(
    capsys: pytest.CaptureFixture[str], april_project: Project
) -> None:
    # May is declared by no manifest: gaps says no_expected_input, so must status
    code, out, _ = run(capsys, april_project.root, "status", "--start", "2026-05-01",
                       "--end", "2026-05-03")  # fmt: skip
    assert code == 0
    assert status_summaries(out) == {RAW: "3 no_expected_input", SILVER: "3 no_expected_input"}
    code, out, _ = run(capsys, april_project.root, "gaps", "--each", "--start", "2026-05-01",
                       "--end", "2026-05-03")  # fmt: skip
    assert {row[2] for row in gap_rows(out)} == {"no_expected_input"}


@pytest.mark.slow
@both_backends
def test_a_run_ends_by_naming_its_checks_evidence_holds_and_the_next_command(
    capsys: pytest.CaptureFixture[str], april_project: Project
) -> None:
    root = april_project.root
    assert run(capsys, root, "plan", "--partition", GAP_DAY, "--mode", "dry-run")[0] == 0
    code, out, _ = run(capsys, root, "apply", str(root / PLAN_REL))
    assert code == 0
    lines = out.splitlines()
    assert any(re.fullmatch(r"checks: \d+ ran on 2 partition\(s\) — \d+ passed, 0 failed, \d+ "
                            r"warned", line) for line in lines), out  # fmt: skip
    assert any(line.startswith("evidence: reports/week06/evidence/") for line in lines)
    assert "held: nothing (no published partition was replaced)" in lines

    code, out, _ = run(capsys, root, "rerun", "--asset", RAW, "--partition", GAP_DAY)
    assert code == 0
    lines = out.splitlines()
    held = [line for line in lines if line.startswith("held until release: ")]
    assert (
        held
        and f"{SILVER} {GAP_DAY}" in held[0]
        and f"week07/retrieval_index {GAP_DAY}" in (held[0])
    )
    assert any(re.fullmatch(r"next: backfiller release --run run-\S+", line) for line in lines)


@both_backends
def test_gaps_filters_by_reason_and_need_of_action_and_says_what_it_left_out(
    capsys: pytest.CaptureFixture[str], april_project: Project
) -> None:
    root = april_project.root
    window = ("--start", "2026-04-14", "--end", "2026-05-02")
    code, out, _ = run(capsys, root, "gaps", "--each", *window, "--needs-action")
    assert code == 0
    rows = gap_rows(out)
    assert {r[2] for r in rows} == {"missing_partition"}  # the gap day; May needs nothing
    assert "4 gap(s) left out by the filters." in out  # raw and silver on 05-01 and 05-02
    code, out, _ = run(capsys, root, "gaps", "--each", *window, "--reason", "no_expected_input")
    assert {r[2] for r in gap_rows(out)} == {"no_expected_input"}
    assert "No gaps" not in out

    code, _, err = run(capsys, root, "gaps", "--each", "--reason", "missing_partiton")
    assert code == 2
    assert "Unknown gap reason 'missing_partiton' (did you mean 'missing_partition'?)" in err


def test_gaps_print_ranges_by_default_and_each_partition_on_request(
    capsys: pytest.CaptureFixture[str], april_project: Project
) -> None:
    root = april_project.root
    window = ("--start", "2026-04-14", "--end", "2026-05-03")
    code, out, err = run(capsys, root, "gaps", *window)
    assert code == 0, err
    # the gap day, then the declared but unmaterialized rest of April, then undeclared May
    assert "28 gap(s) in 6 range(s)" in out
    lines = [line.rstrip() for line in out.splitlines()]
    for asset in (RAW, SILVER):
        at = lines.index(asset)
        assert lines[at + 1 : at + 4] == [
            f"  {GAP_DAY} (1 partition)  missing_partition -> backfill_partition",
            "  2026-04-21 .. 2026-04-30 (10 partitions)  missing_partition -> backfill_partition",
            "  2026-05-01 .. 2026-05-03 (3 partitions)  no_expected_input -> nothing_to_do",
        ]

    code, out, _ = run(capsys, root, "gaps", *window, "--each")
    assert code == 0
    assert len(gap_rows(out)) == 28
    assert ("2026-05-02" in out) and ("(3 partitions)" not in out)
