"""What a practice session changes for the core, passed explicitly.

A gap simulation must never damage the main tables; what it changes instead — checks forced to
fail, manifests replaced by broken stand-ins, and the rule that while a simulation is active
every plan is a dry run — reaches the core as one :class:`Overlay` given to
:func:`~backfiller.project.load_project` (or :meth:`~backfiller.project.Project.with_overlay`),
never through hidden state. The lab (:mod:`backfiller.lab`) builds it from its record of
simulations; the core never reads that record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from backfiller.errors import PreconditionError

__all__ = ["MARKER", "NO_OVERLAY", "Overlay"]

#: how a plan made during a simulation says so in its reason
MARKER = "[made during simulation"


@dataclass(frozen=True)
class Overlay:
    #: (asset, check name, partition key) triples whose check fails whatever the data
    forced_check_failures: frozenset[tuple[str, str, str]] = frozenset()
    #: real manifest file (resolved) -> (the stand-in read instead, who made it)
    manifest_stand_ins: Mapping[Path, tuple[Path, str]] = field(default_factory=dict)
    #: the active simulations: while there is one, every plan is a dry run ...
    simulations: tuple[str, ...] = ()
    #: ... unless applying is allowed all the same (``--allow-apply-during-simulation``)
    apply_allowed: bool = False

    def refuse_apply(self, *, what: str) -> None:
        """Refuse applying while a simulation is active, unless it is allowed (exit 2)."""
        if self.simulations and not self.apply_allowed:
            raise PreconditionError(
                f"{what} refused: simulation(s) {', '.join(self.simulations)} are active, and "
                "while a simulation is active every plan is a dry run",
                hint="make a dry-run plan (--mode dry-run); undo the simulation first "
                "('backfiller simulate undo SIM_ID'); or pass --allow-apply-during-simulation "
                "(it is recorded in the plan)",
            )

    def annotate(self, reason: str | None) -> str | None:
        """``reason`` with a note of the active simulations (once; a rebuilt plan keeps it)."""
        if not self.simulations or (reason and MARKER in reason):
            return reason
        note = f"{MARKER}(s) {', '.join(self.simulations)}"
        note += "; apply allowed by --allow-apply-during-simulation]" if self.apply_allowed else "]"
        return f"{reason} {note}" if reason else note


NO_OVERLAY = Overlay()
