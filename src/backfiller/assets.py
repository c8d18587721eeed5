"""Assets and the asset graph.

An asset is a named, partitioned data product: its upstream assets (each with a partition
mapping), its idempotency key columns, and how one partition is computed — a Python function
(``@asset``) or DuckDB SQL with ``$window_start`` / ``$window_end`` parameters (``sql_asset``).
The graph is validated when it is built: a cycle, an unknown upstream or a mapping between
incompatible schemes is an error that names the assets involved.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from backfiller.errors import GraphError
from backfiller.mappings import IdentityMapping, PartitionMapping, TimeWindowMapping
from backfiller.names import did_you_mean
from backfiller.partitions import PartitionScheme, StaticScheme, Window
from backfiller.refs import AssetPartition

if TYPE_CHECKING:
    import pyarrow as pa

    from backfiller.checks.model import Check
    from backfiller.manifests import InputFile, Manifest, ManifestPartition

__all__ = [
    "Asset",
    "AssetContext",
    "AssetGraph",
    "Dependency",
    "IdentityMapping",
    "PartitionMapping",
    "TimeWindowMapping",
    "asset",
    "sql_asset",
]

_ASSET_KEY = re.compile(r"^[a-z0-9][a-z0-9_-]*(/[a-z0-9][a-z0-9_-]*)*$")
PARTITION_COLUMN = "partition_key"


@dataclass(frozen=True)
class Dependency:
    """An upstream asset and how partitions map onto it."""

    asset: str
    mapping: PartitionMapping = field(default_factory=IdentityMapping)

    def __post_init__(self) -> None:
        if not isinstance(self.asset, str):
            raise GraphError(
                f"Dependency names its upstream asset by its key, not {self.asset!r}",
                hint="pass Dependency('week06/ingestion/raw', TimeWindowMapping(lookback=1))",
            )
        if not isinstance(self.mapping, PartitionMapping):
            raise GraphError(
                f"Dependency on {self.asset!r}: {self.mapping!r} is not a partition mapping",
                hint="pass IdentityMapping() or TimeWindowMapping(...), e.g. "
                "TimeWindowMapping(start_offset=-1, end_offset=-1) for the previous window",
                asset=self.asset,
            )


class AssetContext:
    """What the compute function of one (asset, partition) gets to see."""

    def __init__(
        self,
        *,
        asset: Asset,
        partition_key: str,
        window: Window | None,
        manifest: Manifest | None,
        manifest_partition: ManifestPartition | None,
        project_root: Any,
        read_upstream: Callable[[str], pa.Table],
        run_id: str,
        storage_options: Mapping[str, str] | None = None,
    ) -> None:
        self.asset = asset
        self.partition_key = partition_key
        self.window = window
        self.manifest = manifest
        self.manifest_partition = manifest_partition
        self.project_root = project_root
        self.run_id = run_id
        #: how object storage is reached (``[storage.options]``): for inputs given as URIs
        self.storage_options: Mapping[str, str] = dict(storage_options or {})
        self._read_upstream = read_upstream

    @property
    def dimensions(self) -> dict[str, str]:
        """Each dimension's value of a multi-dimensional key (``{"date": "2026-04-17",
        "product_line": "billing"}``); empty for a key of one dimension."""
        from backfiller.partitions import dimension_values

        scheme = self.asset.scheme
        return (dimension_values(scheme, self.partition_key) or {}) if scheme else {}

    def open_input(self, declared: InputFile | str) -> IO[bytes]:
        """A declared input file opened for reading bytes, wherever it is: relative to the
        project folder, or a ``file://`` or object-storage URI (``s3://…``)."""
        from backfiller.inputs import open_input

        path = declared if isinstance(declared, str) else declared.path
        return open_input(path, root=self.project_root, storage_options=self.storage_options)

    def upstream(self, asset_key: str) -> pa.Table:
        """The upstream asset's published rows for the partitions this one maps to."""
        if asset_key not in {d.asset for d in self.asset.deps}:
            raise GraphError(
                f"Asset {self.asset.key!r} reads {asset_key!r}, which is not one of its deps",
                hint=f"add Dependency({asset_key!r}) to the asset's deps",
                asset=self.asset.key,
            )
        return self._read_upstream(asset_key)


ComputeFn = Callable[[AssetContext], Any]


@dataclass(frozen=True)
class Asset:
    """A named, partitioned data product."""

    key: str
    idempotency_key: tuple[str, ...]
    compute: ComputeFn | None = None
    sql: str | None = None
    deps: tuple[Dependency, ...] = ()
    scheme: PartitionScheme | None = None
    deduplicate: bool = False
    expects_manifest_count: bool = False
    uses_manifest: bool = False
    columns: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    checks: tuple[Check, ...] = ()

    def __post_init__(self) -> None:
        if not _ASSET_KEY.match(self.key):
            raise GraphError(
                f"Invalid asset key {self.key!r}: use lowercase path segments "
                "such as 'week06/silver/ticket_fact_partitioned'"
            )
        if (self.compute is None) == (self.sql is None):
            raise GraphError(f"Asset {self.key!r} needs exactly one of a function or SQL")
        names = [c.name for c in self.checks]
        if len(set(names)) != len(names):
            raise GraphError(f"Asset {self.key!r} declares two checks with the same name")
        if not self.idempotency_key:
            raise GraphError(
                f"Asset {self.key!r} declares no idempotency key",
                hint="pass idempotency_key=('ticket_id', 'partition_key') or similar",
            )

    @property
    def idempotency_guard(self) -> str:
        """The seed's rendering: ``ticket_id + partition_key``."""
        return " + ".join(self.idempotency_key)

    @property
    def upstream_keys(self) -> tuple[str, ...]:
        return tuple(d.asset for d in self.deps)


def _as_deps(deps: Iterable[str | Dependency]) -> tuple[Dependency, ...]:
    return tuple(d if isinstance(d, Dependency) else Dependency(d) for d in deps)


def asset(
    key: str,
    *,
    idempotency_key: Sequence[str],
    deps: Iterable[str | Dependency] = (),
    scheme: PartitionScheme | None = None,
    deduplicate: bool = False,
    expects_manifest_count: bool = False,
    uses_manifest: bool = False,
    columns: Mapping[str, str] | None = None,
    checks: Iterable[Check] = (),
) -> Callable[[ComputeFn], Asset]:
    """Declare a Python asset; the function gets an :class:`AssetContext` and returns
    Arrow-compatible data (a pyarrow Table, a polars or pandas frame, a DuckDB relation, or a
    list of dicts)."""

    def wrap(fn: ComputeFn) -> Asset:
        return Asset(
            key=key,
            idempotency_key=tuple(idempotency_key),
            compute=fn,
            deps=_as_deps(deps),
            scheme=scheme,
            deduplicate=deduplicate,
            expects_manifest_count=expects_manifest_count,
            uses_manifest=uses_manifest,
            columns=dict(columns or {}),
            description=(fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else "",
            checks=tuple(checks),
        )

    return wrap


def sql_asset(
    key: str,
    sql: str,
    *,
    idempotency_key: Sequence[str],
    deps: Iterable[str | Dependency] = (),
    scheme: PartitionScheme | None = None,
    deduplicate: bool = False,
    expects_manifest_count: bool = False,
    columns: Mapping[str, str] | None = None,
    description: str = "",
    checks: Iterable[Check] = (),
) -> Asset:
    """Declare a DuckDB SQL asset. Upstream assets are tables named by their keys (quote them:
    ``"week06/ingestion/raw"``); ``$window_start``, ``$window_end`` and ``$partition_key`` are
    bound parameters."""
    return Asset(
        key=key,
        idempotency_key=tuple(idempotency_key),
        sql=sql,
        deps=_as_deps(deps),
        scheme=scheme,
        deduplicate=deduplicate,
        expects_manifest_count=expects_manifest_count,
        columns=dict(columns or {}),
        description=description,
        checks=tuple(checks),
    )


class AssetGraph:
    """The validated set of assets of a project, in dependency order."""

    def __init__(self, assets: Iterable[Asset], default_scheme: PartitionScheme) -> None:
        self._assets: dict[str, Asset] = {}
        for a in assets:
            if a.key in self._assets:
                raise GraphError(f"Asset {a.key!r} is defined twice")
            self._assets[a.key] = a
        self._default_scheme = default_scheme
        self._downstream: dict[str, list[tuple[str, PartitionMapping]]] = {
            k: [] for k in self._assets
        }
        for a in self._assets.values():
            for dep in a.deps:
                if dep.asset not in self._assets:
                    raise GraphError(
                        f"Asset {a.key!r} depends on unknown asset {dep.asset!r}",
                        hint="define the upstream asset or fix the name",
                        asset=a.key,
                    )
                why = dep.mapping.incompatibility(self.scheme(dep.asset), self.scheme(a.key))
                if why:
                    raise GraphError(
                        f"Assets {dep.asset!r} -> {a.key!r}: incompatible partitions: {why}",
                        hint="use TimeWindowMapping between time schemes of different "
                        "granularity, or give both assets the same scheme",
                        asset=a.key,
                    )
                self._downstream[dep.asset].append((a.key, dep.mapping))
        self._order = self._toposort()

    def _toposort(self) -> list[str]:
        state: dict[str, int] = {}
        order: list[str] = []

        def visit(key: str, path: list[str]) -> None:
            if state.get(key) == 2:
                return
            if state.get(key) == 1:
                cycle = [*path[path.index(key) :], key]
                raise GraphError(
                    "Asset graph has a cycle: " + " -> ".join(cycle),
                    hint="remove one of these dependencies",
                )
            state[key] = 1
            for dep in self._assets[key].deps:
                visit(dep.asset, [*path, key])
            state[key] = 2
            order.append(key)

        for key in self._assets:
            visit(key, [])
        return order

    def __contains__(self, key: object) -> bool:
        return key in self._assets

    def __iter__(self) -> Any:
        return iter(self.assets)

    def __len__(self) -> int:
        return len(self._assets)

    @property
    def assets(self) -> list[Asset]:
        """Assets in dependency order (upstream first)."""
        return [self._assets[k] for k in self._order]

    @property
    def keys(self) -> list[str]:
        return list(self._order)

    def get(self, key: str) -> Asset:
        try:
            return self._assets[key]
        except KeyError:
            raise GraphError(
                f"Unknown asset {key!r}{did_you_mean(key, self._order)}",
                hint="known assets: " + ", ".join(self._order),
            ) from None

    def scheme(self, key: str) -> PartitionScheme:
        return self.get(key).scheme or self._default_scheme

    @property
    def default_scheme(self) -> PartitionScheme:
        """The scheme of the assets that declare none (the project's ``[partitions]``)."""
        return self._default_scheme

    def roots(self) -> list[Asset]:
        return [a for a in self.assets if not a.deps]

    def downstream_of(self, key: str) -> list[str]:
        return [k for k, _ in self._downstream[key]]

    def upstream_partitions(self, key: str, partition: str) -> dict[str, list[str]]:
        """Per upstream asset, the keys of its scheme that ``partition`` of ``key`` reads (an
        asset declared twice, with two mappings, reads the keys of both, each once)."""
        a = self.get(key)
        found: dict[str, list[str]] = {}
        for d in a.deps:
            keys = found.setdefault(d.asset, [])
            for k in d.mapping.upstream_keys(partition, self.scheme(key), self.scheme(d.asset)):
                if k not in keys:
                    keys.append(k)
        return found

    def missing_upstream_partitions(self, key: str, partition: str) -> dict[str, list[str]]:
        """Per upstream asset, the keys ``partition`` of ``key`` requires that are not keys of
        the upstream's scheme (only upstreams with such keys, in the order of ``deps``)."""
        a = self.get(key)
        found: dict[str, list[str]] = {}
        for d in a.deps:
            missing = d.mapping.missing_upstream_keys(
                partition, self.scheme(key), self.scheme(d.asset)
            )
            if missing:
                found.setdefault(d.asset, []).extend(missing)
        return found

    def blocked_upstream_partitions(
        self, key: str, partition: str, _seen: dict[tuple[str, str], bool] | None = None
    ) -> dict[str, list[str]]:
        """:meth:`missing_upstream_partitions`, and also the upstream partitions that exist
        but are themselves blocked — their own upstream keys missing, at any depth (a lag of
        a lag): computing ``partition`` would read what can never be built."""
        seen = {} if _seen is None else _seen
        found = self.missing_upstream_partitions(key, partition)
        for up, keys in self.upstream_partitions(key, partition).items():
            for k in keys:
                cell = (up, k)
                if cell not in seen:
                    seen[cell] = False  # a cycle cannot block itself
                    seen[cell] = bool(self.blocked_upstream_partitions(up, k, seen))
                if seen[cell] and k not in found.get(up, []):
                    found.setdefault(up, []).append(k)
        return found

    def downstream_closure(
        self,
        targets: Iterable[tuple[str, str]],
        *,
        include_targets: bool = True,
        blocked: Iterable[tuple[str, str]] = (),
    ) -> list[AssetPartition]:
        """Every (asset, partition) that depends, directly or not, on ``targets``, in
        dependency order; ``blocked`` (partitions that cannot be computed, e.g. whose upstream
        is missing) are left out, and so is what depends on ``targets`` only through them."""
        seen: set[AssetPartition] = set()
        stack = [AssetPartition(*t) for t in targets]
        start = set(stack)
        stop = {AssetPartition(*b) for b in blocked}
        while stack:
            node = stack.pop()
            if node in seen or node in stop:
                continue
            seen.add(node)
            key, partition = node
            for down, mapping in self._downstream[key]:
                for k in mapping.downstream_keys(partition, self.scheme(key), self.scheme(down)):
                    stack.append(AssetPartition(down, k))
        if not include_targets:
            seen -= start
        rank = {k: i for i, k in enumerate(self._order)}
        return sorted(seen, key=lambda n: (rank[n[0]], n[1]))

    def static_keys(self, key: str) -> list[str] | None:
        scheme = self.scheme(key)
        return list(scheme.values) if isinstance(scheme, StaticScheme) else None
