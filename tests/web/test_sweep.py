"""The background check of large tables' data folders (:mod:`backfiller.web.sweep`): a
request does not stat them; a data file deleted behind the log's back is seen once a sweep
after the deletion has ended — by the background thread on its own — and the page is then
a cold server's; a folder changed a moment before a sweep is not trusted; the thread ends
with the server."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_cache import DAY, Served, _age, _delete_a_data_file, _delete_a_report, tables_read
from web_project import RAW, build_web_project

from backfiller.planning import identity
from backfiller.store.base import PARTITION_COLUMN
from backfiller.web import sweep
from backfiller.web.sweep import FolderSweep


@pytest.fixture
def swept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    """A served project whose every table counts as large, its background thread idle: the
    tests sweep when they choose (and a stamp not taken yet is taken by the request)."""
    monkeypatch.setattr(sweep, "SWEPT_FOLDERS", 0)
    monkeypatch.setattr(FolderSweep, "_run", lambda self: self._stop.wait())
    web = build_web_project(tmp_path / "omni", {})
    _age(web.root)
    served = Served(web.root, web.environ)
    with served.client:
        yield served


def _later(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stamps' clock moved past the racy window (a change now is then settled)."""
    moved = time.time_ns() + identity.RACY_NS + 1_000_000_000
    monkeypatch.setattr(identity, "now_ns", lambda: moved)


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    calls: list[Any] = []
    real = identity.folders_stamp

    def counted(table: Path, folders: Any) -> identity.Stamp:
        calls.append(table)
        return real(table, folders)

    monkeypatch.setattr(identity, "folders_stamp", counted)
    return calls


def test_a_large_tables_folders_are_stamped_after_its_first_classification_not_during_it(
    swept: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _counting(monkeypatch)
    first = swept.page()
    assert swept.cache.classified == 2 and calls == []  # classified; left to the sweep
    assert swept.page() == first
    assert swept.cache.classified == 0  # kept: the next request took the stamps itself
    assert len(calls) == 2  # one per table (no thread took them here)
    assert swept.page() == first and len(calls) == 2  # and then used them


@pytest.mark.slow
def test_what_was_read_of_a_large_table_is_reused_once_its_folders_are_stamped(
    swept: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read under a log new to the server, a large table's statistics wait for its folders'
    stamp (the next request takes it here); an asset then classified again for its reports
    alone does not read its table again, and a sweep that sees a deleted file has it read."""
    swept.page()
    swept.page()  # the folders stamped: what the first request read is kept under them
    asked = tables_read(monkeypatch)
    _delete_a_report(swept)
    page = swept.page()
    assert swept.cache.classified == 1 and asked == []
    assert page == swept.cold()
    asked.clear()
    _delete_a_data_file(swept)
    _later(monkeypatch)
    swept.cache.sweep.sweep()
    after = swept.page()
    assert asked == [RAW]  # that table read again, alone
    assert after == swept.cold() != page


@pytest.mark.slow
def test_a_request_does_not_stat_a_large_tables_folders_and_a_sweep_sees_a_deleted_file(
    swept: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = swept.page()
    assert swept.page() == before and swept.cache.classified == 0  # kept
    calls = _counting(monkeypatch)
    _delete_a_data_file(swept)
    _later(monkeypatch)
    assert swept.page() == before  # the last sweep is from before the deletion
    assert swept.cache.classified == 0 and calls == []  # and no folder was stat'ed
    swept.cache.sweep.sweep()
    assert len(calls) == 2  # both tables' folders, by the sweep
    after = swept.page()
    assert swept.cache.classified >= 1
    assert after != before and after == swept.cold()
    assert "missing_partition" in swept.client.get(f"/api/?start={DAY}&end={DAY}").text


@pytest.mark.slow
def test_the_background_thread_sweeps_on_its_own_and_ends_with_the_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sweep, "SWEPT_FOLDERS", 0)
    monkeypatch.setattr(sweep, "PAUSE_S", 0.05)
    web = build_web_project(tmp_path / "omni", {})
    _age(web.root)
    served = Served(web.root, web.environ)
    with served.client:
        before = served.page()
        _delete_a_data_file(served)
        _later(monkeypatch)
        done = served.cache.sweep.sweeps
        for _ in range(6000):  # one may have begun before the deletion: two more
            if served.cache.sweep.sweeps >= done + 2:
                break
            time.sleep(0.05)
        assert served.page() == served.cold() != before
        thread = served.cache.sweep.thread
        assert thread is not None and thread.is_alive()
    thread.join(timeout=60)  # the server stopped: the thread ends at its next pause
    assert not thread.is_alive()


@pytest.mark.slow
def test_a_folder_changed_a_moment_before_its_sweep_is_not_trusted(
    swept: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    swept.page()
    _delete_a_data_file(swept)  # its folder changed now
    changed = (swept.project.store.path(RAW) / f"{PARTITION_COLUMN}={DAY}").stat().st_mtime_ns
    monkeypatch.setattr(identity, "now_ns", lambda: changed + 1_000_000)
    swept.cache.sweep.sweep()
    swept.page()
    assert swept.cache.classified == 1  # the asset whose folder changed: not kept
    swept.page()
    assert swept.cache.classified == 1  # nor the next time, until a sweep once settled
    _later(monkeypatch)
    swept.cache.sweep.sweep()
    swept.page()
    assert swept.cache.classified == 1  # classified once more under the settled stamp
    assert swept.page() == swept.cold()
    assert swept.cache.classified == 0  # and now kept


def test_a_table_whose_folders_are_new_is_stamped_at_once(tmp_path: Path) -> None:
    table = tmp_path / "t"
    (table / "p=1").mkdir(parents=True)
    (table / "p=2").mkdir()
    aged = time.time() - 3600
    for path in (table / "p=1", table / "p=2", table):
        os.utime(path, (aged, aged))
    found = FolderSweep()
    try:
        first = ("p=1",)
        stamp = found.stamp("a", table, first)
        assert stamp == identity.folders_stamp(table, first)
        assert found.stamp("a", table, first) is stamp  # kept: no stat
        other = ("p=1", "p=2")  # another log lists other folders: stamped now
        assert found.stamp("a", table, other) == identity.folders_stamp(table, other)
    finally:
        found.stop()


def test_a_table_the_sweep_cannot_stamp_is_stamped_by_the_next_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file-system error in the background (a folder unreadable for a moment) does not end
    the thread, nor leave the table's last stamp trusted: the next request stamps it itself
    and sees a data file deleted since."""
    table = _aged_table(tmp_path)
    found = FolderSweep()
    try:
        first = found.stamp("a", table, FOLDERS)
        real = identity.folders_stamp

        def failing(at: Path, folders: Any) -> identity.Stamp:
            raise PermissionError(13, "Permission denied", str(at))

        monkeypatch.setattr(identity, "folders_stamp", failing)
        found.sweep()
        assert found.waiting == 1  # left for the next request
        monkeypatch.setattr(identity, "folders_stamp", real)
        next((table / FOLDERS[1]).iterdir()).unlink()
        _later(monkeypatch)
        assert found.stamp("a", table, FOLDERS) not in (None, first)
    finally:
        found.stop()


def test_the_background_thread_outlives_an_error_and_once_stopped_stamps_are_taken_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sweep, "PAUSE_S", 0.01)
    table = _aged_table(tmp_path)
    found = FolderSweep()
    first = found.stamp("a", table, FOLDERS)  # starts the thread
    real = identity.folders_stamp
    failures = [TimeoutError("a sweep that fails as no sweep should")]

    def once(at: Path, folders: Any) -> identity.Stamp:
        if failures and threading.current_thread() is found.thread:
            raise failures.pop()
        return real(at, folders)

    monkeypatch.setattr(identity, "folders_stamp", once)
    monkeypatch.setattr(FolderSweep, "sweep", _raising_once(FolderSweep.sweep))
    done = found.sweeps
    for _ in range(6000):
        if found.sweeps >= done + 2:
            break
        time.sleep(0.01)
    thread = found.thread
    assert thread is not None and thread.is_alive()  # it went on
    found.stop()
    thread.join(timeout=60)
    next((table / FOLDERS[0]).iterdir()).unlink()
    _later(monkeypatch)
    assert found.stamp("a", table, FOLDERS) not in (None, first)  # taken at the request


FOLDERS = ("p=1", "p=2")


def _aged_table(tmp_path: Path) -> Path:
    """A table folder with a data file in each of :data:`FOLDERS`, dated an hour back."""
    table = tmp_path / "t"
    aged = time.time() - 3600
    for name in FOLDERS:
        (table / name).mkdir(parents=True)
        (table / name / "part-0.parquet").write_bytes(b"x")
        os.utime(table / name, (aged, aged))
    os.utime(table, (aged, aged))
    return table


def _raising_once(real: Any) -> Any:
    """``FolderSweep.sweep`` that raises once, from the background thread (an error no
    sweep expects), then sweeps."""
    raised: list[bool] = []

    def sweep_once(self: FolderSweep, *, new_only: bool = False) -> None:
        if not raised and threading.current_thread() is self.thread:
            raised.append(True)
            raise RuntimeError("an unexpected error in a sweep")
        real(self, new_only=new_only)

    return sweep_once
