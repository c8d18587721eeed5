"""An in-memory data store with fault knobs, for testing runner logic in milliseconds.

It keeps every version of every table, like Delta Lake: a commit replaces whole partitions
atomically, carries the same metadata and app-transaction markers, and time travel reads any
earlier version. The knobs reproduce what storage does to a runner: a commit that fails before
it lands, a commit that lands and then raises (the acknowledgement is lost), a slow commit.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from backfiller.canonical import sha256_hex
from backfiller.engine import fingerprint_table
from backfiller.store.base import (
    PARTITION_COLUMN,
    CommitInfo,
    CommitKey,
    CommitRecord,
    FencedError,
    fence_app_id,
    require_inside,
    stats_of_each,
)

__all__ = ["Faults", "MemoryStore"]


@dataclass
class Faults:
    """What goes wrong, counted over all commits of the store (1 is the first commit)."""

    #: these commits raise before anything lands
    fail_commits: frozenset[int] = frozenset()
    #: these commits land, then raise (the writer cannot tell whether they landed)
    raise_after_commits: frozenset[int] = frozenset()
    #: every commit takes this long before it lands
    commit_seconds: float = 0.0


@dataclass(frozen=True)
class _Version:
    partitions: dict[str, pa.Table]
    #: the version at which each partition was last written
    written_at: dict[str, int]
    schema: pa.Schema
    record: CommitRecord
    transactions: dict[str, int]


@dataclass
class MemoryStore:
    """A :class:`~backfiller.store.base.DataStore` held in memory."""

    faults: Faults = field(default_factory=Faults)
    commits: int = 0
    _tables: dict[str, list[_Version]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _at(self, asset: str, version: int | None = None) -> _Version | None:
        versions = self._tables.get(asset)
        if not versions:
            return None
        if version is None:
            return versions[-1]
        if not 0 <= version < len(versions):
            raise ValueError(f"{asset!r} has no version {version}")
        return versions[version]

    def exists(self, asset: str) -> bool:
        return asset in self._tables

    def version(self, asset: str) -> int | None:
        versions = self._tables.get(asset)
        return len(versions) - 1 if versions else None

    def read_partition(
        self, asset: str, key: str, *, version: int | None = None
    ) -> pa.Table | None:
        found = self._at(asset, version)
        if found is None:
            return None
        return found.partitions.get(key, found.schema.empty_table())

    def read_partitions(
        self, asset: str, keys: Sequence[str], *, version: int | None = None
    ) -> pa.Table | None:
        found = self._at(asset, version)
        if found is None:
            return None
        parts = [found.partitions[k] for k in keys if k in found.partitions]
        return pa.concat_tables(parts) if parts else found.schema.empty_table()

    def write_partitions(
        self, asset: str, data: pa.Table, keys: Sequence[str], commit: CommitInfo
    ) -> int:
        require_inside(asset, data, keys)
        with self._lock:
            self.commits += 1
            number = self.commits
        if number in self.faults.fail_commits:
            raise OSError(f"commit {number} to {asset!r} failed (injected)")
        if self.faults.commit_seconds:
            time.sleep(self.faults.commit_seconds)
        with self._lock:
            versions = self._tables.setdefault(asset, [])
            if not versions:  # like Delta: an empty creating commit, then the data's
                created = {CommitKey.CREATED.value: "1"}
                versions.append(
                    _Version(
                        {},
                        {},
                        data.schema,
                        CommitRecord(0, int(time.time() * 1000), "WRITE", created),
                        {},
                    )
                )
            previous = versions[-1]
            held = previous.transactions
            for key, token in commit.fences:
                seen = held.get(fence_app_id(key))
                if seen is not None and seen >= token:
                    raise FencedError(asset, key, token, seen)
            version = len(versions)
            partitions = dict(previous.partitions)
            written_at = dict(previous.written_at)
            keys_column = data.column(PARTITION_COLUMN)
            for key in keys:
                rows = data.filter(pc.equal(keys_column, key))
                if rows.num_rows:
                    partitions[key] = rows
                else:
                    partitions.pop(key, None)
                written_at[key] = version
            transactions = dict(previous.transactions)
            transactions.update(commit.markers)
            for key, token in commit.fences:
                transactions[fence_app_id(key)] = token
            metadata = {**commit.metadata(), CommitKey.NONCE.value: uuid.uuid4().hex}
            versions.append(
                _Version(
                    partitions,
                    written_at,
                    data.schema,
                    CommitRecord(version, int(time.time() * 1000), "WRITE", metadata),
                    transactions,
                )
            )
        if number in self.faults.raise_after_commits:
            raise OSError(f"commit {number} to {asset!r} landed, then the connection dropped")
        return version

    def partition_counts(self, asset: str) -> dict[str, int]:
        found = self._at(asset)
        return {k: t.num_rows for k, t in found.partitions.items()} if found else {}

    def partition_signatures(self, asset: str) -> dict[str, str]:
        found = self._at(asset)
        if found is None:
            return {}
        return {k: sha256_hex([asset, k, found.written_at[k]])[:32] for k in found.partitions}

    def missing_files(self, asset: str) -> dict[str, int]:
        return {}  # nothing in memory is lost behind the store's back

    def partition_stats(self, asset: str) -> pa.Table:
        counts = self.partition_counts(asset)
        return pa.table(
            {
                "partition_key": pa.array(list(counts), pa.string()),
                "rows": pa.array(list(counts.values()), pa.int64()),
                "missing_files": pa.array([0] * len(counts), pa.int64()),
            }
        )

    def partition_stats_of(self, assets: Sequence[str]) -> pa.Table:
        return stats_of_each(self, assets)

    def release(self, assets: Iterable[str]) -> None:
        pass  # nothing is cached

    def partition_files(self, asset: str) -> pa.Table:
        signatures = self.partition_signatures(asset)  # one "file" per written partition
        return pa.table(
            {
                "partition_key": pa.array(list(signatures), pa.string()),
                "path": pa.array(list(signatures.values()), pa.string()),
            }
        )

    def fingerprint(self, asset: str, key: str, *, version: int | None = None) -> str | None:
        data = self.read_partition(asset, key, version=version)
        return None if data is None else fingerprint_table(data)

    def history(self, asset: str, limit: int | None = None) -> list[CommitRecord]:
        records = [v.record for v in reversed(self._tables.get(asset, []))]
        return records if limit is None else records[:limit]

    def committed_step(self, asset: str, app_id: str) -> int | None:
        found = self._at(asset)
        return None if found is None else found.transactions.get(app_id)

    def fence_token(self, asset: str, key: str) -> int | None:
        return self.committed_step(asset, fence_app_id(key))
