"""Protected baselines — published data no action may overwrite without a recorded override —
and the overrides recorded."""

from __future__ import annotations

from typing import Any, Protocol

from backfiller.ledger.database import Database
from backfiller.ledger.records import Protection

__all__ = ["ProtectionBook", "ProtectionReader", "SqlProtectionBook"]


class ProtectionReader(Protocol):
    def all(self) -> list[Protection]: ...


class ProtectionBook(ProtectionReader, Protocol):
    def get(self, asset: str, key: str) -> Protection | None: ...

    def protect(self, asset: str, key: str, *, reason: str, operator: str) -> None: ...

    def unprotect(self, asset: str, key: str) -> bool: ...

    def record_override(
        self, *, run_id: str | None, asset: str, key: str, reason: str, operator: str
    ) -> None: ...

    def overrides(self) -> list[dict[str, Any]]: ...


class SqlProtectionBook:
    """Protections and overrides, on any ledger database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def all(self) -> list[Protection]:
        rows = self._db.all("SELECT * FROM protections ORDER BY asset, partition_key")
        return [Protection(**dict(r)) for r in rows]

    def get(self, asset: str, key: str) -> Protection | None:
        row = self._db.one(
            "SELECT * FROM protections WHERE asset = ? AND partition_key = ?", (asset, key)
        )
        return Protection(**dict(row)) if row else None

    def protect(self, asset: str, key: str, *, reason: str, operator: str) -> None:
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO protections (asset, partition_key, reason, operator, created_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (asset, partition_key) DO UPDATE SET"
                " reason = excluded.reason, operator = excluded.operator,"
                " created_at = excluded.created_at",
                (asset, key, reason, operator, self._db.now()),
            )

    def unprotect(self, asset: str, key: str) -> bool:
        with self._db.transaction() as conn:
            cur = conn.execute(
                "DELETE FROM protections WHERE asset = ? AND partition_key = ?", (asset, key)
            )
            return cur.rowcount > 0

    def record_override(
        self, *, run_id: str | None, asset: str, key: str, reason: str, operator: str
    ) -> None:
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO overrides (at, run_id, asset, partition_key, reason, operator)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (self._db.now(), run_id, asset, key, reason, operator),
            )

    def overrides(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._db.all("SELECT * FROM overrides ORDER BY id")]
