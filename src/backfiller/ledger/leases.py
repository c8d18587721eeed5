"""Leases with fencing tokens, protected baselines and recorded overrides."""

from __future__ import annotations

import sqlite3
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any

from backfiller.ledger.records import Lease, Protection

__all__ = ["LeaseConflict", "LeaseMixin"]


class LeaseConflict(Exception):
    """Internal: another holder has a live lease (carries it)."""

    def __init__(self, lease: Lease) -> None:
        super().__init__(lease.holder)
        self.lease = lease


def _lease(row: sqlite3.Row) -> Lease:
    return Lease(
        asset=row["asset"],
        partition_key=row["partition_key"],
        holder=row["holder"],
        plan_id=row["plan_id"],
        run_id=row["run_id"],
        token=row["token"],
        acquired_at=row["acquired_at"],
        expires_at=row["expires_at"],
    )


class LeaseMixin:
    """Leases, protections and overrides, on the writer's connection."""

    _conn: sqlite3.Connection

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:  # SqliteLedger's
        raise NotImplementedError

    def _now(self) -> str:  # provided by SqliteLedger
        raise NotImplementedError

    def _clock_now(self) -> datetime:
        raise NotImplementedError

    def acquire_lease(
        self,
        asset: str,
        key: str,
        *,
        holder: str,
        plan_id: str | None,
        run_id: str,
        ttl_seconds: float,
    ) -> Lease:
        """Take the lease, or raise :class:`LeaseConflict` if another run holds a live one.
        An expired lease is taken over with a new fencing token."""
        now = self._clock_now()
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT * FROM leases WHERE asset = ? AND partition_key = ?", (asset, key)
            ).fetchone()
            if (
                row is not None
                and row["holder"] is not None
                and row["run_id"] != run_id
                and datetime.fromisoformat(row["expires_at"]) > now
            ):
                raise LeaseConflict(_lease(row))
            token = (row["token"] if row else 0) + 1
            expires = (now + timedelta(seconds=ttl_seconds)).isoformat()
            conn.execute(
                "INSERT INTO leases (asset, partition_key, holder, plan_id, run_id, token,"
                " acquired_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (asset, partition_key) DO UPDATE SET holder = excluded.holder,"
                " plan_id = excluded.plan_id, run_id = excluded.run_id, token = excluded.token,"
                " acquired_at = excluded.acquired_at, expires_at = excluded.expires_at",
                (asset, key, holder, plan_id, run_id, token, now.isoformat(), expires),
            )
        return Lease(asset, key, holder, plan_id, run_id, token, now.isoformat(), expires)

    def lease_is_current(self, lease: Lease) -> bool:
        """Fencing: whether ``lease`` is still the newest token for its partition."""
        row = self._conn.execute(
            "SELECT token, run_id, holder FROM leases WHERE asset = ? AND partition_key = ?",
            (lease.asset, lease.partition_key),
        ).fetchone()
        return row is not None and int(row["token"]) == lease.token and row["holder"] is not None

    def release_lease(self, lease: Lease) -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE leases SET holder = NULL, expires_at = NULL"
                " WHERE asset = ? AND partition_key = ? AND token = ?",
                (lease.asset, lease.partition_key, lease.token),
            )

    def release_run_leases(self, run_id: str) -> int:
        """Release every lease ``run_id`` still holds (a killed step leaves its lease behind;
        the run's end gives it back). Returns how many were released."""
        with self.transaction() as conn:
            cursor = conn.execute(
                "UPDATE leases SET holder = NULL, expires_at = NULL"
                " WHERE run_id = ? AND holder IS NOT NULL",
                (run_id,),
            )
            return cursor.rowcount

    def leases(self) -> list[Lease]:
        rows = self._conn.execute(
            "SELECT * FROM leases WHERE holder IS NOT NULL ORDER BY asset, partition_key"
        ).fetchall()
        return [_lease(r) for r in rows]

    def protect(self, asset: str, key: str, *, reason: str, operator: str) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO protections VALUES (?, ?, ?, ?, ?)",
                (asset, key, reason, operator, self._now()),
            )

    def unprotect(self, asset: str, key: str) -> bool:
        with self.transaction() as conn:
            cur = conn.execute(
                "DELETE FROM protections WHERE asset = ? AND partition_key = ?", (asset, key)
            )
            return cur.rowcount > 0

    def protection(self, asset: str, key: str) -> Protection | None:
        row = self._conn.execute(
            "SELECT * FROM protections WHERE asset = ? AND partition_key = ?", (asset, key)
        ).fetchone()
        return Protection(**dict(row)) if row else None

    def record_override(
        self, *, run_id: str | None, asset: str, key: str, reason: str, operator: str
    ) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO overrides (at, run_id, asset, partition_key, reason, operator)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (self._now(), run_id, asset, key, reason, operator),
            )

    def overrides(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._conn.execute("SELECT * FROM overrides ORDER BY id")]
