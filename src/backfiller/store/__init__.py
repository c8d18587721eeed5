"""Data stores: the interface, the Delta Lake default, and an in-memory one for tests (imported
when first named: a command that never builds one does not pay for it)."""

from typing import TYPE_CHECKING

from backfiller._lazy import lazy_getattr
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

if TYPE_CHECKING:
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

__getattr__ = lazy_getattr(
    globals(), {"Faults": "backfiller.store.memory", "MemoryStore": "backfiller.store.memory"}
)
