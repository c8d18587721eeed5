"""The overview's states kept on disk between two servers (:mod:`backfiller.web.kept`): the
next server serves an unchanged project's overview from the file without classifying it, and
is the page a cold server gives; each kind of change made while no server ran is seen on its
first page — but a data file deleted behind its log's back, seen once the restored table's
data folders are stamped in the background (the trade-off the README states); a file of other
code, a damaged one, or one that cannot be written costs only the head start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from test_cache import CHANGES, DAY, Served, _age
from web_project import RAW, SILVER, build_web_project

from backfiller.planning import identity
from backfiller.planning.gaps import PartitionState
from backfiller.planning.ranges import KeyRange
from backfiller.web import kept as on_disk
from backfiller.web import sweep
from backfiller.web.app import create_app
from backfiller.web.cache import StateCache

# -- the file ---------------------------------------------------------------------------------

_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4).map(tuple),
    max_leaves=20,
)


@given(_values, _values)
def test_a_digest_tells_values_apart_and_not_how_they_are_shared(
    one: object, other: object
) -> None:
    shared = (one, one)
    copied = (one, _copy(one))
    assert on_disk.digest(shared) == on_disk.digest(copied)  # the same value, other objects
    assert (on_disk.digest(one) == on_disk.digest(other)) == (_typed(one) == _typed(other))


def _copy(value: object) -> object:
    if isinstance(value, tuple):
        return tuple(_copy(v) for v in value)
    if isinstance(value, str):
        return "".join(list(value))  # another str object of the same text
    return value


def _typed(value: object) -> object:
    """``value`` with its types spelled out (``1 == True`` in Python, not in a digest)."""
    if isinstance(value, tuple):
        return ("tuple", tuple(_typed(v) for v in value))
    return (type(value).__name__, value)


@pytest.mark.slow
def test_a_digest_is_the_same_in_another_process() -> None:
    value = (("sqlite", "/tmp/x", 5, 7), (("a.json", (1, 2, 3)),), None, ("é", True, -1))
    code = f"from backfiller.web.kept import digest; print(digest({value!r}))"
    env = {**os.environ, "PYTHONHASHSEED": "123"}  # another seed: strings hash otherwise
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == on_disk.digest(value)


def _ranges(asset: str) -> tuple[KeyRange[PartitionState], ...]:
    return (
        KeyRange(asset, "2026-04-01", "2026-04-13", 13, PartitionState.MATERIALIZED),
        KeyRange(asset, "2026-04-14", "2026-04-14", 1, PartitionState.CHECK_FAILED),
    )


def test_the_file_reads_back_what_was_written_with_the_same_code(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "kept.json"
    windows = {"w1": {RAW: on_disk.Kept("h", "f", _ranges(RAW))}}
    assert on_disk.save(path, "code-1", windows)
    assert on_disk.load(path, "code-1") == windows
    assert on_disk.load(path, "code-2") == {}  # other code: nothing
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["kept.json"]  # no temporary left


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        "[]",
        json.dumps({"format": "other/1", "code": "c", "windows": {}}),
        json.dumps({"format": on_disk.FORMAT, "code": "c", "windows": {"w": {"a": {}}}}),
        json.dumps(
            {
                "format": on_disk.FORMAT,
                "code": "c",
                "windows": {"w": {"a": {"head": "h", "folders": "f", "ranges": [[1, 2]]}}},
            }
        ),
        json.dumps(
            {
                "format": on_disk.FORMAT,
                "code": "c",
                "windows": {
                    "w": {"a": {"head": "h", "folders": "f", "ranges": [["x", "y", 1, "bad"]]}}
                },
            }
        ),
        json.dumps({"format": on_disk.FORMAT, "code": "c", "windows": []}),
        json.dumps({"format": on_disk.FORMAT, "code": "c", "windows": {"w": ["a"]}}),
    ],
    ids=[
        "not json",
        "a list",
        "another format",
        "no ranges",
        "a short range",
        "no state",
        "windows a list",
        "assets a list",
    ],
)
def test_a_damaged_file_reads_as_nothing(tmp_path: Path, text: str) -> None:
    path = tmp_path / "kept.json"
    path.write_text(text, "utf-8")
    assert on_disk.load(path, "c") == {}
    assert on_disk.load(tmp_path / "missing.json", "c") == {}


def test_a_file_that_cannot_be_written_is_reported_not_raised(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("", "utf-8")
    assert not on_disk.save(blocker / "kept.json", "c", {})


def test_each_project_folder_has_its_file_in_the_users_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg")}
    one = on_disk.default_path(tmp_path / "p1", env)
    assert one is not None and one.parent == tmp_path / "xdg" / "backfiller" / "ui"
    assert one == on_disk.default_path(tmp_path / "p1" / ".." / "p1", env)  # the same folder
    assert one != on_disk.default_path(tmp_path / "p2", env)
    home = on_disk.default_path(tmp_path, {})
    assert home is not None and home.is_relative_to(Path.home() / ".cache")

    def homeless() -> Path:
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(Path, "home", staticmethod(homeless))
    assert on_disk.default_path(tmp_path, {}) is None  # kept in memory only


def test_the_code_digest_moves_with_a_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import backfiller

    package = tmp_path / "backfiller"
    package.mkdir()
    module = package / "__init__.py"
    module.write_text("", "utf-8")
    monkeypatch.setattr(backfiller, "__file__", str(module))
    before = on_disk.code_digest()
    assert on_disk.code_digest() == before
    (package / "planning.py").write_text("x = 1\n", "utf-8")
    assert on_disk.code_digest() != before


# -- two servers -----------------------------------------------------------------------------


def _settle(cache: StateCache) -> None:
    """Wait for a server's background work: the restored tables' data folders told, and the
    large tables' folders stamped."""
    for thread in cache.restoring:
        thread.join()
    while cache.sweep.waiting:
        time.sleep(0.01)


def _later(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stamps' clock moved past :data:`~backfiller.planning.identity.RACY_NS`: what
    changed just now is settled (its stamp's value, not its age, tells the change)."""
    moved = time.time_ns() + identity.RACY_NS + 1_000_000_000
    monkeypatch.setattr(identity, "now_ns", lambda: moved)


def _first_server(
    tmp_path: Path, kept: Path, prepare: Callable[[Served], None] | None = None
) -> Served:
    """A server of the web project (``prepare``: made before its files are aged) that has
    served its overview and written ``kept``."""
    web = build_web_project(tmp_path / "omni", {})
    if prepare is not None:
        prepare(Served(web.root, web.environ))
    _age(web.root)
    first = Served(web.root, web.environ, kept)
    with first.client:
        first.page()
        _settle(first.cache)
        first.page()  # keys waiting for a stamp (large tables) are taken: the file written
    assert kept.is_file()
    return first


@pytest.mark.slow
def test_an_unchanged_project_is_served_from_disk_by_the_next_server(tmp_path: Path) -> None:
    kept = tmp_path / "cache" / "kept.json"
    first = _first_server(tmp_path, kept)
    written = kept.read_bytes()
    before = first.page()
    nxt = first.again()
    with nxt.client:
        page = nxt.page()
        assert nxt.cache.restored == 2 and nxt.cache.classified == 0  # both from the file
        assert page == before == first.cold()
        _settle(nxt.cache)
        assert nxt.page() == page
        assert nxt.cache.restored == 0 and nxt.cache.classified == 0  # confirmed, in memory
    assert kept.read_bytes() == written  # the same digests: not written again


@pytest.mark.slow
def test_a_project_whose_manifests_are_not_needed_is_served_without_reading_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = tmp_path / "kept.json"
    first = _first_server(tmp_path, kept)
    cold = first.cold()
    nxt = first.again()
    read: list[int] = []
    real = type(nxt.project).load_manifests
    monkeypatch.setattr(
        type(nxt.project), "load_manifests", lambda self: read.append(1) or real(self)
    )
    with nxt.client:
        assert nxt.page() == cold
        assert read == []  # every range from the file
        nxt.page(f"/assets/{RAW}/partitions/{DAY}/")  # a page that needs them reads them
        assert read == [1]


@pytest.mark.slow
@pytest.mark.parametrize("later", [False, True], ids=["at once", "once settled"])
@pytest.mark.parametrize("kind", list(CHANGES))
def test_a_change_made_while_no_server_ran_is_seen_by_the_next(
    tmp_path: Path, kind: str, later: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    change = CHANGES[kind]
    kept = tmp_path / "kept.json"
    first = _first_server(tmp_path, kept, change.prepare)
    before = first.page()
    change.make(first)
    if later:
        _later(monkeypatch)
    cold = first.cold()
    assert cold != before
    nxt = first.again()
    with nxt.client:
        page = nxt.page()
        if kind == "a deleted data file":  # its log unchanged: served from the file ...
            assert page == before
            _settle(nxt.cache)  # ... until its data folders are told and stamped
            page = nxt.page()
            assert nxt.cache.classified >= 1
        assert page == cold


@pytest.mark.slow
def test_without_the_folders_check_a_file_deleted_between_servers_is_missed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What makes the test above depend on the folders' digest."""
    kept = tmp_path / "kept.json"
    first = _first_server(tmp_path, kept)
    before = first.page()
    CHANGES["a deleted data file"].make(first)
    _later(monkeypatch)
    written = on_disk.load(kept, on_disk.code_digest())
    [entries] = written.values()
    monkeypatch.setattr(
        StateCache, "_digests", staticmethod(lambda key: (entries[RAW].head, entries[RAW].folders))
    )
    nxt = first.again()
    with nxt.client:
        nxt.page()
        _settle(nxt.cache)
        assert nxt.page() == before != first.cold()


@pytest.mark.slow
def test_a_ledger_change_has_the_asset_and_what_reads_it_classified_the_rest_restored(
    tmp_path: Path,
) -> None:
    kept = tmp_path / "kept.json"
    first = _first_server(tmp_path, kept)
    with first.load().ledger() as ledger:  # the downstream asset's records alone
        ledger.partitions.mark_stale(SILVER, DAY, run_id=None, operator="t", reason="why")
    nxt = first.again()
    with nxt.client:
        assert nxt.page() == first.cold()
        assert (nxt.cache.restored, nxt.cache.classified) == (1, 1)


@pytest.mark.slow
def test_large_tables_are_stamped_in_the_background_after_a_restore(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sweep, "SWEPT_FOLDERS", 1)  # every table is a large one
    kept = tmp_path / "kept.json"
    first = _first_server(tmp_path, kept)
    nxt = first.again()
    with nxt.client:
        assert nxt.page() == first.cold()
        assert nxt.cache.restored == 2
        _settle(nxt.cache)
        swept = nxt.cache.sweep
        assert swept.thread is not None and swept.thread.is_alive()  # sweeping them on
        assert nxt.page() == first.cold()
        assert (nxt.cache.restored, nxt.cache.classified) == (0, 0)
    assert swept.stopped


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["garbage", "other code"])
def test_a_damaged_file_or_one_of_other_code_costs_only_the_head_start(
    tmp_path: Path, damage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = tmp_path / "kept.json"
    first = _first_server(tmp_path, kept)
    if damage == "garbage":
        kept.write_bytes(b"\x00garbage")
    else:
        monkeypatch.setattr(on_disk, "code_digest", lambda: "other code")
    nxt = first.again()
    with nxt.client:
        assert nxt.page() == first.cold()
        assert (nxt.cache.restored, nxt.cache.classified) == (0, 2)
    assert on_disk.load(kept, on_disk.code_digest()) != {}  # written anew


@pytest.mark.slow
def test_a_file_that_cannot_be_written_leaves_the_server_serving(tmp_path: Path) -> None:
    web = build_web_project(tmp_path / "omni", {})
    _age(web.root)
    blocker = tmp_path / "a-file"
    blocker.write_text("", "utf-8")
    served = Served(web.root, web.environ, blocker / "kept.json")
    with served.client:
        assert served.page() == served.cold()
        assert served.page() == served.cold()


def test_the_ui_command_keeps_its_states_in_the_users_cache_unless_told_not_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn
    from click.testing import CliRunner

    from backfiller.cli.main import cli

    web = build_web_project(tmp_path / "omni", {})
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    apps: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: apps.append(app))
    for flag, expected in (
        ([], on_disk.default_path(web.root)),
        (["--no-state-cache"], None),
    ):
        result = CliRunner().invoke(cli, ["--project", str(web.root), "ui", *flag])
        assert result.exit_code == 0, result.output
        states = apps[-1].state.states  # type: ignore[attr-defined]
        assert states.kept_path == expected
    found = on_disk.default_path(web.root)
    assert found is not None and found.is_relative_to(tmp_path / "xdg")


def test_serving_with_the_file_writes_only_the_file(tmp_path: Path) -> None:
    from conftest import tree_fingerprint

    web = build_web_project(tmp_path / "omni", {})
    _age(web.root)
    before = tree_fingerprint(web.root)
    kept = tmp_path / "cache" / "kept.json"
    with TestClient(create_app(web.load(), kept_path=kept)) as client:
        assert client.get("/").status_code == 200
    assert tree_fingerprint(web.root) == before
    assert [p.name for p in kept.parent.iterdir()] == ["kept.json"]


@pytest.mark.slow
def test_stopping_the_server_waits_for_every_restore_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each request that restores assets starts a thread reading their logs; the server's
    stop waits for all of them (a thread left in a read as the process exits may abort it)."""
    kept = tmp_path / "kept.json"
    other = "/?start=2026-04-01&end=2026-04-30"
    first = _first_server(tmp_path, kept)
    with first.client:
        first.page(other)  # a second window kept
    real = StateCache._derive
    calls: list[list[str]] = []

    def slow(self: StateCache, names: list[str]) -> None:
        calls.append(names)
        if len(calls) == 1:
            time.sleep(1.0)  # the first thread's large table takes a while, the next none
        real(self, names)

    monkeypatch.setattr(StateCache, "_derive", slow)
    nxt = first.again()
    with nxt.client:
        nxt.page()
        monkeypatch.setattr(nxt.cache, "_deriving", set())  # the other window's, given again
        nxt.page(other)
        threads = list(nxt.cache.restoring)
        assert len(threads) == 2 and threads[0].is_alive()  # the first still reading
    assert not any(t.is_alive() for t in threads)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["folders not told", "log unreadable"])
def test_a_restored_table_whose_folders_cannot_be_told_is_classified_again(
    tmp_path: Path, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its data folders can never be stamped (a log naming files by absolute path, or one
    that cannot be read): its kept ranges are served until the background says so, then
    classified again — not trusted for good."""
    from backfiller.store import DeltaStore

    kept = tmp_path / "kept.json"
    first = _first_server(tmp_path, kept)
    cold = first.cold()
    if how == "folders not told":
        monkeypatch.setattr(identity, "data_folders", lambda paths: None)
    else:

        def unreadable(self: DeltaStore, asset: str) -> object:
            raise OSError("a log that cannot be read")

        monkeypatch.setattr(DeltaStore, "partition_files", unreadable)
    nxt = first.again()
    with nxt.client:
        assert nxt.page() == cold
        assert nxt.cache.restored == 2
        _settle(nxt.cache)
        monkeypatch.undo()
        assert nxt.page() == cold
        assert nxt.cache.restored == 0 and nxt.cache.classified == 2


@pytest.mark.slow
def test_an_asset_whose_head_moved_has_no_log_read_for_a_restore(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = tmp_path / "kept.json"
    first = _first_server(tmp_path, kept)
    CHANGES["an edited manifest"].make(first)  # every asset's head moves
    _later(monkeypatch)
    nxt = first.again()
    with nxt.client:
        assert nxt.page() == first.cold()
        assert (nxt.cache.restored, nxt.cache.classified) == (0, 2)
        assert nxt.cache.restoring == []  # no thread reading logs for nothing


@pytest.mark.slow
def test_the_windows_not_asked_for_stay_in_the_file(tmp_path: Path) -> None:
    """A server asked for one window writes the file again (an asset changed) and keeps the
    other window the file held: the server after it serves that one from the file."""
    kept = tmp_path / "kept.json"
    other = "/?start=2026-04-01&end=2026-04-30"
    first = _first_server(tmp_path, kept)
    with first.client:
        first.page(other)
    windows = set(on_disk.load(kept, on_disk.code_digest()))
    assert len(windows) == 2
    with first.load().ledger() as ledger:  # the downstream asset's records move
        ledger.partitions.mark_stale(SILVER, DAY, run_id=None, operator="t", reason="why")
    second = first.again()
    with second.client:
        second.page()
        assert second.cache.classified == 1
    assert set(on_disk.load(kept, on_disk.code_digest())) == windows
    third = first.again()
    with third.client:
        assert third.page(other) == first.cold(other)
        assert third.cache.restored == 1  # RAW's, as the first server kept it


@pytest.mark.slow
def test_a_change_of_the_projects_assets_module_is_seen_by_the_next_server(
    tmp_path: Path,
) -> None:
    """Between two servers the silver asset reads the previous day of raw (its mapping):
    what the classification takes from the project as loaded is part of every head."""
    import sys

    kept = tmp_path / "kept.json"
    first = _first_server(tmp_path, kept)
    before = first.page()
    assets = first.root / "pipelines" / "data_factory" / "assets.py"
    text = assets.read_text("utf-8")
    assert "    deps=[RAW],\n" in text
    text = text.replace(
        "    deps=[RAW],\n", "    deps=[Dependency(RAW, TimeWindowMapping.lag(1))],\n"
    ).replace(
        "from backfiller import AssetContext, asset, sql_asset",
        "from backfiller import AssetContext, asset, sql_asset\n"
        "from backfiller.assets import Dependency, TimeWindowMapping",
    )
    assets.write_text(text, "utf-8")
    for name in [m for m in sys.modules if m == "pipelines" or m.startswith("pipelines.")]:
        del sys.modules[name]  # imported afresh, as by a new process
    cold = first.cold()
    assert cold != before
    nxt = first.again()
    with nxt.client:
        assert nxt.page() == cold
        assert nxt.cache.restored == 0


@pytest.mark.slow
def test_a_project_whose_mark_is_not_the_same_in_another_process_is_not_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(on_disk, "project_mark", lambda project: None)
    web = build_web_project(tmp_path / "omni", {})
    _age(web.root)
    kept = tmp_path / "kept.json"
    served = Served(web.root, web.environ, kept)
    with served.client:
        served.page()
        assert served.page() == served.cold() and served.cache.classified == 0  # in memory
    assert not kept.exists()


def test_the_project_mark_moves_with_what_a_classification_takes_from_the_project(
    tmp_path: Path,
) -> None:
    import dataclasses

    from backfiller.assets import AssetGraph
    from backfiller.mappings import TimeWindowMapping

    web = build_web_project(tmp_path / "omni", {})
    project = web.load()
    mark = on_disk.project_mark(project)
    assert mark is not None and mark == on_disk.project_mark(web.load())
    graph = project.graph
    silver = graph.get(SILVER)
    lagged = dataclasses.replace(
        silver,
        deps=tuple(dataclasses.replace(d, mapping=TimeWindowMapping.lag(1)) for d in silver.deps),
    )
    project.graph = AssetGraph(
        [lagged if a.key == SILVER else a for a in graph.assets], graph.default_scheme
    )
    assert on_disk.project_mark(project) != mark
    counted = dataclasses.replace(silver, expects_manifest_count=not silver.expects_manifest_count)
    project.graph = AssetGraph(
        [counted if a.key == SILVER else a for a in graph.assets], graph.default_scheme
    )
    assert on_disk.project_mark(project) != mark


@pytest.mark.slow
def test_a_file_that_cannot_be_written_is_tried_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    web = build_web_project(tmp_path / "omni", {})
    _age(web.root)
    blocker = tmp_path / "a-file"
    blocker.write_text("", "utf-8")
    served = Served(web.root, web.environ, blocker / "kept.json")
    with served.client, caplog.at_level("WARNING", logger="backfiller.web.kept"):
        for url in ("/", "/?start=2026-04-01&end=2026-04-30", "/"):
            assert served.page(url) == served.cold(url)
    assert served.cache.kept_path is None
    assert len([r for r in caplog.records if "cannot be kept" in r.getMessage()]) == 1


def test_a_mapping_class_of_the_projects_own_is_not_kept_on_disk(tmp_path: Path) -> None:
    """Its code may change between two servers while its repr stays the same."""
    import dataclasses

    from backfiller.assets import AssetGraph
    from backfiller.mappings import TimeWindowMapping

    @dataclasses.dataclass(frozen=True)
    class HouseMapping(TimeWindowMapping):
        pass

    web = build_web_project(tmp_path / "omni", {})
    project = web.load()
    assert on_disk.project_mark(project) is not None
    graph = project.graph
    silver = graph.get(SILVER)
    deps = tuple(dataclasses.replace(d, mapping=HouseMapping()) for d in silver.deps)
    house = dataclasses.replace(silver, deps=deps)
    project.graph = AssetGraph(
        [house if a.key == SILVER else a for a in graph.assets], graph.default_scheme
    )
    assert on_disk.project_mark(project) is None


@pytest.mark.slow
def test_every_kept_window_is_served_from_the_file_whenever_it_is_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A window asked after the first one's background has told the tables' folders, and one
    asked while its sources could not be identified (changed a moment ago), are served from
    the file when asked again: not dropped."""
    kept = tmp_path / "kept.json"
    other = "/?start=2026-04-01&end=2026-04-30"
    first = _first_server(tmp_path, kept)
    with first.client:
        first.page(other)
    cold, cold_other = first.cold(), first.cold(other)
    nxt = first.again()
    with nxt.client:
        with monkeypatch.context() as m:  # every stamp unsettled: nothing can be identified
            m.setattr(identity, "RACY_NS", 10 * 3600 * 1_000_000_000)
            assert nxt.page(other) == cold_other
            assert nxt.cache.classified == 2
        assert nxt.page() == cold
        assert (nxt.cache.restored, nxt.cache.classified) == (2, 0)
        _settle(nxt.cache)  # the tables' folders known: their keys are full ones now
        assert nxt.page(other) == cold_other
        assert nxt.cache.classified == 0  # the other window's kept ranges, under full keys
