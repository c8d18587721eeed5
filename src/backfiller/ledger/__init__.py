"""The ledger: the durable state of every (asset, partition), plans and runs."""

from backfiller.ledger.audit import CheckRecord, EvidenceRecord, HoldRecord
from backfiller.ledger.leases import LeaseConflict
from backfiller.ledger.reader import EmptyLedger, LedgerReader
from backfiller.ledger.records import (
    AttemptRecord,
    Lease,
    PartitionRecord,
    PlanRecord,
    Protection,
    RunRecord,
)
from backfiller.ledger.sqlite import SqliteLedger, open_reader
from backfiller.ledger.states import (
    AttemptStatus,
    CheckStatus,
    PartitionStatus,
    RunState,
    RunVerb,
    Severity,
    Verb,
)

__all__ = [
    "AttemptRecord",
    "AttemptStatus",
    "CheckRecord",
    "CheckStatus",
    "EmptyLedger",
    "EvidenceRecord",
    "HoldRecord",
    "Lease",
    "LeaseConflict",
    "LedgerReader",
    "PartitionRecord",
    "PartitionStatus",
    "PlanRecord",
    "Protection",
    "RunRecord",
    "RunState",
    "RunVerb",
    "Severity",
    "SqliteLedger",
    "Verb",
    "open_reader",
]
