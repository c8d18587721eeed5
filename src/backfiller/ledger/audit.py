"""Check results, holds and the evidence index: what the acceptance order is built on."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from backfiller.ledger.states import CheckStatus, RunState, RunVerb, Severity

__all__ = ["AuditMixin", "CheckRecord", "EvidenceRecord", "HoldRecord"]


@dataclass(frozen=True)
class CheckRecord:
    run_id: str | None
    asset: str
    partition_key: str
    check_name: str
    status: CheckStatus
    severity: Severity
    blocking: bool
    expected: Any
    actual: Any
    sample: list[dict[str, Any]]
    on_staged: bool
    at: str


@dataclass(frozen=True)
class HoldRecord:
    id: int
    target: str
    partition_key: str
    external: bool
    reason: str
    cause_asset: str
    cause_partition: str
    cause_run_id: str | None
    placed_at: str
    released_at: str | None
    released_by: str | None
    release_reason: str | None
    forced: bool

    @property
    def open(self) -> bool:
        return self.released_at is None


@dataclass(frozen=True)
class EvidenceRecord:
    seq: int
    run_id: str
    path: str
    sha256: str
    prev_sha256: str | None
    written_at: str


def _check(row: sqlite3.Row) -> CheckRecord:
    return CheckRecord(
        run_id=row["run_id"],
        asset=row["asset"],
        partition_key=row["partition_key"],
        check_name=row["check_name"],
        status=CheckStatus(row["status"]),
        severity=Severity(row["severity"]),
        blocking=bool(row["blocking"]),
        expected=json.loads(row["expected"]) if row["expected"] is not None else None,
        actual=json.loads(row["actual"]) if row["actual"] is not None else None,
        sample=json.loads(row["sample"]),
        on_staged=bool(row["on_staged"]),
        at=row["at"],
    )


def _hold(row: sqlite3.Row) -> HoldRecord:
    data = dict(row)
    data["external"] = bool(data["external"])
    data["forced"] = bool(data["forced"])
    return HoldRecord(**data)


class AuditMixin:
    _conn: sqlite3.Connection

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:  # SqliteLedger's
        raise NotImplementedError

    def _now(self) -> str:  # SqliteLedger's
        raise NotImplementedError

    # -- checks ---------------------------------------------------------------------------
    def record_checks(
        self,
        *,
        run_id: str | None,
        asset: str,
        key: str,
        on_staged: bool,
        results: list[tuple[str, CheckStatus, Severity, bool, Any, Any, list[dict[str, Any]]]],
    ) -> None:
        """Record the results of one partition's checks in one transaction:
        (name, status, severity, blocking, expected, actual, sample) each."""
        now = self._now()
        rows = [
            (
                run_id,
                asset,
                key,
                name,
                status.value,
                severity.value,
                int(blocking),
                json.dumps(expected, default=str),
                json.dumps(actual, default=str),
                json.dumps(sample, default=str),
                int(on_staged),
                now,
            )
            for name, status, severity, blocking, expected, actual, sample in results
        ]
        with self.transaction() as conn:
            conn.executemany(
                "INSERT INTO check_results (run_id, asset, partition_key, check_name, status,"
                " severity, blocking, expected, actual, sample, on_staged, at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def check_results(
        self, *, run_id: str | None = None, asset: str | None = None, key: str | None = None
    ) -> list[CheckRecord]:
        clauses, params = [], []
        for column, value in (("run_id", run_id), ("asset", asset), ("partition_key", key)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._conn.execute(f"SELECT * FROM check_results{where} ORDER BY id", params)
        return [_check(r) for r in rows]

    # -- holds ----------------------------------------------------------------------------
    def place_hold(
        self,
        *,
        target: str,
        key: str,
        external: bool,
        reason: str,
        cause_asset: str,
        cause_partition: str,
        cause_run_id: str | None,
    ) -> bool:
        """Hold (target, key) unless an open hold for the same cause exists; True if placed."""
        with self.transaction() as conn:
            exists = conn.execute(
                "SELECT 1 FROM holds WHERE target = ? AND partition_key = ? AND"
                " released_at IS NULL AND cause_asset = ? AND cause_partition = ? AND"
                " coalesce(cause_run_id, '') = coalesce(?, '')",
                (target, key, cause_asset, cause_partition, cause_run_id),
            ).fetchone()
            if exists:
                return False
            conn.execute(
                "INSERT INTO holds (target, partition_key, external, reason, cause_asset,"
                " cause_partition, cause_run_id, placed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    target,
                    key,
                    int(external),
                    reason,
                    cause_asset,
                    cause_partition,
                    cause_run_id,
                    self._now(),
                ),
            )
            return True

    def holds(self, *, open_only: bool = True) -> list[HoldRecord]:
        where = " WHERE released_at IS NULL" if open_only else ""
        rows = self._conn.execute(
            f"SELECT * FROM holds{where} ORDER BY target, partition_key, id"
        ).fetchall()
        return [_hold(r) for r in rows]

    def release_hold(self, hold_id: int, *, by: str, reason: str | None, forced: bool) -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE holds SET released_at = ?, released_by = ?, release_reason = ?,"
                " forced = ? WHERE id = ? AND released_at IS NULL",
                (self._now(), by, reason, int(forced), hold_id),
            )

    # -- evidence index -------------------------------------------------------------------
    def append_evidence(
        self, run_id: str, write: Callable[[int, str | None], tuple[str, str]]
    ) -> EvidenceRecord:
        """Chain the evidence of ``run_id``, serialised through the ledger: in one
        transaction take the next place in the chain, let ``write(seq, prev_sha256)`` write
        the document (it returns its path and sha256), index it, and seal the run — a run
        waiting for its evidence now takes the outcome it settled with as its state. Another
        process appending at the same time waits for this transaction, so every run gets its
        own link and the chain has no fork."""
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT seq, sha256 FROM evidence ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            seq = int(row["seq"]) + 1 if row else 1
            prev = str(row["sha256"]) if row else None
            path, sha256 = write(seq, prev)
            now = self._now()
            conn.execute(
                "INSERT INTO evidence (seq, run_id, path, sha256, prev_sha256, written_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (seq, run_id, path, sha256, prev, now),
            )
            run = conn.execute(
                "SELECT state, outcome FROM runs WHERE run_id = ?", (run_id,)
            ).fetchone()
            if run is not None and RunState(run["state"]) is RunState.EVIDENCE_PENDING:
                RunVerb.SEAL.apply(RunState.EVIDENCE_PENDING)
                conn.execute("UPDATE runs SET state = outcome WHERE run_id = ?", (run_id,))
            return EvidenceRecord(seq, run_id, path, sha256, prev, now)

    def evidence_index(self) -> list[EvidenceRecord]:
        rows = self._conn.execute("SELECT * FROM evidence ORDER BY seq").fetchall()
        return [EvidenceRecord(**dict(r)) for r in rows]

    def evidence_for(self, run_id: str) -> EvidenceRecord | None:
        """The latest evidence of a run (a retried run gets a new document, chained)."""
        row = self._conn.execute(
            "SELECT * FROM evidence WHERE run_id = ? ORDER BY seq DESC LIMIT 1", (run_id,)
        ).fetchone()
        return EvidenceRecord(**dict(row)) if row else None
