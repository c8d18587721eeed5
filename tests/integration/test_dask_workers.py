"""The Dask executor with real worker processes: the project's assets module travels to the
workers by value (they cannot import it), and a worker killed in the middle of a step costs a
recomputation on another worker — never a lost, duplicated or torn partition."""

from __future__ import annotations

import os
import signal
import textwrap
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from backfiller import FixedClock, Project, execute, load_project
from backfiller.actions import Action, GroupLimits, RunOptions, RunResult, RunSpec, StepOutcome
from backfiller.engine import fingerprint_table
from backfiller.ledger import RunState
from backfiller.store import CommitKey

distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.slow

RAW, SILVER = "kill/raw", "kill/silver"
DAYS = [f"2026-01-{d:02d}" for d in range(1, 7)]
#: the step whose first computation waits, in a worker, to be killed
VICTIM = "2026-01-04"

CONFIG = """\
[project]
name = "kill"
assets_module = "{module}"

[partitions]
kind = "daily"
start = "2026-01-01"
timezone = "UTC"
"""

ASSETS = '''
"""Assets of the worker tests: a raw asset whose first computation of {victim} (with a
marker folder) records its process id and waits there to be killed."""

import os
import time
from pathlib import Path

import pyarrow as pa

from backfiller import AssetContext, asset, sql_asset

MARKERS = {markers!r}


def ids(key: str) -> list[str]:
    """A helper of the module: a worker gets it only if the module travels by value."""
    return [f"{{key}}-{{i}}" for i in range(50)]


@asset("kill/raw", idempotency_key=("id",))
def raw(context: AssetContext) -> pa.Table:
    key = context.partition_key
    if MARKERS and key == {victim!r}:
        marker = Path(MARKERS) / "victim.pid"
        if not marker.exists():
            marker.write_text(str(os.getpid()))
            while True:  # until the test kills this worker
                time.sleep(0.05)
    return pa.table({{"id": ids(key), "n": list(range(50))}})


silver = sql_asset(
    "kill/silver",
    'SELECT id, partition_key, n * 2 AS twice FROM "kill/raw" WHERE n % 3 = 0',
    deps=["kill/raw"],
    idempotency_key=("id",),
)
'''


#: where the assets module is: a module at the project's top, or a module of a namespace
#: package (a folder without ``__init__.py``: the package has no ``__file__``)
LAYOUTS = {"module": "kill_assets", "namespace package": "killns.pipelines.assets"}


def lay_out(root: Path, markers: Path | None, layout: str = "module") -> Project:
    module = LAYOUTS[layout]
    root.mkdir(parents=True)
    (root / "backfiller.toml").write_text(CONFIG.format(module=module), "utf-8")
    text = ASSETS.format(markers=str(markers) if markers else "", victim=VICTIM)
    path = root.joinpath(*module.split(".")).with_suffix(".py")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), "utf-8")
    return load_project(root, environ={}, clock=FixedClock(datetime(2026, 2, 1, tzinfo=UTC)))


def backfill(project: Project, options: RunOptions) -> RunResult:
    steps = [(a, k) for k in DAYS for a in (RAW, SILVER)]
    spec = RunSpec.compute(Action.BACKFILL, "tests", steps)
    with project.ledger() as ledger:
        return execute(project, ledger, spec, options)


def outcome(project: Project) -> dict[str, Any]:
    """Each partition's fingerprint and rows (every row exactly once), and the ledger's."""
    found: dict[str, Any] = {}
    reader = project.reader()
    for a in (RAW, SILVER):
        table = project.store.read_partitions(a, DAYS)
        assert table is not None
        ids = table.column("id").to_pylist()
        assert len(ids) == len(set(ids)), f"{a}: duplicated rows"
        for k in DAYS:
            data = project.store.read_partition(a, k)
            record = reader.partitions.get(a, k)
            assert data is not None and record is not None
            found[f"{a} {k}"] = (fingerprint_table(data), data.num_rows, record.fingerprint)
    return found


def published_once(project: Project, result: RunResult) -> None:
    assert result.state is RunState.SUCCEEDED, [s.error for s in result.steps if s.error]
    assert {s.outcome for s in result.steps} == {StepOutcome.PUBLISHED}
    for a in (RAW, SILVER):
        commits = [
            r for r in project.store.history(a) if r.metadata.get(CommitKey.RUN_ID) == result.run_id
        ]
        keys = [k for r in commits for k in r.metadata[CommitKey.PARTITION_KEYS].split(",")]
        assert sorted(keys) == DAYS, f"{a}: each partition committed once"


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_worker_processes_compute_what_the_local_executor_computes(
    tmp_path: Path, layout: str
) -> None:
    """The workers cannot import the project's modules: they travel by value, from a
    top-level module or from a namespace package alike."""
    from backfiller.actions.dask_executor import DaskExecutor

    local = lay_out(tmp_path / "local", None, layout)
    published_once(local, backfill(local, RunOptions()))
    remote = lay_out(tmp_path / "remote", None, layout)
    assert not list((tmp_path / "remote").rglob("__init__.py"))
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):
        pids = set(client.run(os.getpid).values())
        assert os.getpid() not in pids  # the steps compute in other processes
        result = backfill(remote, RunOptions(executor=DaskExecutor(client)))
    published_once(remote, result)
    assert outcome(remote) == outcome(local)


@pytest.mark.parametrize("group_size", [1, 64])
def test_a_worker_killed_mid_step_costs_a_recomputation(tmp_path: Path, group_size: int) -> None:
    from backfiller.actions.dask_executor import DaskExecutor

    local = lay_out(tmp_path / "local", None)
    published_once(local, backfill(local, RunOptions()))
    markers = tmp_path / "markers"
    markers.mkdir()
    remote = lay_out(tmp_path / "remote", markers)
    results: list[RunResult] = []
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):
        options = RunOptions(executor=DaskExecutor(client), group=GroupLimits(size=group_size))
        run = threading.Thread(target=lambda: results.append(backfill(remote, options)))
        run.start()
        victim = markers / "victim.pid"
        while not victim.exists() and run.is_alive():
            time.sleep(0.05)
        assert victim.exists(), "the victim step never started"
        while not victim.read_text():
            time.sleep(0.01)
        pid = int(victim.read_text())
        assert pid != os.getpid()
        os.kill(pid, signal.SIGKILL)  # the worker dies in the middle of the step
        run.join()
    (result,) = results
    published_once(remote, result)
    assert outcome(remote) == outcome(local)
