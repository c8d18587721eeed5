"""The project on object storage (``s3://`` on a loopback S3 endpoint: moto's server in its
own process) and on ``file://`` URIs — the Delta store, the report folder (plans, partition
reports, evidence, holds) and the manifests: the whole controlled path — plan, apply, rerun,
restore, verify, evidence; a crash and a resume (slow) — through the CLI, exactly as on a
local folder.

moto's threaded server was seen to lose a conditional write under concurrent writers: the one
race run on S3 here (two coordinators creating one table) uses it single-threaded; the other
concurrent writers are tested on local files (test_many_operators.py, test_fencing.py,
test_table_creation_race.py)."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from cli_calls import run
from conftest import GAP_DAY, NOW, cli_environment, materialize, run_steps, tree_fingerprint
from deltalake import DeltaTable

from backfiller import FixedClock, Project, load_project
from backfiller.engine import fingerprint_table
from backfiller.lab.example import lay_out_example
from backfiller.ledger import PartitionStatus, RunState
from backfiller.locations import files_in
from backfiller.planning import read_plan
from backfiller.reports import read_partition_report
from backfiller.store import DeltaStore
from backfiller.store.base import PARTITION_COLUMN, CommitInfo, CommitKey

pytest.importorskip("moto")

#: moto's server runs in a process of its own: out of the fast loop, in the full suite
pytestmark = pytest.mark.slow

RAW = "week06/ingestion/raw_ticket_events_partitioned"
SILVER = "week06/silver/ticket_fact_partitioned"
ASSETS = (RAW, SILVER)
WEEK = ["2026-04-14", "2026-04-15", "2026-04-16", GAP_DAY, "2026-04-18", "2026-04-19"]
BUCKET = "lake"
CLI = [sys.executable, "-m", "backfiller.cli.main"]
#: only to keep a hung subprocess from hanging the suite; never an assertion on speed
HANG_GUARD = 300


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


#: moto's server answering one request at a time (its threaded server was seen to lose a
#: conditional write under concurrent writers)
SINGLE_THREADED = """\
import sys
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple
app = DomainDispatcherApplication(create_backend_app)
run_simple("127.0.0.1", int(sys.argv[1]), app, threaded=False)
"""


@contextlib.contextmanager
def moto_server(*, threaded: bool) -> Iterator[str]:
    """An S3 endpoint on loopback (moto's server, in its own process: deltalake holds the
    interpreter lock while it waits for an answer, so a server thread in this process would
    never answer), with the bucket ``lake``."""
    port = free_port()
    command = (
        ["-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
        if threaded
        else ["-c", SINGLE_THREADED, str(port)]
    )
    server = subprocess.Popen(
        [sys.executable, *command], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        while True:  # until it listens (or dies)
            assert server.poll() is None, "moto's server did not start"
            try:
                with socket.create_connection(("127.0.0.1", port)):
                    break
            except OSError:
                continue
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/{BUCKET}", method="PUT"))
        yield endpoint
    finally:
        server.terminate()
        server.wait()


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with moto_server(threaded=True) as endpoint:
        yield endpoint


def storage_options(endpoint: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",
    }


def with_store(root: Path, store: str, options: dict[str, str] | None = None) -> None:
    """Point the example's ``[project] store`` at ``store`` (and ``[storage.options]``)."""
    config = root / "backfiller.toml"
    text = config.read_text(encoding="utf-8").replace('store = "data/lake"', f'store = "{store}"')
    if options:
        text += "\n[storage.options]\n" + "".join(f'{k} = "{v}"\n' for k, v in options.items())
    config.write_text(text, encoding="utf-8")


@pytest.fixture
def s3_project(tmp_path: Path, s3_endpoint: str) -> Project:
    """The example with its tables under a fresh prefix of ``s3://lake``, its week materialized
    but for the gap day."""
    root = lay_out_example(tmp_path / "omni")
    with_store(root, f"s3://{BUCKET}/{uuid.uuid4().hex}", storage_options(s3_endpoint))
    project = load_project(root, environ={}, clock=FixedClock(NOW))
    materialize(project, [k for k in WEEK if k != GAP_DAY])
    return project


@pytest.fixture(autouse=True)
def _cli_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    cli_environment(monkeypatch, {})


def rows_of(project: Project) -> dict[tuple[str, str], tuple[int, str]]:
    """Each partition's rows (no idempotency key twice) and fingerprint, read back."""
    found = {}
    for asset in ASSETS:
        for key in WEEK:
            data = project.store.read_partition(asset, key)
            assert data is not None
            ids = data.column("ticket_id").to_pylist()
            assert len(ids) == len(set(ids)), f"{asset} {key}: a ticket twice"
            found[asset, key] = (data.num_rows, fingerprint_table(data))
    return found


def reference(tmp_path: Path) -> dict[tuple[str, str], tuple[int, str]]:
    """The same week backfilled on a local folder."""
    root = lay_out_example(tmp_path / "reference")
    project = load_project(root, environ={}, clock=FixedClock(NOW))
    materialize(project, WEEK)
    return rows_of(project)


def put_local_folder(endpoint: str, folder: Path, prefix: str) -> None:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            key = f"{prefix}/{path.relative_to(folder).as_posix()}"
            put_object(endpoint, key, path.read_bytes())


def with_locations(root: Path, base: str, options: dict[str, str] | None = None) -> None:
    """Point the example's store, report folder and manifests folder under ``base`` (a URI;
    the manifests must already be there) and forget the local manifests folder."""
    config = root / "backfiller.toml"
    text = config.read_text(encoding="utf-8")
    for setting, value in (
        ('store = "data/lake"', f'store = "{base}/lake"'),
        ('report_dir = "reports/week06"', f'report_dir = "{base}/reports/week06"'),
        ('manifests = "data/manifests"', f'manifests = "{base}/manifests"'),
    ):
        assert setting in text
        text = text.replace(setting, value)
    if options:
        text += "\n[storage.options]\n" + "".join(f'{k} = "{v}"\n' for k, v in options.items())
    config.write_text(text, encoding="utf-8")
    shutil.rmtree(root / "data" / "manifests")  # nothing local to fall back on


@pytest.fixture(params=["s3", "file"])
def remote_project(request: pytest.FixtureRequest, tmp_path: Path) -> Project:
    """The example with its tables, reports (plans, evidence, holds) and manifests all
    under one URI — a fresh prefix of ``s3://lake`` (moto), or a ``file://`` folder — its
    week materialized but for the gap day."""
    root = lay_out_example(tmp_path / "omni")
    if request.param == "s3":
        endpoint = request.getfixturevalue("s3_endpoint")
        prefix = uuid.uuid4().hex
        put_local_folder(endpoint, root / "data" / "manifests", f"{prefix}/manifests")
        with_locations(root, f"s3://{BUCKET}/{prefix}", storage_options(endpoint))
    else:
        elsewhere = root / "elsewhere"  # a file:// URI must stay inside the project too
        shutil.copytree(root / "data" / "manifests", elsewhere / "manifests")
        with_locations(root, elsewhere.as_uri())
    project = load_project(root, environ={}, clock=FixedClock(NOW))
    materialize(project, [k for k in WEEK if k != GAP_DAY])
    return project


def nothing_local(root: Path) -> None:
    """Neither tables nor reports nor plans landed in the project folder."""
    assert not (root / "data" / "lake").exists()
    assert not (root / "reports").exists()
    assert not (root / "data" / "manifests").exists()


def test_the_controlled_path_on_object_storage(
    capsys: pytest.CaptureFixture[str], remote_project: Project, tmp_path: Path
) -> None:
    """Plan, apply, rerun, restore, verify, evidence verify, evidence report — with the
    tables, the reports, the plans, the evidence and the manifests on ``s3://`` or
    ``file://``; the gap listing reads the reports there."""
    project = remote_project
    root = project.root
    nothing_local(root)
    assert project.config.store_path in (None, root / "elsewhere" / "lake")
    reports = project.config.report_dir
    uri = project.store.table_uri(RAW)  # type: ignore[attr-defined]
    assert DeltaTable.is_deltatable(uri, storage_options=project.config.storage_options)
    assert len(project.manifests) > 0  # read from the URI
    assert project.partition_report_path(RAW, "2026-04-15").is_file()

    code, out, err = run(capsys, root, "gaps", "--start", WEEK[0], "--end", WEEK[-1])
    assert code == 0, err
    assert GAP_DAY in out

    assert run(capsys, root, "plan", "--partition", GAP_DAY)[0] == 0
    plan = project.plan_dir / f"backfill_plan_{GAP_DAY}.json"
    assert plan.is_file()
    code, out, err = run(capsys, root, "apply", str(plan))
    assert code == 0, (out, err)
    assert rows_of(project) == reference(tmp_path)
    written = read_partition_report(project.partition_report_path(SILVER, GAP_DAY))
    assert written is not None and written.row_count > 0
    (applied,) = files_in(project.plan_dir / "applied", "*.json")
    assert read_plan(applied).plan_id == read_plan(plan).plan_id

    # a rerun publishes a new version; a restore brings the one before it back
    before = project.store.read_partition(RAW, "2026-04-15")
    assert before is not None
    code, out, err = run(
        capsys, root, "rerun", "--asset", RAW, "--partition", "2026-04-15", "--reason", "remote"
    )
    assert code == 0, (out, err)
    reader = project.reader()
    rerun_id = reader.partitions.get(RAW, "2026-04-15").last_run_id
    assert rerun_id is not None
    code, out, err = run(
        capsys, root, "restore", "--asset", RAW, "--partition", "2026-04-15",
        "--before-run", rerun_id, "--reason", "back to the reviewed version",
    )  # fmt: skip
    assert code == 0, (out, err)
    restored = project.store.read_partition(RAW, "2026-04-15")
    assert restored is not None and fingerprint_table(restored) == fingerprint_table(before)
    report = read_partition_report(project.partition_report_path(RAW, "2026-04-15"))
    assert report is not None and report.action == "restore"

    # the store agrees with the ledger, partition by partition; the evidence chain holds
    code, out, err = run(capsys, root, "verify")
    assert code == 0, (out, err)
    code, out, err = run(capsys, root, "evidence", "verify")
    assert code == 0, (out, err)
    assert "Evidence chain intact" in out
    runs = project.reader().runs.all()
    assert {r.state for r in runs} == {RunState.SUCCEEDED}
    assert len(files_in(reports / "evidence", "*.json")) == len(runs)
    code, out, err = run(capsys, root, "evidence", "report", rerun_id)
    assert code == 0, (out, err)
    assert (reports / "evidence" / f"{rerun_id}.md").read_text().startswith("#")

    # a report lost from the store's side is seen by gaps (which lists the report folder)
    project.partition_report_path(SILVER, "2026-04-16").unlink()
    code, out, err = run(capsys, root, "gaps", "--start", WEEK[0], "--end", WEEK[-1], "--json")
    assert code == 0, err
    found = {
        (g["asset"], g["partition_key"])
        for g in json.loads(out)["gaps"]
        if g["gap_reason"] == "missing_partition_report"
    }
    assert found == {(SILVER, "2026-04-16")}
    nothing_local(root)


def test_a_missing_data_file_on_s3_is_found(
    capsys: pytest.CaptureFixture[str], s3_project: Project
) -> None:
    """``missing_files`` lists the folders of the table on S3 (there is no local folder)."""
    store = s3_project.store
    assert store.missing_files(RAW) == {}
    data_file = next(
        p
        for p in DeltaTable(
            store.table_uri(RAW),  # type: ignore[attr-defined]
            storage_options=s3_project.config.storage_options,
        ).file_uris()
        if "2026-04-15" in p
    )
    files = store._files_of(RAW)  # type: ignore[attr-defined]
    files.delete_file(data_file.removeprefix(store.table_uri(RAW) + "/"))  # type: ignore[attr-defined]
    assert store.missing_files(RAW) == {"2026-04-15": 1}


def test_the_dask_executor_reads_upstream_from_s3(
    s3_project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers read the pinned upstream versions from the store on S3 (the store travels
    with its storage options); the coordinator commits to S3."""
    distributed = pytest.importorskip("distributed")
    from backfiller.actions import RunOptions
    from backfiller.actions.apply import apply_plan
    from backfiller.actions.dask_executor import DaskExecutor
    from backfiller.planning import Mode, make_plan, read_plan, write_plan
    from backfiller.planning.planner import request_for

    project = s3_project
    request = request_for([GAP_DAY], Mode.DRY_RUN, "tests")
    document = read_plan(write_plan(project, make_plan(project, project.reader(), request)))
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):
        options = RunOptions(executor=DaskExecutor(client))
        result = apply_plan(project, document, operator="tests", options=options)
    assert result.state is RunState.SUCCEEDED, [s.error for s in result.steps if s.error]
    assert rows_of(project) == reference(tmp_path)


@pytest.mark.slow
def test_a_coordinator_killed_after_its_commit_is_finished_by_resume(
    remote_project: Project, tmp_path: Path
) -> None:
    """On ``s3://`` and ``file://`` (tables, reports and evidence there)."""
    project = remote_project
    root = project.root
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WEEK06_", "BACKFILLER_"))}
    apply = [*CLI, "--project", str(root), "--group-size", "1", "plan", "--partition", GAP_DAY]
    crashed = subprocess.run(
        [*apply, "--mode", "apply"],
        env={**env, "BACKFILLER_CRASH_POINT": "after_commit"},
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
    )
    assert crashed.returncode == -9, crashed.stderr
    (run_record,) = [r for r in project.reader().runs.all() if r.state is RunState.RUNNING]
    # the commit landed; the ledger does not know it yet
    assert project.reader().partitions.get(RAW, GAP_DAY).status is not PartitionStatus.MATERIALIZED
    assert project.store.read_partition(RAW, GAP_DAY).num_rows == 3  # type: ignore[union-attr]

    resumed = subprocess.run(
        [*CLI, "--project", str(root), "resume", run_record.run_id],
        env=env,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert project.reader().runs.get(run_record.run_id).state is RunState.SUCCEEDED
    assert rows_of(project) == reference(tmp_path)
    # the landed commit was recorded, not made again: one commit of the run per asset
    for asset in ASSETS:
        commits = [
            h
            for h in project.store.history(asset)
            if h.metadata.get("backfiller.run_id") == run_record.run_id
        ]
        assert len(commits) == 1, commits
    # the reports and the evidence landed where the reports live
    for key in WEEK:
        assert project.partition_report_path(SILVER, key).is_file()
    assert files_in(project.config.report_dir / "evidence", f"*{run_record.run_id}.json")
    nothing_local(root)


def put_object(endpoint: str, key: str, body: bytes) -> None:
    """Write an object to the bucket (with boto3, which moto[server] brings)."""
    import boto3

    options = storage_options(endpoint)
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=options["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=options["AWS_SECRET_ACCESS_KEY"],
        region_name=options["AWS_REGION"],
    )
    client.put_object(Bucket=BUCKET, Key=key, Body=body)


def inputs_on_s3(project: Project, endpoint: str) -> str:
    """Copy the manifest's input files to S3 and make the manifest name them by URI (same
    checksums); returns the prefix."""
    prefix = f"inputs-{uuid.uuid4().hex}"
    manifest_file = next((project.root / "data" / "manifests").glob("*.json"))
    manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    for part in manifest["partitions"]:
        for declared in part["input_files"]:
            put_object(
                endpoint,
                f"{prefix}/{declared['path']}",
                (project.root / declared["path"]).read_bytes(),
            )
            declared["path"] = f"s3://{BUCKET}/{prefix}/{declared['path']}"
    manifest_file.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    shutil.rmtree(project.root / "data" / "seed")  # nothing local to fall back on
    project.reload_manifests()
    return prefix


@pytest.mark.parametrize("executor", ["local", "dask"])
def test_manifest_inputs_on_s3_are_verified_and_read(
    s3_project: Project, s3_endpoint: str, tmp_path: Path, executor: str
) -> None:
    from backfiller.actions import RunOptions
    from backfiller.actions.apply import apply_plan
    from backfiller.planning import Mode, make_plan, read_plan, write_plan
    from backfiller.planning.planner import request_for

    project = s3_project
    prefix = inputs_on_s3(project, s3_endpoint)
    request = request_for([GAP_DAY], Mode.DRY_RUN, "tests")
    document = read_plan(write_plan(project, make_plan(project, project.reader(), request)))
    with contextlib.ExitStack() as stack:
        options = RunOptions()
        if executor == "dask":
            distributed = pytest.importorskip("distributed")
            from backfiller.actions.dask_executor import DaskExecutor

            cluster = stack.enter_context(
                distributed.LocalCluster(
                    n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0"
                )
            )
            client = stack.enter_context(distributed.Client(cluster, set_as_default=False))
            options = RunOptions(executor=DaskExecutor(client))
        result = apply_plan(project, document, operator="tests", options=options)
    assert result.state is RunState.SUCCEEDED, [s.error for s in result.steps if s.error]
    # the raw rows name their source file: the URI now, the project path in the reference
    found, expected = rows_of(project), reference(tmp_path)
    assert {k for k in found if found[k] != expected[k]} == {(RAW, GAP_DAY)}
    raw = project.store.read_partition(RAW, GAP_DAY)
    assert raw is not None
    assert set(raw.column("source_file").to_pylist()) == {
        f"s3://{BUCKET}/{prefix}/data/seed/ticket_events/{GAP_DAY}.jsonl"
    }
    local = load_project(tmp_path / "reference", environ={}, clock=FixedClock(NOW))
    local_raw = local.store.read_partition(RAW, GAP_DAY)
    assert local_raw is not None
    assert fingerprint_table(raw.drop_columns(["source_file"])) == fingerprint_table(
        local_raw.drop_columns(["source_file"])
    )


def test_a_changed_input_on_s3_fails_its_step(
    s3_project: Project, s3_endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = s3_project
    prefix = inputs_on_s3(project, s3_endpoint)
    put_object(s3_endpoint, f"{prefix}/data/seed/ticket_events/{GAP_DAY}.jsonl", b"{}\n")
    root = project.root
    assert run(capsys, root, "plan", "--partition", GAP_DAY)[0] == 0
    plan = root / f"reports/week06/backfill/backfill_plan_{GAP_DAY}.json"
    code, out, err = run(capsys, root, "apply", str(plan))
    assert code != 0
    assert f"s3://{BUCKET}/{prefix}/data/seed/ticket_events/{GAP_DAY}.jsonl (checksum differs)" in (
        out + err
    )
    assert project.store.read_partition(RAW, GAP_DAY).num_rows == 0  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("report_dir", "said"),
    [
        ("s3://no-such-bucket/reports", "Cannot list s3://no-such-bucket/reports"),
        ("s3://", "names no bucket"),
        ("file://elsewhere.example/reports", "not a local file URI"),
    ],
)
def test_a_report_folder_that_cannot_be_reached_is_refused_with_nothing_written(
    capsys: pytest.CaptureFixture[str],
    s3_endpoint: str,
    tmp_path: Path,
    report_dir: str,
    said: str,
) -> None:
    root = lay_out_example(tmp_path / "omni")
    config = root / "backfiller.toml"
    text = config.read_text(encoding="utf-8")
    text = text.replace('report_dir = "reports/week06"', f'report_dir = "{report_dir}"')
    text += "\n[storage.options]\n" + "".join(
        f'{k} = "{v}"\n' for k, v in storage_options(s3_endpoint).items()
    )
    config.write_text(text, encoding="utf-8")
    before = tree_fingerprint(root)
    code, out, err = run(capsys, root, "plan", "--partition", GAP_DAY)
    assert code == 2, (out, err)
    assert "[project] report_dir" in err and said in err, err
    assert tree_fingerprint(root) == before


CREATORS = 2
CREATION_ROUNDS = 6


def _creator(endpoint: str, writer: int, barrier: Any, results: Any) -> None:
    """One coordinator: in every round, publish its own partition of a table that does not
    exist yet, at the same moment as the other."""
    key = f"2026-01-0{writer + 1}"
    data = pa.table({"writer": [writer] * 3, PARTITION_COLUMN: [key] * 3})
    for round_ in range(CREATION_ROUNDS):
        store = DeltaStore(f"s3://{BUCKET}/creation-{round_}", storage_options(endpoint))
        commit = CommitInfo(run_id=f"w{writer}", fences=((key, 1),))
        barrier.wait()
        try:
            store.write_partitions("lake/orders", data, [key], commit)
        except Exception as exc:  # reported, judged by the test
            results.put((round_, writer, f"{type(exc).__name__}: {exc}"))
        else:
            results.put((round_, writer, "ok"))


@pytest.mark.slow
def test_coordinators_creating_one_table_on_s3_at_once_end_with_one_table() -> None:
    """Two processes publish disjoint partitions of a new table at the same moment, round
    after round: each round ends with one creation (one table id), both partitions landed,
    and neither writer failed. Before, the creator that lost version 0 either failed ("a
    table already exists") or had delta-rs commit its creation again as version 1, a second
    table id over the first."""
    with moto_server(threaded=False) as endpoint:
        context = multiprocessing.get_context("spawn")
        barrier = context.Barrier(CREATORS)
        results = context.Queue()
        processes = [
            context.Process(target=_creator, args=(endpoint, w, barrier, results))
            for w in range(CREATORS)
        ]
        for process in processes:
            process.start()
        outcomes = [results.get(timeout=HANG_GUARD) for _ in range(CREATORS * CREATION_ROUNDS)]
        for process in processes:
            process.join(HANG_GUARD)
        assert [o for o in outcomes if o[2] != "ok"] == []
        for round_ in range(CREATION_ROUNDS):
            store = DeltaStore(f"s3://{BUCKET}/creation-{round_}", storage_options(endpoint))
            history = store.history("lake/orders")
            created = [h.version for h in history if h.metadata.get(CommitKey.CREATED.value)]
            assert created == [0], (round_, [(h.version, h.operation) for h in history])
            table = store.read_partitions("lake/orders", ["2026-01-01", "2026-01-02"])
            assert table is not None
            assert sorted(table.column("writer").to_pylist()) == [0, 0, 0, 1, 1, 1]


def test_the_applied_plan_copy_is_the_document_the_ledger_recorded(
    remote_project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two operators made the same plan at different moments (one plan id, two documents);
    the other's copy was written first (on object storage it may even be written over this
    one's: there is no conditional PUT). This operator's document is the one the ledger
    records, and the copy ends as that document: the evidence's hash of the plan holds."""
    from datetime import timedelta

    from backfiller.actions.apply import apply_plan
    from backfiller.canonical import sha256_hex
    from backfiller.planning import Mode, make_plan, write_plan
    from backfiller.planning.planner import archive_plan, request_for

    project = remote_project
    request = request_for([GAP_DAY], Mode.DRY_RUN, "tests")
    document = read_plan(write_plan(project, make_plan(project, project.reader(), request)))
    other = document.model_copy(update={"created_at": document.created_at - timedelta(minutes=5)})
    assert other.plan_id == document.plan_id and other.to_dict() != document.to_dict()
    copy = archive_plan(project, other)  # the other operator's, not recorded yet
    result = apply_plan(project, document, operator="tests")
    assert result.state is RunState.SUCCEEDED, [s.error for s in result.steps if s.error]
    recorded = project.reader().runs.plan(document.plan_id)
    assert recorded is not None and recorded.document == document.to_dict()
    assert sha256_hex(json.loads(copy.read_bytes())) == sha256_hex(document.to_dict())
    code, out, err = run(capsys, project.root, "evidence", "verify")
    assert code == 0, (out, err)


def test_holds_json_is_written_where_the_reports_are(remote_project: Project) -> None:
    """A failing blocking check holds what depends on the partition: ``holds.json`` is written
    in the report folder on ``s3://`` or ``file://``, and rewritten when the holds go."""
    from backfiller.holds import holds_file, release

    project = remote_project
    key = "2026-04-15"
    steps = [(RAW, key), (SILVER, key)]
    failing = frozenset({(RAW, "idempotency_key_unique", key)})
    with project.ledger() as ledger:
        failed = run_steps(project, ledger, steps, action="rerun", forced_failures=failing)
        assert failed.state is RunState.CHECKS_FAILED
        held = {(h.target, h.partition_key) for h in ledger.holds.all()}
    assert (SILVER, key) in held
    path = holds_file(project)
    assert str(path).startswith(str(project.config.report_dir))
    document = json.loads(path.read_text())
    assert {(h["target"], h["partition_key"]) for h in document["holds"]} == held
    with project.ledger() as ledger:
        fixed = run_steps(project, ledger, steps, action="rerun")
        assert fixed.state is RunState.SUCCEEDED
        assert release(project, ledger, operator="tests").blocked == []
    assert json.loads(path.read_text())["holds"] == []
    nothing_local(project.root)


def test_a_write_that_fails_on_object_storage_is_an_os_error(s3_endpoint: str) -> None:
    """As a full disk is: a run that cannot write its report or evidence stops (exit 1) and
    'resume' finishes it (a listing that fails is bad input: exit 2, before anything is
    written; see above)."""
    from backfiller.locations import ObjectPath

    target = ObjectPath.parse(
        "s3://no-such-bucket/reports/x.json",
        storage_options(s3_endpoint),
        setting="[project] report_dir",
    )
    with pytest.raises(OSError, match=r"cannot write s3://no-such-bucket/reports/x.json \("):
        target.write_bytes(b"{}")
