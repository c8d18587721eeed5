"""The SQLite ledger (the default): one file in the project's state folder, composed of parts
behind protocols — the run log, the partition book, leases, protections, check results, holds
and the evidence index — over one database (:class:`~backfiller.ledger.database.SqliteDatabase`).
:mod:`backfiller.ledger.postgres` provides the same parts on PostgreSQL (team mode)."""

from __future__ import annotations

from pathlib import Path

from backfiller.clock import Clock, system_clock
from backfiller.ledger.composed import DatabaseLedger, ReadOnlyLedger
from backfiller.ledger.database import SqliteDatabase, UnmigratedLedger
from backfiller.ledger.reader import EmptyLedger, LedgerReader

__all__ = ["SqliteLedger", "open_reader"]


class SqliteLedger(DatabaseLedger):
    """The ledger writer on the SQLite file at ``path`` (created and migrated on open)."""

    def __init__(self, path: Path, *, clock: Clock = system_clock) -> None:
        self.path = Path(path)
        super().__init__(SqliteDatabase(self.path, clock=clock))


def open_reader(path: Path) -> LedgerReader:
    """A read-only view of the ledger at ``path``; creates nothing when it does not exist
    (a connection that refuses every write statement: ``query_only``)."""
    path = Path(path)
    if not path.exists():
        return EmptyLedger()
    try:
        return ReadOnlyLedger(SqliteDatabase(path, read_only=True))
    except UnmigratedLedger:  # being created by another process: nothing recorded yet
        return EmptyLedger()
