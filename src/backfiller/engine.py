"""DuckDB as the SQL engine over Arrow: SQL assets, counts, fingerprints, checks.

Its queries run on cursors of the thread's ``"engine"`` database (:mod:`backfiller.duck`),
where DuckDB is imported when the first one runs; ``pyarrow.compute`` is imported by the one
function that uses it, so that ``status`` (which reads the store and classifies its cells
with DuckDB, not with Arrow's kernels) does not pay for it.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

if TYPE_CHECKING:
    import duckdb

from backfiller.canonical import sha256_hex
from backfiller.duck import cursor
from backfiller.errors import BackfillerError

__all__ = ["fingerprint_table", "fingerprint_tables", "member_column", "query", "to_arrow"]


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


def _connection() -> duckdb.DuckDBPyConnection:
    """A fresh cursor on this thread's engine database (:func:`backfiller.duck.cursor`); the
    caller closes it, and its registrations die with it."""
    return cursor("engine")


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


#: one row's md5 (128 bits) summed as two 64-bit halves (a sum cannot overflow a HUGEINT)
_SUMS = (
    "count(*), coalesce(sum((m >> 64)::HUGEINT), 0),"
    " coalesce(sum((m & 18446744073709551615::UHUGEINT)::HUGEINT), 0)"
)


def _row_hash(columns: Sequence[str]) -> str:
    """The md5 of a row's JSON rendering (columns in name order; values escaped, NULL
    distinct from any string)."""
    fields = ", ".join(f"{_quote(c)} := {_quote(c)}" for c in columns)
    return f"md5_number(CAST(to_json(struct_pack({fields})) AS VARCHAR))"


def _fingerprint(table: pa.Table, rows: int, upper: int, lower: int) -> str:
    columns = sorted(table.column_names)
    schema = [(c, str(table.schema.field(c).type)) for c in columns]
    return sha256_hex({"rows": rows, "upper": str(upper), "lower": str(lower), "schema": schema})


def fingerprint_table(table: pa.Table) -> str:
    """An order-independent content fingerprint: the row count and the sums of the md5 of each
    row's JSON rendering (upper and lower 64 bits), in UTC. Equal multisets of rows give equal
    fingerprints; columns are taken in name order so their physical order does not matter."""
    columns = sorted(table.column_names)
    if not columns:
        return sha256_hex({"rows": table.num_rows, "columns": []})
    con = _connection()
    name = "__backfiller_fingerprint"
    try:
        con.register(name, table)
        rows, upper, lower = con.execute(
            f"WITH h AS (SELECT {_row_hash(columns)} AS m FROM {name}) SELECT {_SUMS} FROM h"
        ).fetchone() or (0, 0, 0)
    finally:
        con.close()
    return _fingerprint(table, rows, upper, lower)


def member_column(tables: Sequence[pa.Table]) -> tuple[str, pa.ChunkedArray]:
    """A column numbering the rows of ``tables`` by table (0, 1, ...) once they are
    concatenated, and a name for it that none of them uses."""
    import pyarrow.compute as pc

    taken = {c for t in tables for c in t.column_names}
    name = "__backfiller_member"
    while name in taken:
        name += "_"
    chunks = [
        pc.fill_null(pa.nulls(t.num_rows, pa.int32()), pa.scalar(i, pa.int32()))
        for i, t in enumerate(tables)
    ]
    return name, pa.chunked_array(chunks, pa.int32())


def fingerprint_tables(tables: Sequence[pa.Table]) -> list[str]:
    """:func:`fingerprint_table` of each table, computed by one DuckDB pass (grouped by
    table) over the tables of each schema: the same per-row hash and sums, so the same
    fingerprints, without a query's fixed cost for every table. A pass DuckDB refuses is
    done table by table (whose error is then the one :func:`fingerprint_table` raises)."""
    prints: list[str | None] = [None] * len(tables)
    buckets: dict[tuple[tuple[str, pa.DataType, bool], ...], list[int]] = {}
    for i, table in enumerate(tables):
        if table.num_columns == 0:
            prints[i] = fingerprint_table(table)
        else:
            key = tuple((f.name, f.type, f.nullable) for f in table.schema)
            buckets.setdefault(key, []).append(i)
    for members in buckets.values():
        if len(members) == 1:
            (i,) = members
            prints[i] = fingerprint_table(tables[i])
            continue
        try:
            sums = _fingerprint_sums([tables[i] for i in members])
        except Exception:
            sums = None  # DuckDB refused the columns: each table alone says why
        for n, i in enumerate(members):
            prints[i] = (
                fingerprint_table(tables[i]) if sums is None else _fingerprint(tables[i], *sums[n])
            )
    assert all(p is not None for p in prints)
    return [p for p in prints if p is not None]


def _fingerprint_sums(tables: Sequence[pa.Table]) -> list[tuple[int, int, int]]:
    """(rows, upper, lower) of each of ``tables`` (one schema), in one grouped pass."""
    member, numbers = member_column(tables)
    stacked = pa.concat_tables(tables).append_column(member, numbers)
    con = _connection()
    name = "__backfiller_fingerprints"
    try:
        con.register(name, stacked)
        found = con.execute(
            f"WITH h AS (SELECT {_quote(member)} AS i, {_row_hash(sorted(tables[0].column_names))}"
            f" AS m FROM {name}) SELECT i, {_SUMS} FROM h GROUP BY i"
        ).fetchall()
    finally:
        con.close()
    sums = dict.fromkeys(range(len(tables)), (0, 0, 0))  # an empty table: no group
    sums.update({i: (rows, upper, lower) for i, rows, upper, lower in found})
    return [sums[i] for i in range(len(tables))]


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
