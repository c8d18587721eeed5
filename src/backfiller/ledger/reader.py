"""The read-only view of the ledger that planning, dry runs and reports get.

It has no part that writes, so code holding a :class:`LedgerReader` cannot change the state by
construction.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

from backfiller.ledger.partitions import STATE_COLUMNS

if TYPE_CHECKING:  # the protocols name them; a reader imports only what it opens
    from backfiller.ledger.checks import CheckBook, CheckReader, CheckRecord
    from backfiller.ledger.dimensions import DimensionBook, DimensionReader
    from backfiller.ledger.evidence_index import EvidenceIndex, EvidenceReader, EvidenceRecord
    from backfiller.ledger.holds import HoldBook, HoldReader, HoldRecord
    from backfiller.ledger.leases import LeaseBook
    from backfiller.ledger.partitions import PartitionBook, PartitionReader
    from backfiller.ledger.protections import ProtectionBook, ProtectionReader
    from backfiller.ledger.records import (
        AttemptRecord,
        DimensionEvent,
        PartitionRecord,
        PlanRecord,
        Protection,
        RunRecord,
    )
    from backfiller.ledger.runs import RunLog, RunReader

__all__ = ["EmptyLedger", "Ledger", "LedgerReader", "close_reader"]


class LedgerReader(Protocol):
    @property
    def runs(self) -> RunReader: ...

    @property
    def partitions(self) -> PartitionReader: ...

    @property
    def protections(self) -> ProtectionReader: ...

    @property
    def dimensions(self) -> DimensionReader: ...

    @property
    def checks(self) -> CheckReader: ...

    @property
    def holds(self) -> HoldReader: ...

    @property
    def evidence(self) -> EvidenceReader: ...


class Ledger(Protocol):
    """The ledger every action writes to: its parts, each behind its protocol. SQLite is the
    default (:class:`~backfiller.ledger.sqlite.SqliteLedger`); another backend provides the
    same parts. A ledger is also a :class:`LedgerReader`."""

    @property
    def runs(self) -> RunLog: ...

    @property
    def partitions(self) -> PartitionBook: ...

    @property
    def leases(self) -> LeaseBook: ...

    @property
    def protections(self) -> ProtectionBook: ...

    @property
    def checks(self) -> CheckBook: ...

    @property
    def holds(self) -> HoldBook: ...

    @property
    def evidence(self) -> EvidenceIndex: ...

    @property
    def dimensions(self) -> DimensionBook: ...

    def batch(self) -> AbstractContextManager[object]:
        """Several writes made durable by one commit (see
        :meth:`~backfiller.ledger.composed.DatabaseLedger.batch`)."""
        ...

    def close(self) -> None: ...


class _NoRuns:
    def get(self, run_id: str) -> RunRecord | None:
        return None

    def all(self) -> list[RunRecord]:
        return []

    def attempts(self, run_id: str) -> list[AttemptRecord]:
        return []

    def attempt(
        self, run_id: str, asset: str, partition_key: str, attempt: int
    ) -> AttemptRecord | None:
        return None

    def plan(self, plan_id: str) -> PlanRecord | None:
        return None


class _NoPartitions:
    def get(self, asset: str, partition_key: str) -> PartitionRecord | None:
        return None

    def all(self, asset: str | None = None) -> list[PartitionRecord]:
        return []

    def state_rows(
        self, assets: Sequence[str], columns: Sequence[str] = STATE_COLUMNS
    ) -> Iterator[tuple[str, Sequence[tuple[Any, ...]]]]:
        return iter(())

    def change_marks(self, assets: Sequence[str]) -> dict[str, tuple[int, str] | None]:
        return dict.fromkeys(assets)

    def stale_reasons(self, asset: str, keys: Sequence[str]) -> dict[str, str]:
        return {}


class _NoProtections:
    def all(self) -> list[Protection]:
        return []


class _NoDimensions:
    def values(self, dimension: str) -> list[str]:
        return []

    def events(self, dimension: str | None = None) -> list[DimensionEvent]:
        return []


class _NoChecks:
    def results(
        self, *, run_id: str | None = None, asset: str | None = None, key: str | None = None
    ) -> list[CheckRecord]:
        return []


class _NoHolds:
    def all(self, *, open_only: bool = True) -> list[HoldRecord]:
        return []


class _NoEvidence:
    def index(self) -> list[EvidenceRecord]:
        return []

    def of_run(self, run_id: str) -> EvidenceRecord | None:
        return None


class EmptyLedger:
    """The reader of a ledger that does not exist yet (opening it read-only creates nothing)."""

    def __init__(self) -> None:
        self.runs = _NoRuns()
        self.partitions = _NoPartitions()
        self.protections = _NoProtections()
        self.dimensions = _NoDimensions()
        self.checks = _NoChecks()
        self.holds = _NoHolds()
        self.evidence = _NoEvidence()


def close_reader(reader: object) -> None:
    """Close ``reader`` when it holds something to close (a database connection; the reader
    of a ledger that does not exist yet holds nothing)."""
    close = getattr(reader, "close", None)
    if callable(close):
        close()
