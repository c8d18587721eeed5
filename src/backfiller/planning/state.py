"""What the world looks like for a set of (asset, partition): the four sources reconciled.

Declared (manifests), stored (the data store), recorded (the ledger) and reported (partition
report files). Read-only by construction: it gets a :class:`LedgerReader` and only calls the
store's reading methods.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from backfiller.assets import AssetGraph
from backfiller.canonical import sha256_hex
from backfiller.ledger import LedgerReader, PartitionRecord, PartitionStatus, Protection
from backfiller.locations import Location
from backfiller.manifests import ManifestRegistry
from backfiller.planning.declared import declared_upstream, several_schemes
from backfiller.policy import Policy, effective_protection
from backfiller.refs import AssetPartition

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["Observation", "OnProgress", "StateSource", "observe", "state_fingerprint"]

#: told ``(done, total)`` as observing goes: ``done`` grows by one up to ``total`` (one unit per
#: table read, one per (asset, partition) observed)
OnProgress = Callable[[int, int], None]


class ReadableStore(Protocol):
    def partition_counts(self, asset: str) -> dict[str, int]: ...

    def partition_signatures(self, asset: str) -> dict[str, str]: ...

    def missing_files(self, asset: str) -> dict[str, int]: ...

    def partition_stats(self, asset: str) -> pa.Table: ...

    def partition_stats_of(self, assets: Sequence[str]) -> pa.Table: ...

    def release(self, assets: Iterable[str]) -> None: ...


class StateSource(Protocol):
    """What observing needs of a project (a :class:`~backfiller.project.Project` fits)."""

    graph: AssetGraph

    @property
    def manifests(self) -> ManifestRegistry: ...

    @property
    def store(self) -> ReadableStore: ...

    @property
    def policy(self) -> Policy: ...

    def partition_report_path(self, asset: str, key: str) -> Location: ...

    def partition_report_dir(self, asset: str) -> Location: ...


@dataclass(frozen=True)
class Observation:
    """One (asset, partition) as seen from the four sources."""

    asset: str
    partition_key: str
    manifest_id: str | None
    manifest_checksum: str | None
    expected_count: int | None
    stored_rows: int
    stored_signature: str | None
    record: PartitionRecord | None
    report_exists: bool
    upstream_current: dict[str, dict[str, int | None]]
    #: who protects this published baseline and why (``None``: not protected)
    protection: str | None = None
    #: data files the table's log references for this partition that are gone
    missing_files: int = 0
    #: per upstream asset, the keys this partition requires that are not keys of its scheme
    upstream_missing: dict[str, list[str]] = field(default_factory=dict)
    #: a key no manifest names, of an asset whose scheme is not the manifests': the manifests
    #: declaring the upstream keys it reads (:mod:`~backfiller.planning.declared`)
    declared_upstream: str | None = None
    #: a record marked stale: the reason its newest mark gave (not in the state's token: the
    #: record's status is)
    stale_reason: str | None = None

    def token(self) -> dict[str, Any]:
        """What the plan's state fingerprint covers for this partition."""
        token = {
            "manifest_id": self.manifest_id,
            "manifest_checksum": self.manifest_checksum,
            "stored_rows": self.stored_rows,
            "stored_signature": self.stored_signature,
            "record": self.record.state_token() if self.record else None,
            "report_exists": self.report_exists,
            "upstream": self.upstream_current,
        }
        if self.protection is not None:  # unprotected partitions keep their token
            token["protection"] = self.protection
        if self.missing_files:  # so do intact ones
            token["missing_files"] = self.missing_files
        if self.upstream_missing:  # and ones whose upstream keys all exist
            token["upstream_missing"] = self.upstream_missing
        if self.declared_upstream is not None:  # and keys of one scheme
            token["declared_upstream"] = self.declared_upstream
        return token


def observe(
    source: StateSource,
    reader: LedgerReader,
    targets: Iterable[AssetPartition],
    *,
    on_progress: OnProgress | None = None,
) -> dict[AssetPartition, Observation]:
    """Observe every (asset, partition) in ``targets``; ``on_progress`` is told how far it got
    after each table it reads and each partition it observes."""
    graph = source.graph
    wanted = list(targets)
    counts: dict[str, dict[str, int]] = {}
    signatures: dict[str, dict[str, str]] = {}
    records: dict[AssetPartition, PartitionRecord] = {}
    protections = {AssetPartition(p.asset, p.partition_key): p for p in reader.protections.all()}
    observed = {a for a, _ in wanted}
    read = sorted(observed | {d for a in observed for d in graph.get(a).upstream_keys})
    total, done = len(read) + len(wanted), 0

    def advance() -> None:
        nonlocal done
        done += 1
        if on_progress is not None:
            on_progress(done, total)

    lost: dict[str, dict[str, int]] = {}
    reported: dict[str, set[str]] = {}
    nested = sorted({k for _, k in wanted if "/" in k})
    for asset in read:
        if asset in observed:
            lost[asset] = source.store.missing_files(asset)
            reported[asset] = set(reported_keys(source, asset, nested).to_pylist())
        counts[asset] = source.store.partition_counts(asset)
        signatures[asset] = source.store.partition_signatures(asset)
        for rec in reader.partitions.all(asset):
            records[AssetPartition(asset, rec.partition_key)] = rec
        advance()
    result: dict[AssetPartition, Observation] = {}
    through = several_schemes(graph)
    reasons = stale_reasons_of(
        reader,
        [
            (asset, key)
            for asset, key in wanted
            if (found := records.get(AssetPartition(asset, key))) is not None
            and found.status is PartitionStatus.STALE
        ],
    )
    for asset, key in wanted:
        declared = source.manifests.for_partition(key)
        upstream_current: dict[str, dict[str, int | None]] = {}
        for up, up_keys in graph.upstream_partitions(asset, key).items():
            upstream_current[up] = {
                k: (found.data_version if (found := records.get(AssetPartition(up, k))) else None)
                for k in up_keys
            }
        result[AssetPartition(asset, key)] = Observation(
            asset=asset,
            partition_key=key,
            manifest_id=declared[0].manifest_id if declared else None,
            manifest_checksum=declared[1].checksum if declared else None,
            expected_count=declared[1].expected_record_count if declared else None,
            stored_rows=counts[asset].get(key, 0),
            stored_signature=signatures[asset].get(key),
            record=records.get(AssetPartition(asset, key)),
            report_exists=key in reported[asset],
            upstream_current=upstream_current,
            protection=_protection(source.policy, protections, asset, key, counts, records),
            missing_files=lost[asset].get(key, 0),
            upstream_missing=graph.missing_upstream_partitions(asset, key),
            declared_upstream=(
                declared_upstream(graph, source.manifests, asset, key)
                if through and declared is None
                else None
            ),
            stale_reason=reasons.get((asset, key)),
        )
        advance()
    return result


def reported_keys(source: StateSource, asset: str, nested: Sequence[str] = ()) -> pa.Array:
    """The partition keys of ``asset`` whose report exists (a string array), from one listing
    of its report folder (every ``<key>.json`` in it; on object storage, of its prefix);
    ``nested``: keys whose report is not directly in that folder (a key with a ``/``), asked
    one by one."""
    import pyarrow as pa

    folder = source.partition_report_dir(asset)
    names: list[str]
    if not isinstance(folder, Path):  # on object storage: one listing of the prefix
        names = list(folder.file_names())
    else:
        try:
            names = os.listdir(folder)  # noqa: PTH208 (names, not Paths)
        except (FileNotFoundError, NotADirectoryError):
            names = []
    found = [name[:-5] for name in names if name.endswith(".json")]
    asked = [k for k in nested if source.partition_report_path(asset, k).is_file()]
    return pa.array(found + asked, pa.string())


def stale_reasons_of(
    reader: LedgerReader, cells: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], str]:
    """Per (asset, key) of ``cells`` (records marked stale), the reason of its newest mark,
    asked of the ledger once per asset for those keys only (a cell whose mark gave none is
    left out)."""
    by_asset: dict[str, list[str]] = {}
    for asset, key in cells:
        by_asset.setdefault(asset, []).append(key)
    return {
        (asset, key): why
        for asset, keys in by_asset.items()
        for key, why in reader.partitions.stale_reasons(asset, keys).items()
    }


def _protection(
    policy: Policy,
    protections: dict[AssetPartition, Protection],
    asset: str,
    key: str,
    counts: dict[str, dict[str, int]],
    records: dict[AssetPartition, PartitionRecord],
) -> str | None:
    """Who protects (asset, key), as the plan shows it (the rule is
    :func:`~backfiller.policy.effective_protection`, as at apply)."""
    target = AssetPartition(asset, key)
    record = records.get(target)
    found = effective_protection(
        policy,
        protections.get(target),
        asset,
        key,
        lambda: (
            (record is not None and record.data_version is not None) or bool(counts[asset].get(key))
        ),
    )
    return None if found is None else f"{found.reason}, by {found.operator}"


def state_fingerprint(observations: dict[AssetPartition, Observation]) -> str:
    """One hash over the observed state; a plan stores it, apply recomputes and compares."""
    return sha256_hex({f"{a}|{k}": obs.token() for (a, k), obs in sorted(observations.items())})


def state_differences(
    before: dict[str, Any], after: dict[AssetPartition, Observation]
) -> list[str]:
    """Readable lines naming what changed between the tokens a plan saved and now."""
    lines: list[str] = []
    now = {f"{a}|{k}": obs.token() for (a, k), obs in after.items()}
    for name in sorted(set(before) | set(now)):
        old, new = before.get(name), now.get(name)
        if old == new:
            continue
        asset, _, key = name.partition("|")
        if old is None or new is None:
            lines.append(f"{asset} {key}: not in both states")
            continue
        changed = sorted(f for f in set(old) | set(new) if old.get(f) != new.get(f))
        parts = []
        for f in changed:
            if f == "manifest_checksum":
                parts.append(f"manifest {new.get('manifest_id')} changed")
            elif f == "protection":
                protection = new.get(f)
                parts.append(
                    f"now protected ({protection})" if protection else "no longer protected"
                )
            else:
                parts.append(f"{f}: {_short(old.get(f))} -> {_short(new.get(f))}")
        lines.append(f"{asset} {key}: " + "; ".join(parts))
    return lines


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."
