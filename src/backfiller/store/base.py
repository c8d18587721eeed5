"""The data store interface: where partitions live. Delta Lake is the default."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from backfiller.errors import BadInputError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["CommitInfo", "CommitRecord", "DataStore", "OutsideTargetError"]


class OutsideTargetError(BadInputError):
    """Rows whose partition key lies outside the partitions being written."""


@dataclass(frozen=True)
class CommitInfo:
    """What a publish commit carries in its metadata."""

    run_id: str
    plan_id: str | None = None
    manifest_ids: tuple[str, ...] = ()
    operator: str = ""
    action: str = ""
    # an app-transaction marker: (app id, step number); "did my commit land?"
    app_id: str | None = None
    app_version: int | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def metadata(self) -> dict[str, str]:
        meta = {
            "backfiller.run_id": self.run_id,
            "backfiller.plan_id": self.plan_id or "",
            "backfiller.manifest_ids": ",".join(self.manifest_ids),
            "backfiller.operator": self.operator,
            "backfiller.action": self.action,
        }
        meta.update({f"backfiller.{k}": v for k, v in self.extra.items()})
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

    def write_partitions(
        self, asset: str, data: pa.Table, keys: Sequence[str], commit: CommitInfo
    ) -> int: ...

    def partition_counts(self, asset: str) -> dict[str, int]: ...

    def partition_signatures(self, asset: str) -> dict[str, str]: ...

    def fingerprint(self, asset: str, key: str, *, version: int | None = None) -> str | None: ...

    def history(self, asset: str) -> list[CommitRecord]: ...

    def committed_step(self, asset: str, app_id: str) -> int | None: ...
