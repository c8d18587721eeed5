"""Leases with fencing tokens: who may write an (asset, partition) now."""

from __future__ import annotations

from typing import Protocol

from backfiller.ledger.database import Database, Row
from backfiller.ledger.records import Lease

__all__ = ["LeaseBook", "LeaseConflict", "SqlLeaseBook"]

#: an acquire that took nothing, whose blocking lease expired meanwhile, is tried again
_ATTEMPTS = 5


class LeaseConflict(Exception):
    """Internal: another holder has a live lease (carries it)."""

    def __init__(self, lease: Lease) -> None:
        super().__init__(lease.holder)
        self.lease = lease


def _lease(row: Row) -> Lease:
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


class SqlLeaseBook:
    """The lease book, on any ledger database; expiry is judged by the database's clock."""

    def __init__(self, db: Database) -> None:
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
        rebuilt from scratch must not hand out tokens the store would refuse).

        One statement (:meth:`~backfiller.ledger.database.Database.lease_acquire`): insert,
        or update when the lease is free, expired or this run's — atomic on every backend,
        judged on the database's clock. When it takes nothing, the live lease it met is read
        and named; should that lease have been released or expired in between, the statement
        is tried again."""
        for _ in range(_ATTEMPTS):
            sql, params = self._db.lease_acquire(
                asset,
                key,
                holder=holder,
                plan_id=plan_id,
                run_id=run_id,
                ttl_seconds=ttl_seconds,
                floor=floor,
            )
            rows, _ = self._db.statement(sql, params)
            if rows:
                row = rows[0]
                return Lease(
                    asset,
                    key,
                    holder,
                    plan_id,
                    run_id,
                    int(row["token"]),
                    row["acquired_at"],
                    row["expires_at"],
                )
            other = self.live(asset, key)
            if other is not None:
                raise LeaseConflict(other)
        raise RuntimeError(f"could not take the lease on {asset} {key}")  # pragma: no cover

    def renew(self, lease: Lease, ttl_seconds: float) -> bool:
        """Extend ``lease`` by ``ttl_seconds`` from now on the ledger's clock, if it is still
        held with its token; ``False`` when it was released or taken over (the heartbeat of a
        holder that computes for longer than the TTL)."""
        sql, params = self._db.lease_renewal(
            lease.asset, lease.partition_key, lease.token, ttl_seconds
        )
        return self._db.statement(sql, params)[1] == 1

    def is_current(self, lease: Lease) -> bool:
        """Fencing: whether ``lease`` is still the newest token for its partition."""
        row = self._db.one(
            "SELECT token, run_id, holder FROM leases WHERE asset = ? AND partition_key = ?",
            (lease.asset, lease.partition_key),
        )
        return row is not None and int(row["token"]) == lease.token and row["holder"] is not None

    def release(self, lease: Lease) -> None:
        self._db.statement(
            "UPDATE leases SET holder = NULL, expires_at = NULL"
            " WHERE asset = ? AND partition_key = ? AND token = ?",
            (lease.asset, lease.partition_key, lease.token),
        )

    def release_run(self, run_id: str) -> int:
        """Release every lease ``run_id`` still holds (a killed step leaves its lease behind;
        the run's end gives it back). Returns how many were released."""
        return self._db.statement(
            "UPDATE leases SET holder = NULL, expires_at = NULL"
            " WHERE run_id = ? AND holder IS NOT NULL",
            (run_id,),
        )[1]

    def held(self) -> list[Lease]:
        rows = self._db.all(
            "SELECT * FROM leases WHERE holder IS NOT NULL ORDER BY asset, partition_key"
        )
        return [_lease(r) for r in rows]

    def live(self, asset: str, key: str) -> Lease | None:
        """The lease on (asset, key) that has not expired by the ledger's clock, if any."""
        live, params = self._db.lease_live()
        row = self._db.one(
            f"SELECT * FROM leases WHERE asset = ? AND partition_key = ? AND {live}",
            (asset, key, *params),
        )
        return _lease(row) if row is not None else None
