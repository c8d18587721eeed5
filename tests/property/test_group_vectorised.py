"""A group's fingerprints and built-in checks, computed in one pass grouped by partition, give
each partition exactly what the per-partition code gives it: on generated partitions (nulls,
empty ones, varied column types, duplicate keys, rows outside their window, several schemas in
one group, columns a check names that a partition lacks)."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest
from fast_loop import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from backfiller.checks import (
    CheckContext,
    accepted_values,
    in_window,
    not_null,
    row_count_matches_manifest,
    unique_key,
)
from backfiller.checks.model import Check, CheckResult
from backfiller.engine import fingerprint_table, fingerprint_tables
from backfiller.partitions import scheme_from_config

#: 12 generated groups in the fast loop (``make check``), 120 in the full suite
PROPS = settings(
    max_examples=examples(120),
    deadline=None,
    database=None,
)
DAILY = scheme_from_config(kind="daily", start="2026-03-01")
KEYS = [f"2026-03-{d:02d}" for d in range(1, 9)]
STAMP = pa.timestamp("us", tz="UTC")
FIRST = datetime(2026, 3, 1, tzinfo=UTC)

# -- generated tables ------------------------------------------------------------------------

_TEXT = st.text(alphabet=st.sampled_from('ab"\\\n é✓{}:,'), max_size=6)
_FLOAT = st.floats(allow_nan=True, allow_infinity=True, width=64)
_MOMENT = st.integers(-2 * 86_400_000_000, 10 * 86_400_000_000).map(
    lambda us: FIRST + timedelta(microseconds=us)
)

#: (Arrow type, values) for each kind of column a partition may have
COLUMN_KINDS: dict[str, tuple[pa.DataType, st.SearchStrategy[Any]]] = {
    "int64": (pa.int64(), st.integers(-(2**63), 2**63 - 1)),
    "int8": (pa.int8(), st.integers(-128, 127)),
    "float64": (pa.float64(), _FLOAT),
    "string": (pa.string(), _TEXT),
    "large_string": (pa.large_string(), _TEXT),
    "bool": (pa.bool_(), st.booleans()),
    "timestamp_utc": (STAMP, _MOMENT),
    "timestamp_naive": (pa.timestamp("ms"), _MOMENT.map(lambda m: m.replace(tzinfo=None))),
    "date32": (pa.date32(), st.dates(date(1970, 1, 1), date(2100, 1, 1))),
    "decimal": (
        pa.decimal128(12, 3),
        st.decimals(-(10**8), 10**8, places=3, allow_nan=False, allow_infinity=False),
    ),
    "list_int": (pa.list_(pa.int32()), st.lists(st.integers(-100, 100), max_size=3)),
    "struct": (
        pa.struct([("x", pa.int32()), ("y", pa.string())]),
        st.fixed_dictionaries({"x": st.integers(-5, 5), "y": _TEXT}),
    ),
    "binary": (pa.binary(), st.binary(max_size=5)),
}


@st.composite
def schemas(draw: st.DrawFn) -> list[tuple[str, str]]:
    """(column name, kind) pairs; names may need quoting."""
    kinds = draw(st.lists(st.sampled_from(sorted(COLUMN_KINDS)), min_size=1, max_size=4))
    names = draw(
        st.lists(
            st.sampled_from(["a", "b", 'quo"te', "with space", "Z", "é"]),
            min_size=len(kinds),
            max_size=len(kinds),
            unique=True,
        )
    )
    return list(zip(names, kinds, strict=True))


@st.composite
def tables_of(draw: st.DrawFn, schema: list[tuple[str, str]]) -> pa.Table:
    rows = draw(st.sampled_from([0, 0, 1, 2, 3, 5, 8]))
    columns = {}
    for name, kind in schema:
        arrow_type, values = COLUMN_KINDS[kind]
        column = draw(st.lists(st.none() | values, min_size=rows, max_size=rows))
        columns[name] = pa.array(column, arrow_type)
    if rows and draw(st.booleans()):  # a repeated row: multisets, not sets
        table = pa.table(columns)
        return pa.concat_tables([table, table.slice(0, 1)])
    return pa.table(columns)


@st.composite
def groups(draw: st.DrawFn) -> list[pa.Table]:
    """Up to eight partitions of up to three schemas (a column-less table now and then)."""
    shapes = draw(st.lists(schemas(), min_size=1, max_size=3))
    tables = [
        draw(tables_of(draw(st.sampled_from(shapes)))) for _ in range(draw(st.integers(1, 8)))
    ]
    if draw(st.booleans()):
        tables.insert(draw(st.integers(0, len(tables))), pa.table({}))
    return tables


@PROPS
@given(groups())
def test_a_groups_fingerprints_are_each_partitions_own(tables: list[pa.Table]) -> None:
    assert fingerprint_tables(tables) == [fingerprint_table(t) for t in tables]


def test_fingerprints_of_a_group_with_edge_cases() -> None:
    """Empty partitions, all-null columns, NaN and infinities, the same rows in another
    column order (its own schema, the same fingerprint), a one-partition bucket."""
    base = pa.table(
        {
            "id": pa.array([1, None, 3], pa.int64()),
            "v": pa.array([math.nan, math.inf, None], pa.float64()),
            "n": pa.array([None, None, None], pa.string()),
        }
    )
    tables = [
        base,
        base.slice(0, 0),
        base.select(["n", "v", "id"]),
        pa.concat_tables([base, base]),
        pa.table({"d": pa.array([Decimal("1.50")], pa.decimal128(5, 2))}),
        base.slice(0, 0),
    ]
    prints = fingerprint_tables(tables)
    assert prints == [fingerprint_table(t) for t in tables]
    assert prints[0] == prints[2] != prints[3]
    assert prints[1] == prints[5] != prints[0]


def test_a_table_duckdb_cannot_fingerprint_raises_as_it_does_alone() -> None:
    """Duplicate column names: the group's pass is refused, and the error is the one the
    partition gives alone."""
    odd = pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["a", "a"])
    with pytest.raises(Exception) as alone:
        fingerprint_table(odd)
    with pytest.raises(type(alone.value)):
        fingerprint_tables([odd, odd])


# -- checks --------------------------------------------------------------------------------

CHANNELS = ("email", "chat", "phone")


@st.composite
def partitions(draw: st.DrawFn) -> pa.Table:
    """A partition of key ``KEYS[i]``: ids that may repeat, channels that may be unknown,
    event times that may lie outside the day, nulls in every column; some lack a column or
    give it another type."""
    rows = draw(st.sampled_from([0, 1, 2, 3, 6]))
    ids = draw(st.lists(st.none() | st.integers(0, 4), min_size=rows, max_size=rows))
    channels = draw(
        st.lists(st.none() | st.sampled_from([*CHANNELS, "fax"]), min_size=rows, max_size=rows)
    )
    moments = draw(st.lists(st.none() | _MOMENT, min_size=rows, max_size=rows))
    columns: dict[str, pa.Array] = {
        "ticket_id": pa.array(ids, pa.int64()),
        "channel": pa.array(channels, pa.string()),
        "event_time": pa.array(moments, STAMP),
    }
    change = draw(st.sampled_from(["none"] * 6 + ["drop_channel", "naive_time", "text_id"]))
    if change == "drop_channel":
        del columns["channel"]
    elif change == "naive_time":
        columns["event_time"] = pa.array([m and m.replace(tzinfo=None) for m in moments])
    elif change == "text_id":
        columns["ticket_id"] = pa.array([None if i is None else f"T{i}" for i in ids])
    return pa.table(columns)


CHECKS: list[Check] = [
    unique_key(),
    unique_key("channel"),
    not_null("ticket_id", "channel"),
    accepted_values("channel", CHANNELS),
    in_window("event_time"),
    row_count_matches_manifest(),
]


def _contexts(tables: list[pa.Table], windowed: list[bool]) -> list[CheckContext]:
    return [
        CheckContext(
            asset="a/b",
            partition_key=KEYS[i],
            idempotency_key=("ticket_id",),
            window=DAILY.window(KEYS[i]) if windowed[i] else None,
            data=table,
            expected_count=3,
            read_upstream=lambda name: pa.table({}),
        )
        for i, table in enumerate(tables)
    ]


def _comparable(result: CheckResult | Exception) -> Any:
    if isinstance(result, Exception):
        return (type(result), str(result))
    # a sample of duplicate keys is ordered by copies; ties come in no defined order
    unique = "unique" in result.name
    sample = sorted(result.sample, key=repr) if unique else result.sample
    found = (result.name, result.partition_key, result.status, result.expected, result.actual)
    return found, sample


def _alone(check: Check, ctx: CheckContext) -> CheckResult | Exception:
    try:
        return check.run(ctx)
    except Exception as exc:
        return exc


@pytest.mark.slow
@PROPS
@given(
    st.lists(partitions(), min_size=1, max_size=len(KEYS)),
    st.lists(st.booleans(), min_size=len(KEYS), max_size=len(KEYS)),
)
def test_a_groups_builtin_checks_give_each_partition_its_own_result(
    tables: list[pa.Table], windowed: list[bool]
) -> None:
    contexts = _contexts(tables, windowed)
    for check in CHECKS:
        grouped = check.run_group(contexts)
        assert [_comparable(r) for r in grouped] == [
            _comparable(_alone(check, c)) for c in contexts
        ], check.name


def test_a_group_of_clean_partitions_passes_each_with_its_own_expectations() -> None:
    """Every partition passes: each result is built from the group's counts alone, with the
    expected values of its own window."""
    tables = [
        pa.table(
            {
                "ticket_id": pa.array([1, 2], pa.int64()),
                "channel": ["email", "chat"],
                "event_time": pa.array(
                    [FIRST + timedelta(days=i, hours=1), FIRST + timedelta(days=i, hours=5)],
                    STAMP,
                ),
            }
        )
        for i in range(3)
    ]
    contexts = _contexts(tables, [True] * 3)
    for check in CHECKS[:5]:
        grouped = check.run_group(contexts)
        assert all(isinstance(r, CheckResult) and r.status.value == "passed" for r in grouped)
        assert grouped == [check.run(c) for c in contexts]
    windows = [r.expected for r in in_window("event_time").run_group(contexts)]
    assert windows == [list(DAILY.window(k).render()) for k in KEYS[:3]]
