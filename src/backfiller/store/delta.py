"""Delta Lake through ``deltalake``: files only, no server. Spark, Trino and Databricks read the
same tables.

A publish replaces one or several partitions in one commit (``mode="overwrite"`` with a
predicate on the partition column): readers see the old partition or the new one, never half.
Each commit carries backfiller's metadata (run id, plan id, manifest ids) and, when given, an
app-transaction marker that answers "did my commit land?" after a crash.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import pyarrow as pa

from backfiller.canonical import sha256_hex
from backfiller.engine import fingerprint_table
from backfiller.errors import DamagedStoreError
from backfiller.store.add_actions import read_add_actions, read_many_add_actions
from backfiller.store.app_versions import AppVersions, UnreadableLog, commit_name
from backfiller.store.base import (
    PARTITION_COLUMN,
    CommitInfo,
    CommitKey,
    CommitRecord,
    FencedError,
    OutsideTargetError,
    fence_app_id,
    require_inside,
    stats_of_each,
)
from backfiller.store.location import is_uri, local_path_of, object_store_uri

if TYPE_CHECKING:  # deltalake, DuckDB and object storage's file systems: imported where used
    import duckdb
    import pyarrow.fs as pafs
    from deltalake import CommitProperties, DeltaTable

__all__ = ["PARTITION_COLUMN", "DeltaStore"]

_NONCE = CommitKey.NONCE.value
#: how many times a commit is tried when other processes' commits to the same partitions (or
#: the table's creation) land first
_COMMIT_ATTEMPTS = 5
#: table handles at a pinned version each thread keeps (an upstream or two of a group)
_PINNED_HANDLES = 4


_NO_COMMIT = object()
#: the file creators of a table take turns on (see :meth:`DeltaStore._create`)
_CREATE_LOCK = "_backfiller_create.lock"


def _damaged_log(asset: str, where: str, exc: Exception) -> DamagedStoreError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return DamagedStoreError(
        f"The Delta log of {asset} at {where}/_delta_log is damaged (a commit file missing "
        f"or truncated): {first}",
        hint="restore the table's _delta_log from a backup; nothing was written. 'backfiller "
        "verify' checks the other tables",
    )


def _local_file(root: Path, path: str) -> Path:
    """A data file's path as the log records it: relative to the table, or a file URI."""
    if path.startswith("file://"):
        return Path(unquote(path[len("file://") :]))
    return root / unquote(path)


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class DeltaStore:
    """One Delta table per asset under ``root``; the asset key is the relative path.

    ``root`` is a local folder (a path or a ``file://`` URI) or a prefix on object storage
    (``s3://bucket/prefix``, ``gs://…``, ``az://…``: see :mod:`backfiller.store.location`),
    reached with ``storage_options`` (and, as ``deltalake`` does, the environment's
    ``AWS_*``/``GOOGLE_*``/``AZURE_*`` variables). Commits are atomic on either: on object
    storage ``deltalake`` commits with conditional writes, no lock service needed."""

    def __init__(self, root: Path | str, storage_options: Mapping[str, str] | None = None) -> None:
        remote = object_store_uri(str(root))
        #: the local folder (``None``: the tables are on object storage)
        self.local_root: Path | None = None
        if remote is None:
            text = str(root)
            self.local_root = local_path_of(text) if is_uri(text) else Path(root)
        self.uri = remote or str(self.local_root)
        self.storage_options = dict(storage_options or {})
        # one handle per thread and table: a handle is not safe to share while another thread
        # brings it up to date
        self._local = threading.local()
        self._lock = threading.Lock()
        self._write_locks: dict[str, threading.Lock] = {}
        #: each table's app-transaction versions, read from its log once and then per new
        #: commit (see :mod:`backfiller.store.app_versions`), under its own lock
        self._apps: dict[str, tuple[threading.Lock, AppVersions]] = {}
        self._files: dict[str, pafs.FileSystem] = {}
        #: the live files of the tables the last two :meth:`partition_stats_of` read (one
        #: batch classified, the next one read ahead), per asset with the mark of the log they
        #: were read from: a planner asks the same batch's :meth:`partition_files` next (see
        #: :meth:`_kept_files`); and which read kept each, numbered
        self._kept: dict[str, tuple[tuple[Any, ...], pa.Table]] = {}
        self._kept_by: dict[str, int] = {}
        self._reads = 0

    @property
    def root(self) -> Path:
        """The local folder of the tables (a store on object storage has none)."""
        if self.local_root is None:
            raise ValueError(f"the store at {self.uri} is on object storage, not in a folder")
        return self.local_root

    def __getstate__(self) -> dict[str, Any]:
        """A store travels (to a worker computing a step) as its location alone."""
        return {"uri": self.uri, "storage_options": self.storage_options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["uri"], state["storage_options"])  # type: ignore[misc]

    def path(self, asset: str) -> Path:
        """The local folder of ``asset``'s table (a local store only)."""
        return self.root.joinpath(*asset.split("/"))

    def table_uri(self, asset: str) -> str:
        """Where ``asset``'s table is, as ``deltalake`` takes it."""
        if self.local_root is not None:
            return str(self.path(asset))
        return f"{self.uri}/{asset}"

    def _options(self) -> dict[str, str] | None:
        return self.storage_options or None

    def _files_of(self, asset: str) -> pafs.FileSystem:
        """The files of ``asset``'s table on object storage (paths relative to the table),
        reached as ``deltalake`` reaches them."""
        import pyarrow.fs as pafs
        from deltalake.fs import DeltaStorageHandler

        with self._lock:
            found = self._files.get(asset)
            if found is None:
                handler = DeltaStorageHandler(self.table_uri(asset), self._options())
                found = self._files[asset] = pafs.PyFileSystem(handler)
            return found

    def _table(self, asset: str, version: int | None = None) -> DeltaTable | None:
        """The table at ``version``, or the latest one (a cached handle, brought up to date
        incrementally: reloading the log for every call is what makes big backfills crawl)."""
        from deltalake import DeltaTable
        from deltalake.exceptions import DeltaError, TableNotFoundError

        uri = self.table_uri(asset)
        if self.local_root is not None and not (self.path(asset) / "_delta_log").is_dir():
            return None  # no table (a local folder says so without asking deltalake)
        try:
            if version is not None:
                return self._pinned(asset, uri, version)
            tables: dict[str, DeltaTable] = self._local.__dict__.setdefault("tables", {})
            table = tables.get(asset)
            if table is None:
                table = tables[asset] = DeltaTable(uri, storage_options=self._options())
            else:
                table.update_incremental()
            return table
        except TableNotFoundError:
            return None
        except DeltaError as exc:
            if version is not None:
                raise  # an old version that is no longer readable: the caller says so
            raise _damaged_log(asset, uri, exc) from exc

    def _pinned(self, asset: str, uri: str, version: int) -> DeltaTable:
        """The table as of ``version``: a handle of this thread's, kept for the next reads at
        that version (a version does not change; the steps of a group read their upstream at
        one pinned version, and opening it replays the log each time)."""
        from deltalake import DeltaTable

        pinned: dict[tuple[str, int], DeltaTable] = self._local.__dict__.setdefault("pinned", {})
        table = pinned.pop((asset, version), None)
        if table is None:
            table = DeltaTable(uri, version=version, storage_options=self._options())
        pinned[(asset, version)] = table  # the newest last
        while len(pinned) > _PINNED_HANDLES:
            del pinned[next(iter(pinned))]
        return table

    def exists(self, asset: str) -> bool:
        return self._table(asset) is not None

    def version(self, asset: str) -> int | None:
        table = self._table(asset)
        return None if table is None else int(table.version())

    def read_partition(
        self, asset: str, key: str, *, version: int | None = None
    ) -> pa.Table | None:
        """The rows of one partition, as of ``version`` (default: the latest); ``None`` when
        the table does not exist (at that version)."""
        table = self._table(asset, version)
        if table is None:
            return None
        try:
            return _rows_of(table, [key])
        except FileNotFoundError as exc:
            if version is not None:
                raise  # a vacuumed old version: the caller says so
            raise DamagedStoreError(
                f"A data file of {asset} {key} that the Delta log references is gone "
                f"({self.table_uri(asset)})",
                hint="backfill or restore the partition; 'backfiller gaps' lists it as "
                "missing_partition and 'backfiller verify' checks every partition",
            ) from exc

    def read_partitions(
        self, asset: str, keys: Sequence[str], *, version: int | None = None
    ) -> pa.Table | None:
        table = self._table(asset, version)
        if table is None:
            return None
        return _rows_of(table, keys)

    def write_partitions(
        self, asset: str, data: pa.Table, keys: Sequence[str], commit: CommitInfo
    ) -> int:
        """Replace exactly the partitions ``keys`` with ``data`` in one commit; return the
        version of that commit, read from the commit itself. Rows whose partition key is not
        in ``keys`` are refused; so is a commit whose lease tokens (``commit.fences``) are not
        newer than the ones the table holds (:class:`FencedError`)."""
        from deltalake import CommitProperties, Transaction
        from deltalake.exceptions import CommitFailedError

        require_inside(asset, data, keys)
        nonce = uuid.uuid4().hex
        metadata = {**commit.metadata(), _NONCE: nonce}
        transactions = [Transaction(app_id=fence_app_id(k), version=t) for k, t in commit.fences]
        transactions.extend(Transaction(app_id=a, version=v) for a, v in commit.markers)
        props = CommitProperties(custom_metadata=metadata, app_transactions=transactions or None)
        with self._lock:
            write_lock = self._write_locks.setdefault(asset, threading.Lock())
        # commits to one table are serialised within a process (compute, staging and checks
        # run in parallel); other processes are handled by Delta's optimistic concurrency
        with write_lock:
            for attempt in range(1, _COMMIT_ATTEMPTS + 1):
                try:
                    return self._commit(asset, data, keys, commit, props, nonce)
                except CommitFailedError:
                    # another process committed to these partitions since this writer's
                    # snapshot: nothing landed; look again
                    if attempt == _COMMIT_ATTEMPTS:
                        raise
        raise AssertionError("unreachable")

    def _commit(
        self,
        asset: str,
        data: pa.Table,
        keys: Sequence[str],
        commit: CommitInfo,
        props: CommitProperties,
        nonce: str,
    ) -> int:
        """One commit attempt against the table's latest snapshot. The fencing tokens are
        checked on that same snapshot; a commit landing after it on these partitions makes
        Delta refuse this one (a conflict), so the check and the commit are one."""
        from deltalake import write_deltalake

        table = self._table(asset)
        if table is None:
            self._create(asset, data.schema, commit.dimension_columns)
            table = self._table(asset)
            assert table is not None
        snapshot = int(table.version())
        fences = [fence_app_id(key) for key, _ in commit.fences]
        # read at or after the snapshot: a token newer than it is refused here instead of by
        # Delta's conflict check, which would refuse the commit just the same
        seen_tokens = self._app_versions(asset, fences, table, at_least=snapshot)
        for (key, token), seen in zip(commit.fences, seen_tokens, strict=True):
            if seen is not None and seen >= token:
                raise FencedError(asset, key, token, seen)
        predicate = f"{PARTITION_COLUMN} IN ({', '.join(_literal(k) for k in keys)})"
        write_deltalake(
            table,  # the cached handle: no reload of the log for every commit
            data,
            # as the table was created: partition_key, and a multi-dimensional asset's
            # dimension columns (functions of the key, so the predicate replaces one cell)
            partition_by=list(table.metadata().partition_columns),
            mode="overwrite",
            predicate=predicate,
            commit_properties=props,
        )
        version = self._version_of(asset, nonce, snapshot)
        if int(table.version()) != version:
            # other processes committed in between and delta-rs retried this commit at a
            # later version: the handle's own idea of the table is not to be trusted any more
            self._local.__dict__.get("tables", {}).pop(asset, None)
        return version

    def _create(self, asset: str, schema: pa.Schema, dimensions: Sequence[str] = ()) -> None:
        """Create the table with an empty first commit (its schema and partitioning only),
        once, whoever else is creating it at the same moment.

        Data never goes into the creating commit, and creators take turns under a file lock
        in the table's folder: delta-rs retries a creation that lost the race for version 0
        as a later commit, without an overwrite's conflict and fencing checks. A losing
        creation that carried rows added them beside the winner's (the same partition
        twice); an empty one still replaced the table's metadata (a new table id) after
        others had written. Under the lock the second creator finds the table and leaves it;
        every data commit is then an ordinary fenced overwrite."""
        if self.local_root is None:
            # on object storage there is no file lock to take turns on: version 0 is written
            # with a conditional PUT, and the creator that loses it leaves the table as the
            # winner made it (see _create_table)
            self._create_table(asset, schema, dimensions)
            return
        path = self.path(asset)
        path.mkdir(parents=True, exist_ok=True)
        # "_"-prefixed: hidden from Delta readers, never taken for a data file
        with (path / _CREATE_LOCK).open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                self._create_table(asset, schema, dimensions)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _create_table(self, asset: str, schema: pa.Schema, dimensions: Sequence[str]) -> None:
        """The creating commit, as version 0 or not at all: delta-rs would retry a creation
        that lost version 0 to another creator as version 1 (a second table id over the
        first), so it is not retried; the loser finds the winner's table and leaves it. The
        table is partitioned by ``partition_key`` and ``dimensions`` (a multi-dimensional
        asset's columns)."""
        from deltalake import CommitProperties, DeltaTable, write_deltalake
        from deltalake.exceptions import DeltaError

        uri = self.table_uri(asset)
        if DeltaTable.is_deltatable(uri, storage_options=self._options()):
            return  # another process created it while this one waited
        missing = [c for c in dimensions if c not in schema.names]
        if missing:
            raise OutsideTargetError(
                f"Data for {asset!r} has no column for the dimension(s) {', '.join(missing)}",
                asset=asset,
            )
        try:
            write_deltalake(
                uri,
                schema.empty_table(),
                partition_by=[PARTITION_COLUMN, *dimensions],
                mode="error",
                commit_properties=CommitProperties(
                    custom_metadata={CommitKey.CREATED.value: "1"}, max_commit_retries=0
                ),
                storage_options=self._options(),
            )
        except DeltaError:  # CommitFailedError too: version 0 was taken
            if not DeltaTable.is_deltatable(uri, storage_options=self._options()):
                raise  # not a lost race: a real failure
            self._local.__dict__.get("tables", {}).pop(asset, None)

    def _version_of(self, asset: str, nonce: str, after: int) -> int:
        """The version of the commit carrying ``nonce``, read from the commits themselves:
        the first commit file after version ``after`` (the snapshot the write was made
        against; -1 for a new table) whose commitInfo carries it. Neither the writing handle's
        version nor its history is trusted: when other processes commit in between, delta-rs
        may commit at a later version than the handle says, and a handle's history numbers
        commits from its own snapshot."""
        version = after + 1
        while (found := self._commit_nonce(asset, version)) is not _NO_COMMIT:
            if found == nonce:
                return version
            version += 1
        raise RuntimeError(f"commit {nonce} of {asset!r} not found after version {after}")

    def _log_file(self, asset: str, name: str) -> bytes | None:
        """The bytes of ``_delta_log/<name>`` of ``asset``'s table; ``None`` when there is no
        such file."""
        path = f"_delta_log/{name}"
        try:
            if self.local_root is not None:
                return (self.path(asset) / path).read_bytes()
            with self._files_of(asset).open_input_stream(path) as stream:
                return bytes(stream.read())
        except FileNotFoundError:
            return None

    def _log_names(self, asset: str) -> list[str]:
        """The names of the files in ``asset``'s ``_delta_log`` (none when there is none)."""
        if self.local_root is not None:
            try:
                return os.listdir(self.path(asset) / "_delta_log")  # noqa: PTH208 (names)
            except (FileNotFoundError, NotADirectoryError):
                return []
        import pyarrow.fs as pafs

        selector = pafs.FileSelector("_delta_log", allow_not_found=True)
        return [i.base_name for i in self._files_of(asset).get_file_info(selector)]

    def _commit_nonce(self, asset: str, version: int) -> str | object | None:
        """The nonce recorded in commit ``version``'s commitInfo, read from its log file;
        ``_NO_COMMIT`` when there is no such commit."""
        content = self._log_file(asset, f"{version:020d}.json")
        if content is None:
            return _NO_COMMIT
        lines = content.decode("utf-8").splitlines()
        for line in lines:
            if '"commitInfo"' in line:
                info = json.loads(line).get("commitInfo", {})
                value = info.get(_NONCE)
                return None if value is None else str(value)
        return None

    def partition_counts(self, asset: str) -> dict[str, int]:
        """Rows per partition, from the Delta log (no data file is read)."""
        actions = self._add_actions(asset)
        counts: dict[str, int] = {}
        for key, rows in zip(
            actions["partition"].to_pylist(), actions["num_records"].to_pylist(), strict=True
        ):
            counts[key] = counts.get(key, 0) + int(rows or 0)
        return counts

    def partition_signatures(self, asset: str) -> dict[str, str]:
        """A token per partition that changes whenever the partition's files change."""
        actions = self._add_actions(asset)
        files: dict[str, list[str]] = {}
        for key, path in zip(
            actions["partition"].to_pylist(), actions["path"].to_pylist(), strict=True
        ):
            files.setdefault(key, []).append(path)
        return {k: sha256_hex(sorted(v))[:32] for k, v in files.items()}

    def missing_files(self, asset: str) -> dict[str, int]:
        """Per partition, the referenced data files that no longer exist."""
        stats = self.partition_stats(asset)
        return {
            key: missing
            for key, missing in zip(
                stats.column("partition_key").to_pylist(),
                stats.column("missing_files").to_pylist(),
                strict=True,
            )
            if missing > 0
        }

    def partition_stats(self, asset: str) -> pa.Table:
        """Rows and missing data files per partition, from the log's add actions in one pass;
        whether each file exists is asked of its folder (one listing per folder), or of each
        file when the folders hold few files each (deltalake's folder per partition). Summed
        by DuckDB, sorted by partition key."""
        from backfiller.duck import cursor

        actions = self._add_actions(asset)
        n = len(actions["path"])
        files = pa.table(
            {
                "table": pa.repeat(pa.scalar(0, pa.int64()), n),
                "partition": actions["partition"],
                "path": actions["path"],
                "num_records": actions["num_records"],
            }
        )
        con = cursor("planning")
        try:
            con.register("files", files)
            stats = _stats(con, [asset], self._present(con, asset, files))
        finally:
            con.close()
        return stats.drop_columns(["asset"])

    def partition_stats_of(self, assets: Sequence[str]) -> pa.Table:
        """:meth:`partition_stats` of each of ``assets``, after an ``asset`` column. The local
        tables' logs are read together
        (:func:`~backfiller.store.add_actions.read_many_add_actions`), their data files'
        folders listed once each, and the files summed per partition by DuckDB (in the order
        of ``assets``, then by partition key); a log that reader leaves aside, and every
        table on object storage, is read as :meth:`partition_stats` reads it (those come
        last)."""
        from backfiller.duck import cursor

        if self.local_root is None:
            return stats_of_each(self, assets)
        tables = [a for a in dict.fromkeys(assets) if (self.path(a) / "_delta_log").is_dir()]
        listed = [self._log_names(a) for a in tables]
        pairs = list(zip(tables, listed, strict=True))
        marks = [self._log_mark(a, names) for a, names in pairs]
        logs = [(functools.partial(self._log_file, a), names) for a, names in pairs]
        files, aside = read_many_add_actions(logs, PARTITION_COLUMN)
        con = cursor("planning")
        try:
            con.register("files", files)
            runs, shapes = _runs_of(con)
            self._keep(tables, marks, files, aside, runs)
            present = _present_in([self.path(a) for a in tables], files, runs, shapes)
            together = _stats(con, tables, present)
        finally:
            con.close()
        return pa.concat_tables([together] + [stats_of_each(self, [tables[i]]) for i in aside])

    def release(self, assets: Iterable[str]) -> None:
        """Drop this thread's cached handles of ``assets`` (the latest and the pinned ones):
        a reader of many tables that reads each once (status, gaps, a plan) keeps no thousand
        handles alive."""
        tables = self._local.__dict__.get("tables", {})
        pinned = self._local.__dict__.get("pinned", {})
        with self._lock:
            for asset in assets:
                tables.pop(asset, None)
                self._kept.pop(asset, None)
                self._kept_by.pop(asset, None)
                for at in [at for at in pinned if at[0] == asset]:
                    del pinned[at]

    def partition_files(self, asset: str) -> pa.Table:
        """The data files of the current version by partition, from the log's add actions."""
        kept = self._kept_files(asset)
        if kept is not None:
            return kept
        actions = self._add_actions(asset)
        return pa.table({"partition_key": actions["partition"], "path": actions["path"]})

    def _kept_files(self, asset: str) -> pa.Table | None:
        """The live files :meth:`partition_stats_of` read last of ``asset``, when its log is
        still the one they were read from: the same files listed in ``_delta_log`` and the
        same newest commit file (commit files are never rewritten; a table deleted and made
        again has other files). ``None``: read the log."""
        with self._lock:
            kept = self._kept.get(asset)
        if kept is None or self._log_mark(asset, self._log_names(asset)) != kept[0]:
            return None
        return kept[1]

    def _log_mark(self, asset: str, names: list[str]) -> tuple[Any, ...]:
        """What tells one state of a local table's log from another: its files, the identity
        of its newest commit file, and the start of its first (where a table made again
        differs: its creation time and its id)."""
        commits = sorted(n for n in names if n.endswith(".json"))
        log = self.path(asset) / "_delta_log"
        try:
            newest = (log / commits[-1]).stat() if commits else None
            with (log / commit_name(0)).open("rb") as first:
                start = first.read(4096)
        except FileNotFoundError:
            return (frozenset(names), None)
        identity = None if newest is None else (newest.st_ino, newest.st_mtime_ns, newest.st_size)
        return (frozenset(names), identity, start)

    def _present(self, con: duckdb.DuckDBPyConnection, asset: str, files: pa.Table) -> pa.Table:
        """Which of the live files of ``asset``'s table exist (``files``, as table 0, registered
        on ``con``), as :func:`_listings`: on object storage each folder the paths name is
        listed once (:meth:`_present_remote`), a local table's are found by
        :func:`_present_in`."""
        if self.local_root is None:
            return _listings([(0, self._present_remote(asset, files.column("path")))])
        return _present_in([self.path(asset)], files, *_runs_of(con))

    def _keep(
        self,
        tables: list[str],
        marks: list[tuple[Any, ...]],
        files: pa.Table,
        aside: list[int],
        runs: list[tuple[int, int, int]],
    ) -> None:
        """Keep the live files just read of ``tables`` (each with its log's mark; ``aside``:
        those not read; ``runs``: :func:`_runs_of` their table numbers) beside those of the
        read before, not of older ones: two batches of tables at most."""
        every = pa.table({"partition_key": files["partition"], "path": files["path"]})
        left_aside = set(aside)
        slices = {n: (0, 0) for n in range(len(tables)) if n not in left_aside}
        for n, start, length in runs:
            slices[n] = (start, length)
        runs_per_table = Counter(n for n, _, _ in runs)
        kept = {
            tables[n]: (marks[n], every.slice(start, length))
            for n, (start, length) in slices.items()
            if runs_per_table[n] <= 1  # a table's files side by side, as read
        }
        with self._lock:
            self._reads += 1
            self._kept.update(kept)
            self._kept_by.update(dict.fromkeys(kept, self._reads))
            for asset in [a for a, read in self._kept_by.items() if read < self._reads - 1]:
                del self._kept_by[asset]
                self._kept.pop(asset, None)

    def _present_remote(self, asset: str, paths: pa.ChunkedArray) -> list[str]:
        """The data files ``paths`` of ``asset``'s table on object storage that exist, as
        the log records them: each folder the paths name listed once."""
        import pyarrow.fs as pafs

        files = self._files_of(asset)
        recorded = paths.to_pylist()
        names = [unquote(p) for p in recorded]
        if any("://" in n for n in names):  # absolute URIs: asked one by one
            prefix = self.table_uri(asset) + "/"
            infos = files.get_file_info([n.removeprefix(prefix) for n in names])
            return [p for p, i in zip(recorded, infos, strict=True) if i.type == pafs.FileType.File]
        existing: set[str] = set()
        for folder in sorted({n.rpartition("/")[0] for n in names}):
            selector = pafs.FileSelector(folder, allow_not_found=True)
            existing.update(i.path for i in files.get_file_info(selector))
        return [p for p, n in zip(recorded, names, strict=True) if n in existing]

    def _add_actions(self, asset: str) -> dict[str, pa.Array]:
        """The live data files: ``partition``, ``num_records``, ``path``. Read from the log's
        files themselves (:mod:`~backfiller.store.add_actions`: no table handle is opened);
        a log that reader does not read exactly is asked of Delta."""
        none = {
            "partition": pa.array([], pa.string()),
            "num_records": pa.array([]),
            "path": pa.array([], pa.string()),
        }
        if self.local_root is not None and not (self.path(asset) / "_delta_log").is_dir():
            return none  # no table (a local folder says so without asking deltalake)
        try:
            found = read_add_actions(
                functools.partial(self._log_file, asset), self._log_names(asset), PARTITION_COLUMN
            )
            return {name: found.column(name) for name in ("partition", "num_records", "path")}
        except UnreadableLog:
            pass
        table = self._table(asset)
        if table is None:
            return none
        from backfiller.duck import cursor

        con = cursor("planning")
        try:
            con.register("actions", pa.table(table.get_add_actions(flatten=True)))
            # a table without a data file (just created) types its empty columns as null
            found = con.sql(
                f"""SELECT CAST("partition.{PARTITION_COLUMN}" AS VARCHAR) AS partition,
                        num_records, CAST(path AS VARCHAR) AS path FROM actions"""
            ).to_arrow_table()
        finally:
            con.close()
        return {name: found.column(name) for name in ("partition", "num_records", "path")}

    def fingerprint(self, asset: str, key: str, *, version: int | None = None) -> str | None:
        data = self.read_partition(asset, key, version=version)
        if data is None:
            return None
        return fingerprint_table(data)

    def history(self, asset: str, limit: int | None = None) -> list[CommitRecord]:
        """Commits, newest first."""
        table = self._table(asset)
        if table is None:
            return []
        return self._records(table.history(limit))

    @staticmethod
    def _records(entries: list[dict[str, Any]]) -> list[CommitRecord]:
        return [
            CommitRecord(
                version=int(entry["version"]),
                timestamp_ms=int(entry.get("timestamp", 0)),
                operation=str(entry.get("operation", "")),
                metadata={k: str(v) for k, v in entry.items() if k.startswith("backfiller.")},
            )
            for entry in entries
        ]

    def committed_step(self, asset: str, app_id: str) -> int | None:
        """The last step number committed under ``app_id``; ``None`` if none landed."""
        if self.local_root is not None and not (self.path(asset) / "_delta_log").is_dir():
            return None  # no table (a local folder says so without asking deltalake)
        return self._app_versions(asset, [app_id], at_least=0)[0]

    def _app_versions(
        self,
        asset: str,
        app_ids: Sequence[str],
        table: DeltaTable | None = None,
        *,
        at_least: int = -1,
    ) -> list[int | None]:
        """The latest version of each of ``app_ids`` in the table's log (read at version
        ``at_least`` or later); ``None`` for an app id never committed."""
        with self._lock:
            entry = self._apps.get(asset)
            if entry is None:
                reader = functools.partial(self._log_file, asset)
                entry = self._apps[asset] = (threading.Lock(), AppVersions(reader))
        lock, index = entry
        with lock:
            try:
                index.refresh()
                if index.version >= at_least:
                    return [index.get(a) for a in app_ids]
            except UnreadableLog:
                pass
        # a log this reader does not read (or not yet at the snapshot): Delta answers, one
        # log replay per app id
        table = table if table is not None else self._table(asset)
        if table is None:
            return [None] * len(app_ids)
        found = [table.transaction_version(a) for a in app_ids]
        return [None if v is None else int(v) for v in found]

    def fence_token(self, asset: str, key: str) -> int | None:
        return self.committed_step(asset, fence_app_id(key))


#: fewer files than this per folder on average, and each file is asked for (one ``stat``)
#: rather than its folder listed (an open, reads and a close): in partition folders of one
#: file each, as ``deltalake`` writes them, that was measured 12 times cheaper
FILES_PER_LISTING = 4


#: per table (by number): whether its paths are all plain (relative, not encoded), and the
#: folders they name (``""``: the table's top)
_Shapes = dict[int, tuple[bool, list[str]]]


def _runs_of(con: duckdb.DuckDBPyConnection) -> tuple[list[tuple[int, int, int]], _Shapes]:
    """``(table, start, length)`` of each table's files in ``con``'s ``files`` (the live files
    :func:`~backfiller.store.add_actions.read_many_add_actions` read: a table's files side by
    side, the tables in the order of their numbers), and the shape of each table's paths
    (:data:`_Shapes`), in one pass."""
    runs = []
    shapes: _Shapes = {}
    start = 0
    for number, length, plain, nested in con.sql(
        """SELECT "table", count(*),
                bool_and(NOT (starts_with(path, 'file://') OR starts_with(path, '/')
                              OR contains(path, '%'))),
                bool_or(contains(path, '/'))
           FROM files GROUP BY 1 ORDER BY 1"""
    ).fetchall():
        runs.append((int(number), start, int(length)))
        shapes[int(number)] = (bool(plain), [] if nested else [""])
        start += int(length)
    nested_ones = [n for n, (plain, folders) in shapes.items() if plain and not folders]
    if nested_ones:  # the folders of the tables whose files are not all at their top
        for number, folders in con.sql(
            """SELECT "table", list(DISTINCT regexp_replace(path, '[^/]*$', ''))
               FROM files WHERE list_contains($nested, "table") GROUP BY 1""",
            params={"nested": nested_ones},
        ).fetchall():
            shapes[int(number)] = (True, sorted(folders))
    return runs, shapes


def _present_in(
    roots: Sequence[Path], files: pa.Table, runs: list[tuple[int, int, int]], shapes: _Shapes
) -> pa.Table:
    """Which live files of several local tables exist (``files``: their ``table`` numbers,
    positions in ``roots``, and ``path``; ``runs`` and ``shapes``: :func:`_runs_of` them):
    per table, :func:`_present_local` of its files, one table after the other (each matched
    against its own folders' names keeps them apart), as :func:`_listings`."""
    paths = files.column("path")
    found = []
    for number, start, length in runs:
        plain, folders = shapes[number]
        mine = paths.slice(start, length)
        found.append(
            (number, _present_local(roots[number], mine.to_pylist, length, plain, folders))
        )
    return _listings(found)


def _present_local(
    root: Path, paths: Callable[[], list[str]], count: int, plain: bool, folders: list[str]
) -> list[str]:
    """The data files of the local table at ``root`` that exist (``paths``: its ``count``
    files as the log records them, asked for only when needed; ``plain`` and ``folders``:
    their shape, :data:`_Shapes`), or names among which they are: the folders the paths name are
    listed once each (the names that come back are prefixed with their folder), or, when
    they hold few files each, each file is asked for; encoded or absolute paths are asked
    for one by one."""
    if not plain:
        return [p for p in paths() if _local_file(root, p).exists()]
    if len(folders) * FILES_PER_LISTING > count:
        return _existing(root, paths())
    existing: list[str] = []  # names, not Path objects: a table has thousands of files
    for folder in folders:
        try:
            names = os.listdir(root / folder)  # noqa: PTH208
        except (FileNotFoundError, NotADirectoryError):
            continue
        existing.extend([folder + n for n in names] if folder else names)
    return existing


def _existing(root: Path, paths: list[str]) -> list[str]:
    """Those of ``paths`` (relative to ``root``, plain) that exist: one ``access`` each,
    resolved from the table's folder where the system allows (no ``stat`` result made per
    file, no path walked from ``/``: some 40 % less time than ``os.path.exists``)."""
    if os.access not in os.supports_dir_fd:  # pragma: no cover - Windows
        top = f"{root}{os.sep}"  # a string per file, not a Path object
        return [p for p in paths if os.path.exists(top + p)]  # noqa: PTH110
    try:
        fd = os.open(root, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        return []  # no table folder: none of its files is there
    try:
        return [p for p in paths if os.access(p, os.F_OK, dir_fd=fd)]
    finally:
        os.close(fd)


def _listings(found: list[tuple[int, list[str]]]) -> pa.Table:
    """Names of existing files per table (by number) as an Arrow table ``tbl``, ``names``
    (the names joined by NUL, which no file name holds: one string per table, no Arrow
    string per name)."""
    return pa.table(
        {
            "tbl": pa.array([number for number, _ in found], pa.int64()),
            "names": pa.array(["\0".join(names) for _, names in found], pa.large_string()),
        }
    )


def _summed(source: str, by: Sequence[str], first: str = "") -> str:
    """The SQL that sums ``rows`` and ``missing_files`` of ``source`` (a table, or a query in
    parentheses) per value of the ``by`` columns, in their order (a null last); ``first``:
    columns (of the ``by`` columns) selected before them."""
    keys = ", ".join(f'"{name}"' for name in by)
    return f"""
        SELECT
            {first or keys},
            CAST(coalesce(sum(rows), 0) AS BIGINT) AS rows,
            CAST(coalesce(sum(missing_files), 0) AS BIGINT) AS missing_files
        FROM {source}
        GROUP BY {keys}
        ORDER BY {keys}"""


def _sum_by_partition(per_file: pa.Table, by: Sequence[str] = ("partition_key",)) -> pa.Table:
    """``rows`` and ``missing_files`` of ``per_file`` summed per ``partition_key`` (per value
    of the ``by`` columns, in their order, a null last), by DuckDB: a table's ``group_by``
    would import Arrow's query engine (and ``pyarrow.compute``)."""
    from backfiller.duck import cursor

    con = cursor("planning")
    try:
        con.register("per_file", per_file)
        found = con.sql(_summed("per_file", by)).to_arrow_table()
    finally:
        con.close()
    schema = pa.schema(
        [*((name, pa.string()) for name in by), ("rows", pa.int64()), ("missing_files", pa.int64())]
    )
    return found if found.schema == schema else schema.empty_table()


#: per live file of ``files`` (``table``, ``partition``, ``path``, ``num_records``): its table,
#: partition, rows, and whether it is missing (1) from the existing files ``present`` names
#: (:func:`_listings`)
_PER_FILE = """(
    WITH present AS (SELECT tbl, unnest(string_split(names, chr(0))) AS path FROM present)
    SELECT
        "table",
        partition AS partition_key,
        CAST(num_records AS BIGINT) AS rows,
        CAST(NOT EXISTS (
            SELECT 1 FROM present p WHERE p.tbl = f."table" AND p.path = f.path
        ) AS BIGINT) AS missing_files
    FROM files f
)"""

#: :data:`_PER_FILE` summed per table and partition, each table named after its number in
#: ``$assets``
_STATS = _summed(
    _PER_FILE,
    ["table", "partition_key"],
    first="""CAST(list_extract($assets, "table" + 1) AS VARCHAR) AS asset, partition_key""",
)


def _stats(con: duckdb.DuckDBPyConnection, tables: Sequence[str], present: pa.Table) -> pa.Table:
    """Rows and missing data files per partition of the live files registered as ``files``
    on ``con`` (``table``: their table's position in ``tables``), ``present`` saying which
    exist (:func:`_listings`): ``asset``, ``partition_key``, ``rows``, ``missing_files``, in
    the order of ``tables``, then by partition key (a null one last)."""
    con.register("present", present)
    found = con.sql(_STATS, params={"assets": list(tables)}).to_arrow_table()
    if found.schema != _STATS_SCHEMA:  # no file: columns DuckDB typed otherwise
        return _STATS_SCHEMA.empty_table()
    return found


_STATS_SCHEMA = pa.schema(
    [
        ("asset", pa.string()),
        ("partition_key", pa.string()),
        ("rows", pa.int64()),
        ("missing_files", pa.int64()),
    ]
)


def _rows_of(table: DeltaTable, keys: Sequence[str]) -> pa.Table:
    """The rows of the partitions ``keys``, read from their own data files only: the files are
    chosen by the log (exactly, by partition value, on a table partitioned by the key; by
    their statistics, a superset, on one that is not) and the rows filtered after reading.
    Asking ``deltalake`` for the table's rows with a filter read every file's metadata first:
    90–140 ms per partition of a year's table, against 4–8 ms. (A table with features Arrow's
    dataset does not read, deletion vectors say, is refused by ``deltalake`` either way.)"""
    chosen = list(keys)
    dataset = table.to_pyarrow_dataset(
        file_pruning_predicate=[(PARTITION_COLUMN, "in", chosen)] if chosen else None
    )
    if not chosen:
        return dataset.schema.empty_table()
    import pyarrow.compute as pc

    return dataset.to_table(filter=pc.field(PARTITION_COLUMN).isin(chosen))
