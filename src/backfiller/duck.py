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

Both render timestamps in UTC whatever the machine's time zone. A process forked from one
that opened a database opens its own (a database is not shared across a fork). Every
database opened is closed when the interpreter exits (:mod:`atexit`), while it is still
whole: a DuckDB database left to the interpreter's final teardown can abort the process
after its work is done (``terminate called ...``, exit status 134).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import duckdb

__all__ = ["Purpose", "cursor"]

Purpose = Literal["engine", "planning"]

_local = threading.local()
#: every database opened (with the process that opened it), closed at exit
_opened: list[tuple[int, duckdb.DuckDBPyConnection]] = []
_opened_lock = threading.Lock()


def cursor(purpose: Purpose = "engine") -> duckdb.DuckDBPyConnection:
    """A fresh cursor on this thread's database for ``purpose``; the caller closes it."""
    import duckdb

    pid = os.getpid()
    opened: dict[Purpose, tuple[int, duckdb.DuckDBPyConnection]] | None = getattr(
        _local, "databases", None
    )
    if opened is None:
        opened = _local.databases = {}
    found = opened.get(purpose)
    if found is None or found[0] != pid:
        con = duckdb.connect(config={"threads": 1} if purpose == "planning" else {})
        # set once for the whole (private) database, every cursor inherits it (a SET per
        # cursor costs ~0.2 ms, paid by every query)
        con.execute("SET GLOBAL TimeZone = 'UTC'")
        with _opened_lock:
            if not _opened:
                atexit.register(_close_all)
            _opened.append((pid, con))
        found = opened[purpose] = (pid, con)
    return found[1].cursor()


def _close_all() -> None:
    """Close every database this process opened (at exit; not those a parent opened before
    a fork, which are the parent's)."""
    pid = os.getpid()
    with _opened_lock:
        opened, _opened[:] = list(_opened), []
    for owner, con in opened:
        if owner != pid:
            continue
        # one that will not close must not keep the others open
        with contextlib.suppress(Exception):
            con.close()
