"""Manifests: the declared input of a batch. Replay is only possible against a manifest.

A manifest is JSON validated against ``contracts/manifest/manifest.schema.json`` (generated from
:class:`Manifest`). Every problem is named in one message; nothing is written on refusal.

A manifest file in the manifests folder that fails validation stops every command that loads
the project. A *stand-in* (the copy an active broken-manifest simulation wrote, see
``backfiller.lab.simulation``) is different: the registry keeps it as a :class:`BrokenManifest` in
place of the real file, so that ``gaps`` and dry-run plans show its partitions as
``manifest_changed`` (naming the missing fields), while everything that would use its
declarations — apply, rerun, replay — refuses with a :class:`ManifestError` naming every
missing field.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from backfiller.canonical import sha256_hex
from backfiller.errors import ManifestError
from backfiller.gcpause import collector_paused
from backfiller.inputs import input_sha256
from backfiller.locations import Location, files_in
from backfiller.partitions import PartitionScheme
from backfiller.schemas import validated

__all__ = [
    "BrokenManifest",
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
    """One input file, relative to the project root (or a ``file://`` or object-storage URI),
    with its checksum."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Annotated[
        str,
        Field(
            min_length=1,
            pattern=r"^([A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*"
            r"|(s3|s3a|gs|gcs|az|azure|abfs|abfss|adl|file)://[^\s]+[^\s/])$",
            description="relative path with forward slashes (no segment starts with '.'), "
            "or a file:// or object-storage URI (s3://bucket/key, gs://…, az://…)",
        ),
    ]
    sha256: Sha256


def _no_default(schema: dict[str, Any]) -> None:
    """The published schema says no ``default`` for the files (it did not before they became
    a tuple): a missing list is an empty one, as it always was."""
    schema.pop("default", None)


class ManifestPartition(BaseModel):
    """What the manifest declares for one partition."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    partition_key: Annotated[str, Field(min_length=1, max_length=64)]
    expected_record_count: Annotated[int, Field(ge=0)]
    #: a tuple with ``()`` for none: a default factory is a Python call per partition
    #: validated (0.25 s of 100,000), a list default a copy per partition
    input_files: tuple[InputFile, ...] = Field(default=(), json_schema_extra=_no_default)

    @cached_property
    def checksum(self) -> str:
        """The checksum of this partition's declaration (a change in another partition of the
        same manifest does not change it); computed once per declaration (the model is
        frozen), not once per asset that reads it."""
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


def load_manifest(path: Location | str, scheme: PartitionScheme | None = None) -> Manifest:
    """Read and validate one manifest (a local file or an object on object storage); raise
    :class:`ManifestError` naming every problem."""
    if isinstance(path, str):
        path = Path(path)
    try:
        with collector_paused():  # the document's objects hold no cycle
            raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"Manifest file not found: {path}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(
            f"Manifest {path} is not valid JSON: {exc}", hint="fix the file's syntax"
        ) from exc
    except RecursionError as exc:
        raise ManifestError(
            f"Manifest {path} is nested too deeply to read", hint="a manifest is a flat document"
        ) from exc
    except OSError as exc:
        raise ManifestError(
            f"Cannot read manifest {path}: {exc.strerror or exc}",
            hint="every *.json in the manifests folder must be a readable manifest file",
        ) from exc
    return parse_manifest(raw, source=str(path), scheme=scheme)


def parse_manifest(
    raw: Any, *, source: str = "<manifest>", scheme: PartitionScheme | None = None
) -> Manifest:
    with collector_paused():  # a model per partition, no cycle among them
        return _parsed(raw, source, scheme)


def _parsed(raw: Any, source: str, scheme: PartitionScheme | None) -> Manifest:
    model, problems = validated("manifest", raw)
    manifest: Manifest | None = model
    if manifest is None and not problems:
        try:
            manifest = Manifest.model_validate(raw)
        except ValidationError as exc:  # the schema and the model agree; belt and braces
            problems = [
                f"{'/'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}"
                for e in exc.errors()
            ]
    raw_parts = raw.get("partitions") if isinstance(raw, dict) else None
    seen: set[str] = set()
    found: list[tuple[int, str]] = []  # (position, key) of each entry with a key
    by_entry: list[tuple[int, int, str]] = []  # (position, 0 repeats / 1 refused, problem)
    for i, part in enumerate(raw_parts if isinstance(raw_parts, list) else []):
        key = part.get("partition_key") if isinstance(part, dict) else None
        if not isinstance(key, str):
            continue
        found.append((i, key))
        if key in seen:
            by_entry.append((i, 0, f"partitions/{i}/partition_key: {key!r} repeats"))
        seen.add(key)
    if scheme is not None:
        for at, refused in scheme.refused_keys([key for _, key in found]):
            i = found[at][0]
            by_entry.append((i, 1, f"partitions/{i}/partition_key: {refused.message}"))
    problems += [problem for _, _, problem in sorted(by_entry)]
    if problems:
        listing = "\n".join(f"  - {p}" for p in problems)
        raise ManifestError(
            f"Manifest {source} is invalid ({len(problems)} problem"
            f"{'s' if len(problems) != 1 else ''}):\n{listing}",
            hint="fix the manifest; see contracts/manifest/manifest.schema.json",
        )
    assert manifest is not None
    return manifest


@dataclass(frozen=True)
class BrokenManifest:
    """A stand-in manifest that fails validation, kept in place of the real one it replaces."""

    manifest_id: str
    path: Path  # the stand-in
    replaces: Path  # the real manifest file (only read)
    label: str  # who made it, e.g. "simulation sim-…"
    keys: tuple[str, ...]  # the partitions the replaced manifest declares
    missing: tuple[str, ...]  # e.g. "source", "partitions[].expected_record_count"
    problems: tuple[str, ...]  # what schema validation says
    checksum: str  # of the stand-in's bytes

    def describe(self) -> str:
        what = ", ".join(self.missing) if self.missing else "no field"
        return f"manifest {self.manifest_id} is broken ({self.label}): missing {what}"

    def error(self) -> ManifestError:
        """Every missing field, then the other schema problems (not repeating the former)."""
        lines = [f"missing field: {m}" for m in self.missing]
        names = {m.split(" ")[0].rsplit(".", 1)[-1] for m in self.missing}
        others = [
            p for p in self.problems if not any(f"'{n}' is a required property" in p for n in names)
        ]
        lines += others[:10]
        if len(others) > 10:
            lines.append(f"... and {len(others) - 10} more schema problem(s)")
        listing = "\n".join(f"  - {line}" for line in lines)
        return ManifestError(
            f"Manifest {self.manifest_id} is invalid ({self.label}; stand-in {self.path}):\n"
            f"{listing}",
            hint="no action may use its declarations; fix the manifest, or end the simulation "
            "('backfiller simulate list', then 'backfiller simulate undo SIM_ID')",
        )


def missing_fields(raw: Any) -> list[str]:
    """The fields of :class:`Manifest` (and, as ``partitions[].name``, of each partition
    entry) that ``raw`` lacks."""
    if not isinstance(raw, dict):
        return ["<the whole document>"]
    missing = [name for name in Manifest.model_fields if name not in raw]
    entries = raw.get("partitions")
    if isinstance(entries, list):
        for name in ManifestPartition.model_fields:
            absent = [e for e in entries if isinstance(e, dict) and name not in e]
            if absent:
                share = "every partition" if len(absent) == len(entries) else f"{len(absent)}"
                missing.append(f"partitions[].{name} ({share})")
    return missing


def load_stand_in(
    stand_in: Path, real: Manifest, real_path: Path, label: str
) -> Manifest | BrokenManifest:
    """Read a stand-in for ``real``: a valid one with every field is a manifest; anything
    else is a :class:`BrokenManifest` (a stand-in that only lacks fields with defaults is
    still visibly missing them)."""
    keys = tuple(p.partition_key for p in real.partitions)
    try:
        data = Path(stand_in).read_bytes()
    except OSError as exc:
        return BrokenManifest(
            real.manifest_id,
            Path(stand_in),
            real_path,
            label,
            keys,
            (),
            (f"the stand-in cannot be read: {exc.strerror or exc}",),
            "",
        )
    digest = hashlib.sha256(data).hexdigest()
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        return BrokenManifest(
            real.manifest_id, Path(stand_in), real_path, label, keys, (), (str(exc),), digest
        )
    model, problems = validated("manifest", raw)
    missing = missing_fields(raw)
    if not problems and not missing:
        if model is not None:
            return model  # type: ignore[no-any-return]
        try:
            return Manifest.model_validate(raw)
        except ValidationError as exc:  # pragma: no cover - the schema and model agree
            problems = [str(exc)]
    return BrokenManifest(
        real.manifest_id,
        Path(stand_in),
        real_path,
        label,
        keys,
        tuple(missing),
        tuple(problems),
        digest,
    )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_inputs(
    part: ManifestPartition, root: Path, storage_options: Mapping[str, str] | None = None
) -> list[InputMismatch]:
    """The declared input files of one partition that are missing or changed (a URI is read
    with ``storage_options``: see :mod:`backfiller.inputs`)."""
    problems: list[InputMismatch] = []
    for f in part.input_files:
        actual = input_sha256(f.path, root=root, storage_options=storage_options)
        if actual != f.sha256:
            problems.append(InputMismatch(f.path, f.sha256, actual))
    return problems


class ManifestRegistry:
    """The manifests of a project; for each partition, the newest manifest that declares it.

    ``broken`` maps the ids of manifests replaced by a broken stand-in to it: they keep their
    place (and their partitions) in the ordering, but :meth:`for_partition` gives ``None`` for
    their partitions and :meth:`get` / :meth:`require_usable` raise its :class:`ManifestError`.
    """

    def __init__(
        self,
        manifests: Iterable[Manifest],
        sources: Mapping[str, Location] | None = None,
        broken: Mapping[str, BrokenManifest] | None = None,
    ):
        self._by_id: dict[str, Manifest] = {}
        for m in manifests:
            if m.manifest_id in self._by_id:
                raise ManifestError(f"Manifest id {m.manifest_id!r} is declared twice")
            self._by_id[m.manifest_id] = m
        self.sources = dict(sources or {})
        self.broken: dict[str, BrokenManifest] = dict(broken or {})
        self._by_partition: dict[str, Manifest] = {}
        #: the declaration of each key in the manifest that declares it last (indexed once:
        #: asking a manifest for a key scans its partitions)
        self._declarations: dict[str, ManifestPartition] = {}
        for m in sorted(self._by_id.values(), key=lambda m: (m.created_at, m.manifest_id)):
            for p in m.partitions:
                self._by_partition[p.partition_key] = m
                self._declarations[p.partition_key] = p

    @classmethod
    def from_folder(
        cls,
        folder: Location | str,
        scheme: PartitionScheme | None = None,
        *,
        overrides: Mapping[Path, tuple[Path, str]] | None = None,
    ) -> ManifestRegistry:
        """Every ``*.json`` of ``folder``; ``overrides`` maps a manifest file (resolved) to a
        stand-in and who made it — the stand-in is loaded in place of the real manifest."""
        if isinstance(folder, str):
            folder = Path(folder)
        paths = files_in(folder, "*.json")
        manifests = [load_manifest(p, scheme) for p in paths]
        sources: dict[str, Location] = {
            m.manifest_id: p for m, p in zip(manifests, paths, strict=True)
        }
        broken: dict[str, BrokenManifest] = {}
        for i, (m, p) in enumerate(zip(manifests, paths, strict=True)):
            override = (overrides or {}).get(p.resolve()) if isinstance(p, Path) else None
            if override is None or not isinstance(p, Path):
                continue
            stand_in = load_stand_in(override[0], m, p, override[1])
            if isinstance(stand_in, BrokenManifest):
                broken[m.manifest_id] = stand_in
            else:
                manifests[i] = stand_in
                sources[stand_in.manifest_id] = override[0]
        return cls(manifests, sources, broken)

    def __len__(self) -> int:
        return len(self._by_id)

    @property
    def ids(self) -> list[str]:
        return sorted(self._by_id)

    def get(self, manifest_id: str) -> Manifest:
        if manifest_id in self.broken:
            raise self.broken[manifest_id].error()
        try:
            return self._by_id[manifest_id]
        except KeyError:
            known = ", ".join(self.ids) or "none"
            raise ManifestError(
                f"Unknown manifest {manifest_id!r} (known: {known})",
                hint="pass one of the known manifest ids",
            ) from None

    def for_partition(self, key: str) -> tuple[Manifest, ManifestPartition] | None:
        """The newest usable declaration of ``key``; ``None`` when no manifest declares it or
        the declaring manifest is broken (see :meth:`broken_for`)."""
        m = self._by_partition.get(key)
        if m is None or m.manifest_id in self.broken:
            return None
        return m, self._declarations[key]

    def broken_for(self, key: str) -> BrokenManifest | None:
        """The broken stand-in that now declares ``key``, if any."""
        m = self._by_partition.get(key)
        return self.broken.get(m.manifest_id) if m is not None else None

    def require_usable(self, keys: Iterable[str]) -> None:
        """Refuse (exit 2) when any of ``keys`` is declared by a broken manifest."""
        found: dict[str, list[str]] = {}
        for key in dict.fromkeys(keys):
            b = self.broken_for(key)
            if b is not None:
                found.setdefault(b.manifest_id, []).append(key)
        if found:
            errors = [self.broken[mid].error() for mid in found]
            touched = "; ".join(
                f"{mid}: {', '.join(ks[:5])}{' ...' if len(ks) > 5 else ''}"
                for mid, ks in found.items()
            )
            raise ManifestError(
                "\n".join(e.message for e in errors)
                + f"\nPartitions of this request it declares: {touched}",
                hint=errors[0].hint,
            )
