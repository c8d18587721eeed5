"""The name of one cell of the partitioned world: an asset and one of its partition keys."""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["AssetPartition"]


class AssetPartition(NamedTuple):
    """``(asset, partition_key)``: what a step writes, a lease guards, a hold holds."""

    asset: str
    partition_key: str

    def __str__(self) -> str:
        return f"{self.asset} {self.partition_key}"
