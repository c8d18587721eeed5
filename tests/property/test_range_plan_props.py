"""The run-length columns of a plan of ranges give back exactly the values they encode, and
adjacent runs always differ (so equal runs are never split)."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from backfiller.planning.compact import _expand, _runs

values = st.lists(st.one_of(st.none(), st.integers(-2, 2), st.sampled_from(["m1", "m2"])))


@given(values)
def test_runs_expand_to_the_values(found: list[object]) -> None:
    runs = _runs(found)
    assert list(_expand(runs)) == found
    assert all(n >= 1 for _, n in runs)
    assert all(a[0] != b[0] for a, b in itertools.pairwise(runs))
    assert len(runs) <= len(found)
