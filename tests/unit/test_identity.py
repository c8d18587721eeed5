"""The sources' identities (:mod:`backfiller.planning.identity`): each changes with what it
stands for, stays put otherwise, and is ``None`` where it could not be trusted."""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from backfiller.ledger import SqliteLedger
from backfiller.planning import identity
from backfiller.planning.identity import RACY_NS, Stamp


def test_the_ledger_place_names_the_file_or_the_server(tmp_path: Path) -> None:
    """Which ledger: a SQLite file put in the place of another is another ledger (its events
    may be numbered as the first's were); a PostgreSQL ledger is its URL, without password."""
    path = tmp_path / "ledger.db"
    config = SimpleNamespace(ledger_url="", ledger_path=path)
    assert identity.ledger_place(config)[-1] == ("absent",)  # none yet
    SqliteLedger(path).close()
    first = identity.ledger_place(config)
    assert identity.ledger_place(config) == first
    other = tmp_path / "other.db"
    SqliteLedger(other).close()
    other.replace(path)
    assert identity.ledger_place(config) != first
    remote = SimpleNamespace(ledger_url="postgresql://ana:secret@db/ledger", ledger_path=path)
    assert "secret" not in repr(identity.ledger_place(remote))


def test_the_folders_of_data_files_and_paths_that_cannot_name_one() -> None:
    paths = ["partition_key=a/1.parquet", "partition_key=a/2.parquet", "top.parquet"]
    assert identity.data_folders(paths) == ("", "partition_key=a")
    assert identity.data_folders([]) == ()
    for odd in ("/abs/1.parquet", "file:///t/1.parquet", "s3://b/1.parquet"):
        assert identity.data_folders([*paths, odd]) is None
    encoded = ["k=2026-04-14%257Cvoice/line=voice/1.parquet", "top.parquet"]  # as deltalake
    assert identity.data_folders(encoded) == ("", "k=2026-04-14%7Cvoice/line=voice")


def test_a_table_stamp_moves_with_its_log_and_with_a_file_gone(tmp_path: Path) -> None:
    table = tmp_path / "t"
    assert identity.table_log_stamp(table) == Stamp(("log", ("absent",)))
    (table / "_delta_log").mkdir(parents=True)
    (table / "_delta_log" / f"{0:020d}.json").write_text("{}\n")
    (table / "p=1").mkdir()
    (table / "p=1" / "f.parquet").write_bytes(b"x")
    log = identity.table_log_stamp(table)
    assert log is not None
    stamp = identity.table_stamp(table, log, ["p=1"])
    assert identity.table_stamp(table, log, ["p=1"]) == stamp
    (table / "_delta_log" / f"{1:020d}.json").write_text("{}\n")
    assert identity.table_log_stamp(table) != log
    old = time.time() - 3600
    os.utime(table / "p=1", (old, old))
    aged = identity.table_stamp(table, log, ["p=1"])
    (table / "p=1" / "f.parquet").unlink()
    assert identity.table_stamp(table, log, ["p=1"]) != aged


def test_a_manifest_edited_or_added_moves_the_manifests_stamp(tmp_path: Path) -> None:
    (tmp_path / "m1.json").write_text("{}")
    first = identity.manifests_stamp(tmp_path)
    assert first is not None and identity.manifests_stamp(tmp_path) == first
    (tmp_path / "m1.json").write_text('{"a": 1}')
    second = identity.manifests_stamp(tmp_path)
    assert second != first
    (tmp_path / "m2.json").write_text("{}")
    assert identity.manifests_stamp(tmp_path) not in (first, second)
    assert identity.manifests_stamp(tmp_path / "none") is not None  # no folder: a stamp too


@pytest.mark.parametrize(
    ("age_ns", "settled"), [(RACY_NS * 2, True), (RACY_NS + 1, True), (RACY_NS, False), (0, False)]
)
def test_a_stamp_is_settled_only_when_its_newest_time_is_old_enough(
    age_ns: int, settled: bool
) -> None:
    now = 10 * RACY_NS
    assert Stamp("x", now - age_ns).settled(now) is settled


def test_object_storage_has_no_stamp() -> None:
    assert identity.folder_stamp("s3://bucket/reports") is None
    assert identity.manifests_stamp(object()) is None
