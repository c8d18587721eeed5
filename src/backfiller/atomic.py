"""Atomic file writes: write a temporary file beside the target, fsync, rename.

A reader sees the old file or the new one, never half of one; a crash leaves at most a stray
temporary file, which is ignored (it starts with ``.tmp-``). Inside :func:`one_folder_sync`,
the folders written to are synced once each when the block ends, not once per file (a group
of partition reports costs one directory sync per folder).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_write_bytes", "atomic_write_text", "one_folder_sync"]

_pending = threading.local()


@contextlib.contextmanager
def one_folder_sync() -> Iterator[None]:
    """Defer the directory syncs of this thread's atomic writes to the end of the block (each
    folder once); every file itself is still synced before its rename."""
    outer = getattr(_pending, "folders", None)
    if outer is not None:  # nested: the outermost block syncs
        yield
        return
    folders: dict[Path, None] = {}
    _pending.folders = folders
    try:
        yield
    finally:
        _pending.folders = None
        for folder in folders:
            _fsync_dir(folder)


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=path.suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).replace(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            Path(tmp).unlink()
        raise
    folders = getattr(_pending, "folders", None)
    if folders is None:
        _fsync_dir(path.parent)
    else:
        folders[path.parent] = None
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


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
