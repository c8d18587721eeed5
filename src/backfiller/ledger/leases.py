"""Leases with fencing tokens: who may write an (asset, partition) now."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from typing import Protocol

from backfiller.ledger.database import SqliteDatabase
from backfiller.ledger.records import Lease

__all__ = ["LeaseBook", "LeaseConflict", "SqliteLeases"]


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


class LeaseBook(Protocol):
    def acquire(
        self,
        asset: str,
        key: str,
        *,
        holder: str,
        plan_id: str | None,
        run_id: str,
        ttl_seconds: float,
        floor: int = 0,
    ) -> Lease: ...

    def renew(self, lease: Lease, ttl_seconds: float) -> bool: ...

    def is_current(self, lease: Lease) -> bool: ...

    def release(self, lease: Lease) -> None: ...

    def release_run(self, run_id: str) -> int: ...

    def held(self) -> list[Lease]: ...

    def live(self, asset: str, key: str) -> Lease | None: ...


class SqliteLeases:
    """The lease book on SQLite; expiry is judged by the ledger's clock."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    def acquire(
        self,
        asset: str,
        key: str,
        *,
        holder: str,
        plan_id: str | None,
        run_id: str,
        ttl_seconds: float,
        floor: int = 0,
    ) -> Lease:
        """Take the lease, or raise :class:`LeaseConflict` if another run holds a live one.
        An expired lease is taken over with a new fencing token, greater than the last one and
        than ``floor`` (the newest token the data store has seen for the partition: a ledger
        rebuilt from scratch must not hand out tokens the store would refuse)."""
        now = self._db.moment()
        with self._db.transaction() as conn:
            row = conn.execute(
                "SELECT * FROM leases WHERE asset = ? AND partition_key = ?", (asset, key)
            ).fetchone()
            if row is not None and row["run_id"] != run_id and _is_live(row, now):
                raise LeaseConflict(_lease(row))
            token = max(int(row["token"]) if row else 0, floor) + 1
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

    def renew(self, lease: Lease, ttl_seconds: float) -> bool:
        """Extend ``lease`` by ``ttl_seconds`` from now on the ledger's clock, if it is still
        held with its token; ``False`` when it was released or taken over (the heartbeat of a
        holder that computes for longer than the TTL)."""
        expires = (self._db.moment() + timedelta(seconds=ttl_seconds)).isoformat()
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE leases SET expires_at = ? WHERE asset = ? AND partition_key = ?"
                " AND token = ? AND holder IS NOT NULL",
                (expires, lease.asset, lease.partition_key, lease.token),
            )
            return cursor.rowcount == 1

    def is_current(self, lease: Lease) -> bool:
        """Fencing: whether ``lease`` is still the newest token for its partition."""
        row = self._db.conn.execute(
            "SELECT token, run_id, holder FROM leases WHERE asset = ? AND partition_key = ?",
            (lease.asset, lease.partition_key),
        ).fetchone()
        return row is not None and int(row["token"]) == lease.token and row["holder"] is not None

    def release(self, lease: Lease) -> None:
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE leases SET holder = NULL, expires_at = NULL"
                " WHERE asset = ? AND partition_key = ? AND token = ?",
                (lease.asset, lease.partition_key, lease.token),
            )

    def release_run(self, run_id: str) -> int:
        """Release every lease ``run_id`` still holds (a killed step leaves its lease behind;
        the run's end gives it back). Returns how many were released."""
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE leases SET holder = NULL, expires_at = NULL"
                " WHERE run_id = ? AND holder IS NOT NULL",
                (run_id,),
            )
            return cursor.rowcount

    def held(self) -> list[Lease]:
        rows = self._db.conn.execute(
            "SELECT * FROM leases WHERE holder IS NOT NULL ORDER BY asset, partition_key"
        ).fetchall()
        return [_lease(r) for r in rows]

    def live(self, asset: str, key: str) -> Lease | None:
        """The lease on (asset, key) that has not expired by the ledger's clock, if any."""
        row = self._db.conn.execute(
            "SELECT * FROM leases WHERE asset = ? AND partition_key = ?", (asset, key)
        ).fetchone()
        return _lease(row) if row is not None and _is_live(row, self._db.moment()) else None


def _is_live(row: sqlite3.Row, now: datetime) -> bool:
    """Held and not expired: the one rule for whether a lease still excludes others."""
    return row["holder"] is not None and datetime.fromisoformat(row["expires_at"]) > now
