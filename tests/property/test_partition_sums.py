"""A Delta table's rows and missing files per partition, summed without Arrow's query engine,
equal a plain Python sum over the add actions."""

from __future__ import annotations

import pyarrow as pa
from fast_loop import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from backfiller.store.delta import _sum_by_partition

_ACTIONS = st.lists(
    st.tuples(
        st.one_of(st.none(), st.sampled_from(["2026-04-16", "2026-04-17", "a", "b|c", ""])),
        st.integers(min_value=0, max_value=10**12),
        st.integers(min_value=0, max_value=1),
    ),
    max_size=60,
)


@settings(max_examples=examples(300), deadline=None)
@given(_ACTIONS)
def test_sums_per_partition_equal_a_plain_sum(actions: list[tuple[str | None, int, int]]) -> None:
    table = pa.table(
        {
            "partition_key": pa.array([a[0] for a in actions], pa.string()),
            "rows": pa.array([a[1] for a in actions], pa.int64()),
            "missing_files": pa.array([a[2] for a in actions], pa.int64()),
        }
    )
    expected: dict[str | None, list[int]] = {}
    for key, rows, gone in actions:
        sums = expected.setdefault(key, [0, 0])
        sums[0] += rows
        sums[1] += gone
    found = _sum_by_partition(table)
    assert found.schema.names == ["partition_key", "rows", "missing_files"]
    assert {r["partition_key"]: [r["rows"], r["missing_files"]] for r in found.to_pylist()} == (
        expected
    )
    assert found.num_rows == len(expected)
