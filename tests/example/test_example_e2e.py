"""End to end on the bundled example (examples/omnisupport): the seed's own command verbatim,
its environment variables, the demo, the whole story down to the Delta table, and the data.

The demo (~15 s) runs once per module, in a real process; the story test applies its plan in a
copy of that folder.

The seed's command and the story run on both ledgers: on PostgreSQL the example reads
``WEEK06_BACKFILLER_LEDGER_URL`` (its ``[env] prefix``), and the story's history is made in a
PostgreSQL ledger by the function the demo uses. The demo itself always starts a fresh example on
its own SQLite ledger (it ignores the caller's ``WEEK06_*`` variables), so its tests run once.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import GAP_DAY, both_backends, database_fingerprint, tree_fingerprint
from deltalake import DeltaTable

from backfiller import load_project
from backfiller.cli.main import main
from backfiller.lab.example import lay_out_example, materialize_history

pytestmark = pytest.mark.slow  # end to end: the demo, the lesson, subprocesses

RAW = "week06/ingestion/raw_ticket_events_partitioned"
SILVER = "week06/silver/ticket_fact_partitioned"
BY_LINE = "week06/silver/ticket_fact_by_product_line"  # of the product_lines project
MANIFEST = "data/manifests/week06-seed-manifest-001.json"
PLAN_REL = f"reports/week06/backfill/backfill_plan_{GAP_DAY}.json"
SEED_COMMAND = ["-m", "pipelines.data_factory.backfill_plan", "--partition", GAP_DAY]
SEED_DAYS = [(date(2026, 3, 1) + timedelta(days=i)).isoformat() for i in range(61)]


# -- helpers -------------------------------------------------------------------------------


def files(root: Path, ledger: dict[str, str] | None = None) -> dict[str, str]:
    """``tree_fingerprint`` without Python's bytecode caches and SQLite's WAL side files; and
    the tables of the PostgreSQL ledger ``ledger`` names (the backend's environment), if any."""
    found = {
        k: v
        for k, v in tree_fingerprint(root).items()
        if "__pycache__" not in k and not k.endswith(("-wal", "-shm"))
    }
    url = (ledger or {}).get("WEEK06_BACKFILLER_LEDGER_URL")
    if url:
        found.update({f"ledger table {k}": v for k, v in database_fingerprint(url).items()})
    return found


def changed(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))


def seed_env(**extra: str) -> dict[str, str]:
    """The caller's environment without the seed's WEEK06_* variables (plus ``extra``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEEK06_")}
    env.update(extra)
    return env


def run_python(cwd: Path, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        check=False,
    )


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def table_fields(out: str) -> dict[str, str]:
    """The first cell -> second cell of the two-column rows of rich tables in ``out``."""
    fields: dict[str, str] = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.rstrip().split("│")[1:-1]]
        if line.startswith("│") and len(cells) == 2 and cells[0]:
            fields.setdefault(cells[0], cells[1])
    return fields


def backfiller_command() -> list[str]:
    script = shutil.which("backfiller", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "backfiller.cli.main"]


# -- the seed's command, verbatim --------------------------------------------------------------


@both_backends
def test_seed_command_verbatim_writes_exactly_the_plan(
    example_dir: Path, project_environ: dict[str, str]
) -> None:
    before = files(example_dir, project_environ)
    proc = run_python(
        example_dir, [*SEED_COMMAND, "--mode", "dry-run"], seed_env(**project_environ)
    )
    assert proc.returncode == 0, proc.stderr
    assert PLAN_REL in proc.stdout
    assert f"Plan written to {PLAN_REL}" in proc.stdout.splitlines()

    # it wrote nothing else: exactly one file added under the example folder, nothing to a
    # PostgreSQL ledger
    after = files(example_dir, project_environ)
    assert changed(before, after) == [PLAN_REL]
    assert PLAN_REL not in before

    plan = read_json(example_dir / PLAN_REL)
    assert plan["partition_key"] == "2026-04-17"
    assert plan["window_start"] == "2026-04-17T00:00:00+00:00"
    assert plan["window_end"] == "2026-04-17T23:59:59.999999+00:00"
    assert plan["mode"] == "dry-run"
    assert plan["upstream_manifest_id"] == "week06-seed-manifest-001"
    assert plan["expected_input_count"] == 3
    assert plan["current_output_count"] == 0
    assert plan["gap_reason"] == "missing_partition"
    assert plan["proposed_action"] == "backfill_partition"
    assert plan["idempotency_guard"] == "ticket_id + partition_key"
    assert plan["target_assets"] == [RAW, SILVER]
    assert plan["report_path"] == PLAN_REL
    assert "week07/retrieval_index" in plan["downstream_impact"]
    assert "until checks pass" in plan["downstream_impact"]
    assert plan["operator"] == "student-devbox"
    (entry,) = plan["partitions"]
    assert entry["partition_key"] == "2026-04-17"
    assert entry["expected_input_count"] == 3
    assert {g["asset"]: g["gap_reason"] for g in entry["asset_gaps"]} == {
        RAW: "missing_partition",
        SILVER: "missing_partition",
    }


@both_backends
def test_seed_report_dir_variable_moves_the_plan(
    example_dir: Path, project_environ: dict[str, str]
) -> None:
    before = files(example_dir, project_environ)
    env = seed_env(WEEK06_REPORT_DIR="reports/alt", **project_environ)
    proc = run_python(example_dir, [*SEED_COMMAND, "--mode", "dry-run"], env)
    assert proc.returncode == 0, proc.stderr
    alt = f"reports/alt/backfill/backfill_plan_{GAP_DAY}.json"
    assert f"Plan written to {alt}" in proc.stdout
    assert changed(before, files(example_dir, project_environ)) == [alt]
    assert not (example_dir / "reports" / "week06").exists()
    assert read_json(example_dir / alt)["report_path"] == alt


@both_backends
@pytest.mark.parametrize(
    ("process_env", "planned"),
    [
        pytest.param({}, "2026-04-16", id="env-file"),
        pytest.param(
            {"WEEK06_DEFAULT_PARTITION": "2026-04-15"}, "2026-04-15", id="process-env-wins"
        ),
    ],
)
def test_seed_default_partition_from_env_local(
    example_dir: Path, process_env: dict[str, str], planned: str, project_environ: dict[str, str]
) -> None:
    env_local = example_dir / "infra" / "env" / ".env.local"
    env_local.write_text("WEEK06_DEFAULT_PARTITION=2026-04-16\n", encoding="utf-8")
    before = files(example_dir, project_environ)

    proc = run_python(
        example_dir,
        ["-m", "pipelines.data_factory.backfill_plan", "--mode", "dry-run"],
        seed_env(**process_env, **project_environ),
    )
    assert proc.returncode == 0, proc.stderr
    rel = f"reports/week06/backfill/backfill_plan_{planned}.json"
    assert f"Plan written to {rel}" in proc.stdout
    assert changed(before, files(example_dir, project_environ)) == [rel]
    plan = read_json(example_dir / rel)
    assert plan["partition_key"] == planned
    assert plan["window_start"] == f"{planned}T00:00:00+00:00"
    # the manifest's count for that day, not the gap day's 3
    manifest = read_json(example_dir / MANIFEST)
    (declared,) = [p for p in manifest["partitions"] if p["partition_key"] == planned]
    assert plan["expected_input_count"] == declared["expected_record_count"] != 3


# -- the demo ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoRun:
    folder: Path
    returncode: int
    stdout: str
    stderr: str


def demo_env() -> dict[str, str]:
    """Without COLUMNS: output that is not a terminal gets rich's default width (80)."""
    env = seed_env()
    env.pop("COLUMNS", None)
    env.pop("LINES", None)
    return env


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    folder = tmp_path_factory.mktemp("demo") / "demo"
    proc = subprocess.run(
        [*backfiller_command(), "demo", "--dir", str(folder)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=demo_env(),
        timeout=600,
        check=False,
    )
    return DemoRun(folder, proc.returncode, proc.stdout, proc.stderr)


def test_demo_shows_the_gap_and_leaves_the_plan(demo_run: DemoRun) -> None:
    assert demo_run.returncode == 0, demo_run.stderr
    out = demo_run.stdout
    assert "missing" in out
    assert f"{RAW}  (60 materialized, 1 missing_partition)" in out
    assert f"{SILVER}  (60 materialized, 1 missing_partition)" in out
    assert "succeeded, 120 partition writes" in out

    shown = table_fields(out)
    assert shown["partition_key"] == GAP_DAY
    assert shown["mode"] == "dry-run"
    assert shown["expected_input_count"] == "3"
    assert shown["current_output_count"] == "0"
    assert shown["gap_reason"] == "missing_partition"

    plan_file = demo_run.folder / PLAN_REL
    assert plan_file.is_file()
    plan = read_json(plan_file)
    assert plan["partition_key"] == GAP_DAY
    assert plan["expected_input_count"] == 3
    assert plan["mode"] == "dry-run"
    assert plan["report_path"] == PLAN_REL
    assert shown["plan_id"] == plan["plan_id"]


def test_demo_adds_the_product_lines_backfills_a_line_added_later_and_refuses_its_removal(
    demo_run: DemoRun,
) -> None:
    """Step 5: the product lines are a dynamic dimension the demo adds values to, as
    ``partitions add`` does; a line launched later is backfilled over the week; removing it is
    refused while its cells hold published data, then done explicitly — all of it recorded."""
    assert demo_run.returncode == 0, demo_run.stderr
    out = " ".join(demo_run.stdout.split())  # the console is 80 wide: lines wrap
    step = out.split("5. The same gap by product line", 1)[1]
    shown = [
        "partitions add --dimension product_line --value billing --value voice --value chat",
        "added to product_line: billing, voice, chat",
        f"plan --partition {GAP_DAY}",
        "added to product_line: enterprise",
        f"gaps --start 2026-04-11 --end {GAP_DAY}",
        "refused (exit 2): Published data in the partitions of: enterprise (1 asset(s))",
        "--allow-published",
        "removed from product_line: enterprise",
        "Values added and removed",
    ]
    positions = [step.find(text) for text in shown]
    assert -1 not in positions, [t for t, p in zip(shown, positions, strict=True) if p < 0]
    assert positions == sorted(positions)

    project = load_project(demo_run.folder / "product_lines")
    reader = project.reader()
    events = reader.dimensions.events("product_line")
    assert [(e.verb.value, e.value, e.published) for e in events] == [
        ("add", "billing", 0),
        ("add", "voice", 0),
        ("add", "chat", 0),
        ("add", "enterprise", 0),
        ("remove", "enterprise", 1),
    ]
    cells = project.scheme_of(BY_LINE).key_range("2026-04-11|billing", f"{GAP_DAY}|chat")
    assert len(cells) == 21
    assert all(reader.partitions.get(BY_LINE, k) is not None for k in cells)
    new = [r for r in reader.partitions.all(BY_LINE) if r.partition_key.endswith("|enterprise")]
    assert len(new) == 7 and all(r.data_version is not None for r in new)
    with project.ledger() as ledger:
        assert ledger.holds.all() == []


def test_demo_refuses_a_non_empty_folder(demo_run: DemoRun) -> None:
    before = files(demo_run.folder)
    assert before  # the first run filled it
    proc = subprocess.run(
        [*backfiller_command(), "demo", "--dir", str(demo_run.folder)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=demo_env(),
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "is not empty" in proc.stderr
    assert files(demo_run.folder) == before


def test_demo_next_step_command_is_on_one_line(demo_run: DemoRun) -> None:
    assert demo_run.returncode == 0, demo_run.stderr
    plan = demo_run.folder / PLAN_REL
    command = f"backfiller --project {demo_run.folder} apply {plan}"
    assert command in [line.strip() for line in demo_run.stdout.splitlines()]


def _story(demo_run: DemoRun, tmp_path: Path, ledger: dict[str, str]) -> Path:
    """The demo's end state: on SQLite, a copy of the demo's folder; on PostgreSQL (the demo
    keeps to SQLite), the same history made in the PostgreSQL ledger by the demo's own
    function, and the dry-run plan of the gap from the seed's command."""
    if not ledger:
        assert demo_run.returncode == 0, demo_run.stderr
        return Path(shutil.copytree(demo_run.folder, tmp_path / "story"))
    root = lay_out_example(tmp_path / "story")
    project = load_project(root, environ=ledger)
    assert project.config.ledger_url == ledger["WEEK06_BACKFILLER_LEDGER_URL"]
    keys = [k for k in project.scheme.key_range("2026-03-01", "2026-04-30") if k != GAP_DAY]
    result = materialize_history(project, keys, reason="demo: the history before the gap")
    assert result.state.value == "succeeded", [s.error for s in result.steps if s.error]
    proc = run_python(root, [*SEED_COMMAND, "--mode", "dry-run"], seed_env(**ledger))
    assert proc.returncode == 0, proc.stderr
    return root


@both_backends
def test_the_full_story(
    demo_run: DemoRun,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    project_environ: dict[str, str],
) -> None:
    root = _story(demo_run, tmp_path, project_environ)
    monkeypatch.setenv("COLUMNS", "250")
    for name in [n for n in os.environ if n.startswith("WEEK06_")]:
        monkeypatch.delenv(name)
    for name, value in project_environ.items():
        monkeypatch.setenv(name, value)

    code = main(["--project", str(root), "apply", str(root / PLAN_REL)])
    out, err = capsys.readouterr()
    assert code == 0, (out, err)
    assert "2 published" in out

    code = main(["--project", str(root), "status", "--start", "2026-03-01", "--end", "2026-04-30"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "61 partitions 2026-03-01 .. 2026-04-30" in out
    assert f"{RAW}  (61 materialized)" in out
    assert f"{SILVER}  (61 materialized)" in out
    assert "missing" not in out.split("█ materialized")[0]

    code = main(["--project", str(root), "gaps", "--start", "2026-03-01", "--end", "2026-04-30"])
    out, _ = capsys.readouterr()
    assert code == 0
    assert "No gaps" in out

    silver = DeltaTable(str(root / "data" / "lake" / SILVER)).to_pyarrow_table(
        filters=[("partition_key", "=", GAP_DAY)]
    )
    assert silver.num_rows == 3
    ids = silver.column("ticket_id").to_pylist()
    assert len(set(ids)) == len(ids) == 3
    assert sorted(ids) == ["TCK-20260417-0001", "TCK-20260417-0002", "TCK-20260417-0003"]
    assert set(silver.column("partition_key").to_pylist()) == {GAP_DAY}
    assert set(silver.column("manifest_id").to_pylist()) == {"week06-seed-manifest-001"}
    seed_lines = (root / "data/seed/ticket_events" / f"{GAP_DAY}.jsonl").read_text("utf-8")
    assert sorted(ids) == sorted(json.loads(line)["ticket_id"] for line in seed_lines.splitlines())

    raw = DeltaTable(str(root / "data" / "lake" / RAW)).to_pyarrow_table(
        filters=[("partition_key", "=", GAP_DAY)]
    )
    assert sorted(raw.column("ticket_id").to_pylist()) == sorted(ids)


# -- the example data --------------------------------------------------------------------------


def test_seed_files_match_the_manifest(example_dir: Path) -> None:
    manifest = read_json(example_dir / MANIFEST)
    assert manifest["manifest_id"] == "week06-seed-manifest-001"
    parts = manifest["partitions"]
    assert [p["partition_key"] for p in parts] == SEED_DAYS

    seed_dir = example_dir / "data" / "seed" / "ticket_events"
    on_disk = sorted(p.name for p in seed_dir.iterdir())
    assert on_disk == [f"{day}.jsonl" for day in SEED_DAYS]
    assert len(on_disk) == 61

    total = 0
    for part in parts:
        (declared,) = part["input_files"]
        assert declared["path"] == f"data/seed/ticket_events/{part['partition_key']}.jsonl"
        data = (example_dir / declared["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == declared["sha256"], declared["path"]
        events = [json.loads(line) for line in data.decode("utf-8").splitlines()]
        assert len(events) == part["expected_record_count"]
        assert all(e["event_time"].startswith(part["partition_key"]) for e in events)
        total += len(events)
    counts = {p["partition_key"]: p["expected_record_count"] for p in parts}
    assert counts[GAP_DAY] == 3
    assert total == 507


def test_regenerating_the_seed_is_byte_identical(example_dir: Path) -> None:
    before = files(example_dir)
    assert sum(1 for k in before if k.startswith("data/seed/ticket_events/")) == 61
    shutil.rmtree(example_dir / "data" / "seed")
    shutil.rmtree(example_dir / "data" / "manifests")

    proc = run_python(example_dir, ["-m", "pipelines.data_factory.seed_data"], seed_env())
    assert proc.returncode == 0, proc.stderr
    assert "wrote 61 days, 507 events" in proc.stdout
    assert files(example_dir) == before
