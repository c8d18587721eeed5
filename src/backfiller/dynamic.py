"""Dynamic partitions: the values of a dimension added and removed at run time, each change
recorded in the ledger with who, when and why.

A project whose ``[partitions] kind = "dynamic"`` gets its keys from the ledger when it is
loaded (:class:`~backfiller.partitions.DynamicScheme`). Adding a value that is current already,
or removing one that is not, is refused and writes nothing. Removing a value whose partitions
hold published data is refused unless asked for explicitly (``allow_published``): the data stays
in the tables, but the value is no longer a partition key, so no command looks at it any more;
the removal records how many such partitions there were, and every materialized partition
downstream of them (through the graph and its mappings: a day's rollup over the lines, and
what is built from it) is marked stale in the same transaction, so that gap detection lists it
as ``upstream_changed`` until it is recomputed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from backfiller.errors import (
    BadInputError,
    ConfigError,
    IllegalTransitionError,
    PreconditionError,
)
from backfiller.ledger import Ledger, LedgerReader, PartitionStatus
from backfiller.names import did_you_mean
from backfiller.partitions import (
    DIMENSION_SEPARATOR,
    DynamicScheme,
    MultiScheme,
    PartitionScheme,
    valid_value,
)
from backfiller.project import Project
from backfiller.refs import AssetPartition

__all__ = [
    "ValueChange",
    "add_partition_values",
    "dynamic_dimension",
    "dynamic_dimensions",
    "published_cells",
    "remove_partition_values",
]


@dataclass(frozen=True)
class ValueChange:
    """What an addition or removal did."""

    dimension: str
    values: tuple[str, ...]
    #: per removed value, its partitions that held published data (removal only)
    published: dict[str, int]
    #: the materialized partitions downstream of them, marked stale (removal only)
    stale: tuple[AssetPartition, ...] = ()


def dynamic_dimensions(project: Project) -> list[str]:
    """The project's dynamic dimensions: its own ``[partitions]`` one, then those of its
    assets' multi-dimensional schemes (``Dimension("product_line", DynamicScheme(...))``)."""
    found: dict[str, None] = {}
    if isinstance(project.scheme, DynamicScheme):
        found[project.scheme.dimension] = None
    for asset in project.graph.keys:
        scheme = project.scheme_of(asset)
        if isinstance(scheme, DynamicScheme):
            found[scheme.dimension] = None
        elif isinstance(scheme, MultiScheme):
            found.update(dict.fromkeys(scheme.dynamic_dimensions()))
    return list(found)


def dynamic_dimension(project: Project, dimension: str | None = None) -> str:
    """The project's dynamic dimension ``dimension`` (the only one when none is named)."""
    names = dynamic_dimensions(project)
    if not names:
        raise ConfigError(
            f"Project {project.config.name!r} has no dynamic partitions (its partitions are "
            f"{project.scheme.name})",
            hint='set [partitions] kind = "dynamic" and dimension = "NAME" in backfiller.toml, '
            "or give an asset a multi-dimensional scheme with a DynamicScheme dimension",
        )
    if dimension is None:
        if len(names) > 1:
            raise BadInputError(
                f"The project has several dynamic dimensions ({', '.join(names)})",
                hint="pass --dimension NAME",
            )
        return names[0]
    if dimension not in names:
        raise BadInputError(
            f"Unknown dimension {dimension!r}{did_you_mean(dimension, names)}",
            hint=f"the project's dynamic dimensions: {', '.join(names)}",
        )
    return dimension


def _values(values: Sequence[str]) -> tuple[str, ...]:
    if not values:
        raise BadInputError("No value given", hint="pass --value VALUE (repeatable)")
    return tuple(dict.fromkeys(valid_value(v) for v in values))


def _reason(reason: str | None) -> str:
    if reason is None or not reason.strip():
        raise BadInputError(
            "A reason is required", hint="pass --reason TEXT saying why; it is recorded"
        )
    return reason.strip()


def add_partition_values(
    project: Project,
    ledger: Ledger,
    values: Sequence[str],
    *,
    operator: str,
    reason: str | None,
    dimension: str | None = None,
) -> ValueChange:
    """Add ``values`` to the project's dynamic dimension (all of them, or none)."""
    name = dynamic_dimension(project, dimension)
    wanted, why = _values(values), _reason(reason)
    present = ledger.dimensions.add(name, wanted, operator=operator, reason=why)
    if present:
        raise BadInputError(
            f"Already a value of {name}: {', '.join(present)}; nothing was added",
            hint="'backfiller partitions list' shows the current values",
        )
    return ValueChange(name, wanted, {})


def published_cells(
    project: Project, reader: LedgerReader, values: Sequence[str], dimension: str | None = None
) -> dict[str, list[AssetPartition]]:
    """For each of ``values`` that holds published data, the (asset, partition) cells that hold
    it, in graph order: a ledger record with a data version, or rows in the store."""
    found: dict[str, list[AssetPartition]] = {}
    for asset in project.graph.keys:
        scheme = project.scheme_of(asset)
        at = _dynamic_position(scheme, dimension)
        if at is None:
            continue
        stored = project.store.partition_counts(asset)
        records = reader.partitions.all(asset) if at >= 0 else []
        for value in values:
            if at < 0:  # the asset's own scheme is the dimension: its key is the value
                record = reader.partitions.get(asset, value)
                if (record is not None and record.data_version is not None) or stored.get(
                    value, 0
                ) > 0:
                    found.setdefault(value, []).append(AssetPartition(asset, value))
                continue
            assert isinstance(scheme, MultiScheme)
            keys = {
                r.partition_key
                for r in records
                if r.data_version is not None and _value_at(scheme, r.partition_key, at) == value
            }
            keys |= {k for k, n in stored.items() if n > 0 and _value_at(scheme, k, at) == value}
            found.setdefault(value, []).extend(AssetPartition(asset, k) for k in sorted(keys))
    return {v: found[v] for v in values if found.get(v)}


def _dynamic_position(scheme: PartitionScheme, dimension: str | None) -> int | None:
    """Where ``dimension`` is in a key of ``scheme``: -1 when the scheme is that dynamic
    dimension itself, a position among a multi-dimensional scheme's dimensions, or None when
    the scheme has no such dimension."""
    if isinstance(scheme, MultiScheme):
        if dimension is None or dimension not in scheme.dynamic_dimensions():
            return None
        return next(
            i
            for i, d in enumerate(scheme.dimensions)
            if isinstance(d.scheme, DynamicScheme) and d.scheme.dimension == dimension
        )
    if isinstance(scheme, DynamicScheme) and dimension in (None, scheme.dimension):
        return -1
    return None


def _value_at(scheme: MultiScheme, key: str, at: int) -> str | None:
    parts = key.split(DIMENSION_SEPARATOR)
    return parts[at] if len(parts) == len(scheme.dimensions) else None


def remove_partition_values(
    project: Project,
    ledger: Ledger,
    values: Sequence[str],
    *,
    operator: str,
    reason: str | None,
    dimension: str | None = None,
    allow_published: bool = False,
) -> ValueChange:
    """Remove ``values`` from the project's dynamic dimension (all of them, or none). A value
    whose partitions hold published data is refused unless ``allow_published``."""
    name = dynamic_dimension(project, dimension)
    wanted, why = _values(values), _reason(reason)
    current = ledger.dimensions.values(name)
    _refuse_absent(name, [v for v in wanted if v not in current])
    cells = published_cells(project, ledger, wanted, name)
    published = {v: len({c.asset for c in found}) for v, found in cells.items()}
    if published and not allow_published:
        listing = ", ".join(f"{v} ({n} asset(s))" for v, n in published.items())
        raise PreconditionError(
            f"Published data in the partitions of: {listing}; nothing was removed",
            hint="the data stays in the tables but no command will look at it again; if that "
            "is what you want, pass --allow-published (it is recorded)",
        )
    readers = _readers_of(project, [c for v in wanted for c in cells.get(v, [])], name, wanted)
    note = (
        f"{name} value(s) {', '.join(v for v in wanted if v in published)} removed with "
        f"published data by {operator}: this partition is downstream of them"
    )
    stale: list[AssetPartition] = []
    with ledger.batch():  # the removal and what it makes stale, together or not at all
        _refuse_absent(
            name,
            ledger.dimensions.remove(
                name, wanted, operator=operator, reason=why, published=published
            ),
        )
        for cell in readers:
            record = ledger.partitions.get(*cell)
            if record is None or record.status is not PartitionStatus.MATERIALIZED:
                continue
            try:
                ledger.partitions.mark_stale(*cell, run_id=None, operator=operator, reason=note)
            except IllegalTransitionError:  # another run took it: its record says what it read
                continue
            stale.append(cell)
    return ValueChange(name, wanted, published, tuple(stale))


def _readers_of(
    project: Project, cells: Sequence[AssetPartition], dimension: str, removed: Sequence[str]
) -> list[AssetPartition]:
    """The partitions downstream of ``cells`` (through the graph and its mappings, as the
    project's schemes were before the removal) that stay partitions once ``removed`` are
    gone: those whose own key holds a removed value go with it."""
    gone = set(removed)
    kept = []
    for cell in project.graph.downstream_closure(cells, include_targets=False):
        scheme = project.scheme_of(cell.asset)
        at = _dynamic_position(scheme, dimension)
        own: str | None = None
        if at == -1:
            own = cell.partition_key
        elif at is not None and isinstance(scheme, MultiScheme):
            own = _value_at(scheme, cell.partition_key, at)
        if own is not None and own in gone:
            continue
        kept.append(cell)
    return kept


def _refuse_absent(dimension: str, absent: Sequence[str]) -> None:
    """Refuse a removal naming the values that are not current (checked before the published
    data, whose message would not fit a value removed already, and again as it is written)."""
    if absent:
        raise BadInputError(
            f"Not a current value of {dimension}: {', '.join(absent)}; nothing was removed",
            hint="'backfiller partitions list' shows the current values",
        )
