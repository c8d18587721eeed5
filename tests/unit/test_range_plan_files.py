"""A range plan reads every asset's data files into one table: a store whose listing of a
table without files comes back untyped (a null column) must not break it."""

from __future__ import annotations

from types import SimpleNamespace

import pyarrow as pa

from backfiller.planning.compact import _files


class Listing:
    def partition_files(self, asset: str) -> pa.Table:
        if asset == "empty":
            return pa.table({"partition_key": pa.array([], pa.string()), "path": pa.array([])})
        return pa.table({"partition_key": ["2026-03-01"], "path": [f"{asset}/a.parquet"]})


def test_untyped_and_typed_listings_concatenate_into_one_typed_table() -> None:
    project = SimpleNamespace(store=Listing())
    files = _files(project, ["full", "empty", "other"])
    assert files.schema.types == [pa.string()] * 3
    assert files.to_pylist() == [
        {"asset": "full", "partition_key": "2026-03-01", "path": "full/a.parquet"},
        {"asset": "other", "partition_key": "2026-03-01", "path": "other/a.parquet"},
    ]
    assert _files(project, []).num_rows == 0
