"""Crash tests for group commits: a real ``backfiller --group-size 4 plan --mode apply`` process
is killed with SIGKILL at a named point inside a group, then ``backfiller resume`` finishes.

The bundled example with 2026-04-14 .. 2026-04-16 materialized; the plan covers 2026-04-14 ..
2026-04-20 with ``--include-materialized``: per asset, one group of four partitions (three
overwritten, one new) and one of three (new). After the kill every partition is wholly old or
wholly new, and a group's commit is all or nothing: every partition it lists is new. After
the resume, the tables match an uninterrupted grouped run, and each partition's recorded
version is the version of the commit that carried it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from conftest import NOW, both_backends, materialize

from backfiller import FixedClock, Project, load_project
from backfiller.lab.example import lay_out_example
from backfiller.ledger import PartitionStatus, RunState
from backfiller.store import CommitKey

pytestmark = [pytest.mark.slow, both_backends]

RAW = "week06/ingestion/raw_ticket_events_partitioned"
SILVER = "week06/silver/ticket_fact_partitioned"
ASSETS = (RAW, SILVER)
OLD_KEYS = ["2026-04-14", "2026-04-15", "2026-04-16"]
KEYS = [*OLD_KEYS, "2026-04-17", "2026-04-18", "2026-04-19", "2026-04-20"]
APPLY = [
    "--group-size",
    "4",
    "plan",
    "--start",
    KEYS[0],
    "--end",
    KEYS[-1],
    "--mode",
    "apply",
    "--include-materialized",
    "--reason",
    "crash test, groups of four",
]
#: only to keep a hung subprocess from hanging the suite; never an assertion on speed
HANG_GUARD = 300
#: (point, n-th time it is reached): in the first group, between groups, in the last group
CASES = [
    ("after_lease", 1),
    ("after_start", 1),
    ("after_compute", 3),
    ("before_commit", 1),
    ("after_commit", 1),
    ("after_commit", 3),
    ("after_ledger_publish", 2),
    ("after_report", 6),
]

Rows = Counter[tuple[object, ...]]


def _reload(root: Path, ledger: dict[str, str]) -> Project:
    return load_project(root, environ=ledger, clock=FixedClock(NOW))


def _apply(root: Path, log: Path, ledger: dict[str, str], **env: str) -> int:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("BACKFILLER_")}
    environ.update(ledger)
    environ.update(env)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "backfiller.cli.main", "--project", str(root), *APPLY],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=environ,
        )
        return proc.wait(timeout=HANG_GUARD)


def _cli(root: Path, ledger: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("BACKFILLER_")}
    environ.update(ledger)
    return subprocess.run(
        [sys.executable, "-m", "backfiller.cli.main", "--project", str(root), *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=HANG_GUARD,
        check=False,
    )


def _rows(project: Project) -> dict[tuple[str, str], Rows]:
    found: dict[tuple[str, str], Rows] = {}
    for asset in ASSETS:
        for key in KEYS:
            data = project.store.read_partition(asset, key)
            rows = data.to_pylist() if data is not None else []
            found[(asset, key)] = Counter(tuple(sorted(r.items())) for r in rows)
    return found


def _run_commits(project: Project, asset: str, run_id: str) -> dict[int, list[str]]:
    return {
        c.version: c.metadata[CommitKey.PARTITION_KEYS.value].split(",")
        for c in project.store.history(asset)
        if c.metadata.get(CommitKey.RUN_ID.value) == run_id
    }


def _lay_out(root: Path, ledger: dict[str, str]) -> dict[tuple[str, str], Rows]:
    lay_out_example(root)
    materialize(_reload(root, ledger), OLD_KEYS)
    return _rows(_reload(root, ledger))


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Rows]:
    """The rows of an uninterrupted grouped run (on SQLite: the rows do not depend on the
    ledger)."""
    root = tmp_path_factory.mktemp("reference") / "omni"
    _lay_out(root, {})
    log = root.parent / "apply.log"
    assert _apply(root, log, {}) == 0, log.read_text(encoding="utf-8")
    project = _reload(root, {})
    for asset in ASSETS:  # two commits per asset: the groups
        assert len(_run_commits(project, asset, project.reader().runs.all()[-1].run_id)) == 2
    return _rows(project)


@pytest.mark.parametrize(("point", "after"), CASES, ids=[f"{p}-{n}" for p, n in CASES])
def test_a_kill_inside_a_group_leaves_each_partition_old_or_new_and_resume_finishes(
    point: str,
    after: int,
    tmp_path: Path,
    reference: dict[tuple[str, str], Rows],
    project_environ: dict[str, str],
) -> None:
    env = project_environ  # the backend's ledger
    root = tmp_path / "omni"
    old = _lay_out(root, env)
    before = {r.run_id for r in _reload(root, env).reader().runs.all()}
    log = tmp_path / "crash.log"

    code = _apply(root, log, env, BACKFILLER_CRASH_POINT=point, BACKFILLER_CRASH_AFTER=str(after))

    assert code == -signal.SIGKILL, log.read_text(encoding="utf-8")
    crashed = _reload(root, env)
    (run_id,) = [r.run_id for r in crashed.reader().runs.all() if r.run_id not in before]
    now = _rows(crashed)
    state = {}
    for target, rows in now.items():
        if rows == reference[target]:
            state[target] = "new"
        elif rows == old[target]:
            state[target] = "old"
        else:
            pytest.fail(f"{target} is neither wholly old nor wholly new after the kill")
    for asset in ASSETS:
        commits = _run_commits(crashed, asset, run_id)
        carried = [key for keys in commits.values() for key in keys]
        assert len(carried) == len(set(carried)), commits  # nothing committed twice
        for key in KEYS[len(OLD_KEYS) :]:  # a new day is new exactly when a commit carried it
            assert state[(asset, key)] == ("new" if key in carried else "old"), (asset, key)

    resumed = _cli(root, env, "resume", run_id)

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    project = _reload(root, env)
    assert _rows(project) == reference
    reader = project.reader()
    run = reader.runs.get(run_id)
    assert run is not None and run.state is RunState.SUCCEEDED
    for asset in ASSETS:
        carried = {
            key: version
            for version, keys in _run_commits(project, asset, run_id).items()
            for key in keys
        }
        assert sorted(carried) == sorted(KEYS)
        for key, version in carried.items():
            record = reader.partitions.get(asset, key)
            assert record is not None and record.status is PartitionStatus.MATERIALIZED
            assert (record.last_run_id, record.data_version) == (run_id, version)
            assert record.fingerprint == project.store.fingerprint(asset, key)
    with project.ledger() as ledger:
        assert ledger.leases.held() == []
    verified = _cli(root, env, "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
