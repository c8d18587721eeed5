"""Runs, their attempts and the plans they apply: the run log.

A run's state moves only by :class:`~backfiller.ledger.states.RunVerb` (begin, settle, reopen;
the evidence index seals it).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Protocol

from backfiller.ledger.database import Connection, Database, Row
from backfiller.ledger.records import AttemptRecord, PlanRecord, RunRecord
from backfiller.ledger.states import AttemptStatus, RunState, RunVerb

__all__ = ["RunLog", "RunReader", "SqlRunLog"]


class RunReader(Protocol):
    def get(self, run_id: str) -> RunRecord | None: ...

    def all(self) -> list[RunRecord]: ...

    def attempts(self, run_id: str) -> list[AttemptRecord]: ...

    def attempt(
        self, run_id: str, asset: str, partition_key: str, attempt: int
    ) -> AttemptRecord | None: ...

    def plan(self, plan_id: str) -> PlanRecord | None: ...


class RunLog(RunReader, Protocol):
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
    ) -> None: ...

    def begin(
        self,
        *,
        run_id: str,
        plan_id: str | None,
        action: str,
        operator: str,
        reason: str | None,
        arguments: dict[str, Any],
        parent_run_id: str | None = None,
    ) -> RunRecord: ...

    def settle(self, run_id: str, outcome: RunState, error: str | None = None) -> None: ...

    def reopen(self, run_id: str, retries: Sequence[tuple[str, str, int]] = ()) -> None: ...


def _run(row: Row) -> RunRecord:
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


def _attempt(row: Row) -> AttemptRecord:
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


def run_state(conn: Connection, run_id: str) -> RunState | None:
    row = conn.execute("SELECT state FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    return RunState(row["state"]) if row else None


def _lock(run_id: str) -> str:
    """The lock of one run's state machine."""
    return f"run {run_id}"


class SqlRunLog:
    """The run log, on any ledger database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- reading --------------------------------------------------------------------------
    def get(self, run_id: str) -> RunRecord | None:
        row = self._db.one("SELECT * FROM runs WHERE run_id = ?", (run_id,))
        return _run(row) if row else None

    def all(self) -> list[RunRecord]:
        rows = self._db.all("SELECT * FROM runs ORDER BY started_at, run_id")
        return [_run(r) for r in rows]

    def attempts(self, run_id: str) -> list[AttemptRecord]:
        rows = self._db.all(
            "SELECT * FROM attempts WHERE run_id = ? ORDER BY asset, partition_key, attempt",
            (run_id,),
        )
        return [_attempt(r) for r in rows]

    def attempt(
        self, run_id: str, asset: str, partition_key: str, attempt: int
    ) -> AttemptRecord | None:
        row = self._db.one(
            "SELECT * FROM attempts WHERE run_id = ? AND asset = ? AND partition_key = ?"
            " AND attempt = ?",
            (run_id, asset, partition_key, attempt),
        )
        return _attempt(row) if row else None

    def plan(self, plan_id: str) -> PlanRecord | None:
        row = self._db.one("SELECT * FROM plans WHERE plan_id = ?", (plan_id,))
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

    # -- writing --------------------------------------------------------------------------
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
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO plans (plan_id, action, mode, path, state_fingerprint, created_at,"
                " document) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (plan_id) DO NOTHING",
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

    def begin(
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
        with self._db.transaction(_lock(run_id)) as conn:
            state = RunVerb.BEGIN.apply(run_state(conn, run_id))
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
                    self._db.now(),
                    json.dumps(arguments, sort_keys=True),
                ),
            )
        record = self.get(run_id)
        assert record is not None
        return record

    def settle(self, run_id: str, outcome: RunState, error: str | None = None) -> None:
        """Every step of the run is settled: record its outcome; the run waits for its
        evidence (``evidence_pending``) until the evidence index seals it."""
        if not outcome.finished:
            raise ValueError(f"{outcome.value} is not an outcome of a run")
        with self._db.transaction(_lock(run_id)) as conn:
            state = RunVerb.SETTLE.apply(run_state(conn, run_id))
            assert state is not None
            conn.execute(
                "UPDATE runs SET state = ?, outcome = ?, ended_at = ?, error = ? WHERE run_id = ?",
                (state.value, outcome.value, self._db.now(), error, run_id),
            )

    def reopen(self, run_id: str, retries: Sequence[tuple[str, str, int]] = ()) -> None:
        """Continue a run that failed (``retry``); a succeeded run is never reopened. In the
        same transaction, ``retries`` — (asset, partition key, attempt number) — are queued:
        the attempts the retry makes, which ``resume`` makes if the retry is interrupted."""
        now = self._db.now()
        with self._db.transaction(_lock(run_id)) as conn:
            state = RunVerb.REOPEN.apply(run_state(conn, run_id))
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
