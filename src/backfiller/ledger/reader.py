"""The read-only view of the ledger that planning, dry runs and reports get.

It has no method that writes, so code holding a :class:`LedgerReader` cannot change the state by
construction.
"""

from __future__ import annotations

from typing import Protocol

from backfiller.ledger.records import (
    AttemptRecord,
    PartitionRecord,
    PlanRecord,
    Protection,
    RunRecord,
)

__all__ = ["EmptyLedger", "LedgerReader"]


class LedgerReader(Protocol):
    def partition(self, asset: str, partition_key: str) -> PartitionRecord | None: ...

    def partitions(self, asset: str | None = None) -> list[PartitionRecord]: ...

    def run(self, run_id: str) -> RunRecord | None: ...

    def runs(self) -> list[RunRecord]: ...

    def attempts(self, run_id: str) -> list[AttemptRecord]: ...

    def attempt(
        self, run_id: str, asset: str, partition_key: str, attempt: int
    ) -> AttemptRecord | None: ...

    def plan(self, plan_id: str) -> PlanRecord | None: ...

    def protections(self) -> list[Protection]: ...


class EmptyLedger:
    """The reader of a ledger that does not exist yet (opening it read-only creates nothing)."""

    def partition(self, asset: str, partition_key: str) -> PartitionRecord | None:
        return None

    def partitions(self, asset: str | None = None) -> list[PartitionRecord]:
        return []

    def run(self, run_id: str) -> RunRecord | None:
        return None

    def runs(self) -> list[RunRecord]:
        return []

    def attempts(self, run_id: str) -> list[AttemptRecord]:
        return []

    def attempt(
        self, run_id: str, asset: str, partition_key: str, attempt: int
    ) -> AttemptRecord | None:
        return None

    def plan(self, plan_id: str) -> PlanRecord | None:
        return None

    def protections(self) -> list[Protection]:
        return []
