"""A ledger composed of its parts over one :class:`~backfiller.ledger.database.Database`:
the writer every action gets, and the read-only view that has only reading parts."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Self

from backfiller.ledger.checks import SqlCheckBook
from backfiller.ledger.database import Database
from backfiller.ledger.dimensions import SqlDimensionBook
from backfiller.ledger.evidence_index import SqlEvidenceIndex
from backfiller.ledger.holds import SqlHoldBook
from backfiller.ledger.leases import SqlLeaseBook
from backfiller.ledger.partitions import SqlPartitionBook
from backfiller.ledger.protections import SqlProtectionBook
from backfiller.ledger.runs import SqlRunLog

__all__ = ["DatabaseLedger", "ReadOnlyLedger"]


class DatabaseLedger:
    """The ledger writer: every part over one database (SQLite or PostgreSQL). Thread-safe:
    SQLite serialises writes through one connection, PostgreSQL lends each thread a pooled
    connection per transaction."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.runs = SqlRunLog(db)
        self.partitions = SqlPartitionBook(db)
        self.leases = SqlLeaseBook(db)
        self.protections = SqlProtectionBook(db)
        self.checks = SqlCheckBook(db)
        self.holds = SqlHoldBook(db)
        self.evidence = SqlEvidenceIndex(db)
        self.dimensions = SqlDimensionBook(db)

    @property
    def where(self) -> str:
        """The ledger's location as messages name it (a URL without its password)."""
        return self._db.where

    @property
    def schema_version(self) -> int:
        return self._db.schema_version()

    def batch(self) -> AbstractContextManager[object]:
        """Several ledger writes made durable by one commit: every write in this thread
        inside the block is a savepoint of one transaction (a failing write is undone alone;
        an exception leaving the block undoes them all). Keep it short: other threads wait
        for the SQLite ledger while it is open."""
        return self._db.transaction()

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ReadOnlyLedger:
    """Read-only by construction: only reading parts, over a database opened read-only."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.runs = SqlRunLog(db)
        self.partitions = SqlPartitionBook(db)
        self.protections = SqlProtectionBook(db)
        self.checks = SqlCheckBook(db)
        self.holds = SqlHoldBook(db)
        self.evidence = SqlEvidenceIndex(db)
        self.dimensions = SqlDimensionBook(db)

    def close(self) -> None:
        self._db.close()
