"""Built-in checks, and custom ones from a Python function or DuckDB SQL.

Every check that looks at rows returns a sample of the failing rows, so the report shows what
was wrong, not only that something was.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pyarrow as pa

from backfiller.checks.model import Check, CheckContext, Severity
from backfiller.engine import query, to_arrow

__all__ = [
    "accepted_values",
    "in_window",
    "not_null",
    "python_check",
    "reconciles_with",
    "row_count_matches_manifest",
    "schema_matches",
    "sql_check",
    "unique_key",
]

Outcome = tuple[bool, Any, Any, list[dict[str, Any]]]
STAGED = "staged"


def _q(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _failing(sql: str, ctx: CheckContext, params: Mapping[str, Any] | None = None) -> pa.Table:
    return query(sql, {STAGED: ctx.data}, params)


def _rows(table: pa.Table, limit: int = 5) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = table.slice(0, limit).to_pylist()
    return rows


class _RowCount(Check):
    def evaluate(self, ctx: CheckContext) -> Outcome:
        if ctx.expected_count is None:
            return True, None, ctx.data.num_rows, []  # nothing declared: nothing to compare
        return ctx.data.num_rows == ctx.expected_count, ctx.expected_count, ctx.data.num_rows, []


def row_count_matches_manifest(severity: Severity | str = Severity.ERROR) -> Check:
    """The row count equals the manifest's expected record count for the partition."""
    return _RowCount("row_count_matches_manifest", severity)


class _Unique(Check):
    def __init__(self, columns: tuple[str, ...] | None, severity: Severity | str) -> None:
        super().__init__(
            "idempotency_key_unique" if columns is None else f"unique({', '.join(columns)})",
            severity,
        )
        self.columns = columns

    def evaluate(self, ctx: CheckContext) -> Outcome:
        cols = ", ".join(_q(c) for c in (self.columns or ctx.idempotency_key))
        dupes = _failing(
            f"SELECT {cols}, count(*) AS copies FROM {STAGED} GROUP BY {cols} HAVING count(*) > 1"
            f" ORDER BY copies DESC",
            ctx,
        )
        return dupes.num_rows == 0, 0, dupes.num_rows, _rows(dupes)


def unique_key(*columns: str, severity: Severity | str = Severity.ERROR) -> Check:
    """No two rows share the key (default: the asset's idempotency key)."""
    return _Unique(tuple(columns) or None, severity)


class _NotNull(Check):
    def __init__(self, columns: tuple[str, ...], severity: Severity | str) -> None:
        super().__init__(f"not_null({', '.join(columns)})", severity)
        self.columns = columns

    def evaluate(self, ctx: CheckContext) -> Outcome:
        condition = " OR ".join(f"{_q(c)} IS NULL" for c in self.columns)
        bad = _failing(f"SELECT * FROM {STAGED} WHERE {condition}", ctx)
        return bad.num_rows == 0, 0, bad.num_rows, _rows(bad)


def not_null(*columns: str, severity: Severity | str = Severity.ERROR) -> Check:
    return _NotNull(tuple(columns), severity)


class _Accepted(Check):
    def __init__(self, column: str, values: tuple[Any, ...], severity: Severity | str) -> None:
        super().__init__(f"accepted_values({column})", severity)
        self.column, self.values = column, values

    def evaluate(self, ctx: CheckContext) -> Outcome:
        bad = _failing(
            f"SELECT * FROM {STAGED} WHERE {_q(self.column)} IS NOT NULL AND NOT list_contains("
            f"$accepted, {_q(self.column)})",
            ctx,
            {"accepted": list(self.values)},
        )
        return bad.num_rows == 0, sorted(map(str, self.values)), bad.num_rows, _rows(bad)


def accepted_values(
    column: str, values: Iterable[Any], severity: Severity | str = Severity.ERROR
) -> Check:
    return _Accepted(column, tuple(values), severity)


class _InWindow(Check):
    def __init__(self, column: str, severity: Severity | str) -> None:
        super().__init__(f"in_window({column})", severity)
        self.column = column

    def evaluate(self, ctx: CheckContext) -> Outcome:
        if ctx.window is None:
            return True, None, None, []
        col = f"CAST({_q(self.column)} AS TIMESTAMPTZ)"
        bad = _failing(
            f"SELECT * FROM {STAGED} WHERE {col} IS NULL OR {col} < $start OR {col} >= $end",
            ctx,
            {"start": ctx.window.start_utc, "end": ctx.window.end_utc},
        )
        expected = list(ctx.window.render())
        return bad.num_rows == 0, expected, bad.num_rows, _rows(bad)


def in_window(column: str, severity: Severity | str = Severity.ERROR) -> Check:
    """Every event time lies inside the partition's window ``[start, end)``."""
    return _InWindow(column, severity)


class _Reconciles(Check):
    def __init__(
        self, upstream: str, upstream_expr: str, expr: str, severity: Severity | str
    ) -> None:
        super().__init__(f"reconciles_with({upstream})", severity)
        self.upstream, self.upstream_expr, self.expr = upstream, upstream_expr, expr

    def evaluate(self, ctx: CheckContext) -> Outcome:
        upstream = ctx.read_upstream(self.upstream)
        mine = query(f"SELECT {self.expr} AS v FROM {STAGED}", {STAGED: ctx.data})
        theirs = query(f"SELECT {self.upstream_expr} AS v FROM up", {"up": upstream})
        actual, expected = mine.column("v")[0].as_py(), theirs.column("v")[0].as_py()
        return actual == expected, expected, actual, []


def reconciles_with(
    upstream: str,
    *,
    upstream_expr: str = "count(*)",
    expr: str = "count(*)",
    severity: Severity | str = Severity.ERROR,
) -> Check:
    """An aggregate of this asset equals one of its upstream (e.g. silver rows = distinct raw
    keys: ``upstream_expr="count(DISTINCT ticket_id)"``)."""
    return _Reconciles(upstream, upstream_expr, expr, severity)


class _Schema(Check):
    def __init__(self, columns: Mapping[str, str], severity: Severity | str) -> None:
        super().__init__("schema_matches", severity)
        self.columns = dict(columns)

    def evaluate(self, ctx: CheckContext) -> Outcome:
        actual = {f.name: str(f.type) for f in ctx.data.schema if f.name in self.columns}
        missing = sorted(set(self.columns) - set(actual))
        wrong = {c: t for c, t in actual.items() if t != self.columns[c]}
        ok = not missing and not wrong
        detail = {"missing": missing, "wrong_types": wrong} if not ok else actual
        return ok, self.columns, detail, []


def schema_matches(columns: Mapping[str, str], severity: Severity | str = Severity.ERROR) -> Check:
    """The declared columns exist with these Arrow types (e.g. ``{"ticket_id": "string"}``)."""
    return _Schema(columns, severity)


class _Sql(Check):
    def __init__(self, name: str, sql: str, severity: Severity | str) -> None:
        super().__init__(name, severity)
        self.sql = sql

    def evaluate(self, ctx: CheckContext) -> Outcome:
        params: dict[str, Any] = {"partition_key": ctx.partition_key}
        if ctx.window is not None:
            params.update(window_start=ctx.window.start_utc, window_end=ctx.window.end_utc)
        used = {k: v for k, v in params.items() if f"${k}" in self.sql}
        bad = query(self.sql, {STAGED: ctx.data}, used)
        return bad.num_rows == 0, 0, bad.num_rows, _rows(bad)


def sql_check(name: str, sql: str, severity: Severity | str = Severity.ERROR) -> Check:
    """DuckDB SQL over the table ``staged`` returning the failing rows (none: passed)."""
    return _Sql(name, sql, severity)


class _Python(Check):
    def __init__(self, name: str, fn: Callable[[pa.Table], Any], severity: Severity | str) -> None:
        super().__init__(name, severity)
        self.fn = fn

    def evaluate(self, ctx: CheckContext) -> Outcome:
        bad = to_arrow(self.fn(ctx.data))
        return bad.num_rows == 0, 0, bad.num_rows, _rows(bad)


def python_check(
    name: str, fn: Callable[[pa.Table], Any], severity: Severity | str = Severity.ERROR
) -> Check:
    """A function of the staged table returning the failing rows (empty: passed)."""
    return _Python(name, fn, severity)
