"""The ledger: the durable state of every (asset, partition), plans and runs — composed parts
behind protocols (:mod:`~backfiller.ledger.runs`, :mod:`~backfiller.ledger.partitions`,
:mod:`~backfiller.ledger.leases`, :mod:`~backfiller.ledger.protections`,
:mod:`~backfiller.ledger.checks`, :mod:`~backfiller.ledger.holds`,
:mod:`~backfiller.ledger.evidence_index`, :mod:`~backfiller.ledger.dimensions`) over one
database: SQLite by default (:mod:`~backfiller.ledger.sqlite`), PostgreSQL in team mode
(:mod:`~backfiller.ledger.postgres`, which imports psycopg only when a PostgreSQL ledger is
opened)."""

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
from backfiller.ledger.reader import EmptyLedger, Ledger, LedgerReader
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
    "open_postgres_reader",
    "open_reader",
]
