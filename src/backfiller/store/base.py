"""The data store interface: where partitions live. Delta Lake is the default."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

import pyarrow as pa

from backfiller.errors import BadInputError, ConflictError

__all__ = [
    "PARTITION_COLUMN",
    "CommitInfo",
    "CommitKey",
    "CommitRecord",
    "DataStore",
    "FencedError",
    "OutsideTargetError",
    "fence_app_id",
    "require_inside",
    "stats_of_each",
]


class CommitKey(StrEnum):
    """The keys of backfiller's metadata on a data commit."""

    RUN_ID = "backfiller.run_id"
    PLAN_ID = "backfiller.plan_id"
    MANIFEST_IDS = "backfiller.manifest_ids"
    OPERATOR = "backfiller.operator"
    ACTION = "backfiller.action"
    PARTITION_KEYS = "backfiller.partition_keys"
    RESTORED_FROM_VERSION = "backfiller.restored_from_version"
    NONCE = "backfiller.commit_nonce"
    #: on a table's first commit, which is empty: its schema and partitioning only
    CREATED = "backfiller.created"


PARTITION_COLUMN = "partition_key"


def fence_app_id(key: str) -> str:
    """The app-transaction id that carries a partition's lease token into the commits that
    write it: a table refuses a commit whose token is not newer than the one it holds."""
    return f"backfiller.lease:{key}"


class FencedError(ConflictError):
    """A commit refused because the table already holds an equal or newer lease token for a
    partition it writes: another holder took the lease over (and may have published)."""

    def __init__(self, asset: str, key: str, token: int, seen: int) -> None:
        super().__init__(
            f"{asset} {key}: the table holds lease token {seen}, this writer has {token}; "
            "another holder took the lease over, so this late commit was refused",
            hint="nothing was written; 'backfiller history' shows who published the partition",
            asset=asset,
            partition=key,
        )
        self.token = token
        self.seen = seen


class OutsideTargetError(BadInputError):
    """Rows whose partition key lies outside the partitions being written."""


class _PartitionStats(Protocol):
    def partition_stats(self, asset: str) -> pa.Table: ...


def stats_of_each(store: _PartitionStats, assets: Sequence[str]) -> pa.Table:
    """``partition_stats`` of each of ``assets``, one after the other, after an ``asset``
    column: :meth:`DataStore.partition_stats_of` for a store that has no faster way."""
    parts = [pa.table({"asset": [], "partition_key": [], "rows": [], "missing_files": []},
                      schema=_STATS_OF)]  # fmt: skip
    for asset in dict.fromkeys(assets):
        stats = store.partition_stats(asset)
        owner = pa.repeat(pa.scalar(asset, pa.string()), stats.num_rows)
        stats = stats.add_column(0, "asset", owner)
        # a cast imports pyarrow.compute: only for a store whose columns are typed otherwise
        parts.append(stats if stats.schema == _STATS_OF else stats.cast(_STATS_OF))
    return pa.concat_tables(parts)


_STATS_OF = pa.schema(
    [
        ("asset", pa.string()),
        ("partition_key", pa.string()),
        ("rows", pa.int64()),
        ("missing_files", pa.int64()),
    ]
)


def require_inside(asset: str, data: pa.Table, keys: Sequence[str]) -> None:
    """Refuse a write whose rows lie outside the partitions ``keys`` it replaces."""
    if not keys:
        raise ValueError("write_partitions needs at least one partition key")
    if PARTITION_COLUMN not in data.column_names:
        raise OutsideTargetError(
            f"Data for {asset!r} has no {PARTITION_COLUMN!r} column", asset=asset
        )
    import pyarrow.compute as pc  # a write's concern: not imported by readers of the store

    present = set(pc.unique(data.column(PARTITION_COLUMN)).to_pylist())
    outside = sorted(str(k) for k in present - set(keys))
    if outside:
        raise OutsideTargetError(
            f"Refusing to write {asset!r}: rows with partition keys {outside} lie outside "
            f"the target partitions {sorted(keys)}",
            hint="a compute function must only return rows of the partition it computes",
            asset=asset,
        )


@dataclass(frozen=True)
class CommitInfo:
    """What a publish commit carries in its metadata."""

    run_id: str
    plan_id: str | None = None
    manifest_ids: tuple[str, ...] = ()
    operator: str = ""
    action: str = ""
    #: app-transaction markers, (app id, step number) per partition written: "did my commit
    #: land?" (:meth:`DataStore.committed_step`)
    markers: tuple[tuple[str, int], ...] = ()
    #: (partition key, lease token) per partition written: the fencing tokens the commit
    #: carries (app transaction :func:`fence_app_id`); a table holding a token at least as
    #: new refuses the commit with :class:`FencedError`
    fences: tuple[tuple[str, int], ...] = ()
    extra: dict[CommitKey, str] = field(default_factory=dict)
    #: the columns a table this commit creates is partitioned by besides ``partition_key``:
    #: a multi-dimensional asset's dimensions, one column each (a table keeps the
    #: partitioning it was created with)
    dimension_columns: tuple[str, ...] = ()

    def metadata(self) -> dict[str, str]:
        meta = {
            CommitKey.RUN_ID.value: self.run_id,
            CommitKey.PLAN_ID.value: self.plan_id or "",
            CommitKey.MANIFEST_IDS.value: ",".join(self.manifest_ids),
            CommitKey.OPERATOR.value: self.operator,
            CommitKey.ACTION.value: self.action,
        }
        meta.update({k.value: v for k, v in self.extra.items()})
        return meta


@dataclass(frozen=True)
class CommitRecord:
    version: int
    timestamp_ms: int
    operation: str
    metadata: dict[str, str]


class DataStore(Protocol):
    """One table per asset, partitioned by the partition key."""

    def exists(self, asset: str) -> bool: ...

    def version(self, asset: str) -> int | None: ...

    def read_partition(
        self, asset: str, key: str, *, version: int | None = None
    ) -> pa.Table | None: ...

    def read_partitions(
        self, asset: str, keys: Sequence[str], *, version: int | None = None
    ) -> pa.Table | None:
        """The rows of partitions ``keys`` as of ``version`` (default: the latest); ``None``
        when the table does not exist (at that version)."""
        ...

    def write_partitions(
        self, asset: str, data: pa.Table, keys: Sequence[str], commit: CommitInfo
    ) -> int: ...

    def partition_counts(self, asset: str) -> dict[str, int]: ...

    def partition_signatures(self, asset: str) -> dict[str, str]: ...

    def missing_files(self, asset: str) -> dict[str, int]:
        """Per partition, how many data files the table's log references but the storage no
        longer holds (only partitions with at least one)."""
        ...

    def partition_stats(self, asset: str) -> pa.Table:
        """One row per stored partition, in one pass over the table's metadata:
        ``partition_key`` (string), ``rows`` and ``missing_files`` (int64) — what
        :meth:`partition_counts` and :meth:`missing_files` say, as columns."""
        ...

    def partition_stats_of(self, assets: Sequence[str]) -> pa.Table:
        """:meth:`partition_stats` of each of ``assets`` (in one pass where the store can),
        after an ``asset`` column."""
        ...

    def release(self, assets: Iterable[str]) -> None:
        """Forget what is cached about ``assets`` (their table handles); the next read opens
        them again."""
        ...

    def partition_files(self, asset: str) -> pa.Table:
        """One row per data file of the current version: ``partition_key`` and ``path``
        (strings), from the table's metadata: what a plan's state digest covers of the store
        (any publish, or a file replaced behind the tool's back, changes them)."""
        ...

    def fingerprint(self, asset: str, key: str, *, version: int | None = None) -> str | None: ...

    def history(self, asset: str, limit: int | None = None) -> list[CommitRecord]: ...

    def committed_step(self, asset: str, app_id: str) -> int | None: ...

    def fence_token(self, asset: str, key: str) -> int | None:
        """The newest lease token a commit of partition ``key`` carried; ``None`` if none."""
        ...
