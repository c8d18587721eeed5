"""The data folders of large tables checked in the background, not on every request.

The server's state cache (:mod:`backfiller.web.cache`) keys each asset's ranges with, among
others, the stats of the folders holding its table's live data files: a data file deleted
behind the log's back (a gap: ``files_gone``) changes its folder's times. That is one ``stat``
per folder, some 3 µs: 3 s a request for ten tables of 100,000 partitions each written a
folder per partition, as backfiller writes them. A table with more than :data:`SWEPT_FOLDERS`
such folders has them stamped by :class:`FolderSweep` instead: first in the background right
after the table's new log was classified (a request that needs that stamp before it is there
takes it itself), then over and over by a background thread that pauses
between two sweeps at least :data:`PAUSE_S`, and at least :data:`PAUSE_FACTOR` times as long
as the last sweep took (so it takes at most a fifth of one CPU). A request takes the newest
stamp of each such table: a deleted data file is seen once a sweep after the deletion has
ended, some seconds later, not on the next request. Everything else a request identifies
(the log, the ledger, the reports, the manifests) is still taken at the request.

A stamp is only used when it was settled when it was taken (:meth:`Stamp.settled`): a folder
changed a moment before a sweep is stamped again by the next one before it is trusted. And
only while the thread runs: once it is stopped (the server stopping), every stamp is taken at
the request again. A table the thread cannot stamp (an error of the file system) is left for
the next request to stamp, which says what is wrong; the thread goes on with the others.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from backfiller.planning import identity
from backfiller.planning.identity import Stamp

__all__ = ["PAUSE_FACTOR", "PAUSE_S", "SWEPT_FOLDERS", "FolderSweep", "Swept"]

_log = logging.getLogger(__name__)

#: a table whose live data files are in more folders than this has them stamped in the
#: background
SWEPT_FOLDERS = 10_000
#: the least pause between two sweeps, in seconds
PAUSE_S = 5.0
#: the pause between two sweeps is at least this many times the last sweep's duration
PAUSE_FACTOR = 4


@dataclass(frozen=True)
class Swept:
    """One table's data folders (the very tuple the cache holds for its log) and their
    newest stamp (``None``: not stamped yet), with when it was taken (the file system's
    clock)."""

    table: Path
    folders: tuple[str, ...]
    stamp: Stamp | None
    taken_ns: int = 0


class FolderSweep:
    """The newest stamps of the data folders of the large tables a server watches, kept fresh
    by one background thread started on the first table it is given."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._swept: dict[str, Swept] = {}
        self._stop = threading.Event()
        #: set when a table is given to be stamped soon (:meth:`watch`), or to stop
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        #: how many sweeps over every watched table have ended
        self.sweeps = 0

    def watch(self, asset: str, table: Path, folders: tuple[str, ...]) -> None:
        """Have ``asset``'s data ``folders`` in ``table`` stamped soon, by the background
        thread (a table whose log is new to the cache, just classified): the caller does not
        wait for their ``stat`` s."""
        with self._lock:
            if not self._known(self._swept.get(asset), table, folders):
                self._swept[asset] = Swept(table, folders, None)
        self._wake.set()
        self._start()

    def stamp(self, asset: str, table: Path, folders: tuple[str, ...]) -> Stamp | None:
        """The newest stamp of ``asset``'s data ``folders`` in ``table``: stamped now when
        they are new to the sweep (another log of the table lists other folders) or not
        stamped yet, else the last sweep's. ``None`` when it is not to be trusted (not
        settled when taken)."""
        with self._lock:
            found = self._swept.get(asset)
        if (
            not self._known(found, table, folders)
            or found is None
            or found.stamp is None
            or not self._sweeping()  # no thread keeps it fresh (stopped, or it failed)
        ):
            found = self.adopt(asset, table, folders)
        assert found.stamp is not None
        return found.stamp if found.stamp.settled(found.taken_ns) else None

    def adopt(self, asset: str, table: Path, folders: tuple[str, ...]) -> Swept:
        """Stamp ``asset``'s data ``folders`` in ``table`` now, in the caller's thread (a
        request's, or one that works in the background itself), and sweep them from then on:
        a request then finds their stamp taken."""
        found = _swept(table, folders)
        with self._lock:
            self._swept[asset] = found
        self._start()
        return found

    @property
    def stopped(self) -> bool:
        """Whether :meth:`stop` was called (the server is stopping)."""
        return self._stop.is_set()

    @property
    def waiting(self) -> int:
        """How many watched tables are not stamped yet."""
        with self._lock:
            return sum(1 for s in self._swept.values() if s.stamp is None)

    @property
    def thread(self) -> threading.Thread | None:
        """The background thread (``None``: not started: no large table yet)."""
        return self._thread

    def stop(self) -> None:
        """End the background thread (at its next pause, or between two tables)."""
        self._stop.set()
        self._wake.set()

    def sweep(self, *, new_only: bool = False) -> None:
        """Stamp every watched table's folders again (what the background thread does);
        ``new_only``: only those not stamped yet."""
        with self._lock:
            watched = list(self._swept.items())
        for asset, before in watched:
            if self._stop.is_set():
                return
            if new_only and before.stamp is not None:
                continue
            try:
                after = _swept(before.table, before.folders)
            except OSError:  # not now: the next request that needs it stamps it (or says why)
                _log.warning("cannot stamp the data folders of %s", before.table, exc_info=True)
                after = Swept(before.table, before.folders, None)
            with self._lock:
                if self._swept.get(asset) is before:  # not replaced meanwhile
                    self._swept[asset] = after
        if not new_only:
            self.sweeps += 1

    @staticmethod
    def _known(found: Swept | None, table: Path, folders: tuple[str, ...]) -> bool:
        return found is not None and found.folders is folders and found.table == table

    def _sweeping(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive() and not self._stop.is_set()

    def _start(self) -> None:
        with self._lock:
            running = self._thread is not None and self._thread.is_alive()
            if running or self._stop.is_set():
                return
            self._thread = threading.Thread(
                target=self._run, name="backfiller-ui-folder-sweep", daemon=True
            )
        self._thread.start()

    def _run(self) -> None:
        due = time.monotonic() + PAUSE_S
        while not self._stop.is_set():
            woken = self._wake.wait(max(0.0, due - time.monotonic()))
            if self._stop.is_set():
                return
            try:
                if woken:  # tables given to be stamped soon; the sweep stays due when it was
                    self._wake.clear()
                    self.sweep(new_only=True)
                    continue
                started = time.monotonic()
                self.sweep()
                ended = time.monotonic()
                due = ended + max(PAUSE_S, PAUSE_FACTOR * (ended - started))
            except Exception:  # the thread must not end: its stamps would go stale
                _log.exception("the sweep of data folders failed; it goes on")
                due = time.monotonic() + PAUSE_S


def _swept(table: Path, folders: tuple[str, ...]) -> Swept:
    taken = identity.now_ns()
    return Swept(table, folders, identity.folders_stamp(table, folders), taken)
