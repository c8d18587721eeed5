"""Manifests: the declared input of a batch. Replay is only possible against a manifest.

A manifest is JSON validated against ``contracts/manifest/manifest.schema.json`` (generated from
:class:`Manifest`). Every problem is named in one message; nothing is written on refusal.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from backfiller.canonical import sha256_hex
from backfiller.errors import InvalidPartitionKeyError, ManifestError
from backfiller.partitions import PartitionScheme
from backfiller.schemas import validation_problems

__all__ = [
    "InputFile",
    "InputMismatch",
    "Manifest",
    "ManifestPartition",
    "ManifestRegistry",
    "load_manifest",
]

MANIFEST_SCHEMA_VERSION = 1

Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="hex sha256 of the bytes")]
Identifier = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")]


class InputFile(BaseModel):
    """One input file, relative to the project root, with its checksum."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Annotated[
        str,
        Field(
            min_length=1,
            pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*$",
            description="relative path with forward slashes; no segment starts with '.'",
        ),
    ]
    sha256: Sha256


class ManifestPartition(BaseModel):
    """What the manifest declares for one partition."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    partition_key: Annotated[str, Field(min_length=1, max_length=64)]
    expected_record_count: Annotated[int, Field(ge=0)]
    input_files: list[InputFile] = Field(default_factory=list)

    @property
    def checksum(self) -> str:
        """The checksum of this partition's declaration (a change in another partition of the
        same manifest does not change it)."""
        return sha256_hex(self.model_dump(mode="json"))


class Manifest(BaseModel):
    """The declared input of one batch."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        title="backfiller manifest",
        json_schema_extra={"$comment": "generated from backfiller.manifests.Manifest"},
    )

    schema_version: Literal[1]
    manifest_id: Identifier
    source: Annotated[str, Field(min_length=1)]
    batch_id: Identifier
    created_at: AwareDatetime
    partitions: list[ManifestPartition]

    def partition(self, key: str) -> ManifestPartition | None:
        for p in self.partitions:
            if p.partition_key == key:
                return p
        return None

    @property
    def checksum(self) -> str:
        return sha256_hex(self.model_dump(mode="json"))


@dataclass(frozen=True)
class InputMismatch:
    """An input file that no longer matches its declared checksum."""

    path: str
    expected: str
    actual: str | None  # None: the file is missing


def load_manifest(path: Path, scheme: PartitionScheme | None = None) -> Manifest:
    """Read and validate one manifest; raise :class:`ManifestError` naming every problem."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"Manifest file not found: {path}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(
            f"Manifest {path} is not valid JSON: {exc}", hint="fix the file's syntax"
        ) from exc
    return parse_manifest(raw, source=str(path), scheme=scheme)


def parse_manifest(
    raw: Any, *, source: str = "<manifest>", scheme: PartitionScheme | None = None
) -> Manifest:
    problems = validation_problems("manifest", raw)
    manifest: Manifest | None = None
    if not problems:
        try:
            manifest = Manifest.model_validate(raw)
        except ValidationError as exc:  # the schema and the model agree; belt and braces
            problems = [
                f"{'/'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}"
                for e in exc.errors()
            ]
    raw_parts = raw.get("partitions") if isinstance(raw, dict) else None
    seen: set[str] = set()
    for i, part in enumerate(raw_parts if isinstance(raw_parts, list) else []):
        key = part.get("partition_key") if isinstance(part, dict) else None
        if not isinstance(key, str):
            continue
        if key in seen:
            problems.append(f"partitions/{i}/partition_key: {key!r} repeats")
        seen.add(key)
        if scheme is not None:
            try:
                scheme.parse(key)
            except InvalidPartitionKeyError as exc:
                problems.append(f"partitions/{i}/partition_key: {exc.message}")
    if problems:
        listing = "\n".join(f"  - {p}" for p in problems)
        raise ManifestError(
            f"Manifest {source} is invalid ({len(problems)} problem"
            f"{'s' if len(problems) != 1 else ''}):\n{listing}",
            hint="fix the manifest; see contracts/manifest/manifest.schema.json",
        )
    assert manifest is not None
    return manifest


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_inputs(part: ManifestPartition, root: Path) -> list[InputMismatch]:
    """The declared input files of one partition that are missing or changed."""
    problems: list[InputMismatch] = []
    for f in part.input_files:
        target = Path(root, *PurePosixPath(f.path).parts)
        actual = file_sha256(target) if target.is_file() else None
        if actual != f.sha256:
            problems.append(InputMismatch(f.path, f.sha256, actual))
    return problems


class ManifestRegistry:
    """The manifests of a project; for each partition, the newest manifest that declares it."""

    def __init__(self, manifests: Iterable[Manifest], sources: dict[str, Path] | None = None):
        self._by_id: dict[str, Manifest] = {}
        for m in manifests:
            if m.manifest_id in self._by_id:
                raise ManifestError(f"Manifest id {m.manifest_id!r} is declared twice")
            self._by_id[m.manifest_id] = m
        self.sources = dict(sources or {})
        self._by_partition: dict[str, Manifest] = {}
        for m in sorted(self._by_id.values(), key=lambda m: (m.created_at, m.manifest_id)):
            for p in m.partitions:
                self._by_partition[p.partition_key] = m

    @classmethod
    def from_folder(cls, folder: Path, scheme: PartitionScheme | None = None) -> ManifestRegistry:
        folder = Path(folder)
        paths = sorted(folder.glob("*.json")) if folder.is_dir() else []
        manifests = [load_manifest(p, scheme) for p in paths]
        return cls(manifests, {m.manifest_id: p for m, p in zip(manifests, paths, strict=True)})

    def __len__(self) -> int:
        return len(self._by_id)

    @property
    def ids(self) -> list[str]:
        return sorted(self._by_id)

    def get(self, manifest_id: str) -> Manifest:
        try:
            return self._by_id[manifest_id]
        except KeyError:
            known = ", ".join(self.ids) or "none"
            raise ManifestError(
                f"Unknown manifest {manifest_id!r} (known: {known})",
                hint="pass one of the known manifest ids",
            ) from None

    def for_partition(self, key: str) -> tuple[Manifest, ManifestPartition] | None:
        m = self._by_partition.get(key)
        if m is None:
            return None
        part = m.partition(key)
        assert part is not None
        return m, part
