"""The live files read from a Delta log (:mod:`backfiller.store.add_actions`) equal
``deltalake``'s own ``get_add_actions`` — across appends, partition overwrites (remove
actions), checkpoints, log clean-up — and a log it does not read exactly is refused, so the
store asks Delta (which still names a damaged log). Several tables read together say the same
per table, and leave aside every log the reader of one table would refuse or read from a
checkpoint."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import DeltaError
from fast_loop import examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import backfiller
from backfiller.errors import DamagedStoreError
from backfiller.planning.bulk import store_table
from backfiller.store import add_actions
from backfiller.store.add_actions import read_add_actions, read_many_add_actions
from backfiller.store.app_versions import UnreadableLog
from backfiller.store.delta import DeltaStore

KEYS = [f"2026-01-0{d}" for d in range(1, 6)]

# one write: the keys it replaces (each with its row count), append or overwrite, and
# whether a checkpoint follows it
WRITES = st.lists(
    st.tuples(
        st.dictionaries(st.sampled_from(KEYS), st.integers(1, 4), min_size=1, max_size=3),
        st.booleans(),
        st.booleans(),
    ),
    min_size=1,
    max_size=8,
)


def _reader(log: Path) -> Callable[[str], bytes | None]:
    def read(name: str) -> bytes | None:
        try:
            return (log / name).read_bytes()
        except FileNotFoundError:
            return None

    return read


def _write(path: Path, rows: dict[str, int], *, overwrite: bool) -> None:
    keys = [k for k, n in rows.items() for _ in range(n)]
    data = pa.table({"partition_key": keys, "v": list(range(len(keys)))})
    if overwrite and (path / "_delta_log").is_dir():
        quoted = ", ".join(f"'{k}'" for k in rows)
        write_deltalake(
            str(path),
            data,
            partition_by=["partition_key"],
            mode="overwrite",
            predicate=f"partition_key IN ({quoted})",
        )
    else:
        write_deltalake(str(path), data, partition_by=["partition_key"], mode="append")


def _mine(path: Path) -> list[tuple[str, str, int | None]]:
    log = path / "_delta_log"
    found = read_add_actions(_reader(log), [p.name for p in log.iterdir()], "partition_key")
    return sorted(
        zip(
            found["path"].to_pylist(),
            found["partition"].to_pylist(),
            found["num_records"].to_pylist(),
            strict=True,
        )
    )


def _deltas(path: Path) -> list[tuple[str, str, int | None]]:
    actions = pa.table(DeltaTable(str(path)).get_add_actions(flatten=True))
    return sorted(
        zip(
            actions["path"].to_pylist(),
            actions["partition.partition_key"].to_pylist(),
            actions["num_records"].to_pylist(),
            strict=True,
        )
    )


@pytest.mark.slow
@settings(
    max_examples=examples(20),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(writes=WRITES)
def test_the_live_files_equal_deltas_after_any_history(
    tmp_path_factory: pytest.TempPathFactory, writes: list[tuple[dict[str, int], bool, bool]]
) -> None:
    path = tmp_path_factory.mktemp("t") / "table"
    for rows, overwrite, checkpoint in writes:
        _write(path, rows, overwrite=overwrite)
        if checkpoint:
            DeltaTable(str(path)).create_checkpoint()
        assert _mine(path) == _deltas(path)


def test_a_checkpoint_is_read_instead_of_the_cleaned_up_commits(tmp_path: Path) -> None:
    path = tmp_path / "table"
    _write(path, {KEYS[0]: 2, KEYS[1]: 1}, overwrite=False)
    _write(path, {KEYS[0]: 3}, overwrite=True)
    DeltaTable(str(path)).create_checkpoint()
    _write(path, {KEYS[1]: 4}, overwrite=True)
    expected = _deltas(path)
    for name in ("00000000000000000000.json", "00000000000000000001.json"):
        (path / "_delta_log" / name).unlink()  # what log clean-up leaves
    assert _mine(path) == expected
    assert sorted((k, n) for _, k, n in expected) == [(KEYS[0], 3), (KEYS[1], 4)]


def test_the_store_counts_rows_per_partition_from_the_log(tmp_path: Path) -> None:
    store = DeltaStore(tmp_path / "lake")
    path = store.path("a/b")
    _write(path, {KEYS[0]: 2, KEYS[1]: 1}, overwrite=False)
    _write(path, {KEYS[0]: 3, KEYS[2]: 1}, overwrite=False)
    _write(path, {KEYS[1]: 2}, overwrite=True)
    assert store.partition_counts("a/b") == {KEYS[0]: 5, KEYS[1]: 2, KEYS[2]: 1}
    assert store.partition_counts("a/none") == {}


#: damage read wrongly instead of refused before: a commit naming a path twice (Delta keeps
#: the first action, a replay the last), a field of the wrong JSON type (``from_json``
#: coerced it), statistics that are no valid JSON but open with ``numRecords``; a log without
#: a metaData action, or with one that is no object with its schema, partition values keyed
#: in another case or absent (Delta refuses them: the first were read whole, the others as
#: files of the null partition), statistics naming ``numRecords`` twice, the second maybe
#: escaped (Delta reads the last, the regex read the first)
NEW_DAMAGE = [
    "added and removed in one commit",
    "added twice in one commit",
    "removed and added again in one commit",
    "partition values a string",
    "partition values a list",
    "reader features a string",
    "statistics an object",
    "an added path a number",
    "a removed path a number",
    "statistics cut short",
    "statistics with text after",
    "no metaData action",
    "partition values keyed in another case",
    "numRecords named twice",
    "numRecords named twice, spaced",
    "numRecords named twice, escaped",
    "metaData not an object",
    "metaData without its schema",
    "partition values absent",
]


def _rewrite_first_commit(
    path: Path, change: Callable[[dict[str, Any]], dict[str, Any] | None]
) -> None:
    """Write the table's first commit again, each action as ``change`` gives it back (None:
    left out)."""
    log = path / "_delta_log" / "00000000000000000000.json"
    actions = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    kept = [changed for a in actions if (changed := change(a)) is not None]
    log.write_text("".join(json.dumps(a) + "\n" for a in kept), encoding="utf-8")


def _edit_adds(path: Path, edit: Callable[[dict[str, object]], None]) -> None:
    """Apply ``edit`` to every add action of the table's first commit."""

    def change(action: dict[str, Any]) -> dict[str, Any]:
        if "add" in action:
            edit(action["add"])
        return action

    _rewrite_first_commit(path, change)


def _first_add(path: Path) -> dict[str, object]:
    """The first add action of the table's first commit."""
    log = path / "_delta_log" / "00000000000000000000.json"
    actions = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    found: dict[str, object] = next(a["add"] for a in actions if "add" in a)
    return found


def _append(log: Path, action: dict[str, object]) -> None:
    """Add a line of ``action`` to the commit file ``log`` (whose last line may not end)."""
    text = log.read_text(encoding="utf-8")
    log.write_text(text.rstrip("\n") + "\n" + json.dumps(action) + "\n", encoding="utf-8")


def _remove(added: dict[str, object]) -> dict[str, object]:
    return {"remove": {"path": added["path"], "deletionTimestamp": 1, "dataChange": True}}


def _new_damage(path: Path, damage: str) -> None:
    """One of :data:`NEW_DAMAGE` to the table at ``path``."""
    log = path / "_delta_log"
    first = log / "00000000000000000000.json"
    added = _first_add(path)
    if damage == "added and removed in one commit":
        _append(first, _remove(added))
    elif damage == "added twice in one commit":
        _append(first, {"add": {**added, "stats": '{"numRecords": 9}'}})
    elif damage == "removed and added again in one commit":
        lines = [_remove(added), {"add": {**added, "stats": '{"numRecords": 9}'}}]
        (log / "00000000000000000001.json").write_text(
            "".join(json.dumps(a) + "\n" for a in lines), encoding="utf-8"
        )
    elif damage == "partition values a string":
        _edit_adds(path, lambda a: a.update(partitionValues=KEYS[0]))
    elif damage == "partition values a list":
        _edit_adds(path, lambda a: a.update(partitionValues=[KEYS[0]]))
    elif damage == "reader features a string":
        protocol = {"minReaderVersion": 3, "minWriterVersion": 7}
        protocol |= {"readerFeatures": "deletionVectors", "writerFeatures": ["deletionVectors"]}
        _append(first, {"protocol": protocol})
    elif damage == "statistics an object":
        _edit_adds(path, lambda a: a.update(stats=json.loads(str(a["stats"]))))
    elif damage == "an added path a number":
        _edit_adds(path, lambda a: a.update(path=7))
    elif damage == "a removed path a number":
        (log / "00000000000000000001.json").write_text(
            json.dumps({"remove": {"path": 7, "deletionTimestamp": 1, "dataChange": True}}) + "\n",
            encoding="utf-8",
        )
    elif damage == "statistics cut short":
        _edit_adds(path, lambda a: a.update(stats='{"numRecords":2,"minValues":{"v":'))
    elif damage == "no metaData action":
        lines = first.read_text(encoding="utf-8").splitlines()
        _rewrite_first_commit(path, lambda a: None if "metaData" in a else a)
        assert len(first.read_text(encoding="utf-8").splitlines()) == len(lines) - 1
    elif damage == "partition values keyed in another case":
        _edit_adds(path, lambda a: a.update(partitionValues={"Partition_Key": KEYS[0]}))
    elif damage == "numRecords named twice":
        _edit_adds(path, lambda a: a.update(stats='{"numRecords":2,"numRecords":3}'))
    elif damage == "numRecords named twice, escaped":
        _edit_adds(path, lambda a: a.update(stats='{"numRecords":2,"num\\u0052ecords":3}'))
    elif damage in ("metaData not an object", "metaData without its schema"):
        value = 5 if damage == "metaData not an object" else {"id": "x"}
        _rewrite_first_commit(path, lambda a: {"metaData": value} if "metaData" in a else a)
    elif damage == "partition values absent":
        _edit_adds(path, lambda a: a.pop("partitionValues"))
    elif damage == "numRecords named twice, spaced":
        _edit_adds(
            path, lambda a: a.update(stats='{ "numRecords" : 2, "minValues": {}, "numRecords": 3}')
        )
    else:
        assert damage == "statistics with text after"
        _edit_adds(path, lambda a: a.update(stats='{"numRecords":2}xyz'))


def _corrupt_stats(path: Path) -> None:
    """Statistics that are no JSON object: not one object per file."""
    _edit_adds(path, lambda a: a.update(stats=""))


@pytest.mark.parametrize(
    "damage",
    [
        "truncated commit",
        "reader version 2",
        "deletion vector",
        "no first commit",
        "stats",
        "a commit missing between two",
        *NEW_DAMAGE,
    ],
)
def test_a_log_it_does_not_read_exactly_is_refused_not_guessed(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "table"
    _write(path, {KEYS[0]: 2}, overwrite=False)
    _damage(path, damage)
    with pytest.raises(UnreadableLog):
        log = path / "_delta_log"
        read_add_actions(_reader(log), [p.name for p in log.iterdir()], "partition_key")


def _damage(path: Path, damage: str) -> None:
    """Give the table at ``path`` (one commit of the first key) the ``damage`` named."""
    log = path / "_delta_log" / "00000000000000000000.json"
    text = log.read_text(encoding="utf-8")
    if damage == "truncated commit":
        log.write_text(text[:-40], encoding="utf-8")
    elif damage == "reader version 2":
        log.write_text(
            text + '{"protocol": {"minReaderVersion": 2, "minWriterVersion": 5}}\n',
            encoding="utf-8",
        )
    elif damage == "deletion vector":
        _edit_adds(path, lambda a: a.update(deletionVector={"storageType": "u", "cardinality": 1}))
    elif damage == "no first commit":
        log.rename(path / "_delta_log" / "00000000000000000001.json")
    elif damage == "a commit missing between two":
        _write(path, {KEYS[1]: 1}, overwrite=False)
        _write(path, {KEYS[2]: 1}, overwrite=False)
        (path / "_delta_log" / "00000000000000000001.json").unlink()
    elif damage in NEW_DAMAGE:
        _new_damage(path, damage)
    else:
        _corrupt_stats(path)


def test_a_path_named_again_in_a_later_commit_is_read_as_the_later_action(
    tmp_path: Path,
) -> None:
    path = tmp_path / "table"
    _write(path, {KEYS[0]: 2, KEYS[1]: 1}, overwrite=False)
    added = _first_add(path)
    log = path / "_delta_log"
    later = [_remove(added), {"add": {**added, "stats": '{"numRecords": 9}'}}, _remove(added)]
    for version, action in enumerate(later, start=1):
        (log / f"{version:020d}.json").write_text(json.dumps(action) + "\n", encoding="utf-8")
    assert _mine(path) == _deltas(path)
    assert len(_mine(path)) == 1
    (log / "00000000000000000003.json").unlink()  # added again last: live, with its stats
    assert _mine(path) == _deltas(path)
    partition = added["partitionValues"]
    assert isinstance(partition, dict)
    assert (added["path"], partition["partition_key"], 9) in _mine(path)
    found, aside = _many([path])
    assert aside == [] and found[0] == _deltas(path)


def test_a_checkpoints_files_come_before_those_added_after_it(tmp_path: Path) -> None:
    path = tmp_path / "table"
    _write(path, {KEYS[0]: 1, KEYS[1]: 1, KEYS[2]: 1}, overwrite=False)
    DeltaTable(str(path)).create_checkpoint()
    _write(path, {KEYS[3]: 1}, overwrite=False)
    log = path / "_delta_log"
    found = read_add_actions(_reader(log), [p.name for p in log.iterdir()], "partition_key")
    assert found["partition"].to_pylist()[-1] == KEYS[3]
    assert sorted(found["partition"].to_pylist()[:3]) == KEYS[:3]


def _damaged_store(tmp_path: Path, damage: str) -> DeltaStore:
    """A store whose table ``a`` (one commit of the first key) has the ``damage`` named."""
    store = DeltaStore(tmp_path / "lake")
    _write(store.path("a"), {KEYS[0]: 2}, overwrite=False)
    _damage(store.path("a"), damage)
    return store


@pytest.mark.parametrize(
    "damage", ["truncated commit", "no metaData action", "partition values keyed in another case"]
)
def test_a_damaged_log_is_still_named_by_the_store(tmp_path: Path, damage: str) -> None:
    store = _damaged_store(tmp_path, damage)
    with pytest.raises(DamagedStoreError, match="damaged"):
        store.partition_counts("a")


@pytest.mark.parametrize("damage", ["numRecords named twice", "numRecords named twice, escaped"])
def test_numrecords_named_twice_counts_as_delta_reads_it(tmp_path: Path, damage: str) -> None:
    """Refused by this reader, read by Delta: the last ``numRecords``."""
    assert _damaged_store(tmp_path, damage).partition_counts("a") == {KEYS[0]: 3}


@pytest.mark.parametrize(
    "stats",
    [
        '{"numRecords":2,"minValues":{"numRecords":1},"maxValues":{"numRecords":9}}',
        '{"numRecords":2,"minValues":{"v":0}}',
        '{"numRecords":2}',
        '{"minValues":{"v":0},"numRecords":2}',
    ],
)
def test_numrecords_named_once_at_the_top_is_read_as_delta_reads_it(
    tmp_path: Path, stats: str
) -> None:
    """A column named ``numRecords`` in the statistics' values is no second count."""
    path = tmp_path / "table"
    _write(path, {KEYS[0]: 2}, overwrite=False)
    _edit_adds(path, lambda a: a.update(stats=stats))
    assert _mine(path) == _deltas(path)
    assert [n for _, _, n in _mine(path)] == [2]


def _edit_checkpoint(path: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    """Checkpoint the table at ``path`` (one commit), apply ``edit`` to each row of the
    checkpoint, and delete the commit (what log clean-up leaves); the log's folder."""
    import pyarrow.parquet as pq

    DeltaTable(str(path)).create_checkpoint()
    log = path / "_delta_log"
    checkpoint = log / "00000000000000000000.checkpoint.parquet"
    table = pq.read_table(checkpoint)
    rows = table.to_pylist()
    for row in rows:
        edit(row)
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), checkpoint)
    (log / "00000000000000000000.json").unlink()
    return log


def _key_in_another_case(row: dict[str, Any]) -> None:
    if row["add"] is not None:
        row["add"]["partitionValues"] = [("Partition_Key", KEYS[0])]


def _no_metadata(row: dict[str, Any]) -> None:
    row["metaData"] = None


@pytest.mark.parametrize(
    ("edit", "refusal"),
    [(_key_in_another_case, "another key"), (_no_metadata, "no metaData")],
    ids=["partition values keyed in another case", "no metaData"],
)
def test_a_checkpoint_delta_refuses_is_refused(
    tmp_path: Path, edit: Callable[[dict[str, Any]], None], refusal: str
) -> None:
    path = tmp_path / "table"
    _write(path, {KEYS[0]: 2}, overwrite=False)
    log = _edit_checkpoint(path, edit)
    with pytest.raises(DeltaError):
        DeltaTable(str(path)).get_add_actions()
    with pytest.raises(UnreadableLog, match=refusal):
        read_add_actions(_reader(log), [p.name for p in log.iterdir()], "partition_key")


def test_a_checkpoint_duckdb_does_not_take_is_read_by_delta(tmp_path: Path) -> None:
    """A partition values map that repeats its key: DuckDB refuses the Arrow map, Delta reads
    the table; the store asks Delta."""
    store = DeltaStore(tmp_path / "lake")
    path = store.path("a")
    _write(path, {KEYS[0]: 2}, overwrite=False)

    def repeated(row: dict[str, Any]) -> None:
        if row["add"] is not None:
            row["add"]["partitionValues"] = [("partition_key", KEYS[0])] * 2

    log = _edit_checkpoint(path, repeated)
    with pytest.raises(UnreadableLog, match="does not read"):
        read_add_actions(_reader(log), [p.name for p in log.iterdir()], "partition_key")
    assert store.partition_counts("a") == {k: n for _, k, n in _deltas(path)}


def test_statistics_it_reads_back_whole_when_numrecords_is_not_first(tmp_path: Path) -> None:
    path = tmp_path / "table"
    _write(path, {KEYS[0]: 2, KEYS[1]: 3}, overwrite=False)
    log = path / "_delta_log" / "00000000000000000000.json"
    lines = []
    for line in log.read_text(encoding="utf-8").splitlines():
        action = json.loads(line)
        if "add" in action:
            stats = json.loads(action["add"]["stats"])
            moved = {"minValues": stats.get("minValues", {}), "numRecords": stats["numRecords"]}
            action["add"]["stats"] = json.dumps(moved)
        lines.append(json.dumps(action))
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert sorted((k, n) for _, k, n in _mine(path)) == [(KEYS[0], 2), (KEYS[1], 3)]


# -- several tables at once -------------------------------------------------------------------


def _many(paths: list[Path]) -> tuple[dict[int, list[tuple[str, str, int | None]]], list[int]]:
    """What :func:`read_many_add_actions` reads of the tables at ``paths``, per position."""
    logs = []
    for path in paths:
        log = path / "_delta_log"
        names = [p.name for p in log.iterdir()] if log.is_dir() else []
        logs.append((_reader(log), names))
    found, aside = read_many_add_actions(logs, "partition_key")
    numbers = found["table"].to_pylist()
    assert numbers == sorted(numbers)  # a table's files side by side, the tables in order
    per_table: dict[int, list[tuple[str, str, int | None]]] = {}
    for row in found.to_pylist():
        per_table.setdefault(row["table"], []).append(
            (row["path"], row["partition"], row["num_records"])
        )
    return {n: sorted(rows) for n, rows in per_table.items()}, aside


@pytest.mark.slow
@settings(
    max_examples=examples(15),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(histories=st.lists(WRITES, min_size=1, max_size=4))
def test_tables_read_together_equal_deltas_table_by_table(
    tmp_path_factory: pytest.TempPathFactory,
    histories: list[list[tuple[dict[str, int], bool, bool]]],
) -> None:
    base = tmp_path_factory.mktemp("many")
    paths = [base / f"t{n}" for n in range(len(histories))]
    for path, writes in zip(paths, histories, strict=True):
        for rows, overwrite, checkpoint in writes:
            _write(path, rows, overwrite=overwrite)
            if checkpoint:
                DeltaTable(str(path)).create_checkpoint()
    for group_bytes in (add_actions.GROUP_BYTES, 1):  # all parsed at once, or one by one
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(add_actions, "GROUP_BYTES", group_bytes)
            found, aside = _many(paths)
        for n, path in enumerate(paths):
            checkpointed = (path / "_delta_log" / "_last_checkpoint").exists()
            assert (n in aside) == checkpointed  # a checkpoint is read table by table
            if not checkpointed:
                assert found.get(n, []) == _deltas(path)


@pytest.mark.parametrize(
    "damage",
    [
        "truncated commit",
        "reader version 2",
        "deletion vector",
        "no first commit",
        "stats",
        "a commit missing between two",
        *NEW_DAMAGE,
    ],
)
def test_a_log_refused_alone_is_left_aside_when_read_together(tmp_path: Path, damage: str) -> None:
    healthy, damaged, other = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    _write(healthy, {KEYS[0]: 2, KEYS[1]: 1}, overwrite=False)
    _write(healthy, {KEYS[1]: 3}, overwrite=True)
    _write(damaged, {KEYS[0]: 2}, overwrite=False)
    _damage(damaged, damage)
    _write(other, {KEYS[3]: 4}, overwrite=False)
    found, aside = _many([healthy, damaged, other, tmp_path / "no table"])
    assert 1 in aside and 3 in aside  # refused (or named damaged) one by one, as alone
    assert 1 not in found and 3 not in found
    for n, path in ((0, healthy), (2, other)):  # the others are read, or left aside too
        assert n in aside or found[n] == _deltas(path)
    if damage in ("deletion vector", "stats", *NEW_DAMAGE):  # every line parses: refused alone
        assert aside == [1, 3]  # the others read (a line cut short leaves its batch aside)


def test_the_store_reads_tables_together_as_one_by_one(tmp_path: Path) -> None:
    """Rows and missing files per partition of several tables (one deleted data file, one
    table in partition folders, one whose log is read from a checkpoint, one not there) equal
    what the store says table by table."""
    store = DeltaStore(tmp_path / "lake")
    _write(store.path("x/one"), {KEYS[0]: 2, KEYS[1]: 1}, overwrite=False)
    _write(store.path("x/one"), {KEYS[1]: 3}, overwrite=True)
    _write(store.path("two"), {KEYS[2]: 1, KEYS[3]: 2}, overwrite=False)
    DeltaTable(str(store.path("two"))).create_checkpoint()
    _write(store.path("two"), {KEYS[2]: 5}, overwrite=True)
    _write(store.path("three"), {KEYS[4]: 1}, overwrite=False)
    lost = next((store.path("x/one") / f"partition_key={KEYS[0]}").iterdir())
    lost.unlink()
    assets = ["x/one", "two", "three", "missing"]
    together = store.partition_stats_of(assets)
    expected = []
    for asset in assets:
        for row in store.partition_stats(asset).to_pylist():
            expected.append({"asset": asset, **row})
    key = lambda r: (r["asset"], r["partition_key"])  # noqa: E731
    assert sorted(together.to_pylist(), key=key) == sorted(expected, key=key)
    assert {r["partition_key"]: r["missing_files"] for r in expected if r["asset"] == "x/one"} == {
        KEYS[0]: 1,
        KEYS[1]: 0,
    }
    assert together.schema.names == ["asset", "partition_key", "rows", "missing_files"]


def test_files_at_the_top_of_the_table_are_matched_to_their_table(tmp_path: Path) -> None:
    """Two tables whose data files have the same names, at their top (no partition folders):
    a file deleted from one is missing there only."""
    store = DeltaStore(tmp_path / "lake")
    for asset in ("p", "q"):
        path = store.path(asset)
        _write(path, {KEYS[0]: 1, KEYS[1]: 2}, overwrite=False)
        log = path / "_delta_log" / "00000000000000000000.json"
        lines = []
        for line in log.read_text(encoding="utf-8").splitlines():
            action = json.loads(line)
            if "add" in action:
                name = f"f{len(lines)}.parquet"
                (path / action["add"]["path"]).rename(path / name)
                action["add"]["path"] = name
            lines.append(json.dumps(action))
        log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert sorted(p.name for p in store.path("p").glob("*.parquet")) == sorted(
        p.name for p in store.path("q").glob("*.parquet")
    )
    sorted(store.path("q").glob("*.parquet"))[0].unlink()
    found = {
        (r["asset"], r["partition_key"]): r
        for r in store.partition_stats_of(["p", "q"]).to_pylist()
    }
    assert sum(r["missing_files"] for k, r in found.items() if k[0] == "p") == 0
    assert sum(r["missing_files"] for k, r in found.items() if k[0] == "q") == 1
    assert {k: r["rows"] for k, r in found.items()} == {
        ("p", KEYS[0]): 1,
        ("p", KEYS[1]): 2,
        ("q", KEYS[0]): 1,
        ("q", KEYS[1]): 2,
    }


def test_files_kept_from_a_batch_are_given_only_while_the_log_is_unchanged(
    tmp_path: Path,
) -> None:
    """A planner asks a batch's stats, then its files: the files read for the stats are given
    again, but not once the table has a new commit or was made again."""
    store = DeltaStore(tmp_path / "lake")
    _write(store.path("a"), {KEYS[0]: 2, KEYS[1]: 1}, overwrite=False)
    _write(store.path("b"), {KEYS[2]: 1}, overwrite=False)

    def fresh(asset: str) -> list[tuple[str, str]]:
        return sorted((p, k) for p, k, _ in _deltas(store.path(asset)))

    def given(asset: str) -> list[tuple[str, str]]:
        files = store.partition_files(asset)
        paths, keys = files["path"].to_pylist(), files["partition_key"].to_pylist()
        return sorted(zip(paths, keys, strict=True))

    store.partition_stats_of(["a", "b"])
    assert store._kept_files("a") is not None
    assert given("a") == fresh("a") and given("b") == fresh("b")
    _write(store.path("a"), {KEYS[1]: 4}, overwrite=True)  # a new commit
    assert store._kept_files("a") is None
    assert given("a") == fresh("a")
    store.partition_stats_of(["a", "b"])
    shutil.rmtree(store.path("b"))  # made again, with as many commits
    _write(store.path("b"), {KEYS[3]: 2}, overwrite=False)
    assert store._kept_files("b") is None
    assert given("b") == fresh("b") == sorted((p, KEYS[3]) for p, _ in fresh("b"))
    store.release(["a"])
    assert store._kept_files("a") is None


@pytest.mark.parametrize("writes", [1, 5])
def test_a_deleted_file_is_found_in_folders_of_one_file_or_of_several(
    tmp_path: Path, writes: int
) -> None:
    """Partition folders holding one file each (each file asked for) or several (each folder
    listed): a deleted file is missing either way, in its partition only."""
    store = DeltaStore(tmp_path / "lake")
    for _ in range(writes):
        _write(store.path("t"), {KEYS[0]: 1, KEYS[1]: 2}, overwrite=False)
    folder = store.path("t") / f"partition_key={KEYS[1]}"
    sorted(folder.iterdir())[0].unlink()
    found = {r["partition_key"]: r for r in store.partition_stats_of(["t"]).to_pylist()}
    assert {k: r["missing_files"] for k, r in found.items()} == {KEYS[0]: 0, KEYS[1]: 1}
    assert {k: r["rows"] for k, r in found.items()} == {KEYS[0]: writes, KEYS[1]: 2 * writes}
    assert store.missing_files("t") == {KEYS[1]: 1}


def test_a_log_naming_its_files_by_absolute_path_finds_them(tmp_path: Path) -> None:
    """Data files named by absolute path in the log (no ``file://``): present where they are,
    one missing when deleted — not every file 'gone' because its path was put after the
    table's own folder."""
    store = DeltaStore(tmp_path / "lake")
    table = store.path("t")
    _write(table, {KEYS[0]: 1, KEYS[1]: 2}, overwrite=False)
    commit = table / "_delta_log" / f"{0:020d}.json"
    actions = [json.loads(line) for line in commit.read_text().splitlines() if line]
    for action in actions:
        if "add" in action:
            action["add"]["path"] = str(table / action["add"]["path"])
    commit.write_text("".join(json.dumps(a) + "\n" for a in actions))
    found = {
        r["partition_key"]: r["missing_files"] for r in store.partition_stats_of(["t"]).to_pylist()
    }
    assert found == {KEYS[0]: 0, KEYS[1]: 0}
    next((table / f"partition_key={KEYS[1]}").iterdir()).unlink()
    store.release(["t"])
    found = {
        r["partition_key"]: r["missing_files"] for r in store.partition_stats_of(["t"]).to_pylist()
    }
    assert found == {KEYS[0]: 0, KEYS[1]: 1}


class _OlderStore:
    """A store written before ``partition_stats_of``: everything but that, from a real one."""

    def __init__(self, store: DeltaStore) -> None:
        self._store = store

    def __getattr__(self, name: str) -> object:
        if name == "partition_stats_of":
            raise AttributeError(name)
        return getattr(self._store, name)


def test_a_store_without_the_batched_read_is_read_table_by_table(tmp_path: Path) -> None:
    store = DeltaStore(tmp_path / "lake")
    _write(store.path("a"), {KEYS[0]: 2}, overwrite=False)
    _write(store.path("b"), {KEYS[1]: 1, KEYS[2]: 3}, overwrite=False)
    source = SimpleNamespace(store=_OlderStore(store))
    older = store_table(source, ["a", "b"])  # type: ignore[arg-type]
    assert older.to_pylist() == store.partition_stats_of(["a", "b"]).to_pylist()


#: run in a fresh interpreter: the stats of the tables named in argv[2:] of the store at
#: argv[1], as JSON, then whether ``pyarrow.compute`` was imported
_STATS_ALONE = """
import json, sys
from backfiller.store.delta import DeltaStore
store = DeltaStore(sys.argv[1])
found = store.partition_stats_of(sys.argv[2:]).to_pylist()
print(json.dumps({"stats": found, "compute": "pyarrow.compute" in sys.modules}))
"""


@pytest.mark.slow
def test_the_stats_of_tables_are_read_without_pyarrow_compute(tmp_path: Path) -> None:
    """``status`` reads the stats of its tables without importing ``pyarrow.compute`` (some
    30 ms at start-up): Arrow carries the logs and the files, DuckDB computes. Tables read
    together, one read from a checkpoint, one with a deleted file, one whose log the reader
    refuses (asked of Delta), in a fresh interpreter."""
    store = DeltaStore(tmp_path / "lake")
    _write(store.path("plain"), {KEYS[0]: 2, KEYS[1]: 1}, overwrite=False)
    _write(store.path("plain"), {KEYS[1]: 3}, overwrite=True)
    _write(store.path("checkpointed"), {KEYS[2]: 1, KEYS[3]: 2}, overwrite=False)
    DeltaTable(str(store.path("checkpointed"))).create_checkpoint()
    _write(store.path("gone"), {KEYS[4]: 1}, overwrite=False)
    next((store.path("gone") / f"partition_key={KEYS[4]}").iterdir()).unlink()
    _write(store.path("indented"), {KEYS[0]: 3}, overwrite=False)
    log = store.path("indented") / "_delta_log" / f"{0:020d}.json"
    log.write_text("".join(f"  {line}\n" for line in log.read_text().splitlines()))
    with pytest.raises(UnreadableLog):  # a line not opening with its brace: asked of Delta
        read_add_actions(_reader(log.parent), [log.name], "partition_key")
    assets = ["plain", "checkpointed", "gone", "indented", "missing"]
    expected = store.partition_stats_of(assets).to_pylist()
    source = str(Path(backfiller.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([source, os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run(
        [sys.executable, "-c", _STATS_ALONE, str(tmp_path / "lake"), *assets],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    found = json.loads(run.stdout)
    assert found["stats"] == expected
    assert {(r["asset"], r["partition_key"]): r["missing_files"] for r in expected} == {
        ("checkpointed", KEYS[2]): 0,
        ("checkpointed", KEYS[3]): 0,
        ("gone", KEYS[4]): 1,
        ("indented", KEYS[0]): 0,
        ("plain", KEYS[0]): 0,
        ("plain", KEYS[1]): 0,
    }
    assert found["compute"] is False
