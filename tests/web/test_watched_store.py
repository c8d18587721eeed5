"""The web cache's store wrapper (:class:`backfiller.web.cache._WatchedStore`): a table whose
stamp this request took is served from what was read of it under that stamp; the others are
read (in one call) and kept; a table read under a log new to the cache is kept but never
served; what it gives is the rows a fresh read gives, asset by asset."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import pyarrow as pa

from backfiller.web.cache import _Unstamped, _WatchedStore

ROWS = {"a": ["k1", "k2"], "b": ["k1", "k2", "k3"], "c": ["k2"], "d": []}


class _Store:
    """Rows per partition of each asset's table, each table's rows side by side; counts what
    it is asked for."""

    def __init__(self) -> None:
        self.asked: list[list[str]] = []
        self.version = 1

    def partition_stats_of(self, assets: Sequence[str]) -> pa.Table:
        self.asked.append(list(assets))
        rows = [(a, k) for a in assets for k in ROWS[a]]
        return pa.table(
            {
                "asset": pa.array([a for a, _ in rows], pa.string()),
                "partition_key": pa.array([k for _, k in rows], pa.string()),
                "rows": pa.array([self.version] * len(rows), pa.int64()),
                "missing_files": pa.array([0] * len(rows), pa.int64()),
            }
        )


def _by_asset(table: pa.Table) -> dict[str, list[tuple[str, int]]]:
    found: dict[str, list[tuple[str, int]]] = {}
    for row in table.to_pylist():
        found.setdefault(row["asset"], []).append((row["partition_key"], row["rows"]))
    return found


def test_tables_whose_stamp_stayed_are_served_and_the_others_read_together() -> None:
    inner = _Store()
    kept: dict[str, tuple[Hashable, pa.Table]] = {}
    now: dict[str, Hashable] = {"a": "sa", "b": "sb", "c": _Unstamped("log"), "d": "sd"}
    first = _WatchedStore(inner, set(), {}, kept, dict(now))  # type: ignore[arg-type]
    everything = ["a", "b", "c", "d"]
    read = first.partition_stats_of(everything)
    assert inner.asked == [everything] and set(kept) == set(everything)
    inner.version = 2  # what a read would now give: told apart from what was kept
    now["b"] = "sb2"  # b's table moved
    again = _WatchedStore(inner, set(), {}, kept, now)  # type: ignore[arg-type]
    served = again.partition_stats_of(everything)
    assert inner.asked[-1] == ["b", "c"]  # a and d served; c was read under a new log
    assert served.schema == read.schema
    assert _by_asset(served) == {
        "a": [("k1", 1), ("k2", 1)],
        "b": [("k1", 2), ("k2", 2), ("k3", 2)],
        "c": [("k2", 2)],
    }
    assert kept["b"][0] == "sb2" and _by_asset(kept["b"][1]) == {"b": _by_asset(served)["b"]}
    assert kept["d"][1].num_rows == 0
    assert again.partition_stats_of(["a", "b"]).num_rows == 5 and inner.asked[-1] == ["b", "c"]
