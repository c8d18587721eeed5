"""The ledger on both backends — a SQLite file, and a PostgreSQL database on the suite's
throwaway cluster: migrations, verbs, events, runs, plans, the read-only view."""

from __future__ import annotations

import inspect
import itertools
import json
import re
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import both_backends

from backfiller.clock import FixedClock
from backfiller.errors import ConfigError, ExitCode, IllegalTransitionError
from backfiller.ledger import (
    AttemptStatus,
    CheckBook,
    CheckReader,
    DatabaseLedger,
    DimensionBook,
    DimensionReader,
    EmptyLedger,
    EvidenceIndex,
    EvidenceReader,
    HoldBook,
    HoldReader,
    LeaseBook,
    LedgerReader,
    PartitionBook,
    PartitionReader,
    PartitionStatus,
    PostgresLedger,
    ProtectionBook,
    ProtectionReader,
    RunLog,
    RunReader,
    RunState,
    SqliteLedger,
    open_postgres_reader,
    open_reader,
)
from backfiller.ledger.migrations import MIGRATIONS, SCHEMA_VERSION
from backfiller.ledger.partitions import STATE_COLUMNS
from backfiller.ledger.records import PartitionRecord

RAW = "week06/ingestion/raw"
KEY = "2026-04-17"
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
UPSTREAM = {"week06/ingestion/raw": {"2026-04-16": 3, "2026-04-17": None}}


pytestmark = both_backends


class Backend:
    """One ledger location on a backend: open it, read it raw, open its read-only view."""

    def __init__(self, name: str, location: Any) -> None:
        self.name = name
        self.location = location

    def open(self, clock: FixedClock) -> DatabaseLedger:
        if self.name == "sqlite":
            return SqliteLedger(self.location, clock=clock)
        return PostgresLedger(self.location, clock=clock)

    def reader(self) -> LedgerReader:
        if self.name == "sqlite":
            return open_reader(self.location)
        return open_postgres_reader(self.location)

    def raw(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        if self.name == "sqlite":
            conn = sqlite3.connect(self.location)
            try:
                rows = conn.execute(sql, params).fetchall()
                conn.commit()
                return rows
            finally:
                conn.close()
        import psycopg

        with psycopg.connect(self.location, autocommit=True) as pg:
            cursor = pg.execute(sql.replace("?", "%s"), params)
            return [tuple(r) for r in cursor.fetchall()] if cursor.description else []

    def tables(self) -> set[str]:
        if self.name == "sqlite":
            if not self.location.exists():
                return set()
            found = self.raw("SELECT name FROM sqlite_master WHERE type = 'table'")
        else:
            found = self.raw(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = current_schema()"
            )
        return {str(r[0]) for r in found}


@pytest.fixture
def ledger_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "ledger.db"


@pytest.fixture
def backend(ledger_backend: str, ledger_path: Path, request: pytest.FixtureRequest) -> Backend:
    """A place for a new ledger: a file not yet created, or a PostgreSQL database that holds
    nothing yet."""
    if ledger_backend == "sqlite":
        return Backend("sqlite", ledger_path)
    server = request.getfixturevalue("postgres_server")
    return Backend("postgres", server.create_database())


@pytest.fixture
def ledger(backend: Backend, clock: FixedClock) -> Iterator[DatabaseLedger]:
    led = backend.open(clock)
    yield led
    led.close()


_TOKENS = itertools.count(1)


def _publish(
    led: DatabaseLedger, key: str = KEY, *, run_id: str = "run-1", version: int = 1
) -> PartitionStatus:
    led.partitions.start(RAW, key, run_id=run_id, attempt=1, operator="ana")
    return led.partitions.publish(
        RAW,
        key,
        run_id=run_id,
        attempt=1,
        operator="ana",
        data_version=version,
        row_count=3,
        fingerprint="fp-abc",
        manifest_id="week06-seed-manifest-001",
        manifest_checksum="c" * 64,
        upstream_versions=UPSTREAM,
        lease_token=next(_TOKENS),
    )


# -- migrations -------------------------------------------------------------------------------


def test_creates_the_schema_with_schema_migrations(backend: Backend, clock: FixedClock) -> None:
    assert backend.tables() == set()
    with backend.open(clock) as led:
        assert led.schema_version == SCHEMA_VERSION == MIGRATIONS[-1][0]
    assert SCHEMA_VERSION >= 1
    rows = backend.raw("SELECT version, name, applied_at FROM schema_migrations ORDER BY version")
    assert rows == [(number, name, T0.isoformat()) for number, name, _ in MIGRATIONS]
    assert [r[0] for r in rows] == list(range(1, SCHEMA_VERSION + 1))
    tables = backend.tables()
    assert {"partitions", "plans", "runs", "attempts", "events", "schema_migrations"} <= tables


def test_reopening_does_not_rerun_migrations(backend: Backend, clock: FixedClock) -> None:
    with backend.open(clock) as led:
        _publish(led)
    later = FixedClock(datetime(2027, 1, 1, tzinfo=UTC))
    with backend.open(later) as led:
        assert led.schema_version == SCHEMA_VERSION
        record = led.partitions.get(RAW, KEY)
        assert record is not None
        assert record.status is PartitionStatus.MATERIALIZED
    rows = backend.raw("SELECT version, applied_at FROM schema_migrations ORDER BY version")
    assert rows == [(number, T0.isoformat()) for number, _, _ in MIGRATIONS]


def test_newer_schema_version_is_refused(backend: Backend, clock: FixedClock) -> None:
    with backend.open(clock):
        pass
    backend.raw("INSERT INTO schema_migrations VALUES (?, 'from the future', 'x')", (99,))
    with pytest.raises(ConfigError) as info:
        backend.open(clock)
    assert info.value.exit_code is ExitCode.BAD_INPUT
    assert "schema version 99" in str(info.value)
    assert f"({SCHEMA_VERSION})" in str(info.value)
    assert info.value.hint == "upgrade backfiller"
    # and the read-only view refuses it too
    with pytest.raises(ConfigError, match="schema version 99"):
        backend.reader()
    # nothing was migrated or rolled back wrongly
    versions = backend.raw("SELECT version FROM schema_migrations ORDER BY version")
    assert versions == [(n,) for n in range(1, SCHEMA_VERSION + 1)] + [(99,)]


def test_an_older_ledger_is_refused_by_readers_until_migrated(
    backend: Backend, clock: FixedClock
) -> None:
    """After an upgrade, the read-only view names the command that migrates; a writer
    migrates on opening, keeping what was recorded."""
    with backend.open(clock) as led:
        _publish(led)
    backend.raw("DROP INDEX events_by_asset")  # the ledger as the previous version left it
    backend.raw("DELETE FROM schema_migrations WHERE version = ?", (SCHEMA_VERSION,))
    with pytest.raises(ConfigError) as info:
        backend.reader()
    assert f"schema version {SCHEMA_VERSION - 1}; this backfiller expects {SCHEMA_VERSION}" in (
        str(info.value)
    )
    assert info.value.hint == "run 'backfiller migrate' once to bring it to this version"
    with backend.open(clock) as led:
        assert led.schema_version == SCHEMA_VERSION
        assert led.partitions.change_marks([RAW])[RAW] is not None  # through the new index
    reader = backend.reader()
    record = reader.partitions.get(RAW, KEY)
    assert record is not None and record.status is PartitionStatus.MATERIALIZED


# -- verbs ------------------------------------------------------------------------------------


def test_start_records_run_and_attempt(ledger: DatabaseLedger) -> None:
    status = ledger.partitions.start(RAW, KEY, run_id="run-1", attempt=2, operator="ana")
    assert status is PartitionStatus.MATERIALIZING
    record = ledger.partitions.get(RAW, KEY)
    assert record == PartitionRecord(
        asset=RAW,
        partition_key=KEY,
        status=PartitionStatus.MATERIALIZING,
        data_version=None,
        row_count=None,
        fingerprint=None,
        manifest_id=None,
        manifest_checksum=None,
        upstream_versions={},
        last_run_id="run-1",
        last_attempt=2,
        last_error=None,
        created_at=T0.isoformat(),
        updated_at=T0.isoformat(),
    )
    attempts = ledger.runs.attempts("run-1")
    assert [(a.asset, a.partition_key, a.attempt, a.status) for a in attempts] == [
        (RAW, KEY, 2, AttemptStatus.RUNNING)
    ]
    assert attempts[0].ended_at is None


def test_publish_records_every_field(ledger: DatabaseLedger, clock: FixedClock) -> None:
    ledger.partitions.start(RAW, KEY, run_id="run-1", attempt=1, operator="ana")
    clock.advance(minutes=5)
    status = ledger.partitions.publish(
        RAW,
        KEY,
        run_id="run-1",
        attempt=1,
        operator="ana",
        data_version=7,
        row_count=3,
        fingerprint="fp-abc",
        manifest_id="week06-seed-manifest-001",
        manifest_checksum="c" * 64,
        upstream_versions=UPSTREAM,
        lease_token=next(_TOKENS),
    )
    assert status is PartitionStatus.MATERIALIZED
    record = ledger.partitions.get(RAW, KEY)
    assert record is not None
    assert record.status is PartitionStatus.MATERIALIZED
    assert record.data_version == 7
    assert record.row_count == 3
    assert record.fingerprint == "fp-abc"
    assert record.manifest_id == "week06-seed-manifest-001"
    assert record.manifest_checksum == "c" * 64
    assert record.upstream_versions == UPSTREAM  # JSON round trip, None kept
    assert record.last_run_id == "run-1"
    assert record.last_attempt == 1
    assert record.last_error is None
    assert record.created_at == T0.isoformat()
    assert record.updated_at == "2026-12-01T12:05:00+00:00"
    assert record.state_token() == {
        "status": "materialized",
        "data_version": 7,
        "row_count": 3,
        "fingerprint": "fp-abc",
        "manifest_checksum": "c" * 64,
    }
    (attempt,) = ledger.runs.attempts("run-1")
    assert attempt.status is AttemptStatus.SUCCEEDED
    assert attempt.rows_written == 3
    assert attempt.data_version == 7
    assert attempt.transient is False
    assert attempt.ended_at == "2026-12-01T12:05:00+00:00"


def test_events_log_every_move(ledger: DatabaseLedger) -> None:
    _publish(ledger)
    ledger.partitions.mark_stale(RAW, KEY, run_id=None, operator="bob", reason="upstream changed")
    events = ledger.partitions.events(RAW, KEY)
    assert [(e["verb"], e["from_status"], e["to_status"]) for e in events] == [
        ("start", None, "materializing"),
        ("publish", "materializing", "materialized"),
        ("mark_stale", "materialized", "stale"),
    ]
    assert [e["run_id"] for e in events] == ["run-1", "run-1", None]
    assert [e["operator"] for e in events] == ["ana", "ana", "bob"]
    assert json.loads(events[1]["detail"]) == {"data_version": 1, "row_count": 3}
    assert json.loads(events[2]["detail"]) == {"reason": "upstream changed"}
    assert ledger.partitions.events(RAW, "2026-04-18") == []


@pytest.mark.slow
def test_stale_reasons_are_each_keys_newest_marks_and_a_bad_detail_gives_none(
    ledger: DatabaseLedger,
) -> None:
    keys = [f"2026-{1 + i // 28:02d}-{1 + i % 28:02d}" for i in range(520)]  # two queries' worth
    for key in keys:
        _publish(ledger, key)
        ledger.partitions.mark_stale(RAW, key, run_id=None, operator="bob", reason=f"one {key}")
    last = keys[-1]
    ledger.partitions.mark_stale(RAW, last, run_id=None, operator="bob", reason="the newest")
    ledger.partitions.mark_stale(RAW, keys[0], run_id=None, operator="bob", reason="")
    # details no writer of this ledger makes: not JSON, a list, a reason that is no string
    db = ledger._db  # type: ignore[attr-defined]
    for key, detail in [(keys[1], "oops"), (keys[2], "[1]"), (keys[3], '{"reason": 3}')]:
        db.statement(
            "INSERT INTO events (at, asset, partition_key, verb, from_status, to_status, "
            "run_id, operator, detail) VALUES (?, ?, ?, 'mark_stale', 'stale', 'stale', NULL, "
            "'x', ?)",
            (db.now(), RAW, key, detail),
        )
    found = ledger.partitions.stale_reasons(RAW, [*keys, "2027-01-01", last])
    assert found[last] == "the newest"
    assert not {keys[0], keys[1], keys[2], keys[3], "2027-01-01"} & set(found)
    assert found == {k: f"one {k}" for k in keys[4:-1]} | {last: "the newest"}
    assert ledger.partitions.stale_reasons(RAW, []) == {}
    assert ledger.partitions.stale_reasons("other/asset", keys[:3]) == {}


def test_mark_stale_keeps_the_published_fields(ledger: DatabaseLedger) -> None:
    _publish(ledger)
    status = ledger.partitions.mark_stale(
        RAW, KEY, run_id="run-2", operator="bob", reason="manifest"
    )
    assert status is PartitionStatus.STALE
    record = ledger.partitions.get(RAW, KEY)
    assert record is not None
    assert record.status is PartitionStatus.STALE
    assert (record.data_version, record.row_count, record.fingerprint) == (1, 3, "fp-abc")
    assert record.upstream_versions == UPSTREAM
    # stale -> stale is allowed, and logged
    assert ledger.partitions.mark_stale(RAW, KEY, run_id=None, operator="bob", reason="again") is (
        PartitionStatus.STALE
    )
    assert len(ledger.partitions.events(RAW, KEY)) == 4


@pytest.mark.parametrize(
    ("checks", "status"), [(False, PartitionStatus.FAILED), (True, PartitionStatus.CHECK_FAILED)]
)
def test_fail_records_error(ledger: DatabaseLedger, checks: bool, status: PartitionStatus) -> None:
    ledger.partitions.start(RAW, KEY, run_id="run-1", attempt=1, operator="ana")
    result = ledger.partitions.fail(
        RAW,
        KEY,
        run_id="run-1",
        attempt=1,
        operator="ana",
        error="boom: disk full",
        transient=True,
        checks=checks,
    )
    assert result is status
    record = ledger.partitions.get(RAW, KEY)
    assert record is not None
    assert record.status is status
    assert record.last_error == "boom: disk full"
    assert record.last_run_id == "run-1"
    assert record.data_version is None
    (attempt,) = ledger.runs.attempts("run-1")
    assert attempt.status.value == status.value
    assert attempt.error == "boom: disk full"
    assert attempt.transient is True
    events = ledger.partitions.events(RAW, KEY)
    assert events[-1]["verb"] == ("fail_checks" if checks else "fail")
    assert json.loads(events[-1]["detail"]) == {"error": "boom: disk full", "transient": True}


def test_restart_after_failure_clears_last_error(ledger: DatabaseLedger) -> None:
    ledger.partitions.start(RAW, KEY, run_id="run-1", attempt=1, operator="ana")
    ledger.partitions.fail(
        RAW, KEY, run_id="run-1", attempt=1, operator="ana", error="x", transient=False
    )
    ledger.partitions.start(RAW, KEY, run_id="run-1", attempt=2, operator="ana")
    record = ledger.partitions.get(RAW, KEY)
    assert record is not None
    assert record.status is PartitionStatus.MATERIALIZING
    assert record.last_error is None
    assert record.last_attempt == 2
    assert [a.attempt for a in ledger.runs.attempts("run-1")] == [1, 2]
    assert [a.status for a in ledger.runs.attempts("run-1")] == [
        AttemptStatus.FAILED,
        AttemptStatus.RUNNING,
    ]


def test_illegal_publish_without_start_changes_nothing(ledger: DatabaseLedger) -> None:
    with pytest.raises(IllegalTransitionError, match="Cannot publish a partition in state"):
        ledger.partitions.publish(
            RAW,
            KEY,
            run_id="run-1",
            attempt=1,
            operator="ana",
            data_version=1,
            row_count=3,
            fingerprint="fp",
            manifest_id=None,
            manifest_checksum=None,
            upstream_versions={},
            lease_token=next(_TOKENS),
        )
    assert ledger.partitions.get(RAW, KEY) is None
    assert ledger.partitions.events(RAW, KEY) == []
    assert ledger.runs.attempts("run-1") == []


def test_illegal_move_rolls_back_and_leaves_the_row(ledger: DatabaseLedger) -> None:
    _publish(ledger)
    before = ledger.partitions.get(RAW, KEY)
    events_before = ledger.partitions.events(RAW, KEY)
    with pytest.raises(IllegalTransitionError, match="'materialized'"):
        ledger.partitions.publish(
            RAW,
            KEY,
            run_id="run-9",
            attempt=1,
            operator="eve",
            data_version=99,
            row_count=0,
            fingerprint="evil",
            manifest_id=None,
            manifest_checksum=None,
            upstream_versions={},
            lease_token=next(_TOKENS),
        )
    with pytest.raises(IllegalTransitionError, match="Cannot fail a partition"):
        ledger.partitions.fail(
            RAW, KEY, run_id="run-9", attempt=1, operator="eve", error="e", transient=False
        )
    assert ledger.partitions.get(RAW, KEY) == before
    assert ledger.partitions.events(RAW, KEY) == events_before
    assert ledger.runs.attempts("run-9") == []
    # the connection is usable afterwards: no transaction was left open
    if isinstance(ledger, SqliteLedger):
        assert not ledger._db.conn.in_transaction
    ledger.partitions.mark_stale(RAW, KEY, run_id=None, operator="ana", reason="ok")
    record = ledger.partitions.get(RAW, KEY)
    assert record is not None
    assert record.status is PartitionStatus.STALE


def test_partitions_are_listed_in_order(ledger: DatabaseLedger) -> None:
    _publish(ledger, "2026-04-18")
    _publish(ledger, "2026-04-16")
    ledger.partitions.start(
        "week06/silver/facts", "2026-04-16", run_id="r", attempt=1, operator="ana"
    )
    assert [(r.asset, r.partition_key) for r in ledger.partitions.all()] == [
        ("week06/ingestion/raw", "2026-04-16"),
        ("week06/ingestion/raw", "2026-04-18"),
        ("week06/silver/facts", "2026-04-16"),
    ]
    assert [r.partition_key for r in ledger.partitions.all(RAW)] == ["2026-04-16", "2026-04-18"]
    assert ledger.partitions.all("nope") == []


def test_state_rows_are_each_assets_records_once(ledger: DatabaseLedger) -> None:
    """What planning reads in bulk: per asset asked (each once, however often named), its
    records as plain tuples of :data:`STATE_COLUMNS`, the asset said once per batch."""
    _publish(ledger, "2026-04-18", version=4)
    _publish(ledger, "2026-04-16")
    ledger.partitions.start(
        "week06/silver/facts", "2026-04-16", run_id="r", attempt=1, operator="ana"
    )
    ledger.partitions.fail(
        "week06/silver/facts",
        "2026-04-16",
        run_id="r",
        attempt=1,
        operator="ana",
        error="boom",
        transient=False,
    )
    upstream = STATE_COLUMNS.index("upstream_versions")
    found: dict[str, list[tuple[Any, ...]]] = {}
    for asset, rows in ledger.partitions.state_rows(["week06/silver/facts", RAW, "nope", RAW]):
        assert all(isinstance(row[upstream], str) for row in rows)  # the JSON text
        found.setdefault(asset, []).extend(
            tuple(json.loads(v) if i == upstream else v for i, v in enumerate(row)) for row in rows
        )
    expected = {
        asset: sorted(
            tuple(r.status.value if c == "status" else getattr(r, c) for c in STATE_COLUMNS)
            for r in ledger.partitions.all(asset)
        )
        for asset in (RAW, "week06/silver/facts")
    }
    assert {asset: sorted(rows, key=str) for asset, rows in found.items()} == {
        asset: sorted(rows, key=str) for asset, rows in expected.items()
    }
    assert sorted(rows[:4] for rows in found[RAW]) == [
        ("2026-04-16", "materialized", 1, 3),
        ("2026-04-18", "materialized", 4, 3),
    ]
    assert found["week06/silver/facts"][0][-1] == "boom"


def test_state_rows_read_only_the_columns_asked_for(ledger: DatabaseLedger) -> None:
    """A reader of some of the state's columns gets those, in the order it named them; a name
    that is no state column is refused before any query (names go into the query's text)."""
    _publish(ledger, "2026-04-18", version=4)
    _publish(ledger, "2026-04-16")
    found = [
        row
        for _, rows in ledger.partitions.state_rows([RAW], ("partition_key", "data_version"))
        for row in rows
    ]
    assert sorted(found) == [("2026-04-16", 1), ("2026-04-18", 4)]
    with pytest.raises(ValueError, match="not a state column: asset; drop"):
        next(iter(ledger.partitions.state_rows([RAW], ("partition_key", "asset; drop"))))


def test_change_marks_move_with_each_change_of_an_assets_records_and_only_its(
    ledger: DatabaseLedger,
) -> None:
    """A reader's change mark of an asset is its newest partition event: every change of one
    of its records moves it, a change of another asset's leaves it as it was."""
    silver = "week06/silver/facts"
    assert ledger.partitions.change_marks([RAW, silver]) == {RAW: None, silver: None}
    _publish(ledger, "2026-04-16")
    first = ledger.partitions.change_marks([RAW, silver])
    assert first[RAW] is not None and first[silver] is None
    ledger.partitions.start(silver, "2026-04-16", run_id="r", attempt=1, operator="ana")
    second = ledger.partitions.change_marks([RAW, silver])
    assert second[RAW] == first[RAW] and second[silver] is not None
    ledger.partitions.mark_stale(RAW, "2026-04-16", run_id=None, operator="ana", reason="x")
    third = ledger.partitions.change_marks([RAW, silver])
    assert third[RAW] != second[RAW] and third[silver] == second[silver]
    assert list(ledger.partitions.change_marks([silver, RAW, silver])) == [silver, RAW]


# -- runs and plans ---------------------------------------------------------------------------


def test_runs_round_trip(ledger: DatabaseLedger, clock: FixedClock) -> None:
    run = ledger.runs.begin(
        run_id="run-1",
        plan_id="plan-abc",
        action="backfill",
        operator="ana",
        reason="gap on 2026-04-17",
        arguments={"partition": KEY, "assets": [RAW]},
    )
    assert run.state is RunState.RUNNING
    assert not run.state.finished
    assert run.started_at == T0.isoformat()
    assert run.ended_at is None
    assert run.arguments == {"partition": KEY, "assets": [RAW]}
    assert run.parent_run_id is None
    clock.advance(seconds=30)
    ledger.runs.settle("run-1", RunState.FAILED, error="one partition failed")
    settled = ledger.runs.get("run-1")
    assert settled is not None
    assert (settled.state, settled.outcome) == (RunState.EVIDENCE_PENDING, RunState.FAILED)
    assert not settled.state.finished  # not finished until its evidence is written
    ledger.evidence.append("run-1", lambda seq, prev: ("reports/e.json", "0" * 64))
    done = ledger.runs.get("run-1")
    assert done is not None
    assert done.state is RunState.FAILED
    assert done.state.finished
    assert done.ended_at == "2026-12-01T12:00:30+00:00"
    assert done.error == "one partition failed"
    assert (done.plan_id, done.action, done.operator, done.reason) == (
        "plan-abc",
        "backfill",
        "ana",
        "gap on 2026-04-17",
    )
    retry = ledger.runs.begin(
        run_id="run-2",
        plan_id=None,
        action="retry",
        operator="ana",
        reason=None,
        arguments={},
        parent_run_id="run-1",
    )
    assert retry.parent_run_id == "run-1"
    assert [r.run_id for r in ledger.runs.all()] == ["run-1", "run-2"]
    assert ledger.runs.get("missing") is None


def test_attempts_round_trip(ledger: DatabaseLedger) -> None:
    ledger.runs.begin(
        run_id="run-1", plan_id=None, action="backfill", operator="ana", reason=None, arguments={}
    )
    _publish(ledger, "2026-04-17")
    ledger.partitions.start("week06/silver/facts", KEY, run_id="run-1", attempt=1, operator="ana")
    ledger.partitions.fail(
        "week06/silver/facts",
        KEY,
        run_id="run-1",
        attempt=1,
        operator="ana",
        error="checks",
        transient=False,
        checks=True,
    )
    attempts = ledger.runs.attempts("run-1")
    assert [(a.asset, a.status, a.rows_written, a.error) for a in attempts] == [
        (RAW, AttemptStatus.SUCCEEDED, 3, None),
        ("week06/silver/facts", AttemptStatus.CHECK_FAILED, None, "checks"),
    ]
    assert ledger.runs.attempts("other") == []


def test_plan_round_trip(ledger: DatabaseLedger) -> None:
    document = {"plan_id": "plan-1", "entries": [{"partition_key": KEY, "n": 3}], "ü": "ß"}
    ledger.runs.record_plan(
        plan_id="plan-1",
        action="backfill",
        mode="dry-run",
        path="reports/week06/backfill/backfill_plan_2026-04-17.json",
        state_fingerprint="sf-1",
        created_at="2026-12-01T12:00:00+00:00",
        document=document,
    )
    plan = ledger.runs.plan("plan-1")
    assert plan is not None
    assert plan.document == document
    assert (plan.plan_id, plan.action, plan.mode, plan.state_fingerprint) == (
        "plan-1",
        "backfill",
        "dry-run",
        "sf-1",
    )
    assert plan.path == "reports/week06/backfill/backfill_plan_2026-04-17.json"
    assert plan.created_at == "2026-12-01T12:00:00+00:00"
    # recording the same plan id again keeps the first record
    ledger.runs.record_plan(
        plan_id="plan-1",
        action="other",
        mode="apply",
        path="x",
        state_fingerprint="sf-2",
        created_at="later",
        document={},
    )
    again = ledger.runs.plan("plan-1")
    assert again == plan
    assert ledger.runs.plan("nope") is None


def test_survives_reopen(backend: Backend, clock: FixedClock) -> None:
    with backend.open(clock) as led:
        _publish(led)
        led.runs.begin(
            run_id="run-1", plan_id=None, action="backfill", operator="a", reason=None, arguments={}
        )
    with backend.open(clock) as led:
        record = led.partitions.get(RAW, KEY)
        assert record is not None
        assert record.upstream_versions == UPSTREAM
        assert [r.run_id for r in led.runs.all()] == ["run-1"]


# -- the read-only view -----------------------------------------------------------------------


def test_open_reader_on_missing_path_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "no" / "such" / "ledger.db"
    reader = open_reader(path)
    assert isinstance(reader, EmptyLedger)
    assert reader.partitions.get(RAW, KEY) is None
    assert reader.partitions.all() == []
    assert reader.partitions.all(RAW) == []
    assert reader.runs.get("r") is None
    assert reader.runs.all() == []
    assert reader.runs.attempts("r") == []
    assert reader.runs.plan("p") is None
    assert not path.exists()
    assert not (tmp_path / "no").exists()
    assert list(tmp_path.iterdir()) == []


def test_reader_of_an_empty_database_is_empty_and_creates_nothing(backend: Backend) -> None:
    """A ledger without its schema (another process has just created it and is migrating it)
    reads as an empty ledger, on both backends; the file is left as it is."""
    if backend.name == "sqlite":
        backend.location.parent.mkdir(parents=True)
        sqlite3.connect(backend.location).close()
        before = backend.location.read_bytes()
    reader = backend.reader()
    assert isinstance(reader, EmptyLedger)
    assert reader.partitions.all() == []
    if backend.name == "sqlite":
        assert backend.location.read_bytes() == before
    assert backend.tables() == set()


def test_open_reader_reads_what_the_writer_wrote(backend: Backend, clock: FixedClock) -> None:
    with backend.open(clock) as led:
        _publish(led)
    reader = backend.reader()
    try:
        assert not isinstance(reader, EmptyLedger)
        record = reader.partitions.get(RAW, KEY)
        assert record is not None
        assert record.status is PartitionStatus.MATERIALIZED
        assert record.upstream_versions == UPSTREAM
        assert [a.status for a in reader.runs.attempts("run-1")] == [AttemptStatus.SUCCEEDED]
    finally:
        reader.close()  # type: ignore[attr-defined]


def test_open_reader_is_read_only(backend: Backend, clock: FixedClock) -> None:
    with backend.open(clock) as led:
        _publish(led)
    reader = backend.reader()
    db = reader._db  # type: ignore[attr-defined]
    if backend.name == "sqlite":
        errors: Any = sqlite3.OperationalError
        match = "readonly"
    else:
        import psycopg

        errors, match = psycopg.errors.ReadOnlySqlTransaction, "read-only transaction"
    try:
        for statement in (
            "UPDATE partitions SET status = 'failed'",
            "CREATE TABLE intruder (x int)",
        ):
            with pytest.raises(errors, match=match), db.read() as conn:
                conn.execute(statement)
    finally:
        db.close()
    with backend.open(clock) as led:
        record = led.partitions.get(RAW, KEY)
        assert record is not None
        assert record.status is PartitionStatus.MATERIALIZED
    assert "intruder" not in backend.tables()


def _public(cls: type) -> set[str]:
    return {n for n, _ in inspect.getmembers(cls, inspect.isfunction) if not n.startswith("_")}


def test_reader_protocol_has_no_writing_method() -> None:
    writing = re.compile(
        r"^(start|publish|fail|mark_stale|adopt|record|begin|finish|settle|seal|reopen|"
        r"reissue|append|abandon|transaction|acquire|"
        r"release|protect$|unprotect|insert|update|delete|set|write|execute|migrate|close|"
        r"add|remove)"
    )
    parts = {
        "runs": RunReader,
        "partitions": PartitionReader,
        "protections": ProtectionReader,
        "dimensions": DimensionReader,
        "checks": CheckReader,
        "holds": HoldReader,
        "evidence": EvidenceReader,
    }
    assert {n for n in dir(LedgerReader) if not n.startswith("_")} == set(parts)
    for name, protocol in parts.items():
        members = _public(protocol)
        assert members, name
        assert sorted(n for n in members if writing.match(n)) == [], name
        # the empty reader implements exactly the reading parts
        assert {n for n in dir(getattr(EmptyLedger(), name)) if not n.startswith("_")} == members
    # the writer's parts do write
    for name, protocol, writers in (
        ("runs", RunLog, {"begin", "settle", "reopen", "record_plan"}),
        ("partitions", PartitionBook, {"start", "publish", "fail", "mark_stale"}),
        ("protections", ProtectionBook, {"protect", "unprotect", "record_override"}),
        ("dimensions", DimensionBook, {"add", "remove"}),
        ("checks", CheckBook, {"record"}),
        ("holds", HoldBook, {"place", "release"}),
        ("evidence", EvidenceIndex, {"append"}),
    ):
        assert writers <= _public(protocol), name
        assert not writers & _public(parts[name]), name


def test_the_ledger_implements_every_part_protocol(ledger: DatabaseLedger) -> None:
    for name, protocol in (
        ("runs", RunLog),
        ("partitions", PartitionBook),
        ("leases", LeaseBook),
        ("protections", ProtectionBook),
        ("checks", CheckBook),
        ("holds", HoldBook),
        ("evidence", EvidenceIndex),
    ):
        part = getattr(ledger, name)
        missing = sorted(m for m in _public(protocol) if not callable(getattr(part, m, None)))
        assert missing == [], (name, missing)
