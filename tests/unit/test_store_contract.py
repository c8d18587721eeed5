"""The data store contract, held by every store: the Delta Lake default and the in-memory one
the runner's unit tests use. The same operations give the same observable answers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from backfiller.store import CommitInfo, DataStore, DeltaStore, Faults, FencedError, MemoryStore
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
    markers = () if app is None or step is None else ((app, step),)
    return CommitInfo(run_id=run_id, operator="t", action="backfill", markers=markers)


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
        store.write_partitions(ASSET, data(("k1", 2), ("k2", 1)), ["k1", "k2"], commit("r0")) == 1
    )
    k2 = store.fingerprint(ASSET, "k2")
    assert store.write_partitions(ASSET, data(("k1", 3)), ["k1"], commit("r1")) == 2

    assert store.version(ASSET) == 2
    assert store.partition_counts(ASSET) == {"k1": 3, "k2": 1}
    assert store.fingerprint(ASSET, "k2") == k2
    old = store.read_partition(ASSET, "k1", version=1)
    assert old is not None and old.num_rows == 2
    assert [c.version for c in store.history(ASSET)] == [2, 1, 0]
    # the table's first commit is its empty creation: schema and partitioning, no rows
    created = store.history(ASSET)[-1]
    assert created.metadata == {CommitKey.CREATED.value: "1"}
    before = store.read_partition(ASSET, "k1", version=0)
    assert before is not None and before.num_rows == 0
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
    assert store.version(ASSET) == 1  # it landed all the same (after the empty creation)
    assert store.committed_step(ASSET, "a") == 1
    assert store.write_partitions(ASSET, data(("k1", 2)), ["k1"], commit("r1")) == 2


def fenced(run_id: str, *fences: tuple[str, int]) -> CommitInfo:
    return CommitInfo(run_id=run_id, operator="t", action="backfill", fences=fences)


def test_a_commit_whose_lease_token_is_not_newer_than_the_tables_is_refused(
    store: DataStore,
) -> None:
    assert store.fence_token(ASSET, "2026-04-15") is None  # no table yet
    store.write_partitions(
        ASSET, data(("2026-04-15", 2)), ["2026-04-15"], fenced("r1", ("2026-04-15", 3))
    )
    assert store.fence_token(ASSET, "2026-04-15") == 3
    assert store.fence_token(ASSET, "2026-04-16") is None
    version, rows = store.version(ASSET), store.fingerprint(ASSET, "2026-04-15")

    for stale in (3, 2):  # the same token, and an older one
        with pytest.raises(FencedError) as refused:
            store.write_partitions(
                ASSET,
                data(("2026-04-15", 5)),
                ["2026-04-15"],
                fenced("late", ("2026-04-15", stale)),
            )
        assert (refused.value.token, refused.value.seen) == (stale, 3)
        assert refused.value.exit_code == 4
        assert "another holder took the lease over" in refused.value.message
        assert store.version(ASSET) == version  # nothing landed
        assert store.fingerprint(ASSET, "2026-04-15") == rows

    # another partition's token is its own; a newer token for this one is accepted
    store.write_partitions(
        ASSET, data(("2026-04-16", 1)), ["2026-04-16"], fenced("r2", ("2026-04-16", 1))
    )
    newer = store.write_partitions(
        ASSET, data(("2026-04-15", 4)), ["2026-04-15"], fenced("r3", ("2026-04-15", 4))
    )
    assert newer == store.version(ASSET)
    assert store.fence_token(ASSET, "2026-04-15") == 4
    assert store.partition_counts(ASSET) == {"2026-04-15": 4, "2026-04-16": 1}


def test_the_version_returned_is_the_commits_own_when_another_writer_commits_in_between(
    tmp_path: Path,
) -> None:
    """Two handles on one table, as two processes have: each writer's version is the version
    of the commit that carries its metadata, not the table's latest after the write."""
    first, second = DeltaStore(tmp_path / "lake"), DeltaStore(tmp_path / "lake")
    first.write_partitions(ASSET, data(("2026-04-14", 1)), ["2026-04-14"], commit("r0"))
    second.version(ASSET)  # the second handle is now loaded at version 1
    v1 = first.write_partitions(ASSET, data(("2026-04-15", 1)), ["2026-04-15"], commit("r1"))
    v2 = second.write_partitions(ASSET, data(("2026-04-16", 1)), ["2026-04-16"], commit("r2"))
    v3 = first.write_partitions(ASSET, data(("2026-04-17", 1)), ["2026-04-17"], commit("r3"))
    assert (v1, v2, v3) == (2, 3, 4)
    by_version = {r.version: r.metadata.get(CommitKey.RUN_ID) for r in first.history(ASSET)}
    assert by_version == {0: None, 1: "r0", 2: "r1", 3: "r2", 4: "r3"}


def test_a_stale_writer_racing_the_new_holder_on_one_partition_never_lands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fencing check and the commit are one: a writer that checked the token on a
    snapshot taken before the new holder's commit is refused by Delta's conflict check, then
    sees the newer token and gives up — it never lands."""
    old, new = DeltaStore(tmp_path / "lake"), DeltaStore(tmp_path / "lake")
    old.write_partitions(
        ASSET, data(("2026-04-15", 1)), ["2026-04-15"], fenced("r0", ("2026-04-15", 1))
    )
    new.write_partitions(
        ASSET, data(("2026-04-15", 2)), ["2026-04-15"], fenced("r-new", ("2026-04-15", 3))
    )
    looks: list[int | None] = []
    latest = old._table

    def stale_first(asset: str, version: int | None = None) -> DeltaTable | None:
        looks.append(version)
        if len(looks) == 1:  # the snapshot before the new holder's commit: token 1
            return DeltaTable(str(old.path(asset)), version=1)
        return latest(asset, version)

    answers = old._app_versions

    def stale_tokens(asset: str, app_ids: Any, table: Any = None, **kw: Any) -> Any:
        if len(looks) == 1:  # the tokens as that snapshot holds them
            return [table.transaction_version(a) for a in app_ids]
        return answers(asset, app_ids, table, **kw)

    monkeypatch.setattr(old, "_table", stale_first)
    monkeypatch.setattr(old, "_app_versions", stale_tokens)
    with pytest.raises(FencedError) as refused:
        old.write_partitions(
            ASSET, data(("2026-04-15", 9)), ["2026-04-15"], fenced("r-old", ("2026-04-15", 2))
        )
    assert refused.value.seen == 3
    assert len(looks) == 2  # the commit on the old snapshot conflicted; the second look fenced
    assert new.partition_counts(ASSET) == {"2026-04-15": 2}
    assert new.history(ASSET)[0].metadata[CommitKey.RUN_ID] == "r-new"
    assert new.version(ASSET) == 2


def test_a_writer_on_a_stale_snapshot_sees_the_newer_token_in_the_log_and_never_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tokens are read from the log at or after the writer's snapshot: a token the new
    holder committed after that snapshot refuses the stale writer before Delta is asked."""
    old, new = DeltaStore(tmp_path / "lake"), DeltaStore(tmp_path / "lake")
    old.write_partitions(
        ASSET, data(("2026-04-15", 1)), ["2026-04-15"], fenced("r0", ("2026-04-15", 1))
    )
    new.write_partitions(
        ASSET, data(("2026-04-15", 2)), ["2026-04-15"], fenced("r-new", ("2026-04-15", 3))
    )
    looks: list[int | None] = []

    def stale(asset: str, version: int | None = None) -> DeltaTable | None:
        looks.append(version)
        return DeltaTable(str(old.path(asset)), version=1)

    monkeypatch.setattr(old, "_table", stale)
    with pytest.raises(FencedError) as refused:
        old.write_partitions(
            ASSET, data(("2026-04-15", 9)), ["2026-04-15"], fenced("r-old", ("2026-04-15", 2))
        )
    assert (refused.value.seen, len(looks)) == (3, 1)
    assert new.partition_counts(ASSET) == {"2026-04-15": 2}
    assert new.version(ASSET) == 2
