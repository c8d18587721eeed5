"""The run's cache of what it just published: kept only for the steps still to read it, let go
after the last of them, the newest dropped first when full."""

from __future__ import annotations

import pyarrow as pa

from backfiller.actions.published import PublishedCache
from backfiller.refs import AssetPartition


def _table(rows: int) -> pa.Table:
    return pa.table({"x": pa.array(range(rows), pa.int64())})  # 8 bytes a row


def _cell(day: int) -> AssetPartition:
    return AssetPartition("raw", f"2026-04-{day:02d}")


def test_a_partition_no_step_reads_is_not_kept() -> None:
    cache = PublishedCache(max_bytes=1 << 20, max_entries=100)
    cache.expect({_cell(1): 1})
    cache.put(_cell(2), 3, _table(10))
    assert len(cache) == 0 and cache.nbytes == 0
    cache.put(_cell(1), 3, _table(10))
    assert len(cache) == 1 and cache.nbytes == 80


def test_a_partition_is_let_go_once_its_last_reader_is_settled() -> None:
    cache = PublishedCache(max_bytes=1 << 20, max_entries=100)
    cache.expect({_cell(1): 2})
    table = _table(10)
    cache.put(_cell(1), 7, table)
    # a reader reads as often as it needs (its computation, then its checks)
    assert cache.get(_cell(1)) == (7, table)
    assert cache.get(_cell(1)) == (7, table)
    cache.done([_cell(1)])
    assert len(cache) == 1
    cache.done([_cell(1), _cell(2)])  # a settled step may have read what was never kept
    assert len(cache) == 0 and cache.nbytes == 0
    assert cache.get(_cell(1)) is None


def test_when_full_the_newest_goes_first_so_the_next_asked_stays() -> None:
    # the readers ask in run order: day 1 first; a cache that let the oldest go would drop
    # each day just before its reader asked for it
    cache = PublishedCache(max_bytes=200, max_entries=100)
    cache.expect({_cell(d): 1 for d in range(1, 6)})
    for day in range(1, 6):
        cache.put(_cell(day), day, _table(10))  # 80 bytes each: two fit
    assert [cache.get(_cell(d)) is not None for d in range(1, 6)] == [
        True,
        True,
        False,
        False,
        False,
    ]
    cache.done([_cell(d) for d in range(1, 6)])
    assert cache.nbytes == 0


def test_the_entry_bound_holds_and_one_entry_always_fits() -> None:
    cache = PublishedCache(max_bytes=10, max_entries=2)
    cache.expect({_cell(d): 1 for d in range(1, 4)})
    cache.put(_cell(1), 1, _table(10))  # over the byte bound alone: still kept
    assert len(cache) == 1
    cache = PublishedCache(max_bytes=1 << 20, max_entries=2)
    cache.expect({_cell(d): 1 for d in range(1, 4)})
    for day in range(1, 4):
        cache.put(_cell(day), day, _table(1))
    assert len(cache) == 2 and cache.get(_cell(3)) is None


def test_a_new_stretch_lets_go_of_the_last_one_and_a_republish_replaces() -> None:
    cache = PublishedCache(max_bytes=1 << 20, max_entries=100)
    cache.expect({_cell(1): 1})
    cache.put(_cell(1), 1, _table(10))
    cache.put(_cell(1), 2, _table(5))  # published again in the run: the newer version
    assert cache.nbytes == 40
    cache.expect({_cell(2): 1})
    assert len(cache) == 0 and cache.nbytes == 0 and cache.get(_cell(1)) is None
