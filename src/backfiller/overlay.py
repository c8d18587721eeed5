"""What a practice session changes for the core, passed explicitly.

A gap simulation must never damage the main tables; what it changes instead — checks forced to
fail, manifests replaced by broken stand-ins — reaches the core as one :class:`Overlay` given to
:func:`~backfiller.project.load_project` (or :meth:`~backfiller.project.Project.with_overlay`),
never through hidden state.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Overlay"]


@dataclass(frozen=True)
class Overlay:
    #: (asset, check name, partition key) triples whose check fails whatever the data
    forced_check_failures: frozenset[tuple[str, str, str]] = frozenset()


NO_OVERLAY = Overlay()
