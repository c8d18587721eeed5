"""Partition reports: one small JSON file per published (asset, partition).

A missing report with data and ledger in agreement is the ``missing_partition_report`` gap.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from backfiller.atomic import atomic_write_text

__all__ = ["PARTITION_REPORT_VERSION", "read_partition_report", "write_partition_report"]

PARTITION_REPORT_VERSION = 1


def write_partition_report(path: Path, body: dict[str, Any]) -> Path:
    document = {"schema_version": PARTITION_REPORT_VERSION, **body}
    return atomic_write_text(path, json.dumps(document, indent=2, sort_keys=True) + "\n")


def read_partition_report(path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    return data
