"""The fast loop (``make check``: ``BACKFILLER_FAST_LOOP=1``, the tests not marked slow) stays
under a minute: there a property test draws a tenth of its examples (at least five, at most
all), or the count it names for the fast loop; the full suite (``make test``, CI) draws them
all."""

from __future__ import annotations

import os

#: whether this run is the fast loop
FAST = os.environ.get("BACKFILLER_FAST_LOOP") == "1"

#: a property test's examples in the fast loop: this share of the full suite's
SHARE = 10


def examples(full: int, fast: int | None = None) -> int:
    """How many examples a property test that draws ``full`` in the full suite draws now
    (``fast``: in the fast loop, instead of a :data:`SHARE` of ``full``)."""
    if not FAST:
        return full
    return min(full, fast if fast is not None else max(5, full // SHARE))
