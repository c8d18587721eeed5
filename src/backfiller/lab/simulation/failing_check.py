"""Simulate a gap by making one check fail for one partition (the seed: "make one check fail
without damaging long-lived data").

Nothing is written but the record: while the simulation is active, every run that recomputes
the partition (``execute`` takes the active simulations' (asset, check, partition) triples as
its ``forced_failures``) fails that check on the staged data, so the partition is not
published — the previous data stays visible, downstream consumers are held and the next
``gaps`` shows ``check_failed``. Undo removes the triple.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from backfiller.errors import BadInputError
from backfiller.lab.simulation.registry import (
    SimulationKind,
    SimulationRecord,
    active_simulations,
    add_simulation,
    new_simulation_id,
)

if TYPE_CHECKING:
    from backfiller.project import Project

__all__ = ["simulate_failing_check", "undo_failing_check"]


def simulate_failing_check(
    project: Project,
    *,
    asset: str,
    check: str,
    key: str,
    operator: str,
    note: str | None = None,
) -> SimulationRecord:
    target = project.graph.get(asset)  # names the known assets when unknown
    names = [c.name for c in target.checks]
    if check not in names:
        raise BadInputError(
            f"{asset} has no check {check!r}",
            hint=f"its checks: {', '.join(names) or 'none'}",
        )
    key = project.graph.scheme(asset).parse(key)
    state_dir = project.config.state_dir
    for r in active_simulations(state_dir):
        if r.kind is SimulationKind.FAILING_CHECK and (r.asset, r.check, r.partition_key) == (
            asset,
            check,
            key,
        ):
            raise BadInputError(
                f"Check {check} of {asset} {key} already fails by {r.simulation_id}",
                hint=f"undo it with 'backfiller simulate undo {r.simulation_id}'",
            )
    moment = project.clock()
    record = SimulationRecord(
        simulation_id=new_simulation_id(
            SimulationKind.FAILING_CHECK, moment, f"{asset}|{check}|{key}"
        ),
        kind=SimulationKind.FAILING_CHECK,
        created_at=moment,
        operator=operator,
        note=note,
        asset=asset,
        partition_key=key,
        check=check,
    )
    add_simulation(state_dir, record)
    return record


def undo_failing_check(project: Project, record: SimulationRecord) -> str:
    return (
        f"check {record.check} of {record.asset} {record.partition_key} is no longer forced "
        "to fail (a partition it held stays check_failed until it is recomputed)"
    )
