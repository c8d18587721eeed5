"""The SQLite ledger (the default): one file in the project's state folder, composed of parts
behind protocols — the run log, the partition book, leases, protections, check results, holds
and the evidence index — over one database (:class:`~backfiller.ledger.database.SqliteDatabase`).
Another backend provides the same parts."""

from __future__ import annotations

from pathlib import Path

from backfiller.clock import Clock, system_clock
from backfiller.ledger.checks import SqliteChecks
from backfiller.ledger.database import SqliteDatabase, schema_version
from backfiller.ledger.evidence_index import SqliteEvidenceIndex
from backfiller.ledger.holds import SqliteHolds
from backfiller.ledger.leases import SqliteLeases
from backfiller.ledger.partitions import SqlitePartitions
from backfiller.ledger.protections import SqliteProtections
from backfiller.ledger.reader import EmptyLedger, LedgerReader
from backfiller.ledger.runs import SqliteRuns

__all__ = ["SqliteLedger", "open_reader"]


class SqliteLedger:
    """The ledger writer. Thread-safe: one connection, writes serialised by a lock."""

    def __init__(self, path: Path, *, clock: Clock = system_clock) -> None:
        self.path = Path(path)
        self._db = SqliteDatabase(self.path, clock=clock)
        self.runs = SqliteRuns(self._db)
        self.partitions = SqlitePartitions(self._db)
        self.leases = SqliteLeases(self._db)
        self.protections = SqliteProtections(self._db)
        self.checks = SqliteChecks(self._db)
        self.holds = SqliteHolds(self._db)
        self.evidence = SqliteEvidenceIndex(self._db)

    @property
    def schema_version(self) -> int:
        return schema_version(self._db.conn)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> SqliteLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _ReadOnlyLedger:
    """Read-only by construction: only reading parts, on a connection that refuses every
    write statement (``query_only``)."""

    def __init__(self, path: Path) -> None:
        self._db = SqliteDatabase(path, read_only=True)
        self.runs = SqliteRuns(self._db)
        self.partitions = SqlitePartitions(self._db)
        self.protections = SqliteProtections(self._db)

    def close(self) -> None:
        self._db.close()


def open_reader(path: Path) -> LedgerReader:
    """A read-only view of the ledger at ``path``; creates nothing when it does not exist."""
    path = Path(path)
    if not path.exists():
        return EmptyLedger()
    return _ReadOnlyLedger(path)
