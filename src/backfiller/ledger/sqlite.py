"""The SQLite ledger (the default): one file in the project's state folder.

Every status change goes through a verb (:class:`~backfiller.ledger.states.Verb`) inside one
``BEGIN IMMEDIATE`` transaction, and is logged in ``events``.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from backfiller.clock import Clock, system_clock
from backfiller.errors import ConfigError
from backfiller.ledger.audit import AuditMixin
from backfiller.ledger.leases import LeaseConflict, LeaseMixin
from backfiller.ledger.migrations import MIGRATIONS, SCHEMA_VERSION
from backfiller.ledger.reader import EmptyLedger, LedgerReader
from backfiller.ledger.records import (
    AttemptRecord,
    PartitionRecord,
    PlanRecord,
    Protection,
    RunRecord,
)
from backfiller.ledger.states import AttemptStatus, PartitionStatus, RunState, RunVerb, Verb

__all__ = ["LeaseConflict", "SqliteLedger", "open_reader"]


def _partition(row: sqlite3.Row) -> PartitionRecord:
    return PartitionRecord(
        asset=row["asset"],
        partition_key=row["partition_key"],
        status=PartitionStatus(row["status"]),
        data_version=row["data_version"],
        row_count=row["row_count"],
        fingerprint=row["fingerprint"],
        manifest_id=row["manifest_id"],
        manifest_checksum=row["manifest_checksum"],
        upstream_versions=json.loads(row["upstream_versions"]),
        last_run_id=row["last_run_id"],
        last_attempt=row["last_attempt"],
        last_error=row["last_error"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _run(row: sqlite3.Row) -> RunRecord:
    return RunRecord(
        run_id=row["run_id"],
        plan_id=row["plan_id"],
        action=row["action"],
        state=RunState(row["state"]),
        operator=row["operator"],
        reason=row["reason"],
        parent_run_id=row["parent_run_id"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        arguments=json.loads(row["arguments"]),
        error=row["error"],
        outcome=RunState(row["outcome"]) if row["outcome"] else None,
    )


def _attempt(row: sqlite3.Row) -> AttemptRecord:
    return AttemptRecord(
        run_id=row["run_id"],
        asset=row["asset"],
        partition_key=row["partition_key"],
        attempt=row["attempt"],
        status=AttemptStatus(row["status"]),
        error=row["error"],
        transient=bool(row["transient"]),
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        rows_written=row["rows_written"],
        data_version=row["data_version"],
        rows_before=row["rows_before"],
        version_before=row["version_before"],
        fingerprint_before=row["fingerprint_before"],
        fingerprint=row["fingerprint"],
    )


class _SqliteReader:
    """Read queries shared by the read-only view and the writer."""

    _conn: sqlite3.Connection

    def partition(self, asset: str, partition_key: str) -> PartitionRecord | None:
        row = self._conn.execute(
            "SELECT * FROM partitions WHERE asset = ? AND partition_key = ?",
            (asset, partition_key),
        ).fetchone()
        return _partition(row) if row else None

    def partitions(self, asset: str | None = None) -> list[PartitionRecord]:
        if asset is None:
            rows = self._conn.execute(
                "SELECT * FROM partitions ORDER BY asset, partition_key"
            ).fetchall()
        else:
            rows = self._conn.execute(
                "SELECT * FROM partitions WHERE asset = ? ORDER BY partition_key", (asset,)
            ).fetchall()
        return [_partition(r) for r in rows]

    def run(self, run_id: str) -> RunRecord | None:
        row = self._conn.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return _run(row) if row else None

    def runs(self) -> list[RunRecord]:
        rows = self._conn.execute("SELECT * FROM runs ORDER BY started_at, run_id").fetchall()
        return [_run(r) for r in rows]

    def attempts(self, run_id: str) -> list[AttemptRecord]:
        rows = self._conn.execute(
            "SELECT * FROM attempts WHERE run_id = ? ORDER BY asset, partition_key, attempt",
            (run_id,),
        ).fetchall()
        return [_attempt(r) for r in rows]

    def attempt(
        self, run_id: str, asset: str, partition_key: str, attempt: int
    ) -> AttemptRecord | None:
        row = self._conn.execute(
            "SELECT * FROM attempts WHERE run_id = ? AND asset = ? AND partition_key = ?"
            " AND attempt = ?",
            (run_id, asset, partition_key, attempt),
        ).fetchone()
        return _attempt(row) if row else None

    def protections(self) -> list[Protection]:
        rows = self._conn.execute(
            "SELECT * FROM protections ORDER BY asset, partition_key"
        ).fetchall()
        return [Protection(**dict(r)) for r in rows]

    def plan(self, plan_id: str) -> PlanRecord | None:
        row = self._conn.execute("SELECT * FROM plans WHERE plan_id = ?", (plan_id,)).fetchone()
        if row is None:
            return None
        return PlanRecord(
            plan_id=row["plan_id"],
            action=row["action"],
            mode=row["mode"],
            path=row["path"],
            state_fingerprint=row["state_fingerprint"],
            created_at=row["created_at"],
            document=json.loads(row["document"]),
        )


def _schema_version(conn: sqlite3.Connection) -> int:
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    ).fetchone()
    if not exists:
        return 0
    row = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
    return int(row[0] or 0)


class _ReadOnlyLedger(_SqliteReader):
    """Read-only by construction: no writing method, and ``query_only`` refuses any write
    statement. It is not opened with ``mode=ro`` because a process killed inside a ledger
    transaction leaves a hot journal that only a read-write handle may roll back (SQLite does
    that on the first read; the data is then exactly as before the killed transaction)."""

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=rw", uri=True, check_same_thread=False
        )
        self._conn.execute("PRAGMA query_only = ON")
        self._conn.row_factory = sqlite3.Row
        try:
            version = _schema_version(self._conn)
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise ConfigError(
                f"Ledger {path} is not a usable SQLite database: {exc}",
                hint="point [project] ledger at the right file, or restore it from a backup",
            ) from exc
        if version != SCHEMA_VERSION:
            self._conn.close()
            raise ConfigError(
                f"Ledger {path} has schema version {version}; this backfiller expects "
                f"{SCHEMA_VERSION}",
                hint="run a command that writes (for example 'backfiller apply') to migrate it",
            )

    def close(self) -> None:
        self._conn.close()


def open_reader(path: Path) -> LedgerReader:
    """A read-only view of the ledger at ``path``; creates nothing when it does not exist."""
    path = Path(path)
    if not path.exists():
        return EmptyLedger()
    return _ReadOnlyLedger(path)


class SqliteLedger(LeaseMixin, AuditMixin, _SqliteReader):
    """The ledger writer. Thread-safe: one connection, writes serialised by a lock."""

    def __init__(self, path: Path, *, clock: Clock = system_clock) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, timeout=30.0
        )
        self._conn.row_factory = sqlite3.Row
        try:
            # a rollback journal, not WAL: a read-only reader of a WAL database creates
            # -wal/-shm files, and a dry run must write nothing
            self._conn.execute("PRAGMA journal_mode=DELETE")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise ConfigError(
                f"Ledger {self.path} is not a usable SQLite database: {exc}",
                hint="point [project] ledger at the right file, or restore it from a backup",
            ) from exc
        except BaseException:
            self._conn.close()
            raise

    # -- plumbing -----------------------------------------------------------------------
    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> SqliteLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _now(self) -> str:
        return self._clock().isoformat()

    def _clock_now(self) -> datetime:
        return self._clock()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _migrate(self) -> None:
        with self.transaction() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            current = _schema_version(conn)
            if current > SCHEMA_VERSION:
                raise ConfigError(
                    f"Ledger {self.path} has schema version {current}, newer than this "
                    f"backfiller understands ({SCHEMA_VERSION})",
                    hint="upgrade backfiller",
                )
            for number, name, sql in MIGRATIONS:
                if number <= current:
                    continue
                for statement in sql.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, ?)", (number, name, self._now())
                )

    @property
    def schema_version(self) -> int:
        return _schema_version(self._conn)

    # -- verbs ---------------------------------------------------------------------------
    def _transition(
        self,
        conn: sqlite3.Connection,
        verb: Verb,
        asset: str,
        key: str,
        *,
        run_id: str | None,
        operator: str | None,
        detail: dict[str, Any] | None = None,
        **fields: Any,
    ) -> PartitionStatus:
        row = conn.execute(
            "SELECT status FROM partitions WHERE asset = ? AND partition_key = ?", (asset, key)
        ).fetchone()
        current = PartitionStatus(row["status"]) if row else None
        target = verb.apply(current)
        now = self._now()
        values = {"status": target.value, "updated_at": now, **fields}
        if row is None:
            values.setdefault("upstream_versions", "{}")
            cols = ["asset", "partition_key", "created_at", *values]
            conn.execute(
                f"INSERT INTO partitions ({', '.join(cols)}) "
                f"VALUES ({', '.join('?' for _ in cols)})",
                (asset, key, now, *values.values()),
            )
        else:
            assignments = ", ".join(f"{c} = ?" for c in values)
            conn.execute(
                f"UPDATE partitions SET {assignments} WHERE asset = ? AND partition_key = ?",
                (*values.values(), asset, key),
            )
        conn.execute(
            "INSERT INTO events (at, asset, partition_key, verb, from_status, to_status, run_id,"
            " operator, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                now,
                asset,
                key,
                verb.value,
                current.value if current else None,
                target.value,
                run_id,
                operator,
                json.dumps(detail or {}, sort_keys=True),
            ),
        )
        return target

    def start(
        self,
        asset: str,
        key: str,
        *,
        run_id: str,
        attempt: int,
        operator: str,
        rows_before: int | None = None,
    ) -> PartitionStatus:
        """Begin an attempt. ``rows_before``: the rows stored before it when the ledger has no
        count (data written outside backfiller)."""
        with self.transaction() as conn:
            before = conn.execute(
                "SELECT data_version, row_count, fingerprint FROM partitions"
                " WHERE asset = ? AND partition_key = ?",
                (asset, key),
            ).fetchone()
            status = self._transition(
                conn,
                Verb.START,
                asset,
                key,
                run_id=run_id,
                operator=operator,
                last_run_id=run_id,
                last_attempt=attempt,
                last_error=None,
            )
            conn.execute(
                "INSERT OR REPLACE INTO attempts (run_id, asset, partition_key, attempt, status,"
                " started_at, version_before, rows_before, fingerprint_before)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    asset,
                    key,
                    attempt,
                    AttemptStatus.RUNNING.value,
                    self._now(),
                    before["data_version"] if before else None,
                    before["row_count"]
                    if before and before["row_count"] is not None
                    else rows_before,
                    before["fingerprint"] if before else None,
                ),
            )
            return status

    def publish(
        self,
        asset: str,
        key: str,
        *,
        run_id: str,
        attempt: int,
        operator: str,
        data_version: int,
        row_count: int,
        fingerprint: str,
        manifest_id: str | None,
        manifest_checksum: str | None,
        upstream_versions: dict[str, dict[str, int | None]],
    ) -> PartitionStatus:
        with self.transaction() as conn:
            status = self._transition(
                conn,
                Verb.PUBLISH,
                asset,
                key,
                run_id=run_id,
                operator=operator,
                detail={"data_version": data_version, "row_count": row_count},
                data_version=data_version,
                row_count=row_count,
                fingerprint=fingerprint,
                manifest_id=manifest_id,
                manifest_checksum=manifest_checksum,
                upstream_versions=json.dumps(upstream_versions, sort_keys=True),
            )
            self._end_attempt(
                conn,
                run_id,
                asset,
                key,
                attempt,
                AttemptStatus.SUCCEEDED,
                None,
                False,
                row_count,
                data_version,
            )
            conn.execute(
                "UPDATE attempts SET fingerprint = ?"
                " WHERE run_id = ? AND asset = ? AND partition_key = ? AND attempt = ?",
                (fingerprint, run_id, asset, key, attempt),
            )
            return status

    def fail(
        self,
        asset: str,
        key: str,
        *,
        run_id: str,
        attempt: int,
        operator: str,
        error: str,
        transient: bool,
        checks: bool = False,
    ) -> PartitionStatus:
        verb = Verb.FAIL_CHECKS if checks else Verb.FAIL
        with self.transaction() as conn:
            status = self._transition(
                conn,
                verb,
                asset,
                key,
                run_id=run_id,
                operator=operator,
                detail={"error": error, "transient": transient},
                last_error=error,
            )
            self._end_attempt(
                conn,
                run_id,
                asset,
                key,
                attempt,
                AttemptStatus(status.value),
                error,
                transient,
                None,
                None,
            )
            return status

    def abandon_attempt(
        self, asset: str, key: str, *, run_id: str, attempt: int, error: str
    ) -> None:
        """End an attempt that lost its lease: the partition now belongs to another run, so
        its status is left alone; only the attempt records what happened."""
        with self.transaction() as conn:
            self._end_attempt(
                conn, run_id, asset, key, attempt, AttemptStatus.FAILED, error, False, None, None
            )

    def reissue_attempt(
        self,
        asset: str,
        key: str,
        *,
        run_id: str,
        attempt: int,
        rows: int | None,
        version: int | None,
        fingerprint: str | None,
    ) -> None:
        """Record that a step of ``run_id`` wrote a partition's report again and published
        nothing: the partition's status is left alone."""
        now = self._now()
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO attempts (run_id, asset, partition_key, attempt, status,"
                " started_at, ended_at, rows_written, data_version, version_before, rows_before,"
                " fingerprint_before, fingerprint) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    asset,
                    key,
                    attempt,
                    AttemptStatus.REPORT_REISSUED.value,
                    now,
                    now,
                    rows,
                    version,
                    version,
                    rows,
                    fingerprint,
                    fingerprint,
                ),
            )

    def mark_stale(
        self, asset: str, key: str, *, run_id: str | None, operator: str, reason: str
    ) -> PartitionStatus:
        with self.transaction() as conn:
            return self._transition(
                conn,
                Verb.MARK_STALE,
                asset,
                key,
                run_id=run_id,
                operator=operator,
                detail={"reason": reason},
            )

    def _end_attempt(
        self,
        conn: sqlite3.Connection,
        run_id: str,
        asset: str,
        key: str,
        attempt: int,
        status: AttemptStatus,
        error: str | None,
        transient: bool,
        rows: int | None,
        version: int | None,
    ) -> None:
        conn.execute(
            "UPDATE attempts SET status = ?, error = ?, transient = ?, ended_at = ?,"
            " rows_written = ?, data_version = ?"
            " WHERE run_id = ? AND asset = ? AND partition_key = ? AND attempt = ?",
            (
                status.value,
                error,
                int(transient),
                self._now(),
                rows,
                version,
                run_id,
                asset,
                key,
                attempt,
            ),
        )

    # -- plans and runs ------------------------------------------------------------------
    def record_plan(
        self,
        *,
        plan_id: str,
        action: str,
        mode: str,
        path: str,
        state_fingerprint: str,
        created_at: str,
        document: dict[str, Any],
    ) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO plans VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    plan_id,
                    action,
                    mode,
                    path,
                    state_fingerprint,
                    created_at,
                    json.dumps(document, sort_keys=True),
                ),
            )

    def begin_run(
        self,
        *,
        run_id: str,
        plan_id: str | None,
        action: str,
        operator: str,
        reason: str | None,
        arguments: dict[str, Any],
        parent_run_id: str | None = None,
    ) -> RunRecord:
        with self.transaction() as conn:
            state = RunVerb.BEGIN.apply(self._run_state(conn, run_id))
            assert state is not None
            conn.execute(
                "INSERT INTO runs (run_id, plan_id, action, state, operator, reason,"
                " parent_run_id, started_at, arguments) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    plan_id,
                    action,
                    state.value,
                    operator,
                    reason,
                    parent_run_id,
                    self._now(),
                    json.dumps(arguments, sort_keys=True),
                ),
            )
        record = self.run(run_id)
        assert record is not None
        return record

    @staticmethod
    def _run_state(conn: sqlite3.Connection, run_id: str) -> RunState | None:
        row = conn.execute("SELECT state FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return RunState(row["state"]) if row else None

    def settle_run(self, run_id: str, outcome: RunState, error: str | None = None) -> None:
        """Every step of the run is settled: record its outcome; the run waits for its
        evidence (``evidence_pending``) until :meth:`append_evidence` seals it."""
        if not outcome.finished:
            raise ValueError(f"{outcome.value} is not an outcome of a run")
        with self.transaction() as conn:
            state = RunVerb.SETTLE.apply(self._run_state(conn, run_id))
            assert state is not None
            conn.execute(
                "UPDATE runs SET state = ?, outcome = ?, ended_at = ?, error = ? WHERE run_id = ?",
                (state.value, outcome.value, self._now(), error, run_id),
            )

    def reopen_run(self, run_id: str, retries: Sequence[tuple[str, str, int]] = ()) -> None:
        """Continue a run that failed (``retry``); a succeeded run is never reopened. In the
        same transaction, ``retries`` — (asset, partition key, attempt number) — are queued:
        the attempts the retry makes, which ``resume`` makes if the retry is interrupted."""
        now = self._now()
        with self.transaction() as conn:
            state = RunVerb.REOPEN.apply(self._run_state(conn, run_id))
            assert state is not None
            conn.execute(
                "UPDATE runs SET state = ?, outcome = NULL, ended_at = NULL, error = NULL"
                " WHERE run_id = ?",
                (state.value, run_id),
            )
            conn.executemany(
                "INSERT INTO attempts (run_id, asset, partition_key, attempt, status,"
                " started_at) VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (run_id, asset, key, n, AttemptStatus.QUEUED.value, now)
                    for asset, key, n in retries
                ],
            )

    def events(self, asset: str, key: str) -> list[dict[str, Any]]:
        rows = self._conn.execute(
            "SELECT * FROM events WHERE asset = ? AND partition_key = ? ORDER BY id",
            (asset, key),
        ).fetchall()
        return [dict(r) for r in rows]
