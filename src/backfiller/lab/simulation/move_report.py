"""Simulate a gap by moving one partition report aside (the seed: "delete or move one
partition's report"). The data and the ledger are untouched; the next ``gaps`` shows
``missing_partition_report`` for the partition, whose proposed action re-verifies the data
against the ledger and re-issues the report — nothing is recomputed.

The report is copied into ``<state_dir>/simulations/<sim_id>/report.json`` first, the
simulation recorded, and only then the original removed, so a crash never loses it. Undo puts
the very same bytes back.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from backfiller.atomic import atomic_write_bytes
from backfiller.errors import BadInputError, PreconditionError
from backfiller.lab.simulation.registry import (
    SimulationKind,
    SimulationRecord,
    active_simulations,
    add_simulation,
    new_simulation_id,
    relative,
    resolve,
    simulation_folder,
)

if TYPE_CHECKING:
    from backfiller.project import Project

__all__ = ["simulate_move_report", "undo_move_report"]

COPY_NAME = "report.json"


def simulate_move_report(
    project: Project, *, asset: str, key: str, operator: str, note: str | None = None
) -> SimulationRecord:
    """Move the partition report of (``asset``, ``key``) aside; refused (nothing written)
    when the asset or key is unknown or there is no report to move."""
    project.graph.get(asset)  # names the known assets when unknown
    key = project.graph.scheme(asset).parse(key)
    state_dir = project.config.state_dir
    for r in active_simulations(state_dir):
        if r.kind is SimulationKind.MOVE_REPORT and (r.asset, r.partition_key) == (asset, key):
            raise BadInputError(
                f"The report of {asset} {key} is already moved aside by {r.simulation_id}",
                hint=f"undo it first: 'backfiller simulate undo {r.simulation_id}'",
            )
    source = project.partition_report_path(asset, key)
    if not isinstance(source, Path):
        raise BadInputError(
            f"The report of {asset} {key} is on object storage ({source}): simulations move "
            "local files only",
            hint="simulate on a project whose [project] report_dir is a local folder",
        )
    if not source.is_file():
        raise BadInputError(
            f"No partition report for {asset} {key} at {project.relative(source)}: nothing to move",
            hint="a report exists once the partition is materialized; pick a materialized "
            "partition ('backfiller status')",
        )
    data = source.read_bytes()
    moment = project.clock()
    sim_id = new_simulation_id(SimulationKind.MOVE_REPORT, moment, f"{asset}|{key}")
    copy = simulation_folder(state_dir, sim_id) / COPY_NAME
    atomic_write_bytes(copy, data)
    record = SimulationRecord(
        simulation_id=sim_id,
        kind=SimulationKind.MOVE_REPORT,
        created_at=moment,
        operator=operator,
        note=note,
        asset=asset,
        partition_key=key,
        original_path=relative(project.root, source),
        original_sha256=hashlib.sha256(data).hexdigest(),
        copy_path=relative(project.root, copy),
    )
    add_simulation(state_dir, record)
    source.unlink()
    return record


def undo_move_report(project: Project, record: SimulationRecord) -> str:
    """Put the report back, byte for byte; return what was done.

    If a report was written there since (apply re-issued it), the original goes back over it
    as long as the partition still holds the data version the original describes; if the
    partition was re-published since, the newer report stays and the original is kept in the
    simulation's folder.
    """
    assert record.original_path is not None and record.copy_path is not None
    original = resolve(project.root, record.original_path)
    copy = resolve(project.root, record.copy_path)
    if not copy.is_file():
        if original.is_file() and _sha(original.read_bytes()) == record.original_sha256:
            return "the report was already back in place"
        raise PreconditionError(
            f"The moved-aside report {copy} is gone; cannot restore {record.original_path}",
            hint="re-issue the report with a plan ('backfiller plan --partition "
            f"{record.partition_key}', then apply it)",
        )
    data = copy.read_bytes()
    if _sha(data) != record.original_sha256:
        raise PreconditionError(
            f"The moved-aside report {copy} was changed since it was moved "
            f"(sha256 {_sha(data)[:12]}…, recorded {str(record.original_sha256)[:12]}…)",
            hint="put the right report back by hand",
        )
    outcome = f"report moved back to {record.original_path} (byte-identical)"
    if original.is_file():
        current = original.read_bytes()
        if current == data:
            outcome = "the report was already back in place"
        elif not _same_version(project, record, data):
            return (
                f"kept the newer report at {record.original_path} (the partition was "
                f"re-published since); the original stays at {record.copy_path}"
            )
        else:
            outcome = (
                f"original report restored over the re-issued one at {record.original_path} "
                "(same data version; byte-identical)"
            )
            atomic_write_bytes(original, data)
    else:
        atomic_write_bytes(original, data)
    shutil.rmtree(copy.parent, ignore_errors=True)
    return outcome


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _same_version(project: Project, record: SimulationRecord, data: bytes) -> bool:
    assert record.asset is not None and record.partition_key is not None
    try:
        described = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False
    current = project.reader().partitions.get(record.asset, record.partition_key)
    return (
        current is not None
        and isinstance(described, dict)
        and described.get("data_version") == current.data_version
        and described.get("fingerprint") == current.fingerprint
    )
