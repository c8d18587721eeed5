"""DeltaStore against real Delta tables on disk: one commit per publish, exact partition
boundaries, commit metadata, time travel, log-derived counts and interoperability."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from conftest import tree_fingerprint
from deltalake import DeltaTable

from backfiller import CommitInfo, DeltaStore, ExitCode
from backfiller.store.base import CommitKey, OutsideTargetError

ASSET = "lake/orders"
SCHEMA = pa.schema(
    [("order_id", pa.string()), ("amount", pa.int64()), ("partition_key", pa.string())]
)


def rows(key: str, *ids: str, amount: int = 1) -> list[dict[str, object]]:
    return [{"order_id": i, "amount": amount, "partition_key": key} for i in ids]


def table(*groups: list[dict[str, object]]) -> pa.Table:
    return pa.Table.from_pylist([r for g in groups for r in g], schema=SCHEMA)


def commit(
    run_id: str = "run-1", *, app_id: str | None = None, app_version: int | None = None
) -> CommitInfo:
    markers = () if app_id is None or app_version is None else ((app_id, app_version),)
    return CommitInfo(run_id=run_id, markers=markers)


def sorted_rows(data: pa.Table | None) -> list[dict[str, object]]:
    assert data is not None
    return sorted(data.to_pylist(), key=lambda r: str(r["order_id"]))


@pytest.fixture
def store(tmp_path: Path) -> DeltaStore:
    """A table with k1 (2 rows), k2 (1 row), k3 (3 rows) written in one commit (version 0)."""
    s = DeltaStore(tmp_path / "lake")
    data = table(rows("k1", "a", "b"), rows("k2", "c"), rows("k3", "d", "e", "f"))
    assert s.write_partitions(ASSET, data, ["k1", "k2", "k3"], commit("run-0")) == 1
    return s


def partition_dir(store: DeltaStore, key: str) -> Path:
    return store.path(ASSET) / f"partition_key={key}"


def test_replacing_one_partition_leaves_the_others_byte_identical_in_one_commit(
    store: DeltaStore,
) -> None:
    files_before = {k: tree_fingerprint(partition_dir(store, k)) for k in ("k1", "k3")}
    content_before = {k: store.fingerprint(ASSET, k) for k in ("k1", "k3")}
    assert all(files_before.values())

    version = store.write_partitions(
        ASSET, table(rows("k2", "x", "y", amount=7)), ["k2"], commit("run-1")
    )

    assert version == 2
    assert store.version(ASSET) == 2
    assert [r.version for r in store.history(ASSET)] == [2, 1, 0]
    assert {k: tree_fingerprint(partition_dir(store, k)) for k in ("k1", "k3")} == files_before
    assert {k: store.fingerprint(ASSET, k) for k in ("k1", "k3")} == content_before
    assert sorted_rows(store.read_partition(ASSET, "k2")) == rows("k2", "x", "y", amount=7)
    assert store.partition_counts(ASSET) == {"k1": 2, "k2": 2, "k3": 3}


def test_replacing_several_partitions_in_one_call_is_one_commit(store: DeltaStore) -> None:
    k2_files = tree_fingerprint(partition_dir(store, "k2"))

    version = store.write_partitions(
        ASSET, table(rows("k1", "n1"), rows("k3", "n3", "n4")), ["k1", "k3"], commit("run-2")
    )

    assert version == 2
    history = store.history(ASSET)
    assert [r.version for r in history] == [2, 1, 0]
    assert history[0].metadata["backfiller.run_id"] == "run-2"
    assert tree_fingerprint(partition_dir(store, "k2")) == k2_files
    assert store.partition_counts(ASSET) == {"k1": 1, "k2": 1, "k3": 2}
    assert sorted_rows(store.read_partition(ASSET, "k1")) == rows("k1", "n1")
    assert sorted_rows(store.read_partition(ASSET, "k3")) == rows("k3", "n3", "n4")


@pytest.mark.parametrize(
    ("data", "keys", "named"),
    [
        (table(rows("k1", "ok"), rows("k9", "stray")), ["k1"], "['k9']"),
        (table(rows("k2", "ok"), rows("k3", "other")), ["k2"], "['k3']"),
        (
            pa.Table.from_pylist(
                [{"order_id": "n", "amount": 1, "partition_key": None}], schema=SCHEMA
            ),
            ["k1"],
            "['None']",
        ),
        (pa.table({"order_id": ["z"], "amount": [1]}), ["k1"], "'partition_key'"),
    ],
    ids=["unknown-key", "existing-neighbour", "null-key", "no-partition-column"],
)
def test_rows_outside_the_target_partitions_are_refused_and_nothing_changes(
    store: DeltaStore, data: pa.Table, keys: list[str], named: str
) -> None:
    files = tree_fingerprint(store.path(ASSET))

    with pytest.raises(OutsideTargetError) as info:
        store.write_partitions(ASSET, data, keys, commit("run-bad"))

    assert info.value.exit_code == ExitCode.BAD_INPUT == 2
    assert named in info.value.message
    assert info.value.asset == ASSET
    assert store.version(ASSET) == 1
    assert len(store.history(ASSET)) == 2
    assert tree_fingerprint(store.path(ASSET)) == files
    assert store.partition_counts(ASSET) == {"k1": 2, "k2": 1, "k3": 3}


def test_commit_metadata_carries_run_plan_and_manifest_ids(store: DeltaStore) -> None:
    info = CommitInfo(
        run_id="run-20261201T120000-abcd1234",
        plan_id="plan-0123456789abcdef",
        manifest_ids=("manifest-a", "manifest-b"),
        operator="alice",
        action="backfill",
        extra={CommitKey.PARTITION_KEYS: "k2"},
    )
    store.write_partitions(ASSET, table(rows("k2", "m")), ["k2"], info)

    newest = store.history(ASSET)[0]
    assert newest.version == 2
    assert newest.operation == "WRITE"
    meta = newest.metadata
    assert meta["backfiller.run_id"] == "run-20261201T120000-abcd1234"
    assert meta["backfiller.plan_id"] == "plan-0123456789abcdef"
    assert meta["backfiller.manifest_ids"] == "manifest-a,manifest-b"
    assert meta["backfiller.operator"] == "alice"
    assert meta["backfiller.action"] == "backfill"
    assert meta["backfiller.partition_keys"] == "k2"
    # the previous commit keeps its own metadata
    assert store.history(ASSET)[1].metadata["backfiller.run_id"] == "run-0"
    # and the Delta log itself holds it (what any other Delta reader sees)
    raw = DeltaTable(str(store.path(ASSET))).history(1)[0]
    assert raw["backfiller.plan_id"] == "plan-0123456789abcdef"
    assert raw["backfiller.manifest_ids"] == "manifest-a,manifest-b"


def test_read_partition_at_an_old_version_returns_the_old_rows(store: DeltaStore) -> None:
    store.write_partitions(ASSET, table(rows("k2", "v1")), ["k2"], commit("run-1"))
    store.write_partitions(ASSET, table(rows("k2", "v2a", "v2b")), ["k2"], commit("run-2"))

    assert sorted_rows(store.read_partition(ASSET, "k2", version=1)) == rows("k2", "c")
    assert sorted_rows(store.read_partition(ASSET, "k2", version=2)) == rows("k2", "v1")
    assert sorted_rows(store.read_partition(ASSET, "k2")) == rows("k2", "v2a", "v2b")
    # content fingerprints follow the versions too
    assert store.fingerprint(ASSET, "k2", version=1) != store.fingerprint(ASSET, "k2")
    assert store.fingerprint(ASSET, "k1", version=1) == store.fingerprint(ASSET, "k1")


def test_partition_counts_come_from_the_log_and_match_the_data(store: DeltaStore) -> None:
    store.write_partitions(
        ASSET, table(rows("k2", *[f"o{i}" for i in range(5)])), ["k2"], commit("run-1")
    )
    store.write_partitions(ASSET, table(rows("k4", "p", "q")), ["k4"], commit("run-2"))

    counts = store.partition_counts(ASSET)
    assert counts == {"k1": 2, "k2": 5, "k3": 3, "k4": 2}
    from_data = {}
    for key in counts:
        data = store.read_partition(ASSET, key)
        assert data is not None
        from_data[key] = data.num_rows
    assert from_data == counts
    # the log's per-file record counts, read independently of DeltaStore
    actions = pa.table(DeltaTable(str(store.path(ASSET))).get_add_actions(flatten=True))
    by_key: dict[str, int] = {}
    for key, n in zip(
        actions.column("partition.partition_key").to_pylist(),
        actions.column("num_records").to_pylist(),
        strict=True,
    ):
        by_key[key] = by_key.get(key, 0) + n
    assert by_key == counts
    assert DeltaStore(store.root).partition_counts("lake/absent") == {}


def test_partition_signatures_change_only_for_rewritten_partitions(store: DeltaStore) -> None:
    before = store.partition_signatures(ASSET)
    assert set(before) == {"k1", "k2", "k3"}
    assert len(set(before.values())) == 3

    store.write_partitions(
        ASSET, table(rows("k1", "a2"), rows("k3", "d2")), ["k1", "k3"], commit("run-1")
    )
    after = store.partition_signatures(ASSET)

    assert set(after) == {"k1", "k2", "k3"}
    assert after["k2"] == before["k2"]
    assert after["k1"] != before["k1"]
    assert after["k3"] != before["k3"]


def test_writing_an_empty_table_for_a_key_removes_that_partition_only(
    store: DeltaStore,
) -> None:
    signatures = store.partition_signatures(ASSET)

    version = store.write_partitions(ASSET, table(), ["k2"], commit("run-empty"))

    assert version == 2
    assert store.partition_counts(ASSET) == {"k1": 2, "k3": 3}
    assert store.read_partition(ASSET, "k2").num_rows == 0  # type: ignore[union-attr]
    after = store.partition_signatures(ASSET)
    assert after == {"k1": signatures["k1"], "k3": signatures["k3"]}
    assert store.read_partition(ASSET, "k2", version=1).num_rows == 1  # type: ignore[union-attr]


def test_committed_step_answers_did_my_commit_land(tmp_path: Path) -> None:
    s = DeltaStore(tmp_path / "lake")
    app = "backfiller:run-7:k1"
    assert s.committed_step(ASSET, app) is None  # no table yet

    s.write_partitions(ASSET, table(rows("k1", "a")), ["k1"], commit("run-7"))
    assert s.committed_step(ASSET, app) is None  # a commit without the marker

    s.write_partitions(
        ASSET, table(rows("k1", "a")), ["k1"], commit("run-7", app_id=app, app_version=3)
    )
    assert s.committed_step(ASSET, app) == 3
    assert s.committed_step(ASSET, "backfiller:run-8:k1") is None

    s.write_partitions(
        ASSET, table(rows("k2", "b")), ["k2"], commit("run-7", app_id=app, app_version=4)
    )
    assert s.committed_step(ASSET, app) == 4
    assert DeltaTable(str(s.path(ASSET))).transaction_version(app) == 4


def test_writing_the_same_data_twice_never_duplicates_rows(store: DeltaStore) -> None:
    data = table(rows("k1", "a", "b"), rows("k2", "c"))
    fingerprints = {k: store.fingerprint(ASSET, k) for k in ("k1", "k2")}

    for run in ("run-1", "run-2"):
        store.write_partitions(ASSET, data, ["k1", "k2"], commit(run))

    assert store.version(ASSET) == 3
    assert store.partition_counts(ASSET) == {"k1": 2, "k2": 1, "k3": 3}
    everything = store.read_partitions(ASSET, ["k1", "k2", "k3"])
    assert everything is not None
    assert everything.num_rows == 6
    ids = everything.column("order_id").to_pylist()
    assert sorted(ids) == ["a", "b", "c", "d", "e", "f"]
    assert {k: store.fingerprint(ASSET, k) for k in ("k1", "k2")} == fingerprints


def test_tables_are_readable_by_deltalake_and_duckdb(store: DeltaStore) -> None:
    store.write_partitions(ASSET, table(rows("k2", "c2", amount=40)), ["k2"], commit("run-1"))

    dt = DeltaTable(str(store.path(ASSET)))
    assert dt.version() == 2
    assert dt.metadata().partition_columns == ["partition_key"]
    assert dt.to_pyarrow_table().num_rows == 6

    dataset = dt.to_pyarrow_dataset()
    con = duckdb.connect()
    try:
        con.register("orders", dataset)
        grouped = con.sql(
            "SELECT partition_key, count(*), sum(amount) FROM orders GROUP BY 1 ORDER BY 1"
        ).fetchall()
    finally:
        con.close()
    assert grouped == [("k1", 2, 2), ("k2", 1, 40), ("k3", 3, 3)]


def test_a_table_without_data_files_lists_its_files_as_typed_empty_columns(
    store: DeltaStore,
) -> None:
    """A table just created (its first commit holds no data file) lists no files, with the
    same column types as a table that has some: a plan concatenates the tables' listings."""
    NEW = "lake/new_table"
    store._create(NEW, SCHEMA)
    empty = store.partition_files(NEW)
    assert empty.num_rows == 0
    assert empty.schema == pa.schema([("partition_key", pa.string()), ("path", pa.string())])
    store.write_partitions(NEW, table(rows("2026-04-15", "a")), ["2026-04-15"], commit())
    assert store.partition_files(NEW).schema == empty.schema
