"""The state of each partition of an asset as ``status`` shows it, computed per column over
the bulk tables (:mod:`backfiller.planning.bulk`): no object per partition.

The rule, first match wins: data files gone → ``missing``; no record and stored rows →
``orphan``; no record → ``missing`` when a manifest expects rows, else ``no_expected_input``;
a ``materialized`` record whose rows are gone (the record says it had some) → ``missing``;
otherwise the record's status.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum

import pyarrow as pa
import pyarrow.compute as pc

from backfiller.ledger import LedgerReader
from backfiller.ledger.states import PartitionStatus
from backfiller.planning.bulk import ledger_table, store_table
from backfiller.planning.ranges import KeyRange, runs
from backfiller.planning.state import StateSource

__all__ = ["PartitionState", "state_column", "state_ranges"]


class PartitionState(Enum):
    MATERIALIZED = "materialized"
    MISSING = "missing"
    FAILED = "failed"
    CHECK_FAILED = "check_failed"
    STALE = "stale"
    MATERIALIZING = "materializing"
    ORPHAN = "orphan"
    NO_EXPECTED_INPUT = "no_expected_input"


def state_column(
    source: StateSource, reader: LedgerReader, asset: str, keys: pa.Table
) -> pa.ChunkedArray:
    """The state of each key of ``keys`` (a :func:`~backfiller.planning.bulk.key_table`), in
    its order, as strings (:class:`PartitionState` values)."""
    ledger = ledger_table(reader, asset).select(["partition_key", "status", "row_count"])
    stored = store_table(source, asset).select(["partition_key", "rows", "missing_files"])
    cells = (
        keys.select(["idx", "partition_key", "expected"])
        .join(ledger, "partition_key", join_type="left outer")
        .join(stored, "partition_key", join_type="left outer")
        .sort_by("idx")
    )
    status = cells.column("status")
    rows = pc.fill_null(cells.column("rows"), 0)
    lost = pc.fill_null(cells.column("missing_files"), 0)
    expected = pc.fill_null(cells.column("expected"), 0)
    recorded = pc.fill_null(cells.column("row_count"), 0)
    no_record = pc.is_null(status)
    conditions = [
        pc.greater(lost, 0),
        pc.and_(no_record, pc.greater(rows, 0)),
        pc.and_(no_record, pc.greater(expected, 0)),
        no_record,
        pc.and_(
            pc.and_(
                pc.equal(pc.fill_null(status, ""), PartitionStatus.MATERIALIZED.value),
                pc.equal(rows, 0),
            ),
            pc.greater(recorded, 0),
        ),
    ]
    choices = [
        PartitionState.MISSING.value,
        PartitionState.ORPHAN.value,
        PartitionState.MISSING.value,
        PartitionState.NO_EXPECTED_INPUT.value,
        PartitionState.MISSING.value,
    ]
    found = pc.fill_null(status, "")
    for condition, choice in reversed(list(zip(conditions, choices, strict=True))):
        found = pc.if_else(condition, choice, found)
    return pa.chunked_array([pc.cast(found, pa.string())]) if isinstance(found, pa.Array) else found


def state_ranges(
    source: StateSource, reader: LedgerReader, asset: str, keys: Sequence[str], table: pa.Table
) -> list[KeyRange[PartitionState]]:
    """The states of ``asset`` over ``keys`` as ranges of consecutive equal states."""
    column = state_column(source, reader, asset, table)
    return [
        KeyRange(asset, keys[a], keys[b], b - a + 1, PartitionState(str(v)))
        for a, b, v in runs(column)
    ]
