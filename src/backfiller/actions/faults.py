"""Named crash points in the runner, for crash tests that kill real processes.

Set ``BACKFILLER_CRASH_POINT=<name>`` (and optionally ``BACKFILLER_CRASH_AFTER=<n>``, the
n-th time that point is reached; default 1) and the process kills itself with SIGKILL there —
no cleanup, no ``finally``, exactly like ``kill -9``. Unset, a crash point costs one dict
lookup.
"""

from __future__ import annotations

import os
import signal
import threading

__all__ = ["CRASH_POINTS", "crash_point"]

CRASH_POINTS = (
    "after_begin",
    "after_lease",
    "after_start",
    "after_compute",
    "before_commit",
    "after_commit",
    "after_ledger_publish",
    "after_report",
    "before_settle",
    "after_settle",
    "after_evidence_file",
)

_hits: dict[str, int] = {}
_lock = threading.Lock()


def crash_point(name: str) -> None:
    assert name in CRASH_POINTS, name
    target = os.environ.get("BACKFILLER_CRASH_POINT")
    if target != name:
        return
    with _lock:
        _hits[name] = _hits.get(name, 0) + 1
        hit = _hits[name]
    if hit >= int(os.environ.get("BACKFILLER_CRASH_AFTER", "1")):
        os.kill(os.getpid(), signal.SIGKILL)
