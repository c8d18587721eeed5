"""Step computations on an executor: the run's own threads (the default) or a Dask cluster.

The coordinator keeps every side effect; a Dask worker only computes. Applying one plan on the
Dask executor gives exactly the rows, fingerprints and ledger records the local executor gives,
on real Delta tables and a SQLite ledger."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import GAP_DAY, NOW, materialize, run_steps

from backfiller import FixedClock, Project, load_project
from backfiller.actions import RunOptions, StepOutcome
from backfiller.actions.apply import apply_plan
from backfiller.actions.executors import (
    ExecutorSettings,
    LocalExecutor,
    open_executor,
)
from backfiller.errors import ConfigError, ExitCode
from backfiller.ledger import RunState
from backfiller.planning import Mode, make_plan, read_plan
from backfiller.planning import write_plan as save_plan
from backfiller.planning.planner import request_for

distributed = pytest.importorskip("distributed")

RAW = "week06/ingestion/raw_ticket_events_partitioned"
SILVER = "week06/silver/ticket_fact_partitioned"
WEEK = ["2026-04-14", "2026-04-15", "2026-04-16", GAP_DAY, "2026-04-18"]


@pytest.fixture(scope="module")
def cluster() -> Iterator[object]:
    """A Dask cluster in this process (threads, no worker processes)."""
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0"
    ) as running:
        yield running


def fresh(example_dir: Path, name: str) -> Project:
    root = example_dir.parent / name
    shutil.copytree(example_dir, root)
    return load_project(root, environ={}, clock=FixedClock(NOW))


def apply_week(project: Project, options: RunOptions) -> dict[str, object]:
    request = request_for(WEEK, Mode.DRY_RUN, "tests")
    document = read_plan(save_plan(project, make_plan(project, project.reader(), request)))
    result = apply_plan(project, document, operator="tests", options=options)
    assert result.state is RunState.SUCCEEDED, [s.error for s in result.steps if s.error]
    assert {s.outcome for s in result.steps} == {StepOutcome.PUBLISHED}
    reader = project.reader()
    return {
        "fingerprints": {
            (a, k): project.store.fingerprint(a, k) for a in (RAW, SILVER) for k in WEEK
        },
        "rows": {
            (a, k): reader.partitions.get(a, k).row_count for a in (RAW, SILVER) for k in WEEK
        },
        "ledger": {
            (a, k): (rec.fingerprint, rec.upstream_versions, rec.manifest_id)
            for a in (RAW, SILVER)
            for k in WEEK
            if (rec := reader.partitions.get(a, k)) is not None
        },
    }


@pytest.mark.slow
@pytest.mark.parametrize("group_size", [1, 64])
def test_dask_executor_publishes_what_the_local_executor_publishes(
    example_dir: Path, cluster: object, group_size: int
) -> None:
    from backfiller.actions import GroupLimits
    from backfiller.actions.dask_executor import DaskExecutor

    group = GroupLimits(size=group_size)
    local = apply_week(fresh(example_dir, "local"), RunOptions(group=group))
    with distributed.Client(cluster, set_as_default=False) as client:
        executor = DaskExecutor(client)
        on_dask = apply_week(fresh(example_dir, "dask"), RunOptions(group=group, executor=executor))
    assert on_dask == local
    assert all(local["fingerprints"].values())


@pytest.mark.slow
def test_a_worker_runs_the_computation_never_the_coordinator(
    example_dir: Path, cluster: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the Dask executor the coordinator never computes a step: were it to, the run
    would fail (the local computation is made to raise)."""
    from backfiller.actions import computation
    from backfiller.actions.dask_executor import DaskExecutor

    calls: list[str] = []
    real = computation.compute_step

    def counted(task: computation.StepTask, read_upstream: object = None) -> object:
        calls.append(f"{task.asset.key} {task.partition_key} {read_upstream is None}")
        return real(task, read_upstream)  # type: ignore[arg-type]

    monkeypatch.setattr("backfiller.actions.dask_executor.compute_step", counted)
    monkeypatch.setattr(
        "backfiller.actions.executors.compute_step",
        lambda *_: pytest.fail("the coordinator computed a step"),
    )
    with distributed.Client(cluster, set_as_default=False) as client:
        apply_week(fresh(example_dir, "dask"), RunOptions(executor=DaskExecutor(client)))
    # every step computed on a worker, from the pinned versions (no coordinator's reader)
    assert sorted(calls) == sorted(f"{a} {k} True" for a in (RAW, SILVER) for k in WEEK)


def test_local_is_the_default_and_an_unknown_executor_is_refused() -> None:
    assert isinstance(open_executor(ExecutorSettings()), LocalExecutor)
    with pytest.raises(ConfigError, match="Unknown executor 'spark'") as raised:
        open_executor(ExecutorSettings(kind="spark", origin="--executor"))
    assert raised.value.exit_code is ExitCode.BAD_INPUT
    with pytest.raises(ConfigError, match="needs the scheduler's address"):
        open_executor(ExecutorSettings(kind="dask"))


@pytest.mark.slow
def test_importing_the_core_does_not_import_dask() -> None:
    import subprocess

    code = (
        "import sys, backfiller, backfiller.actions.run, backfiller.actions.executors, "
        "backfiller.cli.main; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


UNPICKLABLE_ASSETS = """
import threading

import pyarrow as pa

from backfiller import AssetContext, asset

LOCK = threading.Lock()


@asset("odd/locked", idempotency_key=("id",))
def locked(context: AssetContext) -> pa.Table:
    with LOCK:  # the function needs the lock: it cannot travel to a worker
        return pa.table({"id": [context.partition_key]})
"""


def test_a_computation_that_cannot_travel_fails_its_step_alone(
    tmp_path: Path, cluster: object
) -> None:
    from backfiller import execute
    from backfiller.actions import Action, RunSpec
    from backfiller.actions.dask_executor import DaskExecutor

    root = tmp_path / "odd"
    root.mkdir()
    (root / "backfiller.toml").write_text(
        '[project]\nassets_module = "odd_assets"\n\n'
        '[partitions]\nkind = "daily"\nstart = "2026-01-01"\n',
        encoding="utf-8",
    )
    (root / "odd_assets.py").write_text(UNPICKLABLE_ASSETS, encoding="utf-8")
    project = load_project(root, environ={}, clock=FixedClock(NOW))
    spec = RunSpec.compute(Action.BACKFILL, "tests", [("odd/locked", "2026-01-02")])
    with distributed.Client(cluster, set_as_default=False) as client, project.ledger() as ledger:
        result = execute(project, ledger, spec, RunOptions(executor=DaskExecutor(client)))
    (step,) = result.steps
    assert step.outcome is StepOutcome.FAILED
    assert "lock" in (step.error or "")
    assert result.state is RunState.FAILED
    assert not project.store.exists("odd/locked")


@pytest.mark.slow
@pytest.mark.parametrize("point", ["after_compute", "after_commit"])
def test_a_coordinator_stopped_mid_run_is_finished_by_resume_on_the_cluster(
    example_dir: Path, cluster: object, point: str
) -> None:
    """The coordinator stops (as a kill leaves it) after a worker's rows came back, or after
    their commit landed; ``resume`` on the cluster finishes the run: the same rows and records
    as an uninterrupted local run, each partition committed once."""
    from conftest import interrupted_at

    from backfiller.actions import GroupLimits
    from backfiller.actions.dask_executor import DaskExecutor
    from backfiller.actions.recovery import resume

    group = GroupLimits(size=1)
    local = apply_week(fresh(example_dir, "local"), RunOptions(group=group))
    project = fresh(example_dir, "dask")
    request = request_for(WEEK, Mode.DRY_RUN, "tests")
    document = read_plan(save_plan(project, make_plan(project, project.reader(), request)))
    with distributed.Client(cluster, set_as_default=False) as client:
        options = RunOptions(group=group, executor=DaskExecutor(client))
        with interrupted_at(point):
            apply_plan(project, document, operator="tests", options=options)
        (run,) = project.reader().runs.all()
        assert run.state is RunState.RUNNING
        with project.ledger() as ledger:
            result = resume(project, ledger, run_id=run.run_id, operator="tests", options=options)
    assert result.state is RunState.SUCCEEDED, [s.error for s in result.steps if s.error]
    reader = project.reader()
    assert {(a, k): project.store.fingerprint(a, k) for a in (RAW, SILVER) for k in WEEK} == local[
        "fingerprints"
    ]
    assert {
        (a, k): reader.partitions.get(a, k).row_count for a in (RAW, SILVER) for k in WEEK
    } == local["rows"]
    for asset in (RAW, SILVER):
        keys = [
            h.metadata["backfiller.partition_keys"]
            for h in project.store.history(asset)
            if h.metadata.get("backfiller.run_id") == run.run_id
        ]
        assert sorted(keys) == sorted(WEEK), keys


@pytest.mark.parametrize("executor", ["local", "dask"])
def test_the_ledger_names_the_upstream_versions_the_step_read(
    example_dir: Path, cluster: object, monkeypatch: pytest.MonkeyPatch, executor: str
) -> None:
    """Another coordinator publishes the upstream partition after the step computed and
    before it publishes: the step's record names the version it read (pinned when it was
    handed out), not the newer one the ledger holds by the time it publishes."""
    from backfiller.actions import runner
    from backfiller.actions.dask_executor import DaskExecutor

    project = fresh(example_dir, executor)
    materialize(project, [GAP_DAY], [RAW])
    read = project.reader().partitions.get(RAW, GAP_DAY).data_version
    other = load_project(project.root, environ={}, clock=FixedClock(NOW))
    published: list[int | None] = []
    real = runner.crash_point
    started: list[str] = []

    def between(name: str) -> None:
        real(name)
        if name == "after_compute" and not started:  # once: the other run passes here too
            started.append(name)
            materialize(other, [GAP_DAY], [RAW])  # a second coordinator, its own ledger
            published.append(other.reader().partitions.get(RAW, GAP_DAY).data_version)

    monkeypatch.setattr(runner, "crash_point", between)
    with distributed.Client(cluster, set_as_default=False) as client:
        options = RunOptions(executor=DaskExecutor(client) if executor == "dask" else None)
        with project.ledger() as ledger:
            result = run_steps(project, ledger, [(SILVER, GAP_DAY)], options=options)
    assert result.state is RunState.SUCCEEDED, [s.error for s in result.steps if s.error]
    assert published and read is not None and published[0] is not None
    assert published[0] > read
    record = project.reader().partitions.get(SILVER, GAP_DAY)
    assert record.upstream_versions == {RAW: {GAP_DAY: read}}
