"""The overview's state ranges kept on disk between two runs of a server.

A server's :class:`~backfiller.web.cache.StateCache` keeps each asset's ranges in memory under
the identities of what they were classified from. When it stops, that work is lost, and the
next server classifies every cell again before its first overview (seconds for a million
partitions). So each asset's ranges are also written to one file per project, with two
digests of their key: its **head** — the ledger's records of the asset and of what it reads,
the manifests, the window (every key of it), its Delta log, its report folder, and what the
classification takes from the project as loaded (:func:`project_mark`: the graph's schemes,
dependencies and mappings, the partition settings, the policy, the locations) — and its
**folders** (the times of the folders holding its table's live data files). A server starting
with that file serves an asset's kept ranges while the head it identifies is the same; the
folders' digest is checked once their stamp is taken in the background
(:mod:`backfiller.web.cache`), and the next request classifies the asset again if it moved —
a data file deleted behind its log's back while no server ran is seen seconds after the
start, as one deleted while it runs is.

The file is a cache: it lives outside the project (``$XDG_CACHE_HOME/backfiller/ui``, else
``~/.cache/backfiller/ui``, one file per project folder), is written atomically (mode 0600),
is ignored whole when it cannot be read, is of another format, or was written by another
version of backfiller's code (the digest of its modules' sizes and times); a failure to write
it stops the server writing it (logged once), which only costs the next start its head start.
The digests are SHA-256 of the values pickled without memo: the same value gives the same
digest in any process, and a value that merely looks different gives another (classified
again, not served from the file).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backfiller.planning.gaps import PartitionState
from backfiller.planning.identity import digest
from backfiller.planning.ranges import KeyRange

if TYPE_CHECKING:
    from backfiller.project import Project

__all__ = [
    "FORMAT",
    "Kept",
    "code_digest",
    "default_path",
    "digest",
    "load",
    "project_mark",
    "save",
]

_log = logging.getLogger(__name__)

#: the file's format: a file of another is ignored
FORMAT = "backfiller-ui-states/1"


@dataclass(frozen=True)
class Kept:
    """One asset's ranges over one window, with the digests of the key they were kept under
    (its head's and its data folders' stamp's: ``StateCache._digests``)."""

    head: str
    folders: str
    ranges: tuple[KeyRange[PartitionState], ...]


def code_digest() -> str:
    """The digest of backfiller's version and of its modules' names, sizes and times: ranges
    classified by other code are not served."""
    import backfiller

    top = Path(backfiller.__file__).parent
    found: list[tuple[str, int, int]] = []
    for path in sorted(top.rglob("*.py")):
        s = path.stat()
        found.append((path.relative_to(top).as_posix(), s.st_size, s.st_mtime_ns))
    return digest((backfiller.__version__, tuple(sorted(found))))


def project_mark(project: Project) -> str | None:
    """The digest of what a classification takes from the project as loaded, beyond the
    sources a key identifies: per asset (in the graph's order) its scheme (with the dynamic
    values it holds), what it reads and through which mappings, whether it checks the
    manifest's count; the project's partition settings, policy and locations. ``None`` when a
    scheme or a mapping is of a class of the project's own (its code may change between two
    servers while its repr stays) or has no repr that is the same in another process: its
    ranges are then not kept on disk."""
    graph = project.graph
    config = project.config
    parts = [
        (
            name,
            repr(graph.scheme(name)),
            tuple((d.asset, repr(d.mapping)) for d in graph.get(name).deps),
            graph.get(name).expects_manifest_count,
            graph.get(name).uses_manifest,
        )
        for name in graph.keys
    ]
    settings = (
        sorted((str(k), repr(v)) for k, v in config.partitions.items()),
        repr(config.policy),
        str(config.report_dir),
        str(config.manifests_dir),
        config.store_uri,
    )
    if not all(_described(graph.scheme(n)) for n in graph.keys) or not all(
        _described(d.mapping) for n in graph.keys for d in graph.get(n).deps
    ):
        return None
    text = repr((parts, settings))
    if " at 0x" in text:  # an object's address: another in every process
        return None
    return digest(text)


def _described(value: object) -> bool:
    """Whether ``value`` — a scheme or a mapping, and those it holds — is what its repr says:
    only backfiller's own classes are (a class of the project's own may change what it does
    while its repr stays, and its code is not part of :func:`code_digest`)."""
    from backfiller.mappings import PartitionMapping
    from backfiller.partitions import PartitionScheme

    own = type(value).__module__.startswith("backfiller.")
    if isinstance(value, PartitionMapping | PartitionScheme) and not own:
        return False
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return all(_described(getattr(value, f.name)) for f in dataclasses.fields(value))
    if isinstance(value, tuple | list):
        return all(_described(v) for v in value)
    return True


def default_path(root: Path, environ: Mapping[str, str] | None = None) -> Path | None:
    """Where the states of the project at ``root`` are kept: one file per project folder
    under ``$XDG_CACHE_HOME/backfiller/ui`` (else ``~/.cache/backfiller/ui``); ``None`` when
    neither is known (no home folder: the states are kept in memory only)."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CACHE_HOME")
    if not base:
        try:
            base = str(Path.home() / ".cache")
        except (KeyError, RuntimeError):  # no home folder to be found
            return None
    name = hashlib.sha256(str(Path(root).resolve()).encode("utf-8")).hexdigest()[:24]
    return Path(base) / "backfiller" / "ui" / f"{name}.json"


def load(path: Path, code: str) -> dict[str, dict[str, Kept]]:
    """Per window digest, per asset: the ranges kept at ``path`` by a server of the same
    ``code`` (:func:`code_digest`); nothing when the file is missing, unreadable, of another
    format or code, or not as this module writes it."""
    try:
        document = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        _log.warning("the kept states at %s are not read: %s", path, exc)
        return {}
    try:
        return _parsed(document, code)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        _log.warning("the kept states at %s are not read: %s", path, exc)
        return {}


def _parsed(document: Any, code: str) -> dict[str, dict[str, Kept]]:
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError("not a file of this format")
    if document.get("code") != code:
        return {}  # written by other code: classified again
    out: dict[str, dict[str, Kept]] = {}
    for window, assets in document["windows"].items():
        mine: dict[str, Kept] = {}
        for asset, entry in assets.items():
            ranges = tuple(
                KeyRange(asset, str(first), str(last), int(count), PartitionState(state))
                for first, last, count, state in entry["ranges"]
            )
            mine[str(asset)] = Kept(str(entry["head"]), str(entry["folders"]), ranges)
        out[str(window)] = mine
    return out


def save(path: Path, code: str, windows: Mapping[str, Mapping[str, Kept]]) -> bool:
    """Write ``windows`` (per window digest, per asset) to ``path`` atomically; ``False``
    (logged) when it cannot be written."""
    from backfiller.atomic import atomic_write_bytes

    document = {
        "format": FORMAT,
        "code": code,
        "windows": {
            window: {
                asset: {
                    "head": kept.head,
                    "folders": kept.folders,
                    "ranges": [[r.first, r.last, r.count, r.value.value] for r in kept.ranges],
                }
                for asset, kept in assets.items()
            }
            for window, assets in windows.items()
        },
    }
    try:
        atomic_write_bytes(path, json.dumps(document, separators=(",", ":")).encode("utf-8"))
    except OSError as exc:
        _log.warning("the states cannot be kept at %s: %s", path, exc)
        return False
    return True
