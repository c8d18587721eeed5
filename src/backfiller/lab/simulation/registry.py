"""The record of simulations: ``<state_dir>/simulations.json``, written atomically.

Each simulation has an id (``sim-`` + 16 hex digits), a kind, what it touched and where it put
what it moved aside (``<state_dir>/simulations/<sim_id>/``). Undone simulations stay in the
file with ``undone_at`` and what undo did, so ``simulate list --all`` can tell the story.

This module only knows paths: :class:`~backfiller.project.Project` reads the manifest
overrides from it while loading its manifests.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from backfiller.atomic import atomic_write_text
from backfiller.canonical import stable_id
from backfiller.errors import BadInputError, ConfigError
from backfiller.lab.simulation.files import SIMULATIONS_FILE, simulations_path

__all__ = [
    "SIMULATIONS_FILE",
    "SimulationKind",
    "SimulationRecord",
    "active_simulations",
    "add_simulation",
    "find_simulation",
    "forced_failures",
    "manifest_overrides",
    "mark_undone",
    "new_simulation_id",
    "read_simulations",
    "relative",
    "resolve",
    "simulation_folder",
    "simulations_path",
    "write_simulations",
]

SIMULATIONS_FOLDER = "simulations"
FILE_VERSION: Literal[1] = 1


class SimulationKind(Enum):
    MOVE_REPORT = "move_report"
    BROKEN_MANIFEST = "broken_manifest"
    FAILING_CHECK = "failing_check"


class SimulationRecord(BaseModel):
    """One simulation. Paths are relative to the project root (absolute when outside it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    simulation_id: Annotated[str, Field(pattern=r"^sim-[0-9a-f]{16}$")]
    kind: SimulationKind
    created_at: AwareDatetime
    operator: str
    note: str | None = None
    asset: str | None = None
    partition_key: str | None = None
    check: str | None = None
    manifest_id: str | None = None
    dropped_fields: list[str] = Field(default_factory=list)
    original_path: str | None = None  # the report moved aside, or the real manifest
    original_sha256: str | None = None
    copy_path: str | None = None  # in <state_dir>/simulations/<simulation_id>/
    undone_at: AwareDatetime | None = None
    undone_by: str | None = None
    undo_outcome: str | None = None

    @property
    def active(self) -> bool:
        return self.undone_at is None

    @property
    def target(self) -> str:
        """What it touches, in one line."""
        if self.kind is SimulationKind.MOVE_REPORT:
            return f"report of {self.asset} {self.partition_key}"
        if self.kind is SimulationKind.BROKEN_MANIFEST:
            return f"manifest {self.manifest_id} without {', '.join(self.dropped_fields)}"
        return f"check {self.check} of {self.asset} {self.partition_key}"

    @property
    def expected_gap(self) -> str:
        """The gap reason it makes visible."""
        return {
            SimulationKind.MOVE_REPORT: "missing_partition_report",
            SimulationKind.BROKEN_MANIFEST: "manifest_changed",
            SimulationKind.FAILING_CHECK: "check_failed (once the partition is recomputed)",
        }[self.kind]


class SimulationsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = FILE_VERSION
    simulations: list[SimulationRecord] = Field(default_factory=list)


def simulation_folder(state_dir: Path, simulation_id: str) -> Path:
    return Path(state_dir) / SIMULATIONS_FOLDER / simulation_id


def new_simulation_id(kind: SimulationKind, moment: datetime, target: str) -> str:
    """``sim-`` + a hash of what it is, when, and a random nonce (two runs never collide)."""
    return stable_id(
        "sim",
        {"kind": kind.value, "at": moment.isoformat(), "target": target, "n": uuid.uuid4().hex},
    )


def read_simulations(state_dir: Path) -> list[SimulationRecord]:
    """Every simulation recorded (active and undone); none when the file does not exist."""
    path = simulations_path(state_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    try:
        return SimulationsFile.model_validate(json.loads(text)).simulations
    except (json.JSONDecodeError, ValidationError, RecursionError) as exc:
        raise ConfigError(
            f"{path} is not a valid simulations file: {exc}",
            hint="restore it from the copy you made, or remove it once every simulation's "
            f"files under {simulation_folder(state_dir, '')} are put back by hand",
        ) from exc


def write_simulations(state_dir: Path, records: Iterable[SimulationRecord]) -> Path:
    document = SimulationsFile(simulations=list(records))
    text = json.dumps(document.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"
    return atomic_write_text(simulations_path(state_dir), text)


def active_simulations(state_dir: Path) -> list[SimulationRecord]:
    return [r for r in read_simulations(state_dir) if r.active]


def find_simulation(state_dir: Path, simulation_id: str) -> SimulationRecord:
    records = read_simulations(state_dir)
    for r in records:
        if r.simulation_id == simulation_id:
            return r
    active = [r.simulation_id for r in records if r.active]
    raise BadInputError(
        f"Unknown simulation {simulation_id!r} (active: {', '.join(active) or 'none'})",
        hint="see 'backfiller simulate list'",
    )


def resolve(root: Path, stored: str) -> Path:
    """A path as the record stores it, made absolute."""
    return Path(root) / stored  # an absolute stored path stays absolute


def relative(root: Path, path: Path) -> str:
    try:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return str(Path(path).resolve())


def manifest_overrides(state_dir: Path, root: Path) -> dict[Path, tuple[Path, str]]:
    """Real manifest file (resolved) -> (its stand-in, "simulation <id>") for every active
    broken-manifest simulation."""
    overrides: dict[Path, tuple[Path, str]] = {}
    for r in active_simulations(state_dir):
        if r.kind is SimulationKind.BROKEN_MANIFEST and r.original_path and r.copy_path:
            overrides[resolve(root, r.original_path).resolve()] = (
                resolve(root, r.copy_path),
                f"simulation {r.simulation_id}",
            )
    return overrides


def forced_failures(state_dir: Path) -> frozenset[tuple[str, str, str]]:
    """The (asset, check, partition) triples the active failing-check simulations fail."""
    return frozenset(
        (r.asset, r.check, r.partition_key)
        for r in active_simulations(state_dir)
        if r.kind is SimulationKind.FAILING_CHECK
        and r.asset is not None
        and r.check is not None
        and r.partition_key is not None
    )


def add_simulation(state_dir: Path, record: SimulationRecord) -> None:
    write_simulations(state_dir, [*read_simulations(state_dir), record])


def mark_undone(
    state_dir: Path, simulation_id: str, *, at: datetime, by: str, outcome: str
) -> SimulationRecord:
    records = read_simulations(state_dir)
    updated: SimulationRecord | None = None
    for i, r in enumerate(records):
        if r.simulation_id == simulation_id:
            updated = records[i] = r.model_copy(
                update={"undone_at": at, "undone_by": by, "undo_outcome": outcome}
            )
    if updated is None:  # pragma: no cover - the caller found it first
        raise BadInputError(f"Unknown simulation {simulation_id!r}")
    write_simulations(state_dir, records)
    return updated
