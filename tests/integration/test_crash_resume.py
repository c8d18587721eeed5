"""Crash tests: a real ``backfiller plan --mode apply`` process is killed with SIGKILL, then
``backfiller resume RUN_ID`` finishes the run.

Every case starts from a fresh copy of the bundled example with 2026-04-14 .. 2026-04-16
materialized (in-process), then applies a plan over 2026-04-14 .. 2026-04-20 with
``--include-materialized`` (so three days are overwritten and four are new) in a subprocess that
dies either at a named crash point (``BACKFILLER_CRASH_POINT`` / ``BACKFILLER_CRASH_AFTER``) or at
a seeded random moment. After the crash, every partition must be wholly old or wholly new and no
idempotency key may be duplicated; after the resume, the tables, the ledger, the Delta history
and the partition reports must match an uninterrupted reference run on the same ledger backend.

Every case runs on both ledgers: the subprocesses get the backend's environment (a PostgreSQL
ledger's URL).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from conftest import NOW, both_backends, ledger_environ, materialize
from deltalake import DeltaTable

from backfiller import ConfigError, FixedClock, Project, load_project
from backfiller.actions.faults import CRASH_POINTS
from backfiller.lab.example import lay_out_example
from backfiller.ledger import PartitionStatus, RunState

RAW = "week06/ingestion/raw_ticket_events_partitioned"
SILVER = "week06/silver/ticket_fact_partitioned"
ASSETS = (RAW, SILVER)
OLD_KEYS = ["2026-04-14", "2026-04-15", "2026-04-16"]
KEYS = [*OLD_KEYS, "2026-04-17", "2026-04-18", "2026-04-19", "2026-04-20"]
IDEMPOTENCY_KEY = ["ticket_id", "partition_key"]

CLI = [sys.executable, "-m", "backfiller.cli.main"]
APPLY = [
    "plan",
    "--start",
    KEYS[0],
    "--end",
    KEYS[-1],
    "--mode",
    "apply",
    "--include-materialized",
    "--reason",
    "crash test",
]
#: the named-point cases count a point's hits step by step (the n-th hit is in step n, and the
#: n-th step's commit landed iff the point follows it): that is the mode with one commit per
#: partition, pinned here; kills inside a group commit (the default) are test_crash_group.py's,
#: and the random kills below run in the default mode
ONE_COMMIT_PER_PARTITION = ["--group-size", "1"]
#: only to keep a hung subprocess from hanging the suite; never an assertion on speed
HANG_GUARD = 300

CRASH_AFTER = (1, 4, 9)
#: seeds of the random-kill cases; delays 1.17 s, 1.55 s, 1.84 s, 2.44 s: before the run
#: starts (the package import and the plan take ~1.5 s), early, in the middle, near its end
RANDOM_SEEDS = (7, 9, 10, 6)

# The 14 steps run in this order: raw 04-14 .. 04-20, then silver 04-14 .. 04-20; the n-th
# hit of a point is in step n. Steps 1 (raw 04-14) and 9 (silver 04-15) overwrite a partition
# that already has a report from the setup run; step 4 (raw 04-17) is a new partition.
STALE_REPORT = (
    "resume: a step whose ledger publish landed before the crash (report not yet rewritten) is "
    "taken as already published because *a* report file exists (Runner._run_leased checks "
    "only is_file()); on an overwritten partition that is the previous run's report, so it "
    "keeps the old run_id and data_version"
)
#: the steps of the run, in the order they execute
STEPS = [(a, k) for k in KEYS for a in ASSETS]
#: points reached after the step's Delta commit landed
POST_COMMIT = {"after_commit", "after_ledger_publish", "after_report"}
HOT_JOURNAL = (
    "a process killed while SQLite writes a ledger transaction leaves a hot rollback journal "
    "(.backfiller/ledger.db-journal); the read-only view (open_reader, mode=ro) cannot roll it "
    "back and fails with 'attempt to write a readonly database', reported as 'not a usable "
    "SQLite database ... restore it from a backup' (exit 2) by status, gaps, plan and apply "
    "until some writer (resume, retry, rerun) opens the ledger"
)
#: (point, crash-after) -> a known bug pinned as strict xfail; both found here are fixed
KNOWN_BUGS: dict[tuple[str, int], str] = {}


pytestmark = pytest.mark.slow

# -- helpers -------------------------------------------------------------------------------


def _environment(ledger: dict[str, str], **extra: str) -> dict[str, str]:
    """This process's environment with the ledger backend's variables (``ledger``) and
    ``extra``, and no crash point or ledger URL of its own."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("BACKFILLER_CRASH_") and not k.endswith("BACKFILLER_LEDGER_URL")
    }
    env.update(ledger)
    env.update(extra)
    return env


def _cli(
    project_dir: Path, *args: str, log: Path, ledger: dict[str, str], **env: str
) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [*CLI, "--project", str(project_dir), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=_environment(ledger, **env),
        )


def _run_cli(project_dir: Path, *args: str, log: Path, ledger: dict[str, str], **env: str) -> int:
    proc = _cli(project_dir, *args, log=log, ledger=ledger, **env)
    return proc.wait(timeout=HANG_GUARD)


def _tail(log: Path, lines: int = 30) -> str:
    text = log.read_text(encoding="utf-8", errors="replace") if log.is_file() else ""
    return "\n".join(text.splitlines()[-lines:])


def _reload(root: Path, ledger: dict[str, str]) -> Project:
    """A freshly loaded project on the ledger ``ledger`` names (the backend's environment): no
    cached Delta handle, no cached state."""
    return load_project(root, environ=ledger, clock=FixedClock(NOW))


def _delta(project: Project, asset: str) -> pa.Table | None:
    path = project.store.path(asset)
    if not (path / "_delta_log").is_dir():
        return None
    return DeltaTable(str(path)).to_pyarrow_table()


Rows = Counter[str]


def _rows_by_partition(project: Project, asset: str) -> dict[str, Rows]:
    """The multiset of rows of every partition, read with ``deltalake`` directly."""
    table = _delta(project, asset)
    rows: dict[str, Rows] = {k: Counter() for k in KEYS}
    if table is None:
        return rows
    for row in table.to_pylist():
        rows.setdefault(str(row["partition_key"]), Counter())[
            json.dumps(row, sort_keys=True, default=str)
        ] += 1
    return rows


def _duplicates(project: Project, asset: str) -> list[dict[str, object]]:
    table = _delta(project, asset)
    if table is None:
        return []
    counted = table.group_by(IDEMPOTENCY_KEY).aggregate([([], "count_all")])
    dupes = counted.filter(pc.greater(counted.column("count_all"), 1))
    return dupes.to_pylist()


def _snapshot(project: Project) -> dict[str, dict[str, Rows]]:
    return {a: _rows_by_partition(project, a) for a in ASSETS}


def _commits(project: Project, asset: str, run_id: str) -> Counter[str]:
    """How many commits ``run_id`` made per partition of ``asset`` (a group commit lists its
    partitions' keys, comma-separated: it counts once for each)."""
    counts: Counter[str] = Counter()
    for record in project.store.history(asset):
        if record.metadata.get("backfiller.run_id") == run_id:
            for key in record.metadata.get("backfiller.partition_keys", "?").split(","):
                counts[key] += 1
    return counts


def _commit_versions(project: Project, asset: str, run_id: str) -> dict[str, int]:
    """The version of the commit of ``run_id`` that carried each partition of ``asset``."""
    return {
        key: r.version
        for r in project.store.history(asset)
        if r.metadata.get("backfiller.run_id") == run_id
        and "backfiller.partition_keys" in r.metadata
        for key in r.metadata["backfiller.partition_keys"].split(",")
    }


@dataclass(frozen=True)
class Reference:
    """What an uninterrupted run leaves behind."""

    rows: dict[str, dict[str, Rows]]
    store_fingerprints: dict[tuple[str, str], str | None]
    ledger_fingerprints: dict[tuple[str, str], str | None]
    project: Project


def _prepare(project: Project) -> dict[str, dict[str, Rows]]:
    """Materialize the first three days in-process; return the pre-run snapshot."""
    materialize(project, OLD_KEYS)
    snapshot = _snapshot(project)
    for asset in ASSETS:
        assert all(snapshot[asset][k] for k in OLD_KEYS), f"{asset}: setup left a day empty"
        assert not any(snapshot[asset][k] for k in KEYS[3:])
    return snapshot


#: the reference run of each ledger backend, made once per module
_references: dict[str, Reference] = {}


@pytest.fixture
def reference(
    ledger_backend: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Reference:
    """The uninterrupted run on the test's ledger backend (its own ledger: an empty database
    of its own on PostgreSQL)."""
    if ledger_backend not in _references:
        _references[ledger_backend] = _reference_run(ledger_backend, tmp_path_factory, request)
    return _references[ledger_backend]


def _reference_run(
    backend: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Reference:
    ledger: dict[str, str] = {}
    if backend == "postgres":  # kept for the module (named: not a test's scratch database)
        url = request.getfixturevalue("postgres_server").create_database(
            template=request.getfixturevalue("postgres_template"), name="crash_reference"
        )
        ledger = ledger_environ(url)
    root = lay_out_example(tmp_path_factory.mktemp(f"reference-{backend}") / "omni")
    _prepare(_reload(root, ledger))
    log = root.parent / "apply.log"
    code = _run_cli(root, *APPLY, log=log, ledger=ledger)
    assert code == 0, _tail(log)
    project = _reload(root, ledger)
    assert project.config.ledger_url == ledger.get("BACKFILLER_LEDGER_URL", "")
    reader = project.reader()
    return Reference(
        rows=_snapshot(project),
        store_fingerprints={(a, k): project.store.fingerprint(a, k) for a in ASSETS for k in KEYS},
        ledger_fingerprints={
            (a, k): rec.fingerprint if (rec := reader.partitions.get(a, k)) else None
            for a in ASSETS
            for k in KEYS
        },
        project=project,
    )


# -- the checks ----------------------------------------------------------------------------


def check_after_crash(
    project: Project, old: dict[str, dict[str, Rows]], reference: Reference
) -> dict[tuple[str, str], str]:
    """Every partition wholly old or wholly new, no duplicate key; returns which it is."""
    seen: dict[tuple[str, str], str] = {}
    for asset in ASSETS:
        assert _duplicates(project, asset) == [], f"{asset}: duplicate keys after the crash"
        now = _rows_by_partition(project, asset)
        for key in KEYS:
            if now[key] == reference.rows[asset][key]:
                seen[(asset, key)] = "new"
            elif now[key] == old[asset][key]:
                seen[(asset, key)] = "old"
            else:
                pytest.fail(
                    f"{asset} {key} is neither the old nor the new partition after the crash: "
                    f"{sum(now[key].values())} rows (old {sum(old[asset][key].values())}, "
                    f"new {sum(reference.rows[asset][key].values())})"
                )
        assert set(now) <= set(KEYS), f"{asset}: partitions outside the window appeared"
    return seen


def check_commits_match_data(
    project: Project, run_id: str, seen: dict[tuple[str, str], str]
) -> None:
    """After the crash: a partition of a day that did not exist before is new exactly when the
    crashed run's commit for it is in the Delta history; no partition was committed twice."""
    for asset in ASSETS:
        commits = _commits(project, asset, run_id)
        assert all(n == 1 for n in commits.values()), commits
        for key in KEYS[len(OLD_KEYS) :]:
            expected = "new" if key in commits else "old"
            assert seen[(asset, key)] == expected, (asset, key, commits)


def check_after_resume(project: Project, run_id: str, reference: Reference) -> None:
    reader = project.reader()
    run = reader.runs.get(run_id)
    assert run is not None
    assert run.state is RunState.SUCCEEDED, run.error
    for asset in ASSETS:
        assert _duplicates(project, asset) == [], f"{asset}: duplicate keys after the resume"
        commits = _commits(project, asset, run_id)
        versions = _commit_versions(project, asset, run_id)
        for key in KEYS:
            assert (
                project.store.fingerprint(asset, key) == reference.store_fingerprints[(asset, key)]
            ), f"{asset} {key}: data differs from the uninterrupted run"
            assert commits[key] == 1, (
                f"{asset} {key}: run {run_id} committed it {commits[key]} times"
            )
            record = reader.partitions.get(asset, key)
            assert record is not None
            assert record.status is PartitionStatus.MATERIALIZED, (asset, key, record)
            # every partition is a step of this run, so the run is its last writer
            assert record.last_run_id == run_id, (asset, key, record.last_run_id)
            assert record.data_version == versions[key], (asset, key)
        assert set(commits) <= set(KEYS), f"{asset}: commits outside the plan: {commits}"


def check_evidence(project: Project, run_id: str, reference: Reference) -> None:
    """The ledger and the partition reports say what an uninterrupted run would say."""
    reader = project.reader()
    for asset in ASSETS:
        for key in KEYS:
            record = reader.partitions.get(asset, key)
            assert record is not None
            report_path = project.partition_report_path(asset, key)
            assert report_path.is_file(), f"{asset} {key}: no partition report"
            report = json.loads(report_path.read_text(encoding="utf-8"))
            assert (report["run_id"], report["data_version"]) == (
                run_id,
                record.data_version,
            ), f"{asset} {key}: the report is not this run's"
            assert report["fingerprint"] == record.fingerprint, (asset, key)
            assert record.fingerprint == reference.ledger_fingerprints[(asset, key)], (
                f"{asset} {key}: the ledger fingerprint differs from the uninterrupted run's"
            )


# -- the cases -----------------------------------------------------------------------------


def _runs(root: Path, ledger: dict[str, str]) -> tuple[list[str], bool]:
    """The run ids, from a freshly loaded project's read-only view; and whether that view first
    failed on a hot journal (:data:`HOT_JOURNAL`, SQLite), which a writer then rolled back."""
    try:
        return [r.run_id for r in _reload(root, ledger).reader().runs.all()], False
    except ConfigError as exc:
        journal = _reload(root, ledger).config.ledger_path.with_name("ledger.db-journal")
        if ledger or "readonly" not in exc.message or not journal.is_file():
            raise
    # what resume does first: a writer rolls the journal back
    _reload(root, ledger).ledger().close()
    return [r.run_id for r in _reload(root, ledger).reader().runs.all()], True


def _new_run(root: Path, before: set[str], ledger: dict[str, str]) -> tuple[str | None, bool]:
    """The run the crashed process began (``None`` if it died before beginning one)."""
    runs, hot_journal = _runs(root, ledger)
    new = [r for r in runs if r not in before]
    assert len(new) <= 1, new
    return (new[0] if new else None), hot_journal


#: points reached once per run, before any step / after every step
RUN_START = {"after_begin"}
RUN_END = {"before_settle", "after_settle", "after_evidence_file"}


def _named_cases() -> list[object]:
    cases: list[object] = []
    for point in CRASH_POINTS:
        for after in CRASH_AFTER if point not in RUN_START | RUN_END else (1,):
            reason = KNOWN_BUGS.get((point, after))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            cases.append(pytest.param(point, after, marks=marks, id=f"{point}-{after}"))
    return cases


@both_backends
@pytest.mark.parametrize(("point", "after"), _named_cases())
def test_crash_at_named_point_then_resume(
    point: str,
    after: int,
    example_dir: Path,
    load: Callable[[Path], Project],
    reference: Reference,
    project_environ: dict[str, str],
) -> None:
    old = _prepare(load(example_dir))
    before = {r.run_id for r in load(example_dir).reader().runs.all()}
    log = example_dir.parent / "crash.log"

    code = _run_cli(
        example_dir,
        *ONE_COMMIT_PER_PARTITION,
        *APPLY,
        log=log,
        ledger=project_environ,
        BACKFILLER_CRASH_POINT=point,
        BACKFILLER_CRASH_AFTER=str(after),
    )

    assert code == -signal.SIGKILL, f"exit {code}, expected SIGKILL\n{_tail(log)}"
    crashed = load(example_dir)
    seen = check_after_crash(crashed, old, reference)
    run_id, hot_journal = _new_run(example_dir, before, project_environ)
    assert run_id is not None, "the crashed process began no run"
    assert not hot_journal  # no named point lies inside a ledger transaction
    check_commits_match_data(crashed, run_id, seen)
    # the runner is sequential: the n-th step's commit landed iff the point follows it
    if point in RUN_START | RUN_END:
        landed = 0 if point in RUN_START else len(STEPS)
    else:
        landed = after if point in POST_COMMIT else after - 1
    committed = [(a, k) for a in ASSETS for k in _commits(crashed, a, run_id)]
    assert sorted(committed) == sorted(STEPS[:landed]), committed

    resume_log = example_dir.parent / "resume.log"
    code = _run_cli(example_dir, "resume", run_id, log=resume_log, ledger=project_environ)

    assert code == 0, _tail(resume_log)
    project = load(example_dir)
    check_after_resume(project, run_id, reference)
    check_evidence(project, run_id, reference)


@both_backends
@pytest.mark.parametrize("seed", RANDOM_SEEDS)
def test_kill_at_random_moment_then_resume(
    seed: int,
    example_dir: Path,
    load: Callable[[Path], Project],
    reference: Reference,
    project_environ: dict[str, str],
) -> None:
    old = _prepare(load(example_dir))
    before = {r.run_id for r in load(example_dir).reader().runs.all()}
    versions = {a: DeltaTable(str(load(example_dir).store.path(a))).version() for a in ASSETS}
    delay = random.Random(seed).uniform(0.3, 3.0)
    log = example_dir.parent / "crash.log"

    proc = _cli(example_dir, *APPLY, log=log, ledger=project_environ)
    try:
        code = proc.wait(timeout=delay)  # finished before the kill: a valid outcome too
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        code = proc.wait(timeout=HANG_GUARD)

    assert code in {0, -signal.SIGKILL}, f"exit {code}\n{_tail(log)}"
    crashed = load(example_dir)
    seen = check_after_crash(crashed, old, reference)
    run_id, hot_journal = _new_run(example_dir, before, project_environ)
    if run_id is not None:
        check_commits_match_data(crashed, run_id, seen)
    if run_id is None:
        # killed while importing or planning: nothing may have changed; apply again
        assert all(seen[(a, k)] == "old" for a in ASSETS for k in KEYS[3:]), seen
        project = load(example_dir)
        assert {a: DeltaTable(str(project.store.path(a))).version() for a in ASSETS} == versions
        again_log = example_dir.parent / "again.log"
        code = _run_cli(example_dir, *APPLY, log=again_log, ledger=project_environ)
        assert code == 0, _tail(again_log)
        run_id, _ = _new_run(example_dir, before, project_environ)
        assert run_id is not None
    else:
        resume_log = example_dir.parent / "resume.log"
        code = _run_cli(example_dir, "resume", run_id, log=resume_log, ledger=project_environ)
        # a finished run resumes to "everything already published", also exit 0
        assert code == 0, _tail(resume_log)

    check_after_resume(load(example_dir), run_id, reference)
    # the read-only view reads through a hot journal left by a kill inside a ledger write
    assert not hot_journal, HOT_JOURNAL


# -- what the landed-commit path of resume relies on ----------------------------------------


@both_backends
def test_ledger_fingerprint_matches_stored_partition(reference: Reference) -> None:
    """A step whose commit landed before a crash is recorded from the partition read back from
    Delta; that only matches an uninterrupted run if the computed table and the stored one
    fingerprint alike (a timestamp's time zone name once made them differ)."""
    project = reference.project
    reader = project.reader()
    differing = [
        (a, k)
        for a in ASSETS
        for k in KEYS
        if (rec := reader.partitions.get(a, k)) is None
        or rec.fingerprint != project.store.fingerprint(a, k)
    ]
    assert differing == []


# -- a kill inside a ledger transaction ----------------------------------------------------

KILL_MID_COMMIT = """
import os, signal, sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA cache_size = 1")  # spill pages to the file now, as a COMMIT does
conn.execute("BEGIN IMMEDIATE")
conn.execute("UPDATE partitions SET last_error = ?", ("x" * 50_000,))
os.kill(os.getpid(), signal.SIGKILL)
"""


# SQLite only: a hot rollback journal is the SQLite file's; PostgreSQL rolls a dead client's
# transaction back in the server
def test_the_ledger_can_be_read_after_a_kill_inside_a_ledger_write(
    example_dir: Path, load: Callable[[Path], Project]
) -> None:
    project = load(example_dir)
    materialize(project, OLD_KEYS)
    ledger = project.config.ledger_path
    code = subprocess.run(
        [sys.executable, "-c", KILL_MID_COMMIT, str(ledger)], timeout=HANG_GUARD, check=False
    ).returncode
    assert code == -signal.SIGKILL
    assert ledger.with_name("ledger.db-journal").is_file()

    # what status, gaps, plan and apply open first
    runs = load(example_dir).reader().runs.all()

    assert len(runs) == 1
