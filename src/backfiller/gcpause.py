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
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["collector_paused"]

_lock = threading.Lock()
#: how many blocks are open (in every thread), and whether the collector ran before the first
_open = 0
_was_enabled = False


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cycle collector paused inside the block. Blocks may nest and overlap across
    threads: the first one in pauses it, the last one out resumes it — only if it was running
    when the first one came in (a collector the caller paused stays paused)."""
    global _open, _was_enabled
    with _lock:
        if _open == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _open += 1
    try:
        yield
    finally:
        with _lock:
            _open -= 1
            if _open == 0 and _was_enabled:
                gc.enable()
