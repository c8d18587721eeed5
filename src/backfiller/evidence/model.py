"""The run evidence document: what one apply run changed, checked and held, hash-chained.

Every object is closed (``extra="forbid"``, frozen); the one open object is the top-level
``extensions``, where a project may put what the schema does not know. The published schema is
``contracts/run_evidence/run_evidence.schema.json`` (generated from :class:`RunEvidence`).
"""

from __future__ import annotations

import json
from enum import Enum
from typing import Annotated, Any, Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from backfiller.checks.model import CheckStatus, Severity

__all__ = [
    "EVIDENCE_SCHEMA_VERSION",
    "SCHEMA_URL",
    "ChainLink",
    "CheckCounts",
    "CheckEntry",
    "HoldCounts",
    "HoldEntry",
    "Holds",
    "InputRef",
    "PartitionCounts",
    "PartitionEntry",
    "PartitionOutcome",
    "PartitionWindow",
    "PlanRef",
    "RunArgument",
    "RunEvidence",
    "RunInfo",
    "Summary",
    "UpstreamRef",
    "canonical_document",
]

EVIDENCE_SCHEMA_VERSION = 1
SCHEMA_URL: Final = "urn:backfiller:schema:run_evidence:v1"

_Closed = ConfigDict(extra="forbid", frozen=True)

Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Count = Annotated[int, Field(ge=0)]


class PartitionOutcome(Enum):
    """What this run did to one (asset, partition), from its last attempt."""

    PUBLISHED = "published"
    REPORT_REISSUED = "report_reissued"  # verified and its report written again; no publish
    FAILED = "failed"
    CHECK_FAILED = "check_failed"
    INTERRUPTED = "interrupted"  # the last attempt never finished (a crash)
    NOT_ATTEMPTED = "not_attempted"  # planned, never started: upstream failed, or leased


class RunArgument(BaseModel):
    """One argument the run was started with, as the ledger recorded it."""

    model_config = _Closed

    name: str
    value: Any


class RunInfo(BaseModel):
    model_config = _Closed

    id: str
    parent_run_id: str | None
    action: str
    mode: Literal["apply"] = Field(description="a dry run writes a plan, never a run")
    attempt: Count = Field(description="the highest attempt number of any partition (0: none)")
    state: Literal["succeeded", "failed", "checks_failed"]
    started_at: AwareDatetime
    ended_at: AwareDatetime
    arguments: list[RunArgument]
    backfiller_version: str = Field(description="the version that wrote this evidence")
    error: str | None
    operator: str
    reason: str | None


class PlanRef(BaseModel):
    model_config = _Closed

    plan_id: str
    path: str
    plan_sha256: Sha256 = Field(
        description="sha256 of the plan document's canonical JSON (sorted keys, no spaces), "
        "as the ledger recorded it"
    )


class InputRef(BaseModel):
    """A manifest partition that a published partition of this run was built from."""

    model_config = _Closed

    manifest_id: str
    partition_key: str
    manifest_checksum: str | None


class PartitionWindow(BaseModel):
    """The half-open time window ``[start, end)`` of a partition key."""

    model_config = _Closed

    start: AwareDatetime
    end: AwareDatetime


class UpstreamRef(BaseModel):
    """An upstream partition version that a published partition consumed."""

    model_config = _Closed

    asset: str
    partition_key: str
    data_version: int | None


class PartitionEntry(BaseModel):
    model_config = _Closed

    asset: str
    partition_key: str
    window: PartitionWindow | None
    status: PartitionOutcome
    attempts: Count
    previous_data_version: int | None
    new_data_version: int | None
    rows_before: int | None
    rows_after: int | None
    fingerprint_before: str | None
    fingerprint_after: str | None
    idempotency_guard: str | None
    upstream: list[UpstreamRef]
    error: str | None
    started_at: AwareDatetime | None
    ended_at: AwareDatetime | None
    duration_ms: Count | None


class CheckEntry(BaseModel):
    model_config = _Closed

    name: str
    asset: str
    partition_key: str
    status: CheckStatus
    severity: Severity
    blocking: bool
    expected: Any
    actual: Any


class HoldEntry(BaseModel):
    model_config = _Closed

    target: str
    partition_key: str
    external: bool
    reason: str
    cause_asset: str
    cause_partition: str
    placed_at: AwareDatetime
    released_at: AwareDatetime | None
    released_by: str | None
    release_reason: str | None
    forced: bool


class Holds(BaseModel):
    model_config = _Closed

    placed: list[HoldEntry] = Field(description="holds this run placed (open or since released)")
    released: list[HoldEntry] = Field(
        description="holds already released: placed by this run, or released while it ran"
    )


class PartitionCounts(BaseModel):
    model_config = _Closed

    total: Count
    published: Count
    failed: Count
    check_failed: Count
    interrupted: Count
    not_attempted: Count
    report_reissued: Count = 0


class CheckCounts(BaseModel):
    model_config = _Closed

    total: Count
    passed: Count
    failed: Count = Field(description="failed with severity error (blocking)")
    warned: Count = Field(description="failed with severity warn (not blocking)")


class HoldCounts(BaseModel):
    model_config = _Closed

    placed: Count
    released: Count


class Summary(BaseModel):
    model_config = _Closed

    partitions: PartitionCounts
    checks: CheckCounts
    holds: HoldCounts


class ChainLink(BaseModel):
    model_config = _Closed

    seq: Annotated[int, Field(ge=1)]
    prev_sha256: Sha256 | None = Field(
        description="sha256 of the previous evidence file's bytes (null for the first)"
    )


class RunEvidence(BaseModel):
    """The evidence of one apply run."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        title="backfiller run evidence",
        json_schema_extra={"$comment": "generated from backfiller.evidence.model.RunEvidence"},
    )

    schema_version: Literal[1] = 1
    schema_url: Literal["urn:backfiller:schema:run_evidence:v1"] = SCHEMA_URL
    evidence_id: Annotated[str, Field(pattern=r"^evidence-[0-9a-f]{16}$")]
    producer: Annotated[str, Field(pattern=r"^backfiller/\S+$")]
    generated_at: AwareDatetime
    project: str
    run: RunInfo
    plan: PlanRef | None
    inputs: list[InputRef]
    partitions: list[PartitionEntry]
    checks: list[CheckEntry]
    holds: Holds
    summary: Summary
    chain: ChainLink
    extensions: dict[str, Any] = Field(
        default_factory=dict, description="the one open object: whatever a project adds"
    )

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_bytes(cls, data: bytes) -> RunEvidence:
        return cls.model_validate(json.loads(data))


def canonical_document(document: dict[str, Any]) -> bytes:
    """The bytes of an evidence file: indented, sorted keys, UTF-8, one final newline."""
    text = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False)
    return (text + "\n").encode("utf-8")
