"""What team mode adds to the ledger, on both backends where it applies: leases taken in one
statement under concurrency, the evidence chain under concurrent appends, migrations racing,
the two schemas alike, the pool's bound, and the errors a team meets (no driver, no server)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import both_backends
from postgres_server import PostgresServer

from backfiller.clock import FixedClock, system_clock
from backfiller.errors import ConfigError, ExitCode, MissingDependencyError
from backfiller.ledger import (
    DatabaseLedger,
    LeaseConflict,
    PostgresLedger,
    RunState,
    SqliteLedger,
)
from backfiller.ledger.migrations import MIGRATIONS, SCHEMA_VERSION
from backfiller.ledger.postgres import lock_id, redact

RAW = "week06/ingestion/raw"
KEY = "2026-04-17"

pytestmark = both_backends


@pytest.fixture
def open_ledger(
    ledger_backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., DatabaseLedger]]:
    """Open (another handle on) one ledger of the backend: each call is another connection, as
    another operator's process would have."""
    if ledger_backend == "sqlite":
        location: Any = tmp_path / "ledger.db"
    else:
        location = request.getfixturevalue("postgres_url")
    opened: list[DatabaseLedger] = []

    def _open(clock: Any = system_clock, **kwargs: Any) -> DatabaseLedger:
        if ledger_backend == "sqlite":
            led: DatabaseLedger = SqliteLedger(location, clock=clock)
        else:
            led = PostgresLedger(location, clock=clock, **kwargs)
        opened.append(led)
        return led

    yield _open
    for led in opened:
        led.close()


def _take(led: DatabaseLedger, run_id: str, ttl: float = 60, **kw: Any) -> Any:
    return led.leases.acquire(
        RAW, KEY, holder=f"op-{run_id}", plan_id="plan-1", run_id=run_id, ttl_seconds=ttl, **kw
    )


# -- leases ----------------------------------------------------------------------------------


def test_a_lease_excludes_others_until_it_expires_on_the_ledgers_clock(
    open_ledger: Callable[..., DatabaseLedger], clock: FixedClock
) -> None:
    led = open_ledger(clock)
    first = _take(led, "run-1")
    assert (first.token, first.acquired_at, first.expires_at) == (
        1,
        "2026-12-01T12:00:00+00:00",
        "2026-12-01T12:01:00+00:00",
    )
    assert led.leases.live(RAW, KEY) == first
    assert led.leases.held() == [first]
    with pytest.raises(LeaseConflict) as info:
        _take(led, "run-2")
    assert info.value.lease == first
    # the same run takes it again, with a new token
    again = _take(led, "run-1", ttl=30.5)
    assert again.token == 2
    assert again.expires_at == "2026-12-01T12:00:30.500000+00:00"
    assert not led.leases.is_current(first)
    clock.advance(seconds=31)
    assert led.leases.live(RAW, KEY) is None
    taken = _take(led, "run-2")
    assert taken.token == 3
    assert taken.acquired_at == "2026-12-01T12:00:31+00:00"
    assert led.leases.is_current(taken)
    assert not led.leases.renew(again, 60)  # the stale holder cannot renew
    assert led.leases.renew(taken, 120)
    live = led.leases.live(RAW, KEY)
    assert live is not None and live.expires_at == "2026-12-01T12:02:31+00:00"
    led.leases.release(again)  # a stale release changes nothing
    assert led.leases.live(RAW, KEY) == live
    led.leases.release(taken)
    assert led.leases.held() == []
    assert not led.leases.is_current(taken)
    # the token only grows, and a floor from the data store lifts it
    assert _take(led, "run-3").token == 4
    assert _take(led, "run-3", floor=10).token == 11
    assert led.leases.release_run("run-3") == 1
    assert led.leases.release_run("run-3") == 0


def test_one_of_many_racing_operators_takes_a_lease(
    open_ledger: Callable[..., DatabaseLedger], clock: FixedClock
) -> None:
    ledgers = [open_ledger(clock) for _ in range(6)]
    barrier = threading.Barrier(len(ledgers))
    won: list[int] = []
    lost: list[str] = []

    def race(i: int) -> None:
        barrier.wait()
        try:
            won.append(_take(ledgers[i], f"run-{i}").token)
        except LeaseConflict as exc:
            lost.append(exc.lease.run_id)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(len(ledgers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert won == [1]
    assert len(lost) == len(ledgers) - 1 and len(set(lost)) == 1


def test_concurrent_evidence_appends_chain_without_a_fork(
    open_ledger: Callable[..., DatabaseLedger], clock: FixedClock
) -> None:
    setup = open_ledger(clock)
    runs = [f"run-{i}" for i in range(8)]
    for run_id in runs:
        setup.runs.begin(
            run_id=run_id, plan_id=None, action="backfill", operator="a", reason=None, arguments={}
        )
        setup.runs.settle(run_id, RunState.SUCCEEDED)
    ledgers = [open_ledger(clock) for _ in runs]
    barrier = threading.Barrier(len(runs))

    def append(i: int) -> None:
        barrier.wait()
        ledgers[i].evidence.append(runs[i], lambda seq, prev: (f"e/{seq}.json", f"{seq:064d}"))

    threads = [threading.Thread(target=append, args=(i,)) for i in range(len(runs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    index = setup.evidence.index()
    assert [e.seq for e in index] == list(range(1, len(runs) + 1))
    assert [e.prev_sha256 for e in index] == [None] + [e.sha256 for e in index[:-1]]
    assert sorted(e.run_id for e in index) == runs
    assert all(r.state is RunState.SUCCEEDED for r in setup.runs.all())


def test_one_ledger_is_shared_by_threads(
    open_ledger: Callable[..., DatabaseLedger], clock: FixedClock
) -> None:
    """What ``--max-parallel`` does: the steps of one run share one ledger object (on
    PostgreSQL its pool lends each thread a connection)."""
    led = open_ledger(clock, max_connections=3)
    keys = [f"2026-04-{d:02d}" for d in range(1, 13)]

    def step(key: str) -> None:
        lease = led.leases.acquire(
            RAW, key, holder="a", plan_id=None, run_id="run-1", ttl_seconds=60
        )
        led.partitions.start(RAW, key, run_id="run-1", attempt=1, operator="a")
        led.partitions.publish(
            RAW, key, run_id="run-1", attempt=1, operator="a", data_version=1, row_count=1,
            fingerprint="f", manifest_id=None, manifest_checksum=None, upstream_versions={},
            lease_token=lease.token,
        )  # fmt: skip
        led.leases.release(lease)

    threads = [threading.Thread(target=step, args=(k,)) for k in keys]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.partition_key for r in led.partitions.all(RAW)] == keys
    assert led.leases.held() == []


# -- PostgreSQL only ---------------------------------------------------------------------------


@pytest.fixture
def server(postgres_server: PostgresServer) -> PostgresServer:
    return postgres_server


def _columns_sqlite(path: Path) -> dict[str, set[str]]:
    conn = sqlite3.connect(path)
    try:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        return {t: {r[1] for r in conn.execute(f"PRAGMA table_info({t})")} for t in tables}
    finally:
        conn.close()


def _columns_postgres(url: str) -> dict[str, set[str]]:
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema()"
        ).fetchall()
    found: dict[str, set[str]] = {}
    for table, column in rows:
        found.setdefault(table, set()).add(column)
    return found


@pytest.mark.postgres
def test_both_backends_hold_the_same_tables_and_columns(
    server: PostgresServer, tmp_path: Path
) -> None:
    SqliteLedger(tmp_path / "ledger.db").close()
    url = server.create_database()
    PostgresLedger(url).close()
    sqlite_schema = _columns_sqlite(tmp_path / "ledger.db")
    assert sqlite_schema == _columns_postgres(url)
    assert {"leases", "partitions", "evidence", "holds", "schema_migrations"} <= set(sqlite_schema)


@pytest.mark.postgres
def test_processes_migrating_at_once_apply_each_migration_once(server: PostgresServer) -> None:
    url = server.create_database()
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def open_one() -> None:
        barrier.wait()
        try:
            PostgresLedger(url).close()  # each with its own connections
        except BaseException as exc:  # pragma: no cover - the failure is reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    import psycopg

    with psycopg.connect(url) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations")]
    assert sorted(versions) == [n for n, _, _ in MIGRATIONS] == list(range(1, SCHEMA_VERSION + 1))


@pytest.mark.postgres
def test_the_pool_is_bounded_and_nothing_is_prepared_on_the_server(
    server: PostgresServer, clock: FixedClock
) -> None:
    url = server.create_database()
    with PostgresLedger(url, clock=clock, max_connections=3) as led:
        pool = led._db._pool  # type: ignore[attr-defined]
        assert pool.max_size == 3
        for i in range(5):
            led.runs.get(f"run-{i}")
            led.partitions.all()
        import psycopg

        with psycopg.connect(url) as conn:
            (count,) = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid()"
            ).fetchone() or (0,)
        assert 1 <= count <= 3
        with led._db.read() as conn:  # type: ignore[attr-defined]
            prepared = conn.execute("SELECT count(*) AS n FROM pg_prepared_statements").fetchone()
        assert prepared["n"] == 0


@pytest.mark.postgres
def test_a_server_that_refuses_is_exit_2_naming_the_url_without_its_password(
    server: PostgresServer,
) -> None:
    url = f"postgresql://ana:s3cret@/ledger?host={server.base}/nowhere"
    with pytest.raises(ConfigError) as info:
        PostgresLedger(url)
    assert info.value.exit_code is ExitCode.BAD_INPUT
    text = str(info.value)
    assert "s3cret" not in text
    assert (
        f"Cannot connect to the ledger at postgresql://ana:***@/ledger?host={server.base}" in text
    )
    assert "start the PostgreSQL server" in text
    missing = server.url("no_such_db")
    with pytest.raises(ConfigError, match="does not exist") as info:
        PostgresLedger(missing)
    assert "createdb" in str(info.value)


def test_lock_ids_and_redaction() -> None:
    assert lock_id("evidence chain") == lock_id("evidence chain") != lock_id("run x")
    assert -(2**63) <= lock_id("partition a 2026-04-17") < 2**63
    assert redact("postgresql://a:b@h:5432/d?sslmode=require&password=x") == (
        "postgresql://a:***@h:5432/d?sslmode=require&password=***"
    )
    assert redact("postgresql://h/d") == "postgresql://h/d"


def test_a_missing_driver_names_the_install_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(MissingDependencyError) as info:
        PostgresLedger("postgresql://localhost/ledger")
    assert info.value.exit_code is ExitCode.BAD_INPUT
    assert "pip install 'backfiller[postgres]'" in str(info.value)


@pytest.mark.slow
def test_importing_backfiller_does_not_import_the_driver() -> None:
    code = "import sys, backfiller, backfiller.project; assert 'psycopg' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.postgres
def test_a_project_on_postgresql_gets_a_pooled_writer_and_a_read_only_reader(
    server: PostgresServer, example_dir: Path, clock: FixedClock
) -> None:
    from conftest import ledger_environ

    from backfiller import load_project
    from backfiller.ledger import EmptyLedger

    url = server.create_database()
    project = load_project(example_dir, environ=ledger_environ(url), clock=clock)
    reader = project.reader()
    assert isinstance(reader, EmptyLedger)  # no schema yet: nothing is created
    with project.ledger(max_parallel=4) as led:
        assert isinstance(led, PostgresLedger)
        assert led._db._pool.max_size == 6  # type: ignore[attr-defined]
        led.runs.begin(
            run_id="run-1", plan_id=None, action="backfill", operator="a", reason=None, arguments={}
        )
    reader = project.reader()
    try:
        assert [r.run_id for r in reader.runs.all()] == ["run-1"]
    finally:
        reader.close()  # type: ignore[attr-defined]
    assert not (example_dir / ".backfiller").exists()  # no SQLite file beside it


# -- batches: several writes, one commit -----------------------------------------------------


def _begin(led: DatabaseLedger, run_id: str) -> None:
    led.runs.begin(
        run_id=run_id, plan_id=None, action="backfill", operator="t", reason=None, arguments={}
    )


def test_a_batch_is_seen_by_others_only_when_it_ends_and_a_failing_write_is_undone_alone(
    open_ledger: Callable[..., DatabaseLedger],
) -> None:
    writer, other = open_ledger(), open_ledger()
    _begin(writer, "run-1")
    with writer.batch():
        _begin(writer, "run-2")
        writer.partitions.start(RAW, KEY, run_id="run-2", attempt=1, operator="t")
        with pytest.raises(Exception, match="Cannot begin a run in state 'running'"):
            _begin(writer, "run-1")  # a write refused inside the batch
        with pytest.raises(RuntimeError, match="inner"), writer.batch():
            # a nested block that wrote and then failed is undone alone
            writer.partitions.start(RAW, "2026-04-18", run_id="run-2", attempt=1, operator="t")
            raise RuntimeError("inner")
        assert writer.partitions.get(RAW, "2026-04-18") is None
        _take(writer, "run-2")
        assert writer.runs.get("run-2") is not None  # the batch sees its own writes
        assert other.runs.get("run-2") is None  # nobody else does yet
        assert other.leases.live(RAW, KEY) is None
    assert other.runs.get("run-2") is not None
    record = other.partitions.get(RAW, KEY)
    assert record is not None and record.last_run_id == "run-2"
    assert other.leases.live(RAW, KEY) is not None
    assert [r.run_id for r in other.runs.all()].count("run-1") == 1
    assert other.partitions.get(RAW, "2026-04-18") is None


def test_an_exception_leaving_a_batch_undoes_every_write_in_it(
    open_ledger: Callable[..., DatabaseLedger],
) -> None:
    writer, other = open_ledger(), open_ledger()
    with pytest.raises(RuntimeError, match="stop"), writer.batch():
        _begin(writer, "run-3")
        writer.partitions.start(RAW, KEY, run_id="run-3", attempt=1, operator="t")
        _take(writer, "run-3")
        raise RuntimeError("stop")
    for led in (writer, other):
        assert led.runs.get("run-3") is None
        assert led.partitions.get(RAW, KEY) is None
        assert led.leases.live(RAW, KEY) is None
    _begin(writer, "run-3")  # the ledger is usable afterwards
    assert other.runs.get("run-3") is not None
