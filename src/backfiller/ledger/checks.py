"""Check results: what every check said about every partition it ran on, and when."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from backfiller.ledger.database import Database, Row
from backfiller.ledger.states import CheckStatus, Severity

__all__ = ["CheckBook", "CheckReader", "CheckRecord", "SqlCheckBook"]


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


class CheckReader(Protocol):
    def results(
        self, *, run_id: str | None = None, asset: str | None = None, key: str | None = None
    ) -> list[CheckRecord]: ...


class CheckBook(CheckReader, Protocol):
    def record(
        self,
        *,
        run_id: str | None,
        asset: str,
        key: str,
        on_staged: bool,
        results: list[tuple[str, CheckStatus, Severity, bool, Any, Any, list[dict[str, Any]]]],
    ) -> None: ...


def _check(row: Row) -> CheckRecord:
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


class SqlCheckBook:
    """Check results, on any ledger database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def record(
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
        now = self._db.now()
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
        with self._db.transaction() as conn:
            conn.executemany(
                "INSERT INTO check_results (run_id, asset, partition_key, check_name, status,"
                " severity, blocking, expected, actual, sample, on_staged, at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def results(
        self, *, run_id: str | None = None, asset: str | None = None, key: str | None = None
    ) -> list[CheckRecord]:
        clauses, params = [], []
        for column, value in (("run_id", run_id), ("asset", asset), ("partition_key", key)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._db.all(f"SELECT * FROM check_results{where} ORDER BY id", params)
        return [_check(r) for r in rows]

    # -- holds ----------------------------------------------------------------------------
