"""The four sources read in bulk, as Arrow tables: what ``status`` and ``gaps`` classify.

One pass per source, never one look-up per (asset, partition): the manifests once per
partition key, the ledger's records of a batch of assets in one query, a Delta table's
partition statistics from its log's add actions in one pass (its data files checked by
listing their folders), an asset's partition reports by listing its report folder once.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Sequence

import pyarrow as pa

from backfiller.ledger import LedgerReader
from backfiller.ledger.partitions import STATE_COLUMNS
from backfiller.manifests import ManifestRegistry
from backfiller.planning.state import StateSource, reported_keys
from backfiller.store.base import stats_of_each

__all__ = ["key_table", "ledger_table", "report_table", "store_table", "with_checksums"]

_LEDGER_TYPES = {
    "asset": pa.string(),
    "partition_key": pa.string(),
    "status": pa.string(),
    "data_version": pa.int64(),
    "row_count": pa.int64(),
    "manifest_id": pa.string(),
    "manifest_checksum": pa.string(),
    "upstream_versions": pa.string(),
    "last_run_id": pa.string(),
    "last_error": pa.string(),
}


#: per manifest registry (weakly: while it lives) and ``checksums``, the :func:`key_table` of
#: the last :data:`_KEPT_TABLES` lists of keys it was asked for, each with a copy of its list —
#: a server classifies the same windows again after each change (100,000 keys: some 0.2 s)
_KEY_TABLES: weakref.WeakKeyDictionary[
    ManifestRegistry, dict[bool, list[tuple[list[str], pa.Table]]]
] = weakref.WeakKeyDictionary()
_KEY_TABLES_LOCK = threading.Lock()
_KEPT_TABLES = 4


def key_table(
    manifests: ManifestRegistry, keys: Sequence[str], *, checksums: bool = True
) -> pa.Table:
    """Per partition key (``idx``: its position in ``keys``), what the manifests declare:
    ``manifest_id``, ``manifest_checksum``, ``expected`` (null: nothing declared), and
    ``broken`` (what is wrong with the broken stand-in manifest that declares it, or null).
    ``checksums=False``: ``manifest_checksum`` left null, for a reader that compares it only
    where a record has one (:func:`with_checksums` fills those in): a declaration's checksum
    hashes its JSON, some 6 µs a key. Asked again for the same keys (compared with a copy of
    the list made the first time: the same string objects compare in some 1 ms per 100,000)
    of the same registry (a registry is not changed once made), the table made then."""
    with _KEY_TABLES_LOCK:
        held = list(_KEY_TABLES.get(manifests, {}).get(checksums, ()))
    asked = list(keys)  # a copy: what the table is of, whatever the caller does to its list
    for before, table in held:
        if before == asked:
            return table
    table = _key_table(manifests, asked, checksums)
    with _KEY_TABLES_LOCK:
        kept = _KEY_TABLES.setdefault(manifests, {}).setdefault(checksums, [])
        kept.append((asked, table))
        del kept[:-_KEPT_TABLES]
    return table


def _key_table(manifests: ManifestRegistry, keys: Sequence[str], checksums: bool) -> pa.Table:
    ids: list[str | None] = []
    sums: list[str | None] = []
    expected: list[int | None] = []
    broken: list[str | None] = []
    for key in keys:
        declared = manifests.for_partition(key)
        ids.append(declared[0].manifest_id if declared else None)
        sums.append(declared[1].checksum if declared and checksums else None)
        expected.append(declared[1].expected_record_count if declared else None)
        stand_in = manifests.broken_for(key)
        broken.append(stand_in.describe() if stand_in else None)
    return pa.table(
        {
            "idx": pa.array(range(len(keys)), pa.int64()),
            "partition_key": pa.array(keys, pa.string()),
            "manifest_id": pa.array(ids, pa.string()),
            "manifest_checksum": pa.array(sums, pa.string()),
            "expected": pa.array(expected, pa.int64()),
            "broken": pa.array(broken, pa.string()),
        }
    )


def with_checksums(
    key_rows: pa.Table, manifests: ManifestRegistry, keys: Sequence[str], wanted: Iterable[int]
) -> pa.Table:
    """``key_rows`` (a :func:`key_table` of ``keys``) with ``manifest_checksum`` filled in at
    the positions ``wanted`` (those already there kept)."""
    column = key_rows.column("manifest_checksum")
    sums = column.to_pylist()
    for idx in wanted:
        if sums[idx] is None:
            declared = manifests.for_partition(keys[idx])
            sums[idx] = declared[1].checksum if declared else None
    at = key_rows.schema.get_field_index("manifest_checksum")
    return key_rows.set_column(at, "manifest_checksum", pa.array(sums, pa.string()))


def ledger_table(
    reader: LedgerReader, assets: Sequence[str], columns: Sequence[str] = STATE_COLUMNS
) -> pa.Table:
    """Every ledger record of ``assets``, with an ``asset`` column; the columns of
    :data:`~backfiller.ledger.partitions.STATE_COLUMNS` not among ``columns`` are not read
    (all null)."""
    read = [name for name in STATE_COLUMNS if name in columns or name == "partition_key"]
    row = pa.struct([(name, _LEDGER_TYPES[name]) for name in read])
    parts, owners = [], []
    for asset, rows in reader.partitions.state_rows(assets, read):
        parts.append(pa.array(rows, row))  # each tuple straight into Arrow's columns
        owners.append(_repeat(asset, len(rows)))
    records = pa.chunked_array(parts, row)
    n = len(records)
    found = {
        name: pa.chunked_array([c.field(name) for c in records.chunks], _LEDGER_TYPES[name])
        if name in read
        else pa.nulls(n, _LEDGER_TYPES[name])
        for name in STATE_COLUMNS
    }
    return pa.table({"asset": pa.chunked_array(owners, pa.string()), **found})


def store_table(source: StateSource, assets: Sequence[str]) -> pa.Table:
    """The stored partitions of ``assets`` (their tables read together where the store can):
    ``asset``, ``partition_key``, ``rows``, ``missing_files``. A store written before
    :meth:`~backfiller.store.DataStore.partition_stats_of` existed is read table by table."""
    together = getattr(source.store, "partition_stats_of", None)
    if together is None:
        return stats_of_each(source.store, assets)
    stats: pa.Table = together(assets)
    return stats


def report_table(source: StateSource, asset: str, nested: Sequence[str] = ()) -> pa.Table:
    """The partition keys of ``asset`` whose report file exists, from one listing of its
    report folder; ``nested``: keys whose report is not directly in that folder (a key with
    a ``/``), asked one by one."""
    keys = reported_keys(source, asset, nested)
    return pa.table({"asset": _repeat(asset, len(keys)), "partition_key": keys})


def _repeat(value: str, n: int) -> pa.Array:
    return pa.repeat(pa.scalar(value, pa.string()), n)
