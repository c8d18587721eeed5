"""``--executor`` / ``--scheduler`` and ``[executor]``: a plan applied on a Dask cluster, and
every wrong setting refused with exit 2 before anything is written."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import GAP_DAY, cli_environment, tree_fingerprint

from backfiller import Project
from backfiller.cli.main import main

distributed = pytest.importorskip("distributed")

RAW = "week06/ingestion/raw_ticket_events_partitioned"
SILVER = "week06/silver/ticket_fact_partitioned"
PLAN_REL = f"reports/week06/backfill/backfill_plan_{GAP_DAY}.json"


@pytest.fixture(autouse=True)
def _cli_environment(monkeypatch: pytest.MonkeyPatch, project_environ: dict[str, str]) -> None:
    cli_environment(monkeypatch, project_environ)
    # a closed port on this machine is refused at once; the client would keep trying for 10 s
    monkeypatch.setattr("backfiller.actions.dask_executor.CONNECT_TIMEOUT", "1s")


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """The address of a Dask cluster's scheduler (workers in this process)."""
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0",
        scheduler_port=0, protocol="tcp",
    ) as cluster:  # fmt: skip
        yield str(cluster.scheduler_address)


def run(capsys: pytest.CaptureFixture[str], root: Path, *args: str) -> tuple[int, str, str]:
    code = main(["--project", str(root), *args])
    out, err = capsys.readouterr()
    return code, out, err


def files(root: Path) -> dict[str, str]:
    return {
        k: v
        for k, v in tree_fingerprint(root).items()
        if "__pycache__" not in k and not k.endswith(("-wal", "-shm"))
    }


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow
def test_apply_on_a_dask_scheduler(
    capsys: pytest.CaptureFixture[str], april_project: Project, scheduler: str
) -> None:
    root = april_project.root
    assert run(capsys, root, "plan", "--partition", GAP_DAY)[0] == 0
    code, out, err = run(
        capsys, root, "apply", str(root / PLAN_REL), "--executor", "dask", "--scheduler", scheduler
    )
    assert code == 0, (out, err)
    assert "2 published" in out.splitlines()
    for asset in (RAW, SILVER):
        data = april_project.store.read_partition(asset, GAP_DAY)
        assert data is not None and data.num_rows == 3


@pytest.mark.slow
def test_executor_from_the_configuration(
    capsys: pytest.CaptureFixture[str], april_project: Project, scheduler: str
) -> None:
    root = april_project.root
    with (root / "backfiller.toml").open("a", encoding="utf-8") as config:
        config.write(f'\n[executor]\nkind = "dask"\nscheduler = "{scheduler}"\n')
    assert run(capsys, root, "plan", "--partition", GAP_DAY)[0] == 0
    code, out, err = run(capsys, root, "apply", str(root / PLAN_REL))
    assert code == 0, (out, err)
    assert "2 published" in out.splitlines()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--executor", "spark"], "Unknown executor 'spark' (--executor / --scheduler)"),
        (["--executor", "dask"], "The dask executor needs the scheduler's address"),
        (["--executor", "local", "--scheduler", "tcp://127.0.0.1:8786"], "executor is local"),
        (["--scheduler", "tcp://127.0.0.1:{port}"], "Cannot reach the Dask scheduler"),
    ],
)
def test_a_wrong_executor_exits_2_and_writes_nothing(
    capsys: pytest.CaptureFixture[str], april_project: Project, args: list[str], says: str
) -> None:
    root = april_project.root
    assert run(capsys, root, "plan", "--partition", GAP_DAY)[0] == 0
    before = files(root)
    args = [a.format(port=closed_port()) for a in args]
    code, out, err = run(capsys, root, "apply", str(root / PLAN_REL), *args)
    assert code == 2, (out, err)
    assert says in err
    assert "next step:" in err
    assert files(root) == before


def test_a_wrong_executor_setting_names_it(
    capsys: pytest.CaptureFixture[str], april_project: Project
) -> None:
    root = april_project.root
    with (root / "backfiller.toml").open("a", encoding="utf-8") as config:
        config.write('\n[executor]\nkind = "celery"\n')
    code, _, err = run(capsys, root, "status")
    assert code == 2
    assert "[executor] kind = 'celery'" in err
    assert "must be 'local' or 'dask'" in err


def test_resume_takes_the_executor_options(
    capsys: pytest.CaptureFixture[str], april_project: Project
) -> None:
    code, out, _ = run(capsys, april_project.root, "resume", "--help")
    assert code == 0
    assert "--executor" in out and "--scheduler" in out


@pytest.mark.slow
def test_plan_and_apply_at_once_on_a_dask_scheduler(
    capsys: pytest.CaptureFixture[str], april_project: Project, scheduler: str
) -> None:
    root = april_project.root
    code, out, err = run(
        capsys, root, "plan", "--partition", GAP_DAY, "--mode", "apply", "--scheduler", scheduler
    )
    assert code == 0, (out, err)
    assert "2 published" in out.splitlines()


@pytest.mark.slow
def test_plan_and_apply_at_once_on_an_unreachable_scheduler_writes_nothing(
    capsys: pytest.CaptureFixture[str], april_project: Project
) -> None:
    root = april_project.root
    before = files(root)
    address = f"tcp://127.0.0.1:{closed_port()}"
    code, out, err = run(
        capsys, root, "plan", "--partition", GAP_DAY, "--mode", "apply", "--scheduler", address
    )
    assert code == 2, (out, err)
    assert "Cannot reach the Dask scheduler" in err
    assert files(root) == before  # not even the plan


def test_the_dask_executor_without_distributed_installed_exits_2_and_writes_nothing(
    capsys: pytest.CaptureFixture[str],
    april_project: Project,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = april_project.root
    assert run(capsys, root, "plan", "--partition", GAP_DAY)[0] == 0
    before = files(root)
    monkeypatch.delitem(sys.modules, "backfiller.actions.dask_executor", raising=False)
    monkeypatch.setitem(sys.modules, "distributed", None)  # what an install without it gives
    code, out, err = run(
        capsys, root, "apply", str(root / PLAN_REL), "--executor", "dask",
        "--scheduler", "tcp://127.0.0.1:8786",
    )  # fmt: skip
    assert code == 2, (out, err)
    assert "needs dask.distributed" in err
    assert "backfiller[dask]" in err
    assert files(root) == before


def test_a_store_on_another_host_is_exit_2_naming_the_setting(
    capsys: pytest.CaptureFixture[str], april_project: Project
) -> None:
    root = april_project.root
    config = root / "backfiller.toml"
    text = config.read_text(encoding="utf-8")
    store_line = next(line for line in text.splitlines() if line.startswith("store"))
    config.write_text(text.replace(store_line, 'store = "file://otherhost/lake"'), encoding="utf-8")
    before = files(root)
    code, out, err = run(capsys, root, "status")
    assert code == 2, (out, err)
    assert "[project] store = 'file://otherhost/lake'" in err
    assert files(root) == before
