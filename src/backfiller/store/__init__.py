"""Data stores: the interface, the Delta Lake default, and an in-memory one for tests."""

from backfiller.store.base import (
    CommitInfo,
    CommitKey,
    CommitRecord,
    DataStore,
    FencedError,
    OutsideTargetError,
    fence_app_id,
)
from backfiller.store.delta import DeltaStore
from backfiller.store.memory import Faults, MemoryStore

__all__ = [
    "CommitInfo",
    "CommitKey",
    "CommitRecord",
    "DataStore",
    "DeltaStore",
    "Faults",
    "FencedError",
    "MemoryStore",
    "OutsideTargetError",
    "fence_app_id",
]
