"""Cheap identities of the sources a state classification reads: what tells one state of a
source from another without reading the source.

A long-lived reader (the web view's server) keeps what it classified under these identities
and classifies again only what they say changed. Each function returns a :class:`Stamp`, or
``None`` when the source cannot be identified both cheaply and correctly (object storage, a
log naming files by absolute path): whatever was read from it must then be read again.

* **ledger**: which ledger it is (:func:`ledger_place`: the SQLite file's device and inode, or
  the PostgreSQL URL) and, per asset, its newest partition event (the reader's
  ``partitions.change_marks``: every change of a partition record is an event), so that a run
  on one asset leaves the others' identities as they were.
* **Delta table**: the names in its ``_delta_log`` (a commit or checkpoint adds a file, a
  clean-up removes some), the newest commit file's, the first one's and ``_last_checkpoint``'s
  inode, size and times; and the data files' presence as the times of the folders holding
  the live files (an unlink changes its folder's modification time).
* **manifests**: the folder's and every file's inode, size and times.
* **partition reports**: the asset's report folder's inode and times (a report written or
  deleted changes them; a report is only ever asked whether it exists).

A modification time is only trusted when it is older than :data:`RACY_NS` before the stamp
was taken (git's "racily clean" rule): two changes within one tick of the file system's clock
get the same time, so a stamp of a folder changed a moment ago may not tell the next change.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import time
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "RACY_NS",
    "Stamp",
    "data_folders",
    "digest",
    "folder_stamp",
    "folders_stamp",
    "joined",
    "ledger_place",
    "manifests_stamp",
    "now_ns",
    "table_log_stamp",
    "table_stamp",
]

#: a modification time this close to the moment a stamp is taken is not trusted (the
#: coarsest clocks of common file systems tick every 2 s)
RACY_NS = 2_000_000_000

#: what a stamp holds of a file or folder that is not there
_ABSENT = ("absent",)


@dataclass(frozen=True)
class Stamp:
    """The identity of one source (``value``, compared for equality) and the newest
    modification time among the files and folders it covers (``newest_ns``, 0: none)."""

    value: Hashable
    newest_ns: int = 0

    def settled(self, taken_ns: int) -> bool:
        """Whether the next change of the source is sure to change the stamp: nothing it
        covers was modified within :data:`RACY_NS` of ``taken_ns`` (when it was taken)."""
        return self.newest_ns < taken_ns - RACY_NS


def digest(value: Hashable) -> str:
    """The SHA-256 of ``value`` pickled without memo (a value's bytes do not depend on which
    of its parts happen to be one object in this process): the same value gives the same
    digest in any process."""
    out = io.BytesIO()
    pickler = pickle.Pickler(out, protocol=5)
    pickler.fast = True  # no memo: equal values, equal bytes
    pickler.dump(value)
    return hashlib.sha256(out.getvalue()).hexdigest()


def now_ns() -> int:
    """The file system's clock now (the real one: stamps compare file times with it)."""
    return time.time_ns()


def _stat(path: str | Path) -> tuple[tuple[Hashable, ...], int]:
    """``(inode, size, mtime, ctime)`` of ``path`` (following links), and its mtime."""
    try:
        s = os.stat(path)  # noqa: PTH116 (a string per file, not a Path object)
    except (FileNotFoundError, NotADirectoryError):
        return _ABSENT, 0
    return (s.st_ino, s.st_size, s.st_mtime_ns, s.st_ctime_ns), s.st_mtime_ns


def _stamp(parts: Iterable[tuple[Hashable, tuple[tuple[Hashable, ...], int]]]) -> Stamp:
    """One stamp of named stats."""
    value: list[Hashable] = []
    newest = 0
    for name, (stat, mtime) in parts:
        value.append((name, stat))
        newest = max(newest, mtime)
    return Stamp(tuple(value), newest)


def folder_stamp(folder: Any) -> Stamp | None:
    """The stamp of what a local folder holds by name (files added or removed, not their
    contents): the folder's own inode and times. ``None`` on object storage."""
    if not isinstance(folder, Path):
        return None
    return _stamp([("folder", _stat(folder))])


def manifests_stamp(folder: Any) -> Stamp | None:
    """The stamp of the manifests folder and of every file in it (an edit changes the file's
    size or times). ``None`` on object storage."""
    if not isinstance(folder, Path):
        return None
    try:
        names = sorted(os.listdir(folder))  # noqa: PTH208 (names)
    except (FileNotFoundError, NotADirectoryError):
        names = []
    parts = [("", _stat(folder))] + [(n, _stat(folder / n)) for n in names]
    return _stamp(parts)


def ledger_place(config: Any) -> Hashable:
    """Which ledger ``config`` (a :class:`~backfiller.project.ProjectConfig`) names: the
    PostgreSQL URL (without its password), or the SQLite file's path, device and inode (a
    file put in its place is another ledger, whatever its events are numbered)."""
    if config.ledger_url:
        from backfiller.urls import redact

        return ("postgres", redact(config.ledger_url))
    path = Path(config.ledger_path)
    try:
        s = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return ("sqlite", str(path), _ABSENT)
    return ("sqlite", str(path), s.st_dev, s.st_ino)


def table_log_stamp(table: Path) -> Stamp | None:
    """The stamp of the Delta table at ``table``'s log: the names in ``_delta_log``, and the
    stats of its newest and first commit files and of ``_last_checkpoint`` (a table deleted
    and made again has other files). A table with no log has the stamp of its absence."""
    log = table / "_delta_log"
    try:
        names = sorted(os.listdir(log))  # noqa: PTH208 (names)
    except (FileNotFoundError, NotADirectoryError):
        return Stamp(("log", _ABSENT))
    commits = [n for n in names if n.endswith(".json")]
    watched = ["_last_checkpoint", *commits[:1], *commits[-1:]]
    stamp = _stamp((n, _stat(log / n)) for n in watched)
    # the names as one digest: a long log's thousands of names are compared at every request
    return Stamp(("log", digest(tuple(names)), stamp.value), stamp.newest_ns)


def data_folders(paths: pa.Array | pa.ChunkedArray | Sequence[str]) -> tuple[str, ...] | None:
    """The folders (relative to the table, ``""``: its own) holding the data files at
    ``paths`` as a Delta log records them (percent-encoded, as the store reads them; found
    in Arrow when none is: a table has thousands of files); ``None`` when a path is
    absolute or a URI (a folder it names is not the table's)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not isinstance(paths, pa.Array | pa.ChunkedArray):
        paths = pa.array(list(paths), pa.string())
    if len(paths) == 0:
        return ()
    odd = pc.or_(
        pc.or_(pc.starts_with(paths, "/"), pc.starts_with(paths, "file:")),
        pc.match_substring(paths, "://"),
    )
    if pc.any(odd).as_py():
        return None
    if pc.any(pc.match_substring(paths, "%")).as_py():  # encoded: as the store decodes them
        return tuple(sorted({unquote(str(p)).rpartition("/")[0] for p in paths.to_pylist()}))
    folders = pc.unique(pc.replace_substring_regex(paths, r"/?[^/]*$", ""))
    return tuple(sorted(str(f) for f in folders.to_pylist()))


def table_stamp(table: Path, log: Stamp, folders: Sequence[str]) -> Stamp:
    """The stamp of the Delta table at ``table``: its log's stamp (``log``) joined with
    :func:`folders_stamp` of the ``folders`` holding its live data files (:func:`data_folders`
    of them as of that log, so their names are the log's)."""
    return joined(log, folders_stamp(table, folders))


def folders_stamp(table: Path, folders: Sequence[str]) -> Stamp:
    """The stamp of the data files' presence in the Delta table at ``table``: the stats of the
    ``folders`` holding its live data files (relative to the table) and of the table's own
    folder, as one digest. One ``stat`` per folder: with a folder per partition, some 0.3 s per
    100,000 partitions. The value is the digest, not the stats: a stamp taken again is another
    object, and comparing 100,000 stats of equal values took some 10 ms at every request."""
    named = [f for f in folders if f]
    try:
        found = _stats_of(table, named)
    except (FileNotFoundError, NotADirectoryError):  # a folder gone: asked one by one
        top = f"{table}{os.sep}"
        each = [_stat(table), *(_stat(top + f) for f in named)]
        stats: tuple[Hashable, ...] = tuple(s for s, _ in each)
        newest = max(m for _, m in each)
    else:
        stats = tuple((s.st_ino, s.st_size, s.st_mtime_ns, s.st_ctime_ns) for s in found)
        newest = max(s.st_mtime_ns for s in found)
    return Stamp(digest(stats), newest)


def _stats_of(table: Path, folders: list[str]) -> list[os.stat_result]:
    """The stats of ``table`` and of its ``folders`` (relative to it), each folder's looked
    up from the table's folder where the system allows (no path walked from ``/``)."""
    if os.stat not in os.supports_dir_fd:  # pragma: no cover - Windows
        top = f"{table}{os.sep}"
        return [os.stat(table), *(os.stat(top + f) for f in folders)]  # noqa: PTH116
    fd = os.open(table, os.O_RDONLY)
    try:
        return [os.fstat(fd), *(os.stat(f, dir_fd=fd) for f in folders)]
    finally:
        os.close(fd)


def joined(log: Stamp, folders: Stamp) -> Stamp:
    """A table's stamp from its log's and its data folders' (:func:`folders_stamp`)."""
    return Stamp((log.value, folders.value), max(log.newest_ns, folders.newest_ns))
