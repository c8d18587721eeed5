"""A holder paused past its lease: a real process computing a partition is stopped with
SIGSTOP, its lease expires (its heartbeat stopped with it), another run takes the partition
over and publishes; then the paused process continues. It must never publish: its run ends
as a conflict (exit 4) with nothing of it in the table, and ``resume`` of its run afterwards
publishes nothing either."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import both_backends, run_steps

from backfiller import load_project
from backfiller.actions.recovery import resume
from backfiller.errors import PreconditionError
from backfiller.ledger import RunState
from backfiller.store import CommitKey

pytestmark = pytest.mark.slow

ASSET = "pause/slow"
KEY = "2026-01-05"
TTL = 2
HANG_GUARD = 120  # only to keep a hung process from hanging the suite

TOML = f"""
[project]
name = "pause"
assets_module = "pause_assets"
lease_ttl_seconds = {TTL}

[partitions]
kind = "daily"
start = "2026-01-01"
"""

ASSETS = """
import time
from pathlib import Path

from backfiller import AssetContext, asset


@asset("pause/slow", idempotency_key=("id", "partition_key"))
def slow(context: AssetContext):
    root = Path(context.project_root)
    (root / f"started-{context.run_id}").touch()
    deadline = time.monotonic() + 60
    while not (root / "release").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    key = context.partition_key
    return [{"id": f"{context.run_id}-{i}", "partition_key": key} for i in range(3)]
"""

DRIVER = """
import json
import sys
from backfiller import load_project
from backfiller.actions import Action, RunSpec
from backfiller.actions.run import execute

project = load_project(sys.argv[1], environ=json.loads(sys.argv[2]))
spec = RunSpec.compute(Action.BACKFILL, "night-shift", [("pause/slow", "2026-01-05")])
with project.ledger() as ledger:
    result = execute(project, ledger, spec, run_id="run-night")
for step in result.steps:
    print(step.outcome.value, step.error)
sys.exit(4 if any(s.outcome.value == "conflict" for s in result.steps) else 0)
"""


def _wait_for(path: Path) -> None:
    deadline = time.monotonic() + HANG_GUARD
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


@both_backends
def test_a_holder_paused_past_its_lease_never_publishes(
    tmp_path: Path, project_environ: dict[str, str]
) -> None:
    root = tmp_path / "pause"
    root.mkdir()
    (root / "backfiller.toml").write_text(TOML, encoding="utf-8")
    (root / "pause_assets.py").write_text(textwrap.dedent(ASSETS), encoding="utf-8")
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER, encoding="utf-8")

    night = subprocess.Popen(
        [sys.executable, str(driver), str(root), json.dumps(project_environ)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_for(root / "started-run-night")  # it holds the lease and computes
        os.kill(night.pid, signal.SIGSTOP)
        project = load_project(root, environ=project_environ)
        with project.ledger() as ledger:
            held = ledger.leases.held()
            assert [(lease.run_id, lease.asset) for lease in held] == [("run-night", ASSET)]
            time.sleep(TTL + 1.5)  # no heartbeat from a stopped process: the lease expires
            assert ledger.leases.live(ASSET, KEY) is None
            (root / "release").touch()
            day = run_steps(project, ledger, [(ASSET, KEY)], run_id="run-day")
            assert day.state is RunState.SUCCEEDED, [s.error for s in day.steps]
        os.kill(night.pid, signal.SIGCONT)
        output, _ = night.communicate(timeout=HANG_GUARD)
    finally:
        if night.poll() is None:
            night.kill()
            night.wait()

    assert night.returncode == 4, output
    assert "conflict" in output and "taken over" in output, output
    project = load_project(root, environ=project_environ)
    history = project.store.history(ASSET)
    runs = [r.metadata.get(CommitKey.RUN_ID) for r in history]
    assert runs == ["run-day", None]  # nothing of the night (None: the empty creation)
    rows = project.store.read_partition(ASSET, KEY)
    assert rows is not None and set(rows.column("id").to_pylist()) == {
        f"run-day-{i}" for i in range(3)
    }
    with project.ledger() as ledger:
        record = ledger.partitions.get(ASSET, KEY)
        assert record is not None and record.last_run_id == "run-day"
        assert record.data_version == history[0].version
        night_run = ledger.runs.get("run-night")
        assert night_run is not None and night_run.state is RunState.FAILED
        assert ledger.evidence.of_run("run-night") is not None
        assert ledger.leases.held() == []

        # resume of the paused run afterwards: it is finished, so resume refuses (exit 2)
        # and names what to do; nothing is published again
        with pytest.raises(PreconditionError, match=r"Run run-night finished \(failed\)"):
            resume(project, ledger, run_id="run-night", operator="night-shift")
        history = project.store.history(ASSET)
        assert [r.metadata.get(CommitKey.RUN_ID) for r in history] == ["run-day", None]
        record = ledger.partitions.get(ASSET, KEY)
        assert record is not None and record.last_run_id == "run-day"
