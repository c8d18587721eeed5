"""A range plan's key signatures swept from runs (each asset's consecutive keys with one gap
reason) are exactly the signatures made key by key from the cells the runs cover: every gap
of the key, in asset order."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from backfiller.planning.compact import _swept


@st.composite
def _runs(draw: st.DrawFn) -> tuple[int, list[tuple[int, int, int, str]]]:
    """Keys, and per asset runs that never overlap (an asset has one state per key)."""
    n = draw(st.integers(min_value=1, max_value=60))
    assets = draw(st.integers(min_value=0, max_value=8))
    runs: list[tuple[int, int, int, str]] = []
    for pos in range(assets):
        at = 0
        while at < n:
            length = draw(st.integers(min_value=1, max_value=n - at))
            code = draw(st.sampled_from(["", "a", "b", "c"]))  # "": no gap over these keys
            if code:
                runs.append((at, at + length - 1, pos, code))
            at += length
    return n, draw(st.permutations(runs))


def _per_key(n: int, runs: list[tuple[int, int, int, str]]) -> dict[int, str]:
    cells = {(idx, pos): code for first, last, pos, code in runs for idx in range(first, last + 1)}
    found: dict[int, str] = {}
    for idx in range(n):
        mine = sorted((pos, code) for (i, pos), code in cells.items() if i == idx)
        if mine:
            found[idx] = ",".join(f"{pos}{code}" for pos, code in mine)
    return found


@given(_runs())
def test_swept_signatures_are_the_per_key_ones(case: tuple[int, list]) -> None:
    n, runs = case
    assert dict(_swept(n, runs)) == _per_key(n, runs)
