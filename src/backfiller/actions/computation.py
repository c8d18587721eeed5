"""The pure part of a step: (asset, partition key, window, pinned upstream versions, manifest
inputs) → the partition's rows as Arrow.

A :class:`StepTask` is plain data: it names the upstream tables at the versions the coordinator
pinned when it handed the step out, so the computation reads the same rows wherever it runs and
however often an engine retries it. It writes nothing, leases nothing and never sees the ledger:
everything with a side effect (leases, the idempotency guard, checks, the fenced commit, the
ledger, reports) stays with the coordinator (:mod:`backfiller.actions.runner`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from backfiller.assets import Asset, AssetContext
from backfiller.engine import query, to_arrow
from backfiller.errors import BackfillerError, PreconditionError
from backfiller.manifests import Manifest, ManifestPartition, verify_inputs
from backfiller.partitions import Window, dimension_values
from backfiller.store import DataStore
from backfiller.store.base import PARTITION_COLUMN

__all__ = ["PinnedUpstream", "StepError", "StepTask", "compute_step"]


class StepError(BackfillerError):
    """One (asset, partition) step failed; ``transient`` says whether a retry may help."""

    def __init__(self, message: str, *, transient: bool = False, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.transient = transient


@dataclass(frozen=True)
class PinnedUpstream:
    """The partitions of one upstream asset a step reads, and the table version to read them
    at (``None``: the table did not exist when the step was handed out)."""

    asset: str
    keys: tuple[str, ...]
    version: int | None


@dataclass(frozen=True)
class StepTask:
    """Everything one step's computation needs, and nothing with a side effect."""

    asset: Asset
    partition_key: str
    window: Window | None
    manifest: Manifest | None
    manifest_partition: ManifestPartition | None
    #: where the manifest's input files are (their paths are relative to it)
    project_root: Path
    run_id: str
    #: where the upstream tables are read from (a Delta store travels as its location)
    store: DataStore
    upstream: tuple[PinnedUpstream, ...] = ()
    #: how object storage is reached (``[storage.options]``), for input files given as URIs
    storage_options: Mapping[str, str] = field(default_factory=dict)

    def read_pinned(self, upstream: str) -> pa.Table:
        """An upstream asset's partitions this step maps to, at the pinned version."""
        (pin,) = [p for p in self.upstream if p.asset == upstream]
        rows = (
            None
            if pin.version is None
            else self.store.read_partitions(upstream, pin.keys, version=pin.version)
        )
        if rows is None:
            raise PreconditionError(
                f"{self.asset.key} {self.partition_key}: upstream {upstream!r} has no table yet",
                hint=f"backfill {upstream} first",
                asset=self.asset.key,
                partition=self.partition_key,
            )
        return rows


def compute_step(
    task: StepTask, read_upstream: Callable[[str], pa.Table] | None = None
) -> pa.Table:
    """The rows of ``task``'s partition, with its partition column. ``read_upstream``: a
    reader of the same upstream rows that is at hand in this process (the coordinator's cache
    of what its run just published); by default the pinned versions are read from the store."""
    asset, key = task.asset, task.partition_key
    manifest, part = task.manifest, task.manifest_partition
    if asset.uses_manifest:
        if part is None:
            raise StepError(f"{asset.key} {key}: no manifest declares this partition")
        mismatches = verify_inputs(part, task.project_root, task.storage_options)
        if mismatches:
            listing = ", ".join(
                f"{m.path} ({'missing' if m.actual is None else 'checksum differs'})"
                for m in mismatches
            )
            raise StepError(
                f"{asset.key} {key}: input files do not match manifest "
                f"{manifest.manifest_id if manifest else '?'}: {listing}"
            )
    read = read_upstream or task.read_pinned
    if asset.sql is not None:
        tables = {d.asset: read(d.asset) for d in asset.deps}
        params: dict[str, Any] = {"partition_key": key}
        if asset.scheme is not None:  # a multi-dimensional key: $product_line, ...
            params.update(dimension_values(asset.scheme, key) or {})
        if task.window is not None:
            params["window_start"] = task.window.start_utc
            params["window_end"] = task.window.end_utc
        used = {k: v for k, v in params.items() if f"${k}" in asset.sql}
        data = query(asset.sql, tables, used)
    else:
        assert asset.compute is not None
        context = AssetContext(
            asset=asset,
            partition_key=key,
            window=task.window,
            manifest=manifest,
            manifest_partition=part,
            project_root=task.project_root,
            read_upstream=read,
            run_id=task.run_id,
            storage_options=task.storage_options,
        )
        data = to_arrow(asset.compute(context))
    data = _with_partition_column(data, key)
    if asset.scheme is None:
        return data
    return _with_dimension_columns(asset, data, dimension_values(asset.scheme, key) or {})


def _with_partition_column(table: pa.Table, key: str) -> pa.Table:
    if PARTITION_COLUMN in table.column_names:
        return table
    return table.append_column(PARTITION_COLUMN, pa.array([key] * table.num_rows, pa.string()))


def _with_dimension_columns(asset: Asset, table: pa.Table, values: Mapping[str, str]) -> pa.Table:
    """A multi-dimensional cell's rows with one column per dimension holding its value (the
    table is partitioned by them); a column the computation returned must hold that value."""
    for name, value in values.items():
        if name not in table.column_names:
            table = table.append_column(name, pa.array([value] * table.num_rows, pa.string()))
            continue
        column = table.column(name)
        try:  # large or dictionary strings, a date column of a date dimension: as text
            text = column if column.type == pa.string() else column.cast(pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            text = None
        if (
            text is None
            or text.null_count
            or (table.num_rows and set(text.unique().to_pylist()) != {value})
        ):
            raise StepError(
                f"{asset.key}: column {name!r} ({column.type}) must hold the partition's "
                f"{name} {value!r} in every row (it is the dimension's partition column)",
                hint=f"leave {name!r} out (it is added) or set it to the partition's value",
            )
        table = table.set_column(table.column_names.index(name), name, text)
    return table
