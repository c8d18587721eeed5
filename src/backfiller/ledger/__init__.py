"""The ledger: the durable state of every (asset, partition), plans and runs — composed parts
behind protocols (:mod:`~backfiller.ledger.runs`, :mod:`~backfiller.ledger.partitions`,
:mod:`~backfiller.ledger.leases`, :mod:`~backfiller.ledger.protections`,
:mod:`~backfiller.ledger.checks`, :mod:`~backfiller.ledger.holds`,
:mod:`~backfiller.ledger.evidence_index`, :mod:`~backfiller.ledger.dimensions`) over one
database: SQLite by default (:mod:`~backfiller.ledger.sqlite`), PostgreSQL in team mode
(:mod:`~backfiller.ledger.postgres`, which imports psycopg only when a PostgreSQL ledger is
opened). Its names are imported on first use: a command that only reads imports only the
reader's modules."""

from __future__ import annotations

from typing import TYPE_CHECKING

from backfiller._lazy import lazy_getattr

if TYPE_CHECKING:
    from backfiller.ledger.checks import CheckBook, CheckReader, CheckRecord
    from backfiller.ledger.composed import DatabaseLedger
    from backfiller.ledger.database import Database
    from backfiller.ledger.dimensions import DimensionBook, DimensionReader
    from backfiller.ledger.evidence_index import EvidenceIndex, EvidenceReader, EvidenceRecord
    from backfiller.ledger.holds import HoldBook, HoldReader, HoldRecord
    from backfiller.ledger.leases import LeaseBook, LeaseConflict
    from backfiller.ledger.partitions import PartitionBook, PartitionReader, PublishSuperseded
    from backfiller.ledger.postgres import PostgresLedger, open_postgres_reader
    from backfiller.ledger.protections import ProtectionBook, ProtectionReader
    from backfiller.ledger.reader import EmptyLedger, Ledger, LedgerReader, close_reader
    from backfiller.ledger.records import (
        AttemptRecord,
        DimensionEvent,
        Lease,
        PartitionRecord,
        PlanRecord,
        Protection,
        RunRecord,
    )
    from backfiller.ledger.runs import RunLog, RunReader
    from backfiller.ledger.sqlite import SqliteLedger, open_reader
    from backfiller.ledger.states import (
        AttemptStatus,
        CheckStatus,
        DimensionVerb,
        PartitionStatus,
        RunState,
        RunVerb,
        Severity,
        Verb,
    )

__all__ = [
    "AttemptRecord",
    "AttemptStatus",
    "CheckBook",
    "CheckReader",
    "CheckRecord",
    "CheckStatus",
    "Database",
    "DatabaseLedger",
    "DimensionBook",
    "DimensionEvent",
    "DimensionReader",
    "DimensionVerb",
    "EmptyLedger",
    "EvidenceIndex",
    "EvidenceReader",
    "EvidenceRecord",
    "HoldBook",
    "HoldReader",
    "HoldRecord",
    "Lease",
    "LeaseBook",
    "LeaseConflict",
    "Ledger",
    "LedgerReader",
    "PartitionBook",
    "PartitionReader",
    "PartitionRecord",
    "PartitionStatus",
    "PlanRecord",
    "PostgresLedger",
    "Protection",
    "ProtectionBook",
    "ProtectionReader",
    "PublishSuperseded",
    "RunLog",
    "RunReader",
    "RunRecord",
    "RunState",
    "RunVerb",
    "Severity",
    "SqliteLedger",
    "Verb",
    "close_reader",
    "open_postgres_reader",
    "open_reader",
]

_EXPORTS = {
    "AttemptRecord": "backfiller.ledger.records",
    "AttemptStatus": "backfiller.ledger.states",
    "CheckBook": "backfiller.ledger.checks",
    "CheckReader": "backfiller.ledger.checks",
    "CheckRecord": "backfiller.ledger.checks",
    "CheckStatus": "backfiller.ledger.states",
    "Database": "backfiller.ledger.database",
    "DatabaseLedger": "backfiller.ledger.composed",
    "DimensionBook": "backfiller.ledger.dimensions",
    "DimensionEvent": "backfiller.ledger.records",
    "DimensionReader": "backfiller.ledger.dimensions",
    "DimensionVerb": "backfiller.ledger.states",
    "EmptyLedger": "backfiller.ledger.reader",
    "EvidenceIndex": "backfiller.ledger.evidence_index",
    "EvidenceReader": "backfiller.ledger.evidence_index",
    "EvidenceRecord": "backfiller.ledger.evidence_index",
    "HoldBook": "backfiller.ledger.holds",
    "HoldReader": "backfiller.ledger.holds",
    "HoldRecord": "backfiller.ledger.holds",
    "Lease": "backfiller.ledger.records",
    "LeaseBook": "backfiller.ledger.leases",
    "LeaseConflict": "backfiller.ledger.leases",
    "Ledger": "backfiller.ledger.reader",
    "LedgerReader": "backfiller.ledger.reader",
    "PartitionBook": "backfiller.ledger.partitions",
    "PartitionReader": "backfiller.ledger.partitions",
    "PartitionRecord": "backfiller.ledger.records",
    "PartitionStatus": "backfiller.ledger.states",
    "PlanRecord": "backfiller.ledger.records",
    "PostgresLedger": "backfiller.ledger.postgres",
    "Protection": "backfiller.ledger.records",
    "ProtectionBook": "backfiller.ledger.protections",
    "ProtectionReader": "backfiller.ledger.protections",
    "PublishSuperseded": "backfiller.ledger.partitions",
    "RunLog": "backfiller.ledger.runs",
    "RunReader": "backfiller.ledger.runs",
    "RunRecord": "backfiller.ledger.records",
    "RunState": "backfiller.ledger.states",
    "RunVerb": "backfiller.ledger.states",
    "Severity": "backfiller.ledger.states",
    "SqliteLedger": "backfiller.ledger.sqlite",
    "Verb": "backfiller.ledger.states",
    "open_postgres_reader": "backfiller.ledger.postgres",
    "close_reader": "backfiller.ledger.reader",
    "open_reader": "backfiller.ledger.sqlite",
}

__getattr__ = lazy_getattr(globals(), _EXPORTS)
