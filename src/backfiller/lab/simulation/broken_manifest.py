"""Simulate a gap with a manifest that is visibly missing fields (the seed: "build a seed
manifest that is visibly missing fields").

A copy of the manifest without the named fields — top-level fields, or per-partition fields
removed from every partition entry — is written to ``<state_dir>/simulations/<sim_id>/``; while
the simulation is active the project loads it in place of the real file, which stays
byte-identical. What that looks like (see ``backfiller.manifests``):

* ``gaps`` and dry-run plans show every partition the manifest declares as
  ``manifest_changed`` (proposed: replay with a new manifest), the detail naming the missing
  fields;
* apply, rerun and replay of those partitions are refused (exit 2) by a ``ManifestError``
  naming every missing field — nothing is written.
"""

from __future__ import annotations

import copy as copying
import hashlib
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backfiller.atomic import atomic_write_text
from backfiller.errors import BadInputError
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
from backfiller.manifests import Manifest, ManifestPartition

if TYPE_CHECKING:
    from backfiller.project import Project

__all__ = ["DROPPABLE_FIELDS", "simulate_broken_manifest", "undo_broken_manifest"]

TOP_FIELDS = tuple(Manifest.model_fields)
PARTITION_FIELDS = tuple(ManifestPartition.model_fields)
DROPPABLE_FIELDS = TOP_FIELDS + PARTITION_FIELDS


def drop_fields(raw: dict[str, Any], fields: Sequence[str]) -> dict[str, Any]:
    """``raw`` without ``fields`` (top-level, or in every partition entry)."""
    result = copying.deepcopy(raw)
    for name in fields:
        if name in TOP_FIELDS:
            result.pop(name, None)
        else:
            for entry in result.get("partitions") or []:
                if isinstance(entry, dict):
                    entry.pop(name, None)
    return result


def simulate_broken_manifest(
    project: Project,
    *,
    manifest_id: str,
    fields: Sequence[str],
    operator: str,
    note: str | None = None,
) -> SimulationRecord:
    """Write a copy of manifest ``manifest_id`` without ``fields`` and load it in its place."""
    wanted = list(dict.fromkeys(f.strip() for f in fields))
    if not wanted or not all(wanted):
        raise BadInputError(
            "Name at least one field to drop (--drop-field F)",
            hint=f"droppable: {', '.join(DROPPABLE_FIELDS)}",
        )
    state_dir = project.config.state_dir
    for r in active_simulations(state_dir):
        if r.kind is SimulationKind.BROKEN_MANIFEST and r.manifest_id == manifest_id:
            raise BadInputError(
                f"Manifest {manifest_id} is already replaced by a broken copy "
                f"({r.simulation_id}, without {', '.join(r.dropped_fields)})",
                hint=f"undo it first: 'backfiller simulate undo {r.simulation_id}'",
            )
    registry = project.manifests
    registry.get(manifest_id)  # unknown: names the known manifests
    unknown = [f for f in wanted if f not in DROPPABLE_FIELDS]
    if unknown:
        raise BadInputError(
            f"Unknown manifest field(s): {', '.join(unknown)}",
            hint=f"top-level: {', '.join(TOP_FIELDS)}; in every partition entry: "
            f"{', '.join(PARTITION_FIELDS)}",
        )
    source = registry.sources[manifest_id]
    if not isinstance(source, Path):
        raise BadInputError(
            f"Manifest {manifest_id} is on object storage ({source}): simulations replace "
            "local files only",
            hint="simulate on a project whose [project] manifests is a local folder",
        )
    data = source.read_bytes()
    raw = json.loads(data.decode("utf-8"))
    moment = project.clock()
    sim_id = new_simulation_id(
        SimulationKind.BROKEN_MANIFEST, moment, f"{manifest_id}|{','.join(wanted)}"
    )
    stand_in = simulation_folder(state_dir, sim_id) / source.name
    atomic_write_text(
        stand_in, json.dumps(drop_fields(raw, wanted), indent=2, ensure_ascii=False) + "\n"
    )
    record = SimulationRecord(
        simulation_id=sim_id,
        kind=SimulationKind.BROKEN_MANIFEST,
        created_at=moment,
        operator=operator,
        note=note,
        manifest_id=manifest_id,
        dropped_fields=wanted,
        original_path=relative(project.root, source),
        original_sha256=hashlib.sha256(data).hexdigest(),
        copy_path=relative(project.root, stand_in),
    )
    add_simulation(state_dir, record)
    project.reload_manifests()
    return record


def undo_broken_manifest(project: Project, record: SimulationRecord) -> str:
    """Remove the stand-in: the real manifest (never written) is loaded again."""
    assert record.copy_path is not None and record.original_path is not None
    stand_in = resolve(project.root, record.copy_path)
    shutil.rmtree(stand_in.parent, ignore_errors=True)
    project.reload_manifests()
    real = resolve(project.root, record.original_path)
    outcome = f"stand-in removed; {record.original_path} is loaded again"
    if not real.is_file():
        return outcome + " (but it no longer exists)"
    if hashlib.sha256(real.read_bytes()).hexdigest() != record.original_sha256:
        return outcome + " (it was changed since, not by the simulation)"
    return outcome + " (byte-identical, never written)"
