"""The server's state cache (:mod:`backfiller.web.cache`): an unchanged project's overview is
served from memory and is the page a cold server gives; each kind of change — a run recorded
in the ledger, a new Delta commit, a deleted data file, a deleted or added report, an edited
manifest, a day passing — is seen on the next request; and with the identity of that source
left out of the key, the same change is missed (so each test depends on its identity)."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import NOW, both_backends
from deltalake import DeltaTable
from fastapi.testclient import TestClient
from web_project import RAW, SILVER, build_web_project

from backfiller import FixedClock, Project, load_project
from backfiller.asset_keys import select_keys
from backfiller.dynamic import add_partition_values
from backfiller.lab.example import lay_out_example, materialize_history
from backfiller.planning import identity
from backfiller.planning.identity import Stamp
from backfiller.store import DeltaStore
from backfiller.store.base import PARTITION_COLUMN
from backfiller.web.app import create_app
from backfiller.web.cache import StateCache

#: a day both assets materialized, with its report
DAY = "2026-04-14"
#: the day × product line asset of the example's product_lines project
BY_LINE = "week06/silver/ticket_fact_by_product_line"
#: an hour before the tests: what every file of a project is dated back to, so that the
#: stamps taken of it are settled (not racily clean) and the cache keeps what it classified
_AGED = time.time() - 3600


def _age(root: Path) -> None:
    """Date every file and folder under ``root`` an hour back (folders after what is in
    them: writing into a folder moves its time)."""
    for folder, dirs, files in os.walk(root, topdown=False):
        for name in files + dirs:
            os.utime(Path(folder) / name, (_AGED, _AGED), follow_symlinks=False)
    os.utime(root, (_AGED, _AGED))


class Served:
    """A project served by one app, and a cold server's page of it for comparison."""

    def __init__(
        self,
        root: Path,
        environ: dict[str, str],
        kept_path: Path | None = None,
        clock: FixedClock | None = None,
    ) -> None:
        self.root = root
        self.environ = environ
        self.kept_path = kept_path
        self.clock = FixedClock(NOW) if clock is None else clock
        self.project = self.load()
        self.app = create_app(self.project, kept_path=kept_path)
        self.client = TestClient(self.app)

    def load(self) -> Project:
        return load_project(self.root, environ=self.environ, clock=self.clock)

    def again(self) -> Served:
        """The next server of the project: its own app, the same file of kept states, the
        same clock."""
        return Served(self.root, self.environ, self.kept_path, self.clock)

    @property
    def cache(self) -> StateCache:
        states: StateCache = self.app.state.states
        return states

    def page(self, url: str = "/") -> str:
        response = self.client.get(url)
        assert response.status_code == 200, response.text[:300]
        return response.text

    def cold(self, url: str = "/") -> str:
        """The page of a server started now (its own project, its own cache)."""
        with TestClient(create_app(load_project(self.root, environ=self.environ,
                                                clock=self.clock))) as client:  # fmt: skip
            response = client.get(url)
        assert response.status_code == 200
        return response.text


@pytest.fixture
def served(tmp_path: Path, project_environ: dict[str, str]) -> Iterator[Served]:
    web = build_web_project(tmp_path / "omni", project_environ)
    _age(web.root)
    found = Served(web.root, web.environ)
    with found.client:
        yield found


def _state(served: Served, asset: str, key: str) -> str:
    doc = served.client.get(f"/api/?start={key}&end={key}").json()
    [entry] = [a for a in doc["assets"] if a["asset"] == asset]
    [state] = entry["counts"]
    return str(state)


@pytest.mark.slow
def test_an_unchanged_project_is_served_from_memory_as_a_cold_server_serves_it(
    served: Served,
) -> None:
    first = served.page()
    assert served.cache.classified == 2  # both assets classified
    for url in ("/", "/?start=2026-04-01&end=2026-04-30", "/api/"):
        page = served.page(url)
        assert served.page(url) == page
        assert served.cache.classified == 0  # nothing changed: nothing classified
        assert served.cold(url) == page
    assert served.page() == first  # the first window is still kept
    assert served.cache.classified == 0


# -- the changes ----------------------------------------------------------------------------


def _record_a_run(served: Served) -> None:
    """The ledger alone changes: a materialized partition marked stale."""
    with served.load().ledger() as ledger:
        ledger.partitions.mark_stale(SILVER, DAY, run_id=None, operator="t", reason="upstream")


def _commit(served: Served) -> None:
    """A Delta commit that changes only the log: the day's files removed from the table
    (they stay on disk)."""
    table = served.project.store.path(RAW)
    DeltaTable(str(table)).delete(f"{PARTITION_COLUMN} = '{DAY}'")
    assert (table / f"{PARTITION_COLUMN}={DAY}").is_dir()


def _delete_a_data_file(served: Served) -> None:
    folder = served.project.store.path(RAW) / f"{PARTITION_COLUMN}={DAY}"
    for file in folder.iterdir():
        file.unlink()


def _report(served: Served) -> Path:
    path = served.project.partition_report_path(RAW, DAY)
    assert isinstance(path, Path)
    return path


def _delete_a_report(served: Served) -> None:
    _report(served).unlink()


def _add_a_report(served: Served) -> None:
    _report(served).write_text("{}\n", "utf-8")


def _edit_a_manifest(served: Served) -> None:
    """The day's expected count moves by one (its checksum with it)."""
    folder = served.project.config.manifests_dir
    assert isinstance(folder, Path)
    [path] = folder.glob("*.json")
    doc = json.loads(path.read_text("utf-8"))
    for p in doc["partitions"]:
        if p["partition_key"] == DAY:
            p["expected_record_count"] += 1
    path.write_text(json.dumps(doc, indent=2) + "\n", "utf-8")


def _pass_a_day(served: Served) -> None:
    served.clock.advance(days=1)


def _left_out(value: object) -> Callable[..., Stamp]:
    return lambda *args, **kwargs: Stamp(value)


@dataclass(frozen=True)
class Change:
    """A kind of change: how it is made, what prepares it (before the project is aged), and
    how its source's identity is left out of the key (``owner.name`` replaced)."""

    make: Callable[[Served], None]
    owner: object
    name: str
    stand_in: object
    prepare: Callable[[Served], None] | None = None


CHANGES = {
    "a run recorded in the ledger": Change(
        _record_a_run, StateCache, "_marks", lambda self, reader, names: dict.fromkeys(names)
    ),
    "a new Delta commit": Change(_commit, identity, "table_log_stamp", _left_out("log")),
    "a deleted data file": Change(
        _delete_a_data_file, identity, "table_stamp", lambda table, log, folders: log
    ),
    "a deleted report": Change(_delete_a_report, identity, "folder_stamp", _left_out("reports")),
    "an added report": Change(
        _add_a_report, identity, "folder_stamp", _left_out("reports"), prepare=_delete_a_report
    ),
    "an edited manifest": Change(
        _edit_a_manifest, identity, "manifests_stamp", _left_out("manifests")
    ),
    "a day passing": Change(_pass_a_day, StateCache, "window_of", lambda self, keys: "window"),
}


def _changed_and_served(
    tmp_path: Path,
    kind: str,
    monkeypatch: pytest.MonkeyPatch,
    *,
    left_out: bool = False,
    later: bool = False,
) -> tuple[str, str, str]:
    """The page before the change, the page the same server gives after it, and a cold
    server's. ``left_out``: the change's source left out of the key. ``later``: the page
    after the change is asked for once its stamps have settled (the stamps' clock moved on
    past :data:`~backfiller.planning.identity.RACY_NS`), so that the stamp's value — not the
    rule that a change a moment ago is never kept — is what tells the change."""
    change = CHANGES[kind]
    web = build_web_project(tmp_path / "omni", {})
    if left_out:
        monkeypatch.setattr(change.owner, change.name, change.stand_in)
    served = Served(web.root, web.environ)
    if change.prepare is not None:
        change.prepare(served)
    _age(web.root)
    with served.client:
        before = served.page()
        assert served.page() == before and served.cache.classified == 0  # kept
        change.make(served)
        if later:
            moved = time.time_ns() + identity.RACY_NS + 1_000_000_000
            monkeypatch.setattr(identity, "now_ns", lambda: moved)
        return before, served.page(), served.cold()


@pytest.mark.slow
@pytest.mark.parametrize("later", [False, True], ids=["at once", "once settled"])
@pytest.mark.parametrize("kind", list(CHANGES))
def test_each_change_is_seen_on_the_next_request(
    tmp_path: Path, kind: str, later: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    before, after, cold = _changed_and_served(tmp_path, kind, monkeypatch, later=later)
    assert after != before  # the change shows
    assert after == cold


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(CHANGES))
def test_with_its_identity_left_out_the_change_is_missed(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What makes the test above depend on each identity: without it, a stale page."""
    before, after, cold = _changed_and_served(
        tmp_path, kind, monkeypatch, left_out=True, later=True
    )
    assert cold != before
    assert after != cold


@pytest.mark.slow
@both_backends
def test_a_run_recorded_in_either_ledger_is_seen(served: Served) -> None:
    assert _state(served, SILVER, DAY) == "materialized"
    served.page()
    # kept (on PostgreSQL, a few tries: the server's own WAL — a checkpoint, autovacuum —
    # also moves the stamp, and then the page is classified again, which is only slower)
    assert any(served.page() and served.cache.classified == 0 for _ in range(5))
    _record_a_run(served)
    assert _state(served, SILVER, DAY) == "upstream_changed"  # a stale mark reads so
    assert served.page() == served.cold()


@pytest.mark.slow
def test_a_source_that_cannot_be_identified_is_classified_every_time(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(identity, "folder_stamp", lambda folder: None)  # e.g. object storage
    served.page()
    served.page()
    assert served.cache.classified == 2


@pytest.mark.slow
def test_a_change_of_one_assets_records_classifies_it_and_what_reads_it_again(
    served: Served,
) -> None:
    """The ledger's marks are per asset: a change of the downstream asset's records leaves
    the upstream one kept; a change of the upstream's also classifies what reads it (its
    state compares the upstream versions it consumed)."""
    served.page()
    assert served.page() and served.cache.classified == 0
    _record_a_run(served)  # SILVER's record, marked stale
    assert served.page() == served.cold()
    assert served.cache.classified == 1
    with served.load().ledger() as ledger:
        ledger.partitions.mark_stale(RAW, DAY, run_id=None, operator="t", reason="re-read")
    assert served.page() == served.cold()
    assert served.cache.classified == 2


def tables_read(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The assets whose Delta tables a classification reads from now on (every one is read
    through the store's ``partition_stats_of``)."""
    asked: list[str] = []
    real = DeltaStore.partition_stats_of

    def counted(self: DeltaStore, assets: Sequence[str]) -> Any:
        asked.extend(assets)
        return real(self, assets)

    monkeypatch.setattr(DeltaStore, "partition_stats_of", counted)
    return asked


@pytest.mark.slow
@pytest.mark.parametrize("later", [False, True], ids=["at once", "once settled"])
def test_an_asset_classified_again_for_its_reports_reuses_what_it_read_of_its_table(
    served: Served, monkeypatch: pytest.MonkeyPatch, later: bool
) -> None:
    """A report deleted moves the asset's report folder, not its table: the asset is
    classified again from what was read of its table before. Once its table moves too (a
    data file deleted), the table is read again. Either page is a cold server's."""
    served.page()
    asked = tables_read(monkeypatch)
    _delete_a_report(served)
    if later:
        moved = time.time_ns() + identity.RACY_NS + 1_000_000_000
        monkeypatch.setattr(identity, "now_ns", lambda: moved)
    page = served.page()
    assert served.cache.classified == 1 and asked == []  # its table not read again
    assert page == served.cold()
    asked.clear()
    _delete_a_data_file(served)
    after = served.page()
    assert asked == [RAW]  # now it is, that table alone
    assert after != page and after == served.cold()


@pytest.mark.slow
def test_a_source_changed_a_moment_ago_is_not_kept(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Racily clean: a report folder written now may change again within its clock's tick
    without its time moving, so what was classified from it is not kept. (The clock the
    stamps are taken by is held a millisecond after the change, however slow the machine.)"""
    served.page()
    _delete_a_report(served)
    changed = _report(served).parent.stat().st_mtime_ns
    monkeypatch.setattr(identity, "now_ns", lambda: changed + 1_000_000)
    served.page()
    assert served.cache.classified == 1  # only the asset whose folder changed
    served.page()
    assert served.cache.classified == 1  # and again: its stamp is not settled yet


@pytest.mark.slow
def test_an_edited_manifest_is_seen_on_every_page(served: Served) -> None:
    """Not only the overview: the asset page reads the manifests as they are now."""
    url = f"/api/assets/{RAW}/?start={DAY}&end={DAY}"
    before = json.loads(served.page(url))["grid"]
    _edit_a_manifest(served)
    after = json.loads(served.page(url))["grid"]
    assert after != before
    assert after == json.loads(served.cold(url))["grid"]


@pytest.mark.slow
def test_assets_of_several_schemes_are_kept_and_classified_again_together(
    tmp_path: Path,
) -> None:
    """The example's product_lines project (daily assets beside a day × product line one):
    kept while nothing changes; a report deleted of one asset has them all classified again
    (a subset's cells would be only its own scheme's keys), the page a cold server's."""
    root = _product_lines(tmp_path, ["billing", "voice"])
    served = Served(root, {})
    with served.client:
        first = served.page()
        assert served.page() == first and served.cache.classified == 0
        report = served.project.partition_report_path(BY_LINE, f"{DAY}|voice")
        assert isinstance(report, Path)
        report.unlink()
        after = served.page()
        assert served.cache.classified == len(served.project.graph)
        assert after != first
        assert after == served.cold()


@pytest.mark.slow
def test_a_server_warmed_up_serves_its_first_overview_from_memory(
    tmp_path: Path,
) -> None:
    """``backfiller ui`` classifies the default window as it starts: the first ``GET /``
    classifies nothing, and is the page a cold server gives."""
    web = build_web_project(tmp_path / "omni")
    _age(web.root)
    project = load_project(web.root, environ={}, clock=FixedClock(NOW))
    app = create_app(project, warm_up=True)
    with TestClient(app) as client:
        cache: StateCache = app.state.states
        assert cache.warming is not None
        cache.warming.join()
        page = client.get("/").text
        assert cache.classified == 0
    served = Served(web.root, {})
    assert page == served.cold()


def _product_lines(tmp_path: Path, lines: list[str]) -> Path:
    """The example's product_lines project with ``lines`` added and :data:`DAY` backfilled
    for each, its files aged."""
    root = lay_out_example(tmp_path / "omni") / "product_lines"
    project = load_project(root, environ={}, clock=FixedClock(NOW))
    with project.ledger() as ledger:
        add_partition_values(project, ledger, lines, operator="t", reason="r")
    project = load_project(root, environ={}, clock=FixedClock(NOW))
    keys = select_keys(
        project.graph, project.graph.keys, partition=None, start=DAY, end=DAY, now=NOW
    )
    done = materialize_history(project, keys, reason="tests")
    assert done.state.value == "succeeded", [s.error for s in done.steps if s.error]
    _age(root)
    return root


def _swap_the_middle_line(root: Path) -> None:
    """billing, voice, chat → billing, enterprise, chat: as many keys, the same first and
    last key, another one between."""
    from backfiller.dynamic import remove_partition_values

    project = load_project(root, environ={}, clock=FixedClock(NOW))
    with project.ledger() as ledger:
        remove_partition_values(
            project, ledger, ["voice", "chat"], operator="t", reason="r", allow_published=True
        )
        add_partition_values(project, ledger, ["enterprise", "chat"], operator="t", reason="r")


def _lines(served: Served) -> list[str]:
    doc = served.client.get(f"/api/assets/{BY_LINE}/").json()
    return [str(g["label"]) for g in doc["grids"]]


@pytest.mark.slow
def test_dynamic_values_added_and_removed_while_the_server_runs_are_seen(
    tmp_path: Path,
) -> None:
    """The server's project is loaded once; each request fills its dynamic schemes with the
    values the ledger records then: the pages show the new line, not the removed one — also
    where the window's first and last key stay the same."""
    root = _product_lines(tmp_path, ["billing", "voice", "chat"])
    served = Served(root, {})
    with served.client:
        before = served.page()
        assert _lines(served) == [f"product_line={x}" for x in ("billing", "voice", "chat")]
        _swap_the_middle_line(root)
        after = served.page()
        assert after != before
        assert after == served.cold()
        assert _lines(served) == [f"product_line={x}" for x in ("billing", "enterprise", "chat")]


@pytest.mark.slow
def test_a_project_without_dynamic_dimensions_asks_the_ledger_for_no_values(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    from backfiller.ledger.dimensions import SqlDimensionBook

    asked: list[str] = []
    monkeypatch.setattr(
        SqlDimensionBook, "values", lambda self, dimension: asked.append(dimension) or []
    )
    served.page()
    served.page(f"/assets/{RAW}/")
    assert asked == []


def test_windows_with_the_same_ends_and_other_keys_between_are_told_apart(
    served: Served,
) -> None:
    """A window of a shared scheme is known by its keys, not only its ends: a dynamic value
    swapped between two others, or a scheme's settings edited between two servers, may leave
    the ends where they were."""
    cache = served.cache
    one = ["2026-04-01", "2026-04-02", "2026-04-03"]
    other = ["2026-04-01", "2026-04-05", "2026-04-03"]
    assert cache.window_of(one) == cache.window_of(list(one))
    assert cache.window_of(one) != cache.window_of(other)


def test_manifests_read_before_a_reload_are_not_kept_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page reads the manifests (slowly: a large registry) while they are edited and the
    server, seeing the edit, has the project forget them: the registry that read began
    before the edit serves that page only; the project keeps the one read after."""
    from backfiller.project import Project

    web = build_web_project(tmp_path / "omni", {})
    project = web.load()
    real = Project.load_manifests
    paused, go = threading.Event(), threading.Event()

    def slow(self: Project) -> object:
        registry = real(self)
        if not paused.is_set():  # the first read: paused once it has read the files
            paused.set()
            go.wait(30)
        return registry

    monkeypatch.setattr(Project, "load_manifests", slow)
    early: list[object] = []
    page = threading.Thread(target=lambda: early.append(project.manifests))
    page.start()
    assert paused.wait(30)
    served = Served(web.root, web.environ)
    served.project = project
    _edit_a_manifest(served)
    project.reload_manifests()  # what the server does on seeing the manifests' stamp move
    go.set()
    page.join()  # the early read ends after the reload
    [old] = early
    fresh = project.manifests  # not the early read: read again, after the edit
    assert fresh is not old
    assert project.manifests is fresh  # and kept
    expected = [
        p.expected_record_count
        for r in (old, fresh)
        for p in [r.for_partition(DAY)[1]]  # type: ignore[union-attr]
    ]
    assert expected[1] == expected[0] + 1


def _read_slowly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Project, threading.Event, threading.Event, list[int]]:
    """The web project, classified one asset per batch, each batch's sources taken only once
    ``go`` is set (``read`` is set when the first is asked for; ``taken``: the batches
    taken)."""
    from backfiller.planning import classify

    web = build_web_project(tmp_path / "omni")
    _age(web.root)
    monkeypatch.setattr(classify, "BATCH_CELLS", 1)  # one asset per batch
    read, go = threading.Event(), threading.Event()
    taken: list[int] = []
    real = classify._Ahead.take

    def take(self: classify._Ahead, number: int) -> object:
        taken.append(number)
        read.set()
        go.wait(30)  # the first asset's sources, read slowly
        return real(self, number)

    monkeypatch.setattr(classify._Ahead, "take", take)
    return load_project(web.root, environ={}, clock=FixedClock(NOW)), read, go, taken


@pytest.mark.slow
def test_stopping_the_server_stops_its_warm_up_before_the_next_asset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The warm-up classifies in a thread of its own; a server stopping meanwhile stops it
    before its next asset and waits for it (a thread left in a DuckDB query as the process
    exits may abort it)."""
    project, read, go, taken = _read_slowly(tmp_path, monkeypatch)
    cache = StateCache(project)
    warming = cache.warm_up()
    assert read.wait(30)
    stopper = threading.Thread(target=cache.close)
    stopper.start()
    time.sleep(0.2)  # close() is waiting for the warm-up
    assert warming.is_alive()
    go.set()
    stopper.join(30)
    assert not stopper.is_alive() and not warming.is_alive()
    assert taken == [0]  # the second asset was never read
    assert cache._kept == {} or all(not kept for kept in cache._kept.values())


@pytest.mark.slow
def test_a_page_asked_while_the_server_stops_is_a_503_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request whose classification the app's shutdown cut short (before its next asset:
    an ASGI server that does not wait for running requests, or a test client, stops the app
    under it) is answered 503 with the reason, not as a server error."""
    project, read, go, _ = _read_slowly(tmp_path, monkeypatch)
    app = create_app(project)
    answers: list[object] = []
    with TestClient(app) as client:

        def ask() -> None:
            answers.append(client.get("/", headers={"accept": "application/json"}))
            answers.append(client.get("/"))

        asking = threading.Thread(target=ask)
        asking.start()
        assert read.wait(30)
        app.state.states.close()  # what the app's shutdown does
        go.set()
        asking.join(30)
        assert not asking.is_alive()
    as_json, as_html = answers
    assert as_json.status_code == 503  # type: ignore[attr-defined]
    assert as_json.json()["kind"] == "error"  # type: ignore[attr-defined]
    assert "server is stopping" in as_json.json()["detail"]  # type: ignore[attr-defined]
    assert as_html.status_code == 503 and "server is stopping" in as_html.text  # type: ignore[attr-defined]
