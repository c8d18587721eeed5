"""The data store contract, held by every store: the Delta Lake default and the in-memory one
the runner's unit tests use. The same operations give the same observable answers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest

from backfiller.store import CommitInfo, DataStore, DeltaStore, Faults, MemoryStore
from backfiller.store.base import CommitKey, OutsideTargetError

ASSET = "lake/orders"
SCHEMA = pa.schema([("id", pa.string()), ("amount", pa.int64()), ("partition_key", pa.string())])


def data(*parts: tuple[str, int]) -> pa.Table:
    """``n`` rows for each (key, n)."""
    rows = [
        {"id": f"{key}-{i}", "amount": i, "partition_key": key}
        for key, n in parts
        for i in range(n)
    ]
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def commit(run_id: str, *, app: str | None = None, step: int | None = None) -> CommitInfo:
    return CommitInfo(run_id=run_id, operator="t", action="backfill", app_id=app, app_version=step)


STORES: dict[str, Callable[[Path], DataStore]] = {
    "delta": lambda tmp: DeltaStore(tmp / "lake"),
    "memory": lambda tmp: MemoryStore(),
}


@pytest.fixture(params=sorted(STORES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> DataStore:
    return STORES[request.param](tmp_path)


def test_an_empty_store_has_no_table(store: DataStore) -> None:
    assert not store.exists(ASSET)
    assert store.version(ASSET) is None
    assert store.read_partition(ASSET, "k1") is None
    assert store.partition_counts(ASSET) == {}
    assert store.history(ASSET) == []
    assert store.committed_step(ASSET, "app") is None
    assert store.fingerprint(ASSET, "k1") is None


def test_a_commit_replaces_exactly_its_partitions(store: DataStore) -> None:
    assert (
        store.write_partitions(ASSET, data(("k1", 2), ("k2", 1)), ["k1", "k2"], commit("r0")) == 0
    )
    k2 = store.fingerprint(ASSET, "k2")
    assert store.write_partitions(ASSET, data(("k1", 3)), ["k1"], commit("r1")) == 1

    assert store.version(ASSET) == 1
    assert store.partition_counts(ASSET) == {"k1": 3, "k2": 1}
    assert store.fingerprint(ASSET, "k2") == k2
    old = store.read_partition(ASSET, "k1", version=0)
    assert old is not None and old.num_rows == 2
    assert [c.version for c in store.history(ASSET)] == [1, 0]
    assert store.history(ASSET, limit=1)[0].metadata[CommitKey.RUN_ID.value] == "r1"
    both = store.read_partitions(ASSET, ["k1", "k2"])
    assert both is not None and both.num_rows == 4


def test_a_partition_written_empty_is_gone(store: DataStore) -> None:
    store.write_partitions(ASSET, data(("k1", 2), ("k2", 1)), ["k1", "k2"], commit("r0"))
    store.write_partitions(ASSET, data(("k1", 1)), ["k1", "k2"], commit("r1"))
    assert store.partition_counts(ASSET) == {"k1": 1}
    empty = store.read_partition(ASSET, "k2")
    assert empty is not None and empty.num_rows == 0


def test_signatures_change_only_with_the_partition(store: DataStore) -> None:
    store.write_partitions(ASSET, data(("k1", 2), ("k2", 1)), ["k1", "k2"], commit("r0"))
    before = store.partition_signatures(ASSET)
    store.write_partitions(ASSET, data(("k1", 2)), ["k1"], commit("r1"))
    after = store.partition_signatures(ASSET)
    assert after["k2"] == before["k2"]
    assert after["k1"] != before["k1"]


def test_the_app_transaction_marker_answers_did_my_commit_land(store: DataStore) -> None:
    store.write_partitions(ASSET, data(("k1", 1)), ["k1"], commit("r0", app="run-x:k1", step=1))
    store.write_partitions(ASSET, data(("k2", 1)), ["k2"], commit("r0", app="run-x:k2", step=3))
    assert store.committed_step(ASSET, "run-x:k1") == 1
    assert store.committed_step(ASSET, "run-x:k2") == 3
    assert store.committed_step(ASSET, "run-y:k1") is None


def test_rows_outside_the_target_partitions_are_refused_and_nothing_lands(
    store: DataStore,
) -> None:
    with pytest.raises(OutsideTargetError):
        store.write_partitions(ASSET, data(("k1", 1), ("k9", 1)), ["k1"], commit("r0"))
    assert store.version(ASSET) is None


def test_the_fault_knobs_fail_before_or_after_the_commit_lands() -> None:
    store = MemoryStore(Faults(fail_commits=frozenset({1}), raise_after_commits=frozenset({2})))
    with pytest.raises(OSError, match="failed"):
        store.write_partitions(ASSET, data(("k1", 1)), ["k1"], commit("r0"))
    assert store.version(ASSET) is None  # nothing landed
    with pytest.raises(OSError, match="landed"):
        store.write_partitions(ASSET, data(("k1", 1)), ["k1"], commit("r0", app="a", step=1))
    assert store.version(ASSET) == 0  # it landed all the same
    assert store.committed_step(ASSET, "a") == 1
    assert store.write_partitions(ASSET, data(("k1", 2)), ["k1"], commit("r1")) == 1
