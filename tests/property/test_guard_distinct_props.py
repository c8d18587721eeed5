"""The idempotency guard's quick answer (distinct counts, no aggregation) never says "no
duplicates" when a hash aggregation over the key columns finds one."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from backfiller.actions.runner import _all_distinct

VALUES = st.one_of(st.none(), st.integers(0, 4))


@st.composite
def tables(draw: st.DrawFn) -> pa.Table:
    n = draw(st.integers(1, 12))
    columns = {}
    for name in ("a", "b", "c"):
        if draw(st.booleans()):
            columns[name] = [draw(VALUES)] * n  # one value in every row, like a partition key
        else:
            columns[name] = draw(st.lists(VALUES, min_size=n, max_size=n))
    return pa.table({k: pa.array(v, pa.int64()) for k, v in columns.items()})


@given(table=tables(), keys=st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, unique=True))
def test_the_quick_answer_agrees_with_an_aggregation(table: pa.Table, keys: list[str]) -> None:
    counted = table.group_by(keys).aggregate([([], "count_all")])
    duplicates = max(counted.column("count_all").to_pylist()) > 1
    quick = _all_distinct(table, keys)
    if quick:
        assert not duplicates
    varying = [k for k in keys if len(set(table.column(k).to_pylist())) > 1]
    if len(varying) <= 1 and not duplicates:
        assert quick  # the quick answer covers every key with at most one varying column
