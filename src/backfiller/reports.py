"""Partition reports: one small JSON document per published (asset, partition).

Written by the runner when it publishes a partition (and again, unchanged in substance, when a
run re-issues a lost report); validated by ``contracts/partition_report``. A missing report
with data and ledger in agreement is the ``missing_partition_report`` gap.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from backfiller.atomic import atomic_write_text
from backfiller.locations import Location

__all__ = [
    "PARTITION_REPORT_VERSION",
    "PartitionReport",
    "read_partition_report",
    "write_partition_report",
]

PARTITION_REPORT_VERSION = 1


class PartitionReport(BaseModel):
    """What one run published for one (asset, partition), and what it replaced."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        title="backfiller partition report",
        json_schema_extra={"$comment": "generated from backfiller.reports.PartitionReport"},
    )

    schema_version: Literal[1] = 1
    asset: str
    partition_key: str
    window_start: str | None = Field(description="the seed's rendering of the window start")
    window_end: str | None = Field(description="the seed's inclusive rendering of the window end")
    run_id: str = Field(description="the run that published this data version")
    plan_id: str | None
    action: str = Field(description="backfill, rerun, replay or restore")
    operator: str
    data_version: int = Field(ge=0, description="the Delta table version of that publish")
    previous_data_version: int | None
    row_count: int = Field(ge=0)
    previous_row_count: int | None
    fingerprint: str
    manifest_id: str | None
    manifest_checksum: str | None
    idempotency_guard: str
    upstream_versions: dict[str, dict[str, int | None]]
    restored_from_version: int | None = Field(
        default=None, description="for a restore: the earlier table version published again"
    )
    reissued_by_run_id: str | None = Field(
        default=None, description="the run that wrote this report again without publishing"
    )

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def write_partition_report(path: Location, report: PartitionReport) -> Location:
    text = json.dumps(report.to_dict(), indent=2, sort_keys=True) + "\n"
    return atomic_write_text(path, text)


def read_partition_report(path: Location | str) -> PartitionReport | None:
    """The report at ``path`` (a local file or an object); ``None`` when it is missing or no
    longer a valid report (which is then a gap to re-issue, never trusted)."""
    try:
        return PartitionReport.model_validate_json(
            (Path(path) if isinstance(path, str) else path).read_bytes()
        )
    except FileNotFoundError:
        return None
    except ValidationError:
        return None
