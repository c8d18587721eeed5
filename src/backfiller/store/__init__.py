"""Data stores: the interface and the Delta Lake default."""

from backfiller.store.base import CommitInfo, CommitRecord, DataStore, OutsideTargetError
from backfiller.store.delta import DeltaStore

__all__ = ["CommitInfo", "CommitRecord", "DataStore", "DeltaStore", "OutsideTargetError"]
