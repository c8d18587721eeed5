"""The app-transaction index read from a Delta log agrees with ``deltalake``'s own
``transaction_version`` — across commits, checkpoints (single-file and the pointer to them),
incremental refreshes, and a table deleted and created again under the same path."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from fast_loop import examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backfiller.store.app_versions import AppVersions, UnreadableLog

APPS = [f"fence:2026-01-{d:02d}" for d in range(1, 8)] + ["marker:a", "marker:b"]

# one commit: the apps it records (with their versions), and whether a checkpoint follows it
COMMITS = st.lists(
    st.tuples(
        st.dictionaries(st.sampled_from(APPS), st.integers(0, 10_000), max_size=4),
        st.booleans(),
    ),
    min_size=1,
    max_size=12,
)


def _log_reader(log: Path) -> Callable[[str], bytes | None]:
    def read(name: str) -> bytes | None:
        try:
            return (log / name).read_bytes()
        except FileNotFoundError:
            return None

    return read


def _commit(path: Path, apps: dict[str, int]) -> None:
    write_deltalake(
        str(path),
        pa.table({"partition_key": ["k"], "v": [1]}),
        partition_by=["partition_key"],
        mode="append",
        commit_properties=CommitProperties(
            app_transactions=[Transaction(app_id=a, version=v) for a, v in apps.items()] or None
        ),
    )


def _expected(path: Path) -> dict[str, int]:
    table = DeltaTable(str(path))
    found = {a: table.transaction_version(a) for a in APPS}
    return {a: int(v) for a, v in found.items() if v is not None}


@pytest.mark.slow
@settings(
    max_examples=examples(25),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(commits=COMMITS, refresh_every=st.integers(1, 4))
def test_the_index_equals_deltas_answer_after_every_refresh(
    tmp_path_factory: pytest.TempPathFactory,
    commits: list[tuple[dict[str, int], bool]],
    refresh_every: int,
) -> None:
    path = tmp_path_factory.mktemp("t") / "table"
    live = AppVersions(_log_reader(path / "_delta_log"))
    for i, (apps, checkpoint) in enumerate(commits):
        _commit(path, apps)
        if checkpoint:
            DeltaTable(str(path)).create_checkpoint()
        if i % refresh_every == 0:
            live.refresh()
            assert live.versions == _expected(path)
    live.refresh()
    assert live.versions == _expected(path)
    assert live.version == DeltaTable(str(path)).version()
    # a new reader starts from the last checkpoint, if any, and reads the same
    fresh = AppVersions(_log_reader(path / "_delta_log"))
    fresh.refresh()
    assert fresh.versions == live.versions


def test_a_checkpoint_is_read_instead_of_the_commits_before_it(tmp_path: Path) -> None:
    path = tmp_path / "table"
    _commit(path, {"fence:2026-01-01": 3})
    _commit(path, {"fence:2026-01-02": 4})
    DeltaTable(str(path)).create_checkpoint()
    _commit(path, {"fence:2026-01-01": 5})
    for name in ("00000000000000000000.json", "00000000000000000001.json"):
        (path / "_delta_log" / name).unlink()  # what log clean-up leaves
    index = AppVersions(_log_reader(path / "_delta_log"))
    index.refresh()
    assert index.versions == {"fence:2026-01-01": 5, "fence:2026-01-02": 4}
    assert index.version == 2


def test_a_table_created_again_under_the_same_path_is_read_afresh(tmp_path: Path) -> None:
    path = tmp_path / "table"
    for v in range(3):
        _commit(path, {"fence:2026-01-01": v + 10})
    index = AppVersions(_log_reader(path / "_delta_log"))
    index.refresh()
    assert index.versions == {"fence:2026-01-01": 12}
    shutil.rmtree(path)
    _commit(path, {"marker:a": 1})
    index.refresh()
    assert index.versions == {"marker:a": 1} == _expected(path)
    assert index.version == 0


def test_a_commit_that_does_not_parse_is_unreadable_not_guessed(tmp_path: Path) -> None:
    path = tmp_path / "table"
    _commit(path, {"fence:2026-01-01": 1})
    log = path / "_delta_log" / "00000000000000000000.json"
    log.write_text(log.read_text(encoding="utf-8")[:-40], encoding="utf-8")
    with pytest.raises(UnreadableLog):
        AppVersions(_log_reader(path / "_delta_log")).refresh()


def test_a_v2_checkpoint_pointer_is_unreadable_not_guessed(tmp_path: Path) -> None:
    path = tmp_path / "table"
    _commit(path, {"fence:2026-01-01": 1})
    (path / "_delta_log" / "_last_checkpoint").write_text(
        '{"version": 0, "size": 3, "v2Checkpoint": {"path": "x.json"}}', encoding="utf-8"
    )
    with pytest.raises(UnreadableLog):
        AppVersions(_log_reader(path / "_delta_log")).refresh()


def test_commits_cleaned_up_behind_a_newer_checkpoint_are_read_from_that_checkpoint(
    tmp_path: Path,
) -> None:
    path = tmp_path / "table"
    _commit(path, {"fence:2026-01-01": 1})
    index = AppVersions(_log_reader(path / "_delta_log"))
    index.refresh()
    assert index.version == 0
    _commit(path, {"fence:2026-01-01": 2})
    _commit(path, {"fence:2026-01-02": 7})
    DeltaTable(str(path)).create_checkpoint()
    for name in ("00000000000000000001.json", "00000000000000000002.json"):
        (path / "_delta_log" / name).unlink()  # clean-up the index has not read past
    index.refresh()
    assert index.version == 2
    assert index.versions == {"fence:2026-01-01": 2, "fence:2026-01-02": 7}


def test_a_txn_action_without_a_version_is_unreadable_not_an_error(tmp_path: Path) -> None:
    path = tmp_path / "table"
    _commit(path, {"fence:2026-01-01": 1})
    log = path / "_delta_log" / "00000000000000000001.json"
    log.write_text('{"txn": {"appId": "fence:2026-01-01"}}\n', encoding="utf-8")
    index = AppVersions(_log_reader(path / "_delta_log"))
    with pytest.raises(UnreadableLog):
        index.refresh()
