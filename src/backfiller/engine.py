"""DuckDB as the SQL engine over Arrow: SQL assets, counts, fingerprints, checks.

Heavy imports (pyarrow, duckdb) live here and in the store, nowhere else in the core. DuckDB
is imported when a query first runs: reading the store (``status``) does not need it.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pyarrow as pa

if TYPE_CHECKING:
    import duckdb

from backfiller.canonical import sha256_hex
from backfiller.errors import BackfillerError

__all__ = ["fingerprint_table", "query", "to_arrow"]


class ComputeResultError(BackfillerError):
    """A compute function returned something that is not tabular data."""


def to_arrow(data: Any) -> pa.Table:
    """Turn what an asset returned into a pyarrow Table."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatchReader):
        return data.read_all()
    duckdb_module = sys.modules.get("duckdb")  # a relation exists only once duckdb is imported
    if duckdb_module is not None and isinstance(data, duckdb_module.DuckDBPyRelation):
        return data.to_arrow_table()
    if isinstance(data, list) and all(isinstance(r, dict) for r in data):
        return pa.Table.from_pylist(data)
    to_arrow_method = getattr(data, "to_arrow", None)  # polars
    if callable(to_arrow_method):
        result = to_arrow_method()
        return result if isinstance(result, pa.Table) else pa.table(result)
    if hasattr(data, "__arrow_c_stream__") or type(data).__name__ == "DataFrame":
        return pa.table(data)
    raise ComputeResultError(
        f"An asset returned {type(data).__name__}, which is not tabular",
        hint="return a pyarrow Table, a polars or pandas DataFrame, a DuckDB relation, "
        "or a list of dicts",
    )


_local = threading.local()


def _connection() -> duckdb.DuckDBPyConnection:
    """A fresh cursor on one in-memory DuckDB database per thread (opening a database costs
    ~10 ms; a backfill of thousands of partitions would pay it thousands of times). The caller
    closes the cursor; its registrations die with it."""
    import duckdb

    con: duckdb.DuckDBPyConnection | None = getattr(_local, "con", None)
    if con is None:
        con = _local.con = duckdb.connect()
    cursor = con.cursor()
    # renderings of timestamps must not depend on the machine's time zone
    cursor.execute("SET TimeZone = 'UTC'")
    return cursor


def query(
    sql: str, tables: Mapping[str, pa.Table], params: Mapping[str, Any] | None = None
) -> pa.Table:
    """Run DuckDB SQL over Arrow tables registered under the given names."""
    con = _connection()
    try:
        for name, table in tables.items():
            con.register(name, table)
        return con.sql(sql, params=dict(params or {})).to_arrow_table()
    finally:
        con.close()


def fingerprint_table(table: pa.Table) -> str:
    """An order-independent content fingerprint: the row count and the sums of the md5 of each
    row's JSON rendering (upper and lower 64 bits), in UTC. Equal multisets of rows give equal
    fingerprints; columns are taken in name order so their physical order does not matter."""
    columns = sorted(table.column_names)
    if not columns:
        return sha256_hex({"rows": table.num_rows, "columns": []})
    # each row as a JSON object: values escaped, NULL distinct from any string
    fields = ", ".join(f"{_quote(c)} := {_quote(c)}" for c in columns)
    row_text = f"CAST(to_json(struct_pack({fields})) AS VARCHAR)"
    con = _connection()
    name = "__backfiller_fingerprint"
    try:
        con.register(name, table)
        # one md5 per row (128 bits), summed as two 64-bit halves (a sum cannot overflow)
        rows, upper, lower = con.execute(
            f"WITH h AS (SELECT md5_number({row_text}) AS m FROM {name})"
            " SELECT count(*), coalesce(sum((m >> 64)::HUGEINT), 0),"
            " coalesce(sum((m & 18446744073709551615::UHUGEINT)::HUGEINT), 0) FROM h"
        ).fetchone() or (0, 0, 0)
    finally:
        con.close()
    schema = [(c, str(table.schema.field(c).type)) for c in columns]
    return sha256_hex({"rows": rows, "upper": str(upper), "lower": str(lower), "schema": schema})


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
