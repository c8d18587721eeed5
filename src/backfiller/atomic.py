"""Atomic file writes: write a temporary file beside the target, fsync, rename.

A reader sees the old file or the new one, never half of one; a crash leaves at most stray
temporary files, which are ignored (they start with ``.tmp-``). Inside :func:`one_folder_sync`
the writes are finished together when the block ends: every file written, then each synced,
then each renamed, then each folder synced once — a group of partition reports waits for the
disk once or twice, not twice per file.

A location on object storage (:class:`~backfiller.locations.ObjectPath`) is written by one
PUT, which readers see whole or not at all; inside :func:`one_folder_sync` the PUTs wait for
the block's end too.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from backfiller.locations import ObjectPath

__all__ = ["atomic_write_bytes", "atomic_write_text", "create_new_bytes", "one_folder_sync"]

_L = TypeVar("_L", bound="Path | ObjectPath")

_pending = threading.local()


@contextlib.contextmanager
def one_folder_sync() -> Iterator[None]:
    """Finish this thread's atomic writes at the end of the block: each file is written to its
    temporary name at once, synced and renamed into place when the block ends (all synced
    before any is renamed), and each folder synced once. A file is visible only after the
    block; if the block raises, its files are not written (their temporaries are removed)."""
    outer = getattr(_pending, "batch", None)
    if outer is not None:  # nested: the outermost block finishes the writes
        yield
        return
    batch = _Batch()
    _pending.batch = batch
    try:
        yield
    except BaseException:
        _pending.batch = None
        batch.discard()
        raise
    _pending.batch = None
    batch.finish()


class _Batch:
    """The writes of a :func:`one_folder_sync` block: (temporary, target) in order."""

    def __init__(self) -> None:
        self.writes: list[tuple[Path, Path]] = []
        #: the objects to PUT at the block's end (object storage)
        self.puts: list[tuple[ObjectPath, bytes]] = []

    def finish(self) -> None:
        try:
            for tmp, _ in self.writes:
                fd = os.open(tmp, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            for tmp, path in self.writes:
                tmp.replace(path)
        except BaseException:
            self.discard()
            raise
        for folder in dict.fromkeys(path.parent for _, path in self.writes):
            _fsync_dir(folder)
        for target, data in self.puts:
            target.write_bytes(data)

    def discard(self) -> None:
        self.puts.clear()
        for tmp, _ in self.writes:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


def atomic_write_bytes(path: _L, data: bytes) -> _L:
    batch: _Batch | None = getattr(_pending, "batch", None)
    if not isinstance(path, Path):  # an object: one PUT
        if batch is not None:
            batch.puts.append((path, data))
        else:
            path.write_bytes(data)
        return path
    tmp = _temporary_beside(path, data, sync=batch is None)
    try:
        if batch is not None:
            batch.writes.append((tmp, path))  # synced and renamed at the block's end
            return path
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_text(path: _L, text: str) -> _L:
    return atomic_write_bytes(path, text.encode("utf-8"))


def create_new_bytes(path: Path | ObjectPath, data: bytes) -> bool:
    """Write ``data`` to ``path`` only if there is no file there yet: ``True`` if this call
    wrote it, ``False`` if a file was there (left as it was). Locally the synced temporary
    file is hard-linked into place, which fails when the name is taken: of two writers at
    once, exactly one creates it. On object storage the object is written if it is not
    found: the handler backfiller reaches object storage through has no conditional PUT, so
    two writers at the same instant may both write (the last one wins)."""
    if not isinstance(path, Path):
        if path.is_file():
            return False
        path.write_bytes(data)
        return True
    tmp = _temporary_beside(path, data, sync=True)
    try:
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    _fsync_dir(path.parent)
    return True


def _temporary_beside(path: Path, data: bytes, *, sync: bool) -> Path:
    """``data`` in a new temporary file in ``path``'s folder (created if missing), synced to
    disk when ``sync``; removed again if writing it fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=path.suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if sync:
                handle.flush()
                os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            Path(tmp).unlink()
        raise
    return Path(tmp)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)
