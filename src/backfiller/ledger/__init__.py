"""The ledger: the durable state of every (asset, partition), plans and runs."""

from backfiller.ledger.reader import EmptyLedger, LedgerReader
from backfiller.ledger.records import AttemptRecord, PartitionRecord, PlanRecord, RunRecord
from backfiller.ledger.sqlite import SqliteLedger, open_reader
from backfiller.ledger.states import PartitionStatus, RunState, Verb

__all__ = [
    "AttemptRecord",
    "EmptyLedger",
    "LedgerReader",
    "PartitionRecord",
    "PartitionStatus",
    "PlanRecord",
    "RunRecord",
    "RunState",
    "SqliteLedger",
    "Verb",
    "open_reader",
]
