"""The overview's state ranges kept in the server process while their sources are unchanged.

``backfiller ui`` is a long-lived process and most of an overview is classifying every cell
from the four sources. :class:`StateCache` keeps each asset's ranges under the identities
(:mod:`backfiller.planning.identity`) of everything they were classified from: the ledger,
the manifests, the asset's Delta table (its log and its data files' folders), its partition
report folder, and the window's keys (what the clock moves). A request takes those
identities first, before anything is read (but for a table whose log is new to the cache:
it is stamped after its classification read it, and kept only if that log is unchanged and
the stamp settled as of before the read, :meth:`StateCache._read_key`), and classifies again
only the assets whose identity moved: all of them when the manifests did; one whose partition
records changed in the ledger (its newest event moved), or those of an asset it reads (its
state also compares the upstream versions it consumed). An asset classified again for one
source does not read the others that did not move where that is the costly part: what was
read of its Delta table is kept under the table's own identity and served while it is the
same (:class:`_WatchedStore`). A source that cannot be identified
is never cached, and an identity taken right after its source changed
(:meth:`Stamp.settled`) is not kept. The data folders of a table with more than
:data:`~backfiller.web.sweep.SWEPT_FOLDERS` of them are the exception: a background sweep
stamps them (:mod:`backfiller.web.sweep`), so a data file deleted from such a table behind
its log's back is seen some seconds later rather than on the next request. Serving writes
nothing to the project (its ledger, its store, its files); given a file of its own
(``kept_path``), the cache also keeps the ranges there for the next server
(:mod:`backfiller.web.kept`).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backfiller.ledger.reader import close_reader
from backfiller.planning import identity
from backfiller.planning.identity import Stamp
from backfiller.web import kept as on_disk
from backfiller.web import sweep

if TYPE_CHECKING:
    from datetime import datetime

    import pyarrow as pa

    from backfiller.ledger import LedgerReader
    from backfiller.locations import Location
    from backfiller.manifests import ManifestRegistry
    from backfiller.partitions import PartitionScheme
    from backfiller.planning.gaps import PartitionState
    from backfiller.planning.ranges import KeyRange
    from backfiller.planning.state import StateSource
    from backfiller.policy import Policy
    from backfiller.project import Project
    from backfiller.store import DeltaStore

__all__ = ["WINDOWS", "Identities", "ServerStopping", "StateCache"]

_log = logging.getLogger(__name__)

#: how many windows are kept (their keys, and their assets' ranges)
WINDOWS = 4


@dataclass(frozen=True)
class Identities:
    """What one request found of every source: per asset, the identity its ranges are kept
    under (``None``: not to be kept), and the manifests' stamp (``None``: not to be trusted,
    so they are read again)."""

    per_asset: dict[str, Hashable | None]
    manifests: Stamp | None
    #: when they were taken (the file system's clock)
    taken_ns: int = 0
    #: the assets whose table's log is new to the cache (its data files' folders are not
    #: known): the key's other parts, the log's stamp and the report folder's, for a key made
    #: once their classification has read the log (:meth:`StateCache.state_ranges`)
    pending: dict[str, tuple[Hashable, Stamp, Stamp]] = field(default_factory=dict)
    #: per asset whose table's stamp (its log's and its data folders') is known and settled,
    #: that stamp's value, whether or not its other sources are
    tables: dict[str, Hashable] = field(default_factory=dict)


@dataclass(frozen=True)
class _Pending:
    """The key of an asset classified from a log new to the cache, but for its table's
    data folders' stamp, taken in the background (:meth:`sweep.FolderSweep.watch`): the
    key's other parts, the log's and the report folder's stamps, the folders, and when the
    request that classified it took its identities."""

    shared: Hashable
    log: Stamp
    reports: Stamp
    folders: tuple[str, ...]
    taken_ns: int


class ServerStopping(Exception):
    """A classification stopped because the server is (:meth:`StateCache.close`)."""


@dataclass(frozen=True)
class _Restored:
    """The key of an asset's ranges read from the states an earlier server kept on disk
    (:mod:`backfiller.web.kept`): served while each request finds the key's head (all but
    the data folders' stamp) to have the digest ``head``, until its table's data folders are
    known and stamped (:meth:`StateCache._derive`, in the background); then kept under the
    full key if that stamp's digest is ``folders``, else classified again."""

    head: str
    folders: str


class StateCache:
    """The state ranges of ``project``'s assets over a window, classified again only when a
    source they came from changed (one lock: concurrent overviews classify once).
    ``kept_path``: a file where the ranges are also kept for the next server
    (:mod:`backfiller.web.kept`; ``None``: memory only)."""

    def __init__(self, project: Project, kept_path: Path | None = None) -> None:
        self.project = project
        self.kept_path = kept_path
        self._lock = threading.Lock()  # the ranges: one overview classifies at a time
        self._manifests_lock = threading.Lock()
        self._windows_lock = threading.Lock()
        #: per window (:meth:`window_of`, the newest last, :data:`WINDOWS` at most), per
        #: asset: the identity its ranges were classified under, and the ranges
        self._kept: dict[Hashable, dict[str, tuple[Hashable, list[KeyRange[PartitionState]]]]]
        self._kept = {}
        #: per asset: its table's log stamp, and the folders of its live files under that log
        self._folders: dict[str, tuple[Hashable, tuple[str, ...]]] = {}
        #: per asset: its table's stamp (log and data folders) when last read, and what the
        #: classification read of it then (rows and missing files per partition): an asset
        #: classified again for another source (its reports, its records, what it reads)
        #: does not read its unchanged table again (one entry per asset of the graph: some
        #: 3–4 MB per 100,000 partitions, held while the server runs)
        self._tables: dict[str, tuple[Hashable, pa.Table]] = {}
        #: the stamp of the manifests the project has loaded (``None``: not known)
        self._manifests: Stamp | None = None
        #: whether this cache has had the project read its manifests once
        self._loaded = False
        #: the keys of the windows asked last, by scheme and bounds (:meth:`key_range`)
        self._windows: dict[tuple[int, str, str], tuple[PartitionScheme, list[str]]] = {}
        #: per list of keys (by its id, the list kept), :meth:`_keys_facts` of it
        self._digested: dict[int, tuple[Sequence[str], str, bool]] = {}
        #: how many assets the last :meth:`state_ranges` classified (the others were kept)
        self.classified = 0
        #: the thread :meth:`warm_up` started (``None``: not asked to)
        self.warming: threading.Thread | None = None
        #: set by :meth:`close`: a classification under way stops before its next asset
        self._stopping = threading.Event()
        #: the data folders of tables with more than :data:`sweep.SWEPT_FOLDERS`, stamped in
        #: the background rather than at each request
        self.sweep = sweep.FolderSweep()
        #: the ranges read from :attr:`kept_path` not yet asked for, per window digest and
        #: asset (``None``: not read yet), and the digest of the code they must come from
        self._restored: dict[str, dict[str, on_disk.Kept]] | None = None
        self._code = ""
        #: what :attr:`kept_path` holds: per (window digest, asset), the key and its digests
        self._saved: dict[tuple[str, str], tuple[Hashable, tuple[str, str]]] = {}
        #: the assets whose data folders the background could not tell (their restored
        #: ranges are not served), and those it was given
        self._underived: set[str] = set()
        self._deriving: set[str] = set()
        #: the threads telling the restored assets' data folders (one per request that
        #: restored some), joined when the server stops
        self.restoring: list[threading.Thread] = []
        #: the project's mark (:func:`on_disk.project_mark`) and the graph it was taken of
        self._marked: tuple[object, str | None] | None = None
        #: how many assets the last :meth:`state_ranges` served from ranges kept on disk
        self.restored = 0

    def open(self) -> None:
        """Let classifications run (the server is starting, maybe again after a
        :meth:`close`: the background sweep then stays stopped, and large tables' folders are
        stamped at each request)."""
        self._stopping.clear()

    def close(self) -> None:
        """Stop the background work (the server is stopping) and wait for it: the warm-up's
        classification stops before its next asset, every reading of restored tables' logs
        between two tables (a thread left in a DuckDB query or a read as the process exits
        may abort it)."""
        self._stopping.set()
        self.sweep.stop()
        for thread in [*self.restoring, *([self.warming] if self.warming else [])]:
            thread.join()

    def warm_up(self) -> threading.Thread:
        """Classify the overview's default window in a background thread (a server's
        first visitor then finds it kept; one arriving sooner waits for it rather than
        classifying twice). A failure is left for the pages to report."""
        from backfiller.web import pages

        def run() -> None:
            reader = None
            try:
                reader = self.project.reader()
                self.refresh_manifests()
                self.state_ranges(reader, pages.window(self.project, cache=self))
            except Exception:  # a page asked for it says what is wrong
                pass
            finally:
                close_reader(reader)

        self.warming = threading.Thread(target=run, name="backfiller-ui-warm-up", daemon=True)
        self.warming.start()
        return self.warming

    def state_ranges(
        self, reader: LedgerReader, keys: Sequence[str]
    ) -> list[KeyRange[PartitionState]]:
        """:func:`~backfiller.planning.classify.state_ranges` of every asset over ``keys``,
        the assets whose sources did not change since they were last classified taken from
        memory."""
        from backfiller.asset_keys import shared_scheme
        from backfiller.planning.classify import state_ranges

        project = self.project
        names = list(project.graph.keys)
        with self._lock:
            found = self.identify(keys, reader)
            self._reload_manifests(found.manifests)
            window = self.window_of(keys)
            kept = self._kept.pop(window, {})
            self._kept[window] = kept  # the newest last
            self._restore(window, kept, found)
            wanted = dict(found.per_asset)  # the key an asset's kept ranges must have
            self.restored = 0
            for name, (key, ranges) in list(kept.items()):
                done: Hashable | None = key
                if isinstance(key, _Pending):  # its data folders' stamp: now it is needed
                    done = self._resolved(name, key)
                elif isinstance(key, _Restored):
                    done = self._confirmed(name, key, found)
                    if isinstance(done, _Restored):  # trusted until its folders are stamped
                        wanted[name] = done
                        self.restored += 1
                if done is None:
                    del kept[name]
                elif done is not key:
                    kept[name] = (done, ranges)
            while len(self._kept) > WINDOWS:
                del self._kept[next(iter(self._kept))]
            stale = [
                n for n in names if wanted[n] is None or n not in kept or kept[n][0] != wanted[n]
            ]
            if stale and shared_scheme(project.graph, names) is None:
                stale = names  # a subset's cells would be its own scheme's keys only
            fresh: dict[str, list[KeyRange[PartitionState]]] = {n: [] for n in stale}
            read: dict[str, tuple[str, ...] | None] = {}  # the folders the classification saw
            if stale and keys:
                tables = dict(found.tables)
                for n, (_, log, _) in found.pending.items():  # kept until its folders' stamp
                    tables[n] = _Unstamped(log.value)
                source = _Watched.of(project, set(found.pending), read, (self._tables, tables))
                for r in state_ranges(source, reader, keys, stale, on_progress=self._go_on):
                    fresh[r.asset].append(r)
            keys_found = dict(found.per_asset)
            for name in stale:
                if name in found.pending:
                    keys_found[name] = self._read_key(name, found, read.get(name))
            for name, ranges in fresh.items():
                key = keys_found[name]
                if key is None:
                    kept.pop(name, None)
                else:
                    kept[name] = (key, ranges)
            self.classified = len(stale)
            out: list[KeyRange[PartitionState]] = []
            for name in names:
                out.extend(fresh[name] if name in fresh else kept[name][1])
            self._keep_on_disk()
            return out

    def _go_on(self, done: int, total: int) -> None:
        """Called before each asset a classification reads: stop it when the server is
        stopping (its DuckDB database is closed as the exception leaves it)."""
        if self._stopping.is_set():
            raise ServerStopping("the server is stopping")

    # -- the ranges kept on disk (:mod:`backfiller.web.kept`) ------------------------------

    def _project_mark(self) -> Hashable:
        """:func:`on_disk.project_mark` of the project's graph as it is (taken once per
        graph: the web view replaces it when dynamic values move); one of this process only
        when the project has none (its ranges then kept in memory, not on disk)."""
        graph = self.project.graph
        if self._marked is None or self._marked[0] is not graph:
            self._marked = (graph, on_disk.project_mark(self.project))
        mark = self._marked[1]
        return mark if mark is not None else ("this process only", id(graph))

    def _restore(
        self, window: Hashable, kept: dict[str, tuple[Hashable, Any]], found: Identities
    ) -> None:
        """Put the ranges kept on disk for ``window`` into ``kept`` (under a
        :class:`_Restored` key, checked by :meth:`_confirmed`) for the assets whose log is
        new to this server and whose head is the kept one, and have their data folders told
        in the background."""
        if self.kept_path is None or not isinstance(self._project_mark(), str):
            return
        if self._restored is None:
            self._code = on_disk.code_digest()
            self._restored = on_disk.load(self.kept_path, self._code)
            for w, assets in self._restored.items():  # what the file holds, as it holds it
                for name, entry in assets.items():
                    key = _Restored(entry.head, entry.folders)
                    self._saved[(w, name)] = (key, (entry.head, entry.folders))
        at = on_disk.digest(window)
        entries = self._restored.pop(at, None)
        if not entries:
            return
        given = []
        undecided: dict[str, on_disk.Kept] = {}
        for name, entry in entries.items():
            if name in kept or name not in found.per_asset:  # not an asset of the graph now
                continue
            full = found.per_asset.get(name)
            if full is not None:  # its folders known already (another window restored it)
                if self._digests(full) == (entry.head, entry.folders):
                    kept[name] = (full, list(entry.ranges))
                continue
            pending = found.pending.get(name)
            if pending is None:  # not identified now (a source changed a moment ago)
                undecided[name] = entry
                continue
            if _pending_head(pending) != entry.head:
                continue  # something moved: classified, its log not read for nothing
            kept[name] = (_Restored(entry.head, entry.folders), list(entry.ranges))
            if name not in self._deriving:
                given.append(name)
        if undecided:  # for a later request
            self._restored[at] = undecided
        if given and not self.sweep.stopped:
            self._deriving.update(given)
            thread = threading.Thread(
                target=self._derive, args=(given,), name="backfiller-ui-restore", daemon=True
            )
            self.restoring.append(thread)
            thread.start()

    def _confirmed(self, asset: str, key: _Restored, found: Identities) -> Hashable | None:
        """The key of ``asset``'s restored ranges now: its full key when its data folders
        are known and stamped and both digests are the kept ones; ``key`` itself while they
        are not known yet and the head is the kept one; else ``None`` (classified again)."""
        full = found.per_asset.get(asset)
        if full is not None:
            return full if self._digests(full) == (key.head, key.folders) else None
        pending = found.pending.get(asset)
        if pending is None or asset in self._underived:
            return None
        return key if _pending_head(pending) == key.head else None

    @staticmethod
    def _digests(key: Hashable) -> tuple[str, str]:
        """The head's and the data folders' digests of a full key (:meth:`identify`)."""
        assert isinstance(key, tuple)
        mine, (log, folders), reports = key
        return on_disk.digest((mine, log, reports)), on_disk.digest(folders)

    def _derive(self, names: list[str]) -> None:
        """Tell the data folders of the restored ``names`` from their logs (the background
        work after a start with ranges kept on disk), a large table's folders also stamped
        (as its sweep goes on doing): the next request then takes their full key. An asset
        whose folders cannot be told (a log that cannot be read, or naming files outside
        the table) is classified again by the next request."""
        from backfiller.store import DeltaStore

        local = _local_delta(self.project)
        if local is None:  # pragma: no cover - only local Delta tables are restored
            with self._lock:
                self._underived.update(names)
            return
        store = DeltaStore(local.uri, local.storage_options)  # this thread's own handles
        for name in names:
            if self.sweep.stopped:
                return
            try:
                path = store.path(name)
                log = identity.table_log_stamp(path)
                paths = store.partition_files(name).column("path")
                folders = identity.data_folders(paths.cast("string"))
                if log is None or folders is None or identity.table_log_stamp(path) != log:
                    raise ValueError("its log moved, or names files outside the table")
                if len(folders) > sweep.SWEPT_FOLDERS:
                    self.sweep.adopt(name, path, folders)
                with self._lock:
                    if name not in self._folders:
                        self._folders[name] = (log.value, folders)
            except Exception:
                _log.debug("the data folders of %s are not told", name, exc_info=True)
                with self._lock:
                    self._underived.add(name)
            finally:
                store.release([name])

    def _keep_on_disk(self) -> None:
        """Write the kept ranges to :attr:`kept_path` when a key changed since the file was
        written: the windows in memory, the newest first, then those read from the file not
        asked for yet, :data:`WINDOWS` at most (ranges classified from a new log, waiting
        for their data folders' stamp, are not written; restored ones are, as they were
        read). A file that cannot be written is not tried again."""
        if self.kept_path is None or not isinstance(self._project_mark(), str):
            return
        current: dict[tuple[str, str], tuple[Hashable, Sequence[KeyRange[PartitionState]]]]
        current = {}
        windows: list[str] = []
        for w, assets in reversed(self._kept.items()):
            windows.append(on_disk.digest(w))
            for name, (key, ranges) in assets.items():
                if not isinstance(key, _Pending):
                    current[(windows[-1], name)] = (key, ranges)
        for w, entries in (self._restored or {}).items():
            if len(windows) >= WINDOWS or w in windows:
                continue
            windows.append(w)
            for name, entry in entries.items():
                current[(w, name)] = (_Restored(entry.head, entry.folders), entry.ranges)
        if current.keys() == self._saved.keys() and all(
            _same(current[at][0], self._saved[at][0]) for at in current
        ):
            return
        saved: dict[tuple[str, str], tuple[Hashable, tuple[str, str]]] = {}
        document: dict[str, dict[str, on_disk.Kept]] = {}
        for (w, name), (key, held) in current.items():
            before = self._saved.get((w, name))
            if before is not None and _same(before[0], key):
                digests = before[1]
            elif isinstance(key, _Restored):
                digests = (key.head, key.folders)
            else:
                digests = self._digests(key)
            saved[(w, name)] = (key, digests)
            document.setdefault(w, {})[name] = on_disk.Kept(*digests, tuple(held))
        if {at: d for at, (_, d) in saved.items()} == {at: d for at, (_, d) in self._saved.items()}:
            self._saved = saved  # the same digests (a restored key confirmed): not written again
        elif on_disk.save(self.kept_path, self._code or on_disk.code_digest(), document):
            self._saved = saved
        else:  # logged once: not tried again at every request
            self.kept_path = None

    def refresh_manifests(self) -> None:
        """Have the project read its manifests again when they changed since it loaded them
        (or changed a moment ago): every page, not only the overview, then reads the
        manifests as they are. Manifests whose changes cannot be told at all (on object
        storage, or a simulation's stand-ins) are read once, as the server always did."""
        self._reload_manifests(self._manifests_stamp(identity.now_ns()))

    def _reload_manifests(self, stamp: Stamp | None) -> None:
        """Have the manifests read again unless ``stamp`` (taken before this call) is the
        one they were read under: the project forgets them, and reads them at their first
        use after (an overview served from ranges kept on disk reads none). They are kept
        with that stamp: a read that overlapped an edit, or came after it, is kept under the
        stamp of before the edit, so the next request sees the stamp moved and has them read
        again."""
        with self._manifests_lock:
            if stamp is not None and stamp == self._manifests:
                return
            if stamp is None and self._loaded and not self._identifiable():
                return
            self.project.reload_manifests()
            self._manifests = stamp
            self._loaded = True

    def _identifiable(self) -> bool:
        """Whether the manifests' changes can be told (a stamp, settled or not)."""
        project = self.project
        if project.overlay.manifest_stand_ins:
            return False
        return identity.manifests_stamp(project.config.manifests_dir) is not None

    def _manifests_stamp(self, taken: int) -> Stamp | None:
        """The manifests' stamp; ``None`` when it is not to be trusted (a stand-in read in
        place of a manifest, object storage, a file edited a moment ago)."""
        project = self.project
        if project.overlay.manifest_stand_ins:
            return None
        found = identity.manifests_stamp(project.config.manifests_dir)
        return found if found is not None and found.settled(taken) else None

    def key_range(self, scheme: PartitionScheme, first: str, last: str) -> list[str]:
        """``scheme.key_range(first, last)``, kept for the next requests of the same window
        (the keys between two keys do not depend on the time; a scheme is kept with its keys,
        so its id stays its own: a graph given new dynamic values has new schemes). The list
        is shared: not to be changed."""
        return self._window(
            (id(scheme), first, last), scheme, lambda: scheme.key_range(first, last)
        )

    def keys(self, scheme: PartitionScheme, now: datetime) -> list[str]:
        """``scheme.keys(now=now)``; a time-window scheme's kept while its last complete
        key is the same (its keys are those from its start to that one's window: the
        boundary they are listed up to is a window's end, or the scheme's own end). The
        list is shared: not to be changed."""
        from backfiller.partitions import TimeWindowScheme

        if type(scheme) is not TimeWindowScheme:
            return scheme.keys(now=now)
        at = (id(scheme), "", scheme.last_complete(now) or "")
        return self._window(at, scheme, lambda: scheme.keys(now=now))

    def _window(
        self, at: tuple[int, str, str], scheme: PartitionScheme, listed: Callable[[], list[str]]
    ) -> list[str]:
        with self._windows_lock:
            found = self._windows.pop(at, None)
            if found is None:
                found = (scheme, listed())  # the scheme kept with its keys: its id stays its
            self._windows[at] = found  # the newest last
            while len(self._windows) > WINDOWS:
                del self._windows[next(iter(self._windows))]
            return found[1]

    def identify(self, keys: Sequence[str], reader: LedgerReader | None = None) -> Identities:
        """The identity of every asset's sources now (taken before any of them is read;
        ``reader``: the request's, else one opened for this)."""
        project = self.project
        taken = identity.now_ns()
        names = list(project.graph.keys)
        marks = self._marks(reader, names)
        manifests = self._manifests_stamp(taken)
        shared: tuple[Hashable, ...] | None = None
        if manifests is not None:
            shared = (identity.ledger_place(project.config), manifests.value)
            shared += (self.window_of(keys), self._project_mark())
        nested = self._nested(keys)  # reports in folders below the asset's
        per_asset: dict[str, Hashable | None] = {}
        pending: dict[str, tuple[Hashable, Stamp, Stamp]] = {}
        tables: dict[str, Hashable] = {}
        for name in names:
            per_asset[name] = None
            if shared is None or nested:
                continue
            # its records, and those of the assets it reads (their versions tell it stale)
            ups = tuple(marks.get(d.asset) for d in project.graph.get(name).deps)
            mine = (shared, marks.get(name), ups)
            reports = identity.folder_stamp(project.partition_report_dir(name))
            if reports is not None and not reports.settled(taken):
                reports = None  # changed a moment ago: not to be kept
            log = self._log_stamp(name)
            if log is None:
                continue
            known = self._folders.get(name)
            if known is None or known[0] != log.value:  # folders known once the log is read
                if reports is not None and log.settled(taken):
                    pending[name] = (mine, log, reports)
                continue
            table = self._table_stamp(name, log, known[1])
            if table is None or not table.settled(taken):
                continue
            tables[name] = table.value  # whatever its other sources
            if reports is not None:
                per_asset[name] = (mine, table.value, reports.value)
        return Identities(per_asset, manifests, taken, pending, tables)

    def _marks(
        self, reader: LedgerReader | None, names: Sequence[str]
    ) -> dict[str, tuple[int, str] | None]:
        """Each asset's newest partition event in the ledger (read before its records)."""
        if reader is not None:
            return reader.partitions.change_marks(names)
        opened = self.project.reader()
        try:
            return opened.partitions.change_marks(names)
        finally:
            close_reader(opened)

    def _read_key(
        self, asset: str, found: Identities, folders: tuple[str, ...] | None
    ) -> Hashable | None:
        """The key of ``asset``, just classified from a log new to the cache, whose live
        files were in ``folders`` (``None``: not seen, or not to be told by folder): when
        its log is still the one stamped before and none of those folders changed since
        then, the classification read what the key says."""
        shared, log, reports = found.pending[asset]
        if folders is None or identity.table_log_stamp(self._path(asset)) != log:
            return None
        self._folders[asset] = (log.value, folders)
        if len(folders) > sweep.SWEPT_FOLDERS:  # stamped in the background, not now
            self.sweep.watch(asset, self._path(asset), folders)
            return _Pending(shared, log, reports, folders, found.taken_ns)
        table = self._table_stamp(asset, log, folders)
        if table is None or not table.settled(found.taken_ns):
            return None
        self._table_stamped(asset, log, table)
        return (shared, table.value, reports.value)

    def _resolved(self, asset: str, key: _Pending) -> Hashable | None:
        """The key of ``asset`` classified from a log new to the cache, now that its data
        folders are stamped (by the sweep, after the classification): when that stamp was
        settled as of before the classification read them, the classification read what the
        key says (``None``: not to be kept)."""
        known = self._folders.get(asset)
        if known is None or known[1] is not key.folders:  # a newer log's folders since
            return None
        table = self._table_stamp(asset, key.log, key.folders)
        if table is None or not table.settled(key.taken_ns):
            return None
        self._table_stamped(asset, key.log, table)
        return (key.shared, table.value, key.reports.value)

    def _table_stamped(self, asset: str, log: Stamp, table: Stamp) -> None:
        """What a classification read of ``asset``'s table under the new ``log``, kept until
        its data folders' stamp, kept under the table's stamp now that it is taken (as the
        ranges classified from it are)."""
        before = self._tables.get(asset)
        if before is not None and before[0] == _Unstamped(log.value):
            self._tables[asset] = (table.value, before[1])

    def _table_stamp(self, asset: str, log: Stamp, folders: tuple[str, ...]) -> Stamp | None:
        """The stamp of ``asset``'s table: its log's (``log``, taken by this request) and
        its data ``folders``' — taken now, or for a table with more than
        :data:`sweep.SWEPT_FOLDERS` of them the background sweep's newest (``None``: that
        one is not to be trusted yet)."""
        if len(folders) <= sweep.SWEPT_FOLDERS:
            return identity.table_stamp(self._path(asset), log, folders)
        found = self.sweep.stamp(asset, self._path(asset), folders)
        return None if found is None else identity.joined(log, found)

    def window_of(self, keys: Sequence[str]) -> Hashable:
        """The identity of the window's keys, the clock's part of the key (a day passing
        moves the default window; the keys are all a classification takes of the time):
        when the assets share a scheme, its first and last key and the SHA-256 of them all
        (a scheme's values added or removed while the server runs, or its settings edited
        between two servers, may leave the first and the last where they were), taken once
        per list of keys the cache hands out (:meth:`keys`, :meth:`key_range`); else every
        key."""
        from backfiller.asset_keys import shared_scheme

        if not keys:
            return ()
        graph = self.project.graph
        if shared_scheme(graph, graph.keys) is not None:
            return (len(keys), keys[0], keys[-1], self._keys_facts(keys)[0])
        return tuple(keys)

    def _nested(self, keys: Sequence[str]) -> bool:
        """Whether a key of ``keys`` holds a ``/`` (found once per list of keys when the
        assets share a scheme: the cache then hands out one list per window)."""
        from backfiller.asset_keys import shared_scheme

        graph = self.project.graph
        if keys and shared_scheme(graph, graph.keys) is not None:
            return self._keys_facts(keys)[1]
        return any("/" in k for k in keys)

    def _keys_facts(self, keys: Sequence[str]) -> tuple[str, bool]:
        """The SHA-256 of ``keys`` and whether one of them holds a ``/``, found once per list
        of keys the cache hands out (100,000 keys: some 15 ms each)."""
        with self._windows_lock:
            found = self._digested.get(id(keys))
            if found is not None and found[0] is keys:
                return found[1], found[2]
        joined = "\0".join(keys)
        digest = hashlib.sha256(joined.encode("utf-8")).hexdigest()
        nested = "/" in joined
        with self._windows_lock:
            self._digested[id(keys)] = (keys, digest, nested)  # the list kept: its id its own
            while len(self._digested) > 2 * WINDOWS:
                del self._digested[next(iter(self._digested))]
        return digest, nested

    def _path(self, asset: str) -> Path:
        store = _local_delta(self.project)
        assert store is not None  # asked only of assets whose log was stamped
        return store.path(asset)

    def _log_stamp(self, asset: str) -> Stamp | None:
        """The stamp of ``asset``'s Delta table's log; ``None`` for a store that is not
        local Delta tables."""
        if _local_delta(self.project) is None:
            return None
        return identity.table_log_stamp(self._path(asset))


def _pending_head(pending: tuple[Hashable, Stamp, Stamp]) -> str:
    """The digest of the head of an asset whose log is new to the cache (its key but the
    data folders' stamp: :meth:`StateCache._digests` of the full key gives the same)."""
    mine, log, reports = pending
    return on_disk.digest((mine, log.value, reports.value))


def _same(one: Hashable, other: Hashable) -> bool:
    """Whether two keys are the one written (a full key is the very object; a restored one
    is compared by its two digests)."""
    return one is other or (isinstance(one, _Restored) and one == other)


def _local_delta(project: Project) -> DeltaStore | None:
    from backfiller.store import DeltaStore

    store = project.store
    return store if isinstance(store, DeltaStore) and store.local_root is not None else None


@dataclass(frozen=True)
class _Unstamped:
    """The key under which :class:`_WatchedStore` keeps what it read of a table under a log
    new to the cache (``log``: that log's stamp), until its data folders' stamp is taken:
    kept, never served."""

    log: Hashable


class _Watched:
    """The project as a classification reads it, its store telling, of each table it is
    done with, the folders of the live data files it read (``seen``): a new log is then
    not read a second time for the cache's key; and serving what it read of a table whose
    stamp did not move (:class:`_WatchedStore`)."""

    def __init__(self, project: Project, store: _WatchedStore) -> None:
        self.project = project
        self.graph = project.graph
        self._store = store

    @classmethod
    def of(
        cls,
        project: Project,
        wanted: set[str],
        seen: dict[str, tuple[str, ...] | None],
        tables: tuple[dict[str, tuple[Hashable, pa.Table]], dict[str, Hashable]],
    ) -> StateSource:
        """``project`` watched for the tables of ``wanted`` and served from the tables read
        before (``tables``: :class:`_WatchedStore`'s ``kept`` and ``now``) when its store is
        local Delta tables; else itself."""
        store = _local_delta(project)
        if store is None:
            return project
        return cls(project, _WatchedStore(store, wanted, seen, *tables))

    @property
    def manifests(self) -> ManifestRegistry:
        return self.project.manifests

    @property
    def store(self) -> _WatchedStore:
        return self._store

    @property
    def policy(self) -> Policy:
        return self.project.policy

    def partition_report_path(self, asset: str, key: str) -> Location:
        return self.project.partition_report_path(asset, key)

    def partition_report_dir(self, asset: str) -> Location:
        return self.project.partition_report_dir(asset)


class _WatchedStore:
    """A local Delta store that, as a reader releases the tables of ``wanted``, notes the
    folders of their live files (the files its last read of the tables kept: no log read
    again); and that serves the partitions' statistics of a table from ``kept`` (per asset:
    the table's stamp when read, and what was read) when ``now`` (per asset identified by
    this request: its table's stamp, taken before anything was read) is that stamp, keeping
    there what it reads of the others."""

    def __init__(
        self,
        store: DeltaStore,
        wanted: set[str],
        seen: dict[str, tuple[str, ...] | None],
        kept: dict[str, tuple[Hashable, pa.Table]],
        now: dict[str, Hashable],
    ) -> None:
        self.inner = store
        self.wanted = wanted
        self.seen = seen
        self.kept = kept
        self.now = now

    def partition_counts(self, asset: str) -> dict[str, int]:
        return self.inner.partition_counts(asset)

    def partition_signatures(self, asset: str) -> dict[str, str]:
        return self.inner.partition_signatures(asset)

    def missing_files(self, asset: str) -> dict[str, int]:
        return self.inner.missing_files(asset)

    def partition_stats(self, asset: str) -> pa.Table:
        return self.inner.partition_stats(asset)

    def partition_stats_of(self, assets: Sequence[str]) -> pa.Table:
        import pyarrow as pa

        assets = list(dict.fromkeys(assets))
        served: dict[str, pa.Table] = {}
        for asset in assets:
            before, now = self.kept.get(asset), self.now.get(asset)
            if before is not None and not isinstance(now, _Unstamped) and before[0] == now:
                served[asset] = before[1]  # stamps are digests: a cheap comparison
        rest = [a for a in assets if a not in served]
        read = self.inner.partition_stats_of(rest) if rest or not served else None
        if not served:  # as the store reads them, nothing reordered
            self._keep([a for a in rest if a in self.now], read)
            return read
        served.update(self._keep(rest, read))
        return pa.concat_tables([served[a] for a in assets if a in served])

    def _keep(self, assets: list[str], read: pa.Table | None) -> dict[str, pa.Table]:
        """Each of ``assets``' rows of ``read`` (kept in :attr:`kept` under the stamp this
        request took of its table, when it took one), found in one pass: the store gives each
        table's rows side by side, so each asset's are one run (or a few) of ``asset``."""
        if read is None or not assets:
            return {}
        import pyarrow as pa
        import pyarrow.compute as pc

        wanted = set(assets)
        runs = pc.run_end_encode(read.column("asset").combine_chunks())
        pieces: dict[str, list[pa.Table]] = {}
        start = 0
        for name, end in zip(
            runs.values.to_pylist(), runs.run_ends.to_pylist(), strict=True
        ):  # one item per run
            if name in wanted:
                pieces.setdefault(name, []).append(read.slice(start, end - start))
            start = end
        empty = read.schema.empty_table()
        found = {
            a: pa.concat_tables(pieces[a]) if a in pieces else empty for a in dict.fromkeys(assets)
        }
        for asset, part in found.items():
            if asset in self.now:
                self.kept[asset] = (self.now[asset], part)
        return found

    def release(self, assets: Iterable[str]) -> None:
        assets = list(assets)
        for asset in (a for a in assets if a in self.wanted):
            paths = self.inner.partition_files(asset).column("path")
            self.seen[asset] = identity.data_folders(paths.cast("string"))
        self.inner.release(assets)
