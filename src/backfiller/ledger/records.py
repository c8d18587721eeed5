"""Plain records read from the ledger."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from backfiller.ledger.states import AttemptStatus, DimensionVerb, PartitionStatus, RunState

__all__ = [
    "AttemptRecord",
    "DimensionEvent",
    "Lease",
    "PartitionRecord",
    "PlanRecord",
    "Protection",
    "RunRecord",
]


@dataclass(frozen=True)
class Lease:
    """Who holds an (asset, partition) for writing, until when, with which fencing token."""

    asset: str
    partition_key: str
    holder: str
    plan_id: str | None
    run_id: str
    token: int
    acquired_at: str
    expires_at: str


@dataclass(frozen=True)
class DimensionEvent:
    """A value added to or removed from a dynamic partition dimension."""

    id: int
    at: str
    dimension: str
    value: str
    verb: DimensionVerb
    operator: str
    reason: str
    #: for a removal: how many of its partitions had published data (removed when asked to)
    published: int


@dataclass(frozen=True)
class Protection:
    """A published baseline that no action may overwrite without a recorded override."""

    asset: str
    partition_key: str
    reason: str
    operator: str
    created_at: str


@dataclass(frozen=True)
class PartitionRecord:
    asset: str
    partition_key: str
    status: PartitionStatus
    data_version: int | None
    row_count: int | None
    fingerprint: str | None
    manifest_id: str | None
    manifest_checksum: str | None
    upstream_versions: dict[str, dict[str, int | None]] = field(default_factory=dict)
    last_run_id: str | None = None
    last_attempt: int | None = None
    last_error: str | None = None
    created_at: str = ""
    updated_at: str = ""

    def state_token(self) -> dict[str, Any]:
        """What a plan's state fingerprint includes of this record."""
        return {
            "status": self.status.value,
            "data_version": self.data_version,
            "row_count": self.row_count,
            "fingerprint": self.fingerprint,
            "manifest_checksum": self.manifest_checksum,
        }


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    plan_id: str | None
    action: str
    state: RunState
    operator: str
    reason: str | None
    parent_run_id: str | None
    started_at: str
    ended_at: str | None
    arguments: dict[str, Any]
    error: str | None
    #: how the run's steps ended, recorded when it settled; its state once evidence exists
    outcome: RunState | None = None


@dataclass(frozen=True)
class AttemptRecord:
    run_id: str
    asset: str
    partition_key: str
    attempt: int
    status: AttemptStatus
    error: str | None
    transient: bool
    started_at: str
    ended_at: str | None
    rows_written: int | None
    data_version: int | None
    rows_before: int | None = None
    version_before: int | None = None
    fingerprint_before: str | None = None
    fingerprint: str | None = None


@dataclass(frozen=True)
class PlanRecord:
    plan_id: str
    action: str
    mode: str
    path: str
    state_fingerprint: str
    created_at: str
    document: dict[str, Any]
