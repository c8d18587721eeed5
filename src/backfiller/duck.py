"""One in-memory DuckDB database per thread and purpose; each piece of work on its own cursor.

Opening a DuckDB database costs some 10 ms (22 ms the first time in a process); a cursor on
an open one costs some 10 µs. A cursor's registrations and temporary tables are its own and
die when it is closed, so readers that share a database never see each other's tables.

Two purposes, because DuckDB's thread count is a setting of the whole database:

* ``"engine"`` — queries over an asset's data (SQL assets, checks, fingerprints): as many
  threads as DuckDB chooses;
* ``"planning"`` — the classification of (asset, partition) cells and the reading of Delta
  logs: one thread, since a batch of a few hundred thousand cells is split by threads into
  more CPU seconds (and memory), not fewer.

Both render timestamps in UTC whatever the machine's time zone.

A thread's databases are closed when the thread ends, and those still open when the
interpreter exits are closed while it is still whole (a DuckDB database left to the
interpreter's final teardown can abort the process after its work is done: ``terminate
called ...``, exit status 134). A database keeps the memory its largest tables took after
they are dropped, until it is closed: a large job (a classification of many cells) runs in
:func:`scoped`, on a database of its own closed at its end, so that a long-lived thread (a
web server's) does not hold its peak. A child process forked from one that opened a
database opens its own; it leaves its parent's to its parent (DuckDB is not safe across a
fork: a forked child that used one should end with ``os._exit``).
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import duckdb

__all__ = ["Purpose", "cursor", "scoped"]

Purpose = Literal["engine", "planning"]

#: a database with the process that opened it
_Opened = tuple[int, "duckdb.DuckDBPyConnection"]

_local = threading.local()


class _ThreadDatabases:
    """A thread's databases, by purpose. Only the thread's local storage refers to it: when
    the thread ends, it is collected and its databases are closed (:func:`_close`); those of
    threads still running at exit are closed then (``weakref.finalize`` runs at exit)."""

    def __init__(self) -> None:
        self.by_purpose: dict[Purpose, _Opened] = {}
        #: the databases of the :func:`scoped` blocks the thread is in, innermost last
        self.scoped: dict[Purpose, list[duckdb.DuckDBPyConnection]] = {}
        weakref.finalize(self, _close, self.by_purpose)


def _close(databases: dict[Purpose, _Opened]) -> None:
    """Close ``databases`` that this process opened (not a parent's, before a fork)."""
    pid = os.getpid()
    for owner, con in list(databases.values()):
        if owner == pid:
            # one that will not close must not keep the others open
            with contextlib.suppress(Exception):
                con.close()
    databases.clear()


def _thread() -> _ThreadDatabases:
    found: _ThreadDatabases | None = getattr(_local, "databases", None)
    if found is None:
        found = _local.databases = _ThreadDatabases()
    return found


def _open(purpose: Purpose) -> duckdb.DuckDBPyConnection:
    import duckdb

    con = duckdb.connect(config={"threads": 1} if purpose == "planning" else {})
    # set once for the whole (private) database, every cursor inherits it (a SET per cursor
    # costs ~0.2 ms, paid by every query)
    con.execute("SET GLOBAL TimeZone = 'UTC'")
    return con


def cursor(purpose: Purpose = "engine") -> duckdb.DuckDBPyConnection:
    """A fresh cursor on this thread's database for ``purpose`` (in a :func:`scoped` block,
    on the block's); the caller closes it."""
    mine = _thread()
    inner = mine.scoped.get(purpose)
    if inner:
        return inner[-1].cursor()
    pid = os.getpid()
    found = mine.by_purpose.get(purpose)
    if found is None or found[0] != pid:
        found = mine.by_purpose[purpose] = (pid, _open(purpose))
    return found[1].cursor()


@contextlib.contextmanager
def scoped(purpose: Purpose) -> Iterator[None]:
    """Within the block, this thread's cursors for ``purpose`` are on a database of the block's
    own, closed at its end: the memory its tables took is given back then."""
    con = _open(purpose)
    stack = _thread().scoped.setdefault(purpose, [])
    stack.append(con)
    try:
        yield
    finally:
        stack.remove(con)
        con.close()
