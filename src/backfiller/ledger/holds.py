"""Holds: downstream partitions and consumers kept from reading until the checks that
affect them pass and the evidence exists."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from backfiller.ledger.database import Database, Row

__all__ = ["HoldBook", "HoldReader", "HoldRecord", "SqlHoldBook"]


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


class HoldReader(Protocol):
    def all(self, *, open_only: bool = True) -> list[HoldRecord]: ...


class HoldBook(HoldReader, Protocol):
    def place(
        self,
        *,
        target: str,
        key: str,
        external: bool,
        reason: str,
        cause_asset: str,
        cause_partition: str,
        cause_run_id: str | None,
    ) -> bool: ...

    def release(self, hold_id: int, *, by: str, reason: str | None, forced: bool) -> None: ...


def _hold(row: Row) -> HoldRecord:
    data = dict(row)
    data["external"] = bool(data["external"])
    data["forced"] = bool(data["forced"])
    return HoldRecord(**data)


class SqlHoldBook:
    """Holds, on any ledger database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def place(
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
        with self._db.transaction(f"hold {target} {key}") as conn:
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
                    self._db.now(),
                ),
            )
            return True

    def all(self, *, open_only: bool = True) -> list[HoldRecord]:
        where = " WHERE released_at IS NULL" if open_only else ""
        rows = self._db.all(f"SELECT * FROM holds{where} ORDER BY target, partition_key, id")
        return [_hold(r) for r in rows]

    def release(self, hold_id: int, *, by: str, reason: str | None, forced: bool) -> None:
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE holds SET released_at = ?, released_by = ?, release_reason = ?,"
                " forced = ? WHERE id = ? AND released_at IS NULL",
                (self._db.now(), by, reason, int(forced), hold_id),
            )

    # -- evidence index -------------------------------------------------------------------
