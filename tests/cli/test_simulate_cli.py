"""``backfiller simulate``, the dry-run rule around it, and ``backfiller strategy``: exit codes,
messages, and what each command writes (and, on bad input, that it writes nothing — to the
project folder nor to a PostgreSQL ledger). The commands run on both ledgers."""

from __future__ import annotations

import json
import re
from pathlib import Path

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
from backfiller.lab.simulation import active_simulations

RAW = "week06/ingestion/raw_ticket_events_partitioned"
SILVER = "week06/silver/ticket_fact_partitioned"
MANIFEST_ID = "week06-seed-manifest-001"
MANIFEST = f"data/manifests/{MANIFEST_ID}.json"
KEY = "2026-04-15"
CHECK = "in_window(event_time)"
STRATEGY = "docs/blueprints/week06/week06-partition-backfill-strategy.md"
SIM_ID = re.compile(r"simulation (sim-[0-9a-f]{16})")


@pytest.fixture(autouse=True)
def _cli_environment(monkeypatch: pytest.MonkeyPatch, project_environ: dict[str, str]) -> None:
    """A wide console, no project settings from the environment but the ledger backend's (a
    PostgreSQL ledger's URL)."""
    cli_environment(monkeypatch, project_environ)


def files(root: Path) -> dict[str, str]:
    """The project folder's files (the SQLite ledger among them, not its WAL side files) and a
    PostgreSQL ledger's tables, as digests."""
    found = {
        k: v
        for k, v in tree_fingerprint(root).items()
        if "__pycache__" not in k and not k.endswith(("-wal", "-shm"))
    }
    return found | environ_ledger_fingerprint()


def changed(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))


def run(capsys: pytest.CaptureFixture[str], root: Path, *args: str) -> tuple[int, str, str]:
    code = main(["--project", str(root), *args])
    out, err = capsys.readouterr()
    return code, out, err


def started(out: str) -> str:
    match = SIM_ID.search(out)
    assert match, out
    return match.group(1)


# -- each simulation, start to undo ---------------------------------------------------------


@both_backends
def test_move_report_then_gaps_then_undo(
    capsys: pytest.CaptureFixture[str], april_project: Project
) -> None:
    root = april_project.root
    report = april_project.partition_report_path(RAW, KEY)
    original = report.read_bytes()
    code, out, err = run(
        capsys, root, "simulate", "move-report", "--asset", RAW, "--partition", KEY
    )
    assert code == 0, err
    sim = started(out)
    assert "the gap it makes: missing_partition_report" in out
    assert f"undo it: backfiller simulate undo {sim}" in out

    code, out, _ = run(capsys, root, "gaps", "--partition", KEY)
    assert code == 0
    assert "missing_partition_report" in out and "reissue_partition_report" in out

    code, out, _ = run(capsys, root, "simulate", "list")
    assert code == 0
    assert sim in out and "move_report" in out and "1 active simulation(s)" in out

    code, out, _ = run(capsys, root, "simulate", "undo", sim)
    assert code == 0
    assert f"undone {sim}: report moved back" in out
    assert report.read_bytes() == original
    code, out, _ = run(capsys, root, "gaps", "--partition", KEY)
    assert "No gaps" in out
    code, out, _ = run(capsys, root, "simulate", "list")
    assert out.strip() == "No active simulation."
    code, out, _ = run(capsys, root, "simulate", "list", "--all")
    assert sim in out and "moved back" in out


@pytest.mark.slow
@both_backends
def test_broken_manifest_gaps_show_it_and_apply_refuses_naming_the_fields(
    capsys: pytest.CaptureFixture[str], april_project: Project
) -> None:
    root = april_project.root
    manifest = (root / MANIFEST).read_bytes()
    code, out, err = run(
        capsys,
        root,
        "simulate",
        "broken-manifest",
        "--manifest",
        MANIFEST_ID,
        "--drop-field",
        "expected_record_count",
        "--drop-field",
        "input_files",
    )
    assert code == 0, err
    sim = started(out)

    code, out, _ = run(capsys, root, "gaps", "--each", "--partition", KEY)
    assert code == 0
    assert out.count("manifest_changed") == 2
    assert "partitions[].expected_record_count" in out and "partitions[].input_files" in out

    code, out, err = run(capsys, root, "plan", "--partition", KEY)
    assert code == 0, err
    assert "manifest_changed" in out
    assert "confirm that the seed data" not in out  # not the seed's hint: the manifest is broken
    plan = json.loads((root / f"reports/week06/backfill/backfill_plan_{KEY}.json").read_text())
    assert plan["reason"] == f"[made during simulation(s) {sim}]"
    before = files(root)
    plan_file = f"reports/week06/backfill/backfill_plan_{KEY}.json"

    code, _, err = run(
        capsys, root, "apply", str(root / plan_file), "--allow-apply-during-simulation"
    )
    assert code == 2
    assert "missing field: partitions[].expected_record_count (every partition)" in err
    assert "missing field: partitions[].input_files (every partition)" in err
    code, _, err = run(capsys, root, "rerun", "--asset", SILVER, "--partition", KEY)
    assert code == 2 and "missing field" in err
    assert changed(before, files(root)) == []

    assert run(capsys, root, "simulate", "undo", sim)[0] == 0
    assert (root / MANIFEST).read_bytes() == manifest
    assert "No gaps" in run(capsys, root, "gaps", "--partition", KEY)[1]


@both_backends
def test_failing_check_rerun_exits_3_and_holds_consumers(
    capsys: pytest.CaptureFixture[str], april_project: Project
) -> None:
    root = april_project.root
    fingerprint = april_project.store.fingerprint(SILVER, KEY)
    code, out, err = run(
        capsys,
        root,
        "simulate",
        "failing-check",
        "--asset",
        SILVER,
        "--check",
        CHECK,
        "--partition",
        KEY,
    )
    assert code == 0, err
    sim = started(out)
    code, out, err = run(capsys, root, "rerun", "--asset", SILVER, "--partition", KEY)
    assert code == 3
    assert "failed blocking checks; the previous data stays visible" in err
    assert "simulated failure" in out
    assert april_project.store.fingerprint(SILVER, KEY) == fingerprint
    code, out, _ = run(capsys, root, "ready", "week07/retrieval_index", KEY)
    assert code == 1 and "checks failed" in out
    code, out, _ = run(capsys, root, "gaps", "--partition", KEY)
    assert "check_failed" in out

    assert run(capsys, root, "simulate", "undo", sim)[0] == 0
    code, _, err = run(capsys, root, "rerun", "--asset", SILVER, "--partition", KEY)
    assert code == 0, err


# -- plans are dry runs while a simulation is active -----------------------------------------


@pytest.mark.slow
@both_backends
def test_plan_mode_apply_is_refused_naming_the_active_simulations(
    capsys: pytest.CaptureFixture[str], april_project: Project
) -> None:
    root = april_project.root
    sim = started(
        run(capsys, root, "simulate", "move-report", "--asset", SILVER, "--partition", KEY)[1]
    )
    before = files(root)
    code, out, err = run(capsys, root, "plan", "--partition", GAP_DAY, "--mode", "apply")
    assert code == 2
    assert f"--mode apply refused: simulation(s) {sim} are active" in err
    assert "--allow-apply-during-simulation" in err
    assert "Plan written" not in out
    assert changed(before, files(root)) == []

    code, out, err = run(
        capsys,
        root,
        "plan",
        "--partition",
        GAP_DAY,
        "--mode",
        "apply",
        "--allow-apply-during-simulation",
    )
    assert code == 0, err
    plan = json.loads((root / f"reports/week06/backfill/backfill_plan_{GAP_DAY}.json").read_text())
    assert plan["mode"] == "apply"
    assert plan["reason"] == (
        f"[made during simulation(s) {sim}; apply allowed by --allow-apply-during-simulation]"
    )
    assert "published" in out
    assert april_project.store.partition_counts(RAW).get(GAP_DAY) == 3


@pytest.mark.slow
@both_backends
def test_apply_of_a_dry_run_plan_is_refused_during_a_simulation(
    capsys: pytest.CaptureFixture[str], april_project: Project
) -> None:
    root = april_project.root
    assert run(capsys, root, "plan", "--partition", GAP_DAY)[0] == 0
    plan_file = str(root / f"reports/week06/backfill/backfill_plan_{GAP_DAY}.json")
    sim = started(
        run(
            capsys,
            root,
            "simulate",
            "failing-check",
            "--asset",
            RAW,
            "--check",
            "idempotency_key_unique",
            "--partition",
            KEY,
        )[1]
    )
    before = files(root)
    code, _, err = run(capsys, root, "apply", plan_file)
    assert code == 2
    assert f"simulation(s) {sim} are active" in err
    assert changed(before, files(root)) == []
    code, out, err = run(capsys, root, "apply", plan_file, "--allow-apply-during-simulation")
    assert code == 0, err
    assert "2 published" in out


# -- bad input: exit 2, nothing written -----------------------------------------------------


@both_backends
@pytest.mark.parametrize(
    ("args", "phrases"),
    [
        pytest.param(
            ["move-report", "--asset", "nope", "--partition", KEY],
            ["Unknown asset 'nope'", f"known assets: {RAW}, {SILVER}"],
            id="move-unknown-asset",
        ),
        pytest.param(
            ["move-report", "--asset", RAW, "--partition", "2026-04-31"],
            ["Invalid partition key '2026-04-31'", "YYYY-MM-DD"],
            id="move-bad-key",
        ),
        pytest.param(
            ["move-report", "--asset", RAW, "--partition", GAP_DAY],
            [f"No partition report for {RAW} {GAP_DAY}", "nothing to move"],
            id="move-no-report",
        ),
        pytest.param(
            ["broken-manifest", "--manifest", "m-x", "--drop-field", "source"],
            [f"Unknown manifest 'm-x' (known: {MANIFEST_ID})"],
            id="manifest-unknown",
        ),
        pytest.param(
            ["broken-manifest", "--manifest", MANIFEST_ID, "--drop-field", "count"],
            ["Unknown manifest field(s): count", "expected_record_count"],
            id="manifest-unknown-field",
        ),
        pytest.param(
            ["broken-manifest", "--manifest", MANIFEST_ID],
            ["Missing option '--drop-field'"],
            id="manifest-no-field",
        ),
        pytest.param(
            ["failing-check", "--asset", SILVER, "--check", "nope", "--partition", KEY],
            [f"{SILVER} has no check 'nope'", "its checks: idempotency_key_unique"],
            id="check-unknown",
        ),
        pytest.param(
            ["failing-check", "--asset", "x", "--check", CHECK, "--partition", KEY],
            ["Unknown asset 'x'"],
            id="check-unknown-asset",
        ),
        pytest.param(
            ["failing-check", "--asset", SILVER, "--check", CHECK, "--partition", "soon"],
            ["Invalid partition key 'soon'"],
            id="check-bad-key",
        ),
        pytest.param(
            ["undo", "sim-0123456789abcdef"],
            ["Unknown simulation 'sim-0123456789abcdef' (active: none)"],
            id="undo-unknown",
        ),
    ],
)
def test_bad_simulate_input_exits_2_and_writes_nothing(
    capsys: pytest.CaptureFixture[str], april_project: Project, args: list[str], phrases: list[str]
) -> None:
    root = april_project.root
    before = files(root)
    code, out, err = run(capsys, root, "simulate", *args)
    assert code == 2, (out, err)
    for phrase in phrases:
        assert phrase in err
    assert "Traceback" not in err
    assert changed(before, files(root)) == []
    assert active_simulations(april_project.config.state_dir) == []


# -- strategy -------------------------------------------------------------------------------


@both_backends
def test_strategy_writes_the_seed_section_with_gaps_and_holds(
    capsys: pytest.CaptureFixture[str], april_project: Project
) -> None:
    root = april_project.root
    run(capsys, root, "simulate", "move-report", "--asset", RAW, "--partition", KEY)
    code, out, err = run(capsys, root, "strategy")
    assert code == 0, err
    assert out.strip() == f"Strategy written to {STRATEGY}"
    text = (root / STRATEGY).read_text(encoding="utf-8")
    assert text.startswith("<!-- generated by `backfiller strategy`")
    assert "do not edit" in text.splitlines()[0]
    section = text.split("## Week06 recovery strategy\n", 1)[1].split("\n## ", 1)[0]
    assert "- default partition: `2026-04-17`" in section
    assert f"- assets allowed to backfill: `{RAW}`, `{SILVER}`" in section
    assert f"- objects forbidden to delete directly: `{SILVER}@2026-03-01`" in section
    assert "- dry-run report path: `reports/week06/backfill`" in section
    assert "- checks that must run after a backfill:" in section
    assert f"  - `{SILVER}`: `idempotency_key_unique`, `in_window(event_time)`" in section
    gaps = text.split("## Current gaps", 1)[1].split("\n## ", 1)[0]
    # March-April are declared; 6 April days are materialized: 55 days x 2 assets are missing
    assert (
        "| missing_partition | 110 | 55 | 2026-03-01, 2026-03-02, 2026-03-03, 2026-03-04, "
        "2026-03-05 … | backfill_partition |"
    ) in gaps
    assert f"| missing_partition_report | 1 | 1 | {KEY} | reissue_partition_report |" in gaps
    assert "## Open holds" in text
    assert "## Active gap simulations" in text and "missing_partition_report" in text


@both_backends
def test_strategy_output_option_and_holds(
    capsys: pytest.CaptureFixture[str], april_project: Project, tmp_path: Path
) -> None:
    root = april_project.root
    run(capsys, root, "simulate", "failing-check", "--asset", SILVER, "--check", CHECK,
        "--partition", KEY)  # fmt: skip
    assert run(capsys, root, "rerun", "--asset", SILVER, "--partition", KEY)[0] == 3
    target = tmp_path / "out" / "strategy.md"
    code, _, err = run(capsys, root, "strategy", "--output", str(target))
    assert code == 0, err
    text = target.read_text(encoding="utf-8")
    holds = text.split("## Open holds", 1)[1].split("\n## ", 1)[0]
    assert f"| week07/retrieval_index | {KEY} | consumer |" in holds
    assert "check_failed" in text
    assert not (root / STRATEGY).exists()


@both_backends
def test_strategy_to_a_folder_exits_2_and_writes_nothing(
    capsys: pytest.CaptureFixture[str], april_project: Project
) -> None:
    root = april_project.root
    before = files(root)
    code, _, err = run(capsys, root, "strategy", "--output", str(root / "data"))
    assert code == 2
    assert "is a folder" in err
    code, _, err = run(capsys, root, "strategy", "--output", str(root / MANIFEST / "x.md"))
    assert code == 2
    assert "Cannot write the strategy" in err
    assert changed(before, files(root)) == []


def test_demo_has_the_lesson_option(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["demo", "--help"])
    out, _ = capsys.readouterr()
    assert code == 0
    assert "--lesson" in out
