"""Built-in checks, and custom ones from a Python function or DuckDB SQL.

Every check that looks at rows returns a sample of the failing rows, so the report shows what
was wrong, not only that something was.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import pyarrow as pa

from backfiller.checks.model import Check, CheckContext, CheckResult, Severity
from backfiller.engine import member_column, query, to_arrow

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


class _GroupedCheck(Check):
    """A built-in check whose failing rows one query finds: over a group of partitions it
    runs once, grouped by partition, and counts each partition's failing rows. A partition
    with none gets the result :meth:`run` gives a passing partition (:meth:`passed`); one
    with failures is checked again alone (:meth:`run`), for the same sample of failing rows
    as a check partition by partition: failures are rare, a group's passes are not."""

    def passed(self, ctx: CheckContext) -> tuple[bool, Any, Any, list[dict[str, Any]]]:
        """The outcome of :meth:`evaluate` when no row fails."""
        return True, 0, 0, []

    def applies(self, ctx: CheckContext) -> bool:
        """Whether the partition needs the query at all (else :meth:`run` is cheap)."""
        return True

    def failing_counts(self, stacked: str, member: str, contexts: Sequence[CheckContext]) -> str:
        """SQL over the table ``stacked`` (the partitions' rows, numbered by partition in the
        column ``member``) giving (member, count of failing rows), a row per partition with
        failures at least."""
        raise NotImplementedError

    def parameters(self, contexts: Sequence[CheckContext]) -> dict[str, Any]:
        return {}

    def tables(self, member: str, contexts: Sequence[CheckContext]) -> dict[str, pa.Table]:
        """Tables the query joins besides the staged rows (by name)."""
        return {}

    def run_group(self, contexts: Sequence[CheckContext]) -> list[CheckResult | Exception]:
        results: list[CheckResult | Exception | None] = [None] * len(contexts)
        buckets: dict[tuple[tuple[str, pa.DataType, bool], ...], list[int]] = {}
        for i, ctx in enumerate(contexts):
            if self.applies(ctx):
                key = tuple((f.name, f.type, f.nullable) for f in ctx.data.schema)
                buckets.setdefault(key, []).append(i)
        for members in buckets.values():
            if len(members) < 2:
                continue
            group = [contexts[i] for i in members]
            try:
                counts = self._counts(group)
            except Exception:
                continue  # DuckDB refused the query: each partition alone says why
            for n, i in enumerate(members):
                if counts.get(n, 0) == 0:
                    results[i] = self.result(contexts[i], self.passed(contexts[i]))
        alone = [i for i, result in enumerate(results) if result is None]
        for i, result in zip(alone, super().run_group([contexts[i] for i in alone]), strict=True):
            results[i] = result
        return [r for r in results if r is not None]

    def _counts(self, contexts: Sequence[CheckContext]) -> dict[int, int]:
        """Failing rows per partition (by position in ``contexts``; none: not there)."""
        member, numbers = member_column([c.data for c in contexts])
        stacked = pa.concat_tables([c.data for c in contexts]).append_column(member, numbers)
        name = "__backfiller_staged"
        found = query(
            self.failing_counts(name, member, contexts),
            {name: stacked, **self.tables(member, contexts)},
            self.parameters(contexts),
        )
        return dict(zip(found.column(0).to_pylist(), found.column(1).to_pylist(), strict=True))


class _RowCount(Check):
    def evaluate(self, ctx: CheckContext) -> Outcome:
        if ctx.expected_count is None:
            return True, None, ctx.data.num_rows, []  # nothing declared: nothing to compare
        return ctx.data.num_rows == ctx.expected_count, ctx.expected_count, ctx.data.num_rows, []


def row_count_matches_manifest(severity: Severity | str = Severity.ERROR) -> Check:
    """The row count equals the manifest's expected record count for the partition."""
    return _RowCount("row_count_matches_manifest", severity)


class _Unique(_GroupedCheck):
    def __init__(self, columns: tuple[str, ...] | None, severity: Severity | str) -> None:
        super().__init__(
            "idempotency_key_unique" if columns is None else f"unique({', '.join(columns)})",
            severity,
        )
        self.columns = columns

    def _columns(self, ctx: CheckContext) -> str:
        return ", ".join(_q(c) for c in (self.columns or ctx.idempotency_key))

    def evaluate(self, ctx: CheckContext) -> Outcome:
        cols = self._columns(ctx)
        dupes = _failing(
            f"SELECT {cols}, count(*) AS copies FROM {STAGED} GROUP BY {cols} HAVING count(*) > 1"
            f" ORDER BY copies DESC",
            ctx,
        )
        return dupes.num_rows == 0, 0, dupes.num_rows, _rows(dupes)

    def failing_counts(self, stacked: str, member: str, contexts: Sequence[CheckContext]) -> str:
        cols, m = self._columns(contexts[0]), _q(member)
        return (
            f"SELECT {m}, count(*) FROM (SELECT {m} FROM {stacked} GROUP BY {m}, {cols}"
            f" HAVING count(*) > 1) GROUP BY {m}"
        )


def unique_key(*columns: str, severity: Severity | str = Severity.ERROR) -> Check:
    """No two rows share the key (default: the asset's idempotency key)."""
    return _Unique(tuple(columns) or None, severity)


class _NotNull(_GroupedCheck):
    def __init__(self, columns: tuple[str, ...], severity: Severity | str) -> None:
        super().__init__(f"not_null({', '.join(columns)})", severity)
        self.columns = columns

    def _condition(self) -> str:
        return " OR ".join(f"{_q(c)} IS NULL" for c in self.columns)

    def evaluate(self, ctx: CheckContext) -> Outcome:
        bad = _failing(f"SELECT * FROM {STAGED} WHERE {self._condition()}", ctx)
        return bad.num_rows == 0, 0, bad.num_rows, _rows(bad)

    def failing_counts(self, stacked: str, member: str, contexts: Sequence[CheckContext]) -> str:
        m = _q(member)
        return f"SELECT {m}, count(*) FROM {stacked} WHERE {self._condition()} GROUP BY {m}"


def not_null(*columns: str, severity: Severity | str = Severity.ERROR) -> Check:
    return _NotNull(tuple(columns), severity)


class _Accepted(_GroupedCheck):
    def __init__(self, column: str, values: tuple[Any, ...], severity: Severity | str) -> None:
        super().__init__(f"accepted_values({column})", severity)
        self.column, self.values = column, values

    def _condition(self) -> str:
        column = _q(self.column)
        return f"{column} IS NOT NULL AND NOT list_contains($accepted, {column})"

    def _expected(self) -> list[str]:
        return sorted(map(str, self.values))

    def evaluate(self, ctx: CheckContext) -> Outcome:
        bad = _failing(
            f"SELECT * FROM {STAGED} WHERE {self._condition()}", ctx, self.parameters([ctx])
        )
        return bad.num_rows == 0, self._expected(), bad.num_rows, _rows(bad)

    def passed(self, ctx: CheckContext) -> Outcome:
        return True, self._expected(), 0, []

    def parameters(self, contexts: Sequence[CheckContext]) -> dict[str, Any]:
        return {"accepted": list(self.values)}

    def failing_counts(self, stacked: str, member: str, contexts: Sequence[CheckContext]) -> str:
        m = _q(member)
        return f"SELECT {m}, count(*) FROM {stacked} WHERE {self._condition()} GROUP BY {m}"


def accepted_values(
    column: str, values: Iterable[Any], severity: Severity | str = Severity.ERROR
) -> Check:
    return _Accepted(column, tuple(values), severity)


class _InWindow(_GroupedCheck):
    def __init__(self, column: str, severity: Severity | str) -> None:
        super().__init__(f"in_window({column})", severity)
        self.column = column

    def _condition(self, column: str, start: str, end: str) -> str:
        col = f"CAST({column} AS TIMESTAMPTZ)"
        return f"{col} IS NULL OR {col} < {start} OR {col} >= {end}"

    def evaluate(self, ctx: CheckContext) -> Outcome:
        if ctx.window is None:
            return True, None, None, []
        bad = _failing(
            f"SELECT * FROM {STAGED} WHERE {self._condition(_q(self.column), '$start', '$end')}",
            ctx,
            {"start": ctx.window.start_utc, "end": ctx.window.end_utc},
        )
        return bad.num_rows == 0, self.passed(ctx)[1], bad.num_rows, _rows(bad)

    def applies(self, ctx: CheckContext) -> bool:
        return ctx.window is not None

    def passed(self, ctx: CheckContext) -> Outcome:
        assert ctx.window is not None
        return True, list(ctx.window.render()), 0, []

    def tables(self, member: str, contexts: Sequence[CheckContext]) -> dict[str, pa.Table]:
        windows = [c.window for c in contexts]
        assert all(w is not None for w in windows)
        stamp = pa.timestamp("us", tz="UTC")
        return {
            "__backfiller_windows": pa.table(
                {
                    "member": pa.array(range(len(contexts)), pa.int32()),
                    "start": pa.array([w.start_utc for w in windows if w], stamp),
                    "end": pa.array([w.end_utc for w in windows if w], stamp),
                }
            )
        }

    def failing_counts(self, stacked: str, member: str, contexts: Sequence[CheckContext]) -> str:
        m = f"s.{_q(member)}"
        condition = self._condition(f"s.{_q(self.column)}", "w.start", "w.end")
        return (
            f"SELECT {m}, count(*) FROM {stacked} AS s JOIN __backfiller_windows AS w"
            f" ON {m} = w.member WHERE {condition} GROUP BY {m}"
        )


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
