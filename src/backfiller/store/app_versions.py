"""The app-transaction versions of a Delta table (``txn`` actions: each partition's fencing
token and each step's marker), read from the table's log in one pass and then kept up to date
by reading only the commits that are new.

``DeltaTable.transaction_version(app_id)`` replays the log for every call: its cost grows with
the table's history (0.3 ms per call after 2 commits, 6.8 ms after 60 were measured), and a
backfill asks it twice per partition, so a year of partitions paid a quadratic cost. This
index reads the last checkpoint's ``txn`` column once, then each commit file once.

A log this reader does not understand (a V2 or UUID-named checkpoint, a file that does not
parse) is not guessed at: :meth:`AppVersions.refresh` raises :class:`UnreadableLog`, and the
store falls back to ``transaction_version`` (which also names a damaged log properly).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from typing import Any

__all__ = ["AppVersions", "LogReader", "UnreadableLog", "checkpoint_files", "commit_name"]

#: reads one file of ``_delta_log`` by name; ``None`` when it does not exist
LogReader = Callable[[str], bytes | None]


class UnreadableLog(Exception):
    """The log is in a form this reader does not read; ask Delta instead."""


def commit_name(version: int) -> str:
    """The name of commit ``version``'s file in ``_delta_log``."""
    return f"{version:020d}.json"


def checkpoint_files(version: int, pointer: dict[str, Any]) -> list[str]:
    """The files of the checkpoint at ``version`` that ``_last_checkpoint`` (``pointer``)
    names: one, or its parts; a V2 checkpoint is not read (:class:`UnreadableLog`)."""
    if "v2Checkpoint" in pointer:
        raise UnreadableLog("a V2 checkpoint")
    parts = int(pointer.get("parts") or 0)
    if not parts:
        return [f"{version:020d}.checkpoint.parquet"]
    return [f"{version:020d}.checkpoint.{i:010d}.{parts:010d}.parquet" for i in range(1, parts + 1)]


def checkpoint_pointer(pointer: bytes) -> tuple[int, dict[str, Any]]:
    """The version ``_last_checkpoint`` names, and the whole pointer."""
    try:
        last = json.loads(pointer)
        return int(last["version"]), last
    except (ValueError, KeyError, TypeError) as exc:
        raise UnreadableLog("_last_checkpoint does not parse") from exc


class AppVersions:
    """``app id → version`` as of the table's version :attr:`version` (-1: no commit read)."""

    def __init__(self, read: LogReader) -> None:
        self._read = read
        self.version = -1
        self.versions: dict[str, int] = {}
        #: the last file read and the digest of its bytes: a table deleted and created again
        #: under the same path while this index lives is noticed and read afresh
        self._last: tuple[str, bytes] | None = None

    def get(self, app_id: str) -> int | None:
        return self.versions.get(app_id)

    def refresh(self) -> None:
        """Read what the log gained since :attr:`version`: the last checkpoint when nothing
        was read yet, then every commit file after it, up to the newest. (A log whose first
        commits were cleaned up and that has no ``_last_checkpoint`` reads as no commit at
        all: :attr:`version` stays -1, and the caller asks Delta.)"""
        if self._last is not None:
            name, digest = self._last
            now = self._read(name)
            if now is None or hashlib.sha256(now).digest() != digest:
                self._forget()
        if self.version < 0:
            self._from_checkpoint()
        grew = False
        while (text := self._read(commit_name(self.version + 1))) is not None:
            self._apply_commit(text)
            self.version += 1
            self._last = (commit_name(self.version), hashlib.sha256(text).digest())
            grew = True
        if not grew and self._checkpoint_beyond():
            # the commits after this index's version were cleaned up behind a newer
            # checkpoint: read from that checkpoint
            self._forget()
            self.refresh()

    def _forget(self) -> None:
        self.version, self.versions, self._last = -1, {}, None

    def _checkpoint_beyond(self) -> bool:
        """Whether ``_last_checkpoint`` names a version after this index's."""
        pointer = self._read("_last_checkpoint")
        return pointer is not None and checkpoint_pointer(pointer)[0] > self.version

    def _apply_commit(self, text: bytes) -> None:
        for line in text.splitlines():
            if b'"txn"' not in line:
                continue
            try:
                txn = json.loads(line).get("txn")
                if isinstance(txn, dict):
                    self.versions[str(txn["appId"])] = int(txn["version"])
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise UnreadableLog(f"commit {self.version + 1} does not parse") from exc

    def _from_checkpoint(self) -> None:
        pointer = self._read("_last_checkpoint")
        if pointer is None:
            return
        version, last = checkpoint_pointer(pointer)
        import pyarrow.parquet as pq  # only when a table has a checkpoint

        found: dict[str, int] = {}
        for name in checkpoint_files(version, last):
            data = self._read(name)
            if data is None:
                raise UnreadableLog(f"checkpoint file {name} is missing")
            try:
                table = pq.read_table(io.BytesIO(data), columns=["txn"])
            except Exception as exc:  # any unreadable checkpoint: ask Delta
                raise UnreadableLog(f"checkpoint file {name} does not read") from exc
            for txn in table.column("txn").to_pylist():
                if txn is not None and txn.get("appId") is not None:
                    found[str(txn["appId"])] = int(txn["version"])
        self.versions = found
        self.version = version
        # what tells a table created again: the pointer (small; a new checkpoint also
        # changes it, and the index is then read again from that checkpoint)
        self._last = ("_last_checkpoint", hashlib.sha256(pointer).digest())
