"""Bulk reads without the cycle collector.

Reading a large document makes hundreds of thousands of small objects that hold no cycles
(a manifest of 100,000 days: its JSON, then a model per partition). Python's cycle collector
runs every few hundred allocations and each of its older passes walks every live object — the
whole document again — so it took half of such a read (1.0 of 2.0 s). Pausing it there costs
nothing: those objects are freed by reference counting whatever the collector does, and the
collector runs again as soon as the read is over.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["collector_paused"]


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cycle collector paused inside the block (nested or from several threads: the one
    that paused it resumes it; one paused by the caller stays paused)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
