"""Dynamic partitions: the values of a dimension added and removed at run time, each change
recorded in the ledger with who, when and why.

A project whose ``[partitions] kind = "dynamic"`` gets its keys from the ledger when it is
loaded (:class:`~backfiller.partitions.DynamicScheme`). Adding a value that is current already,
or removing one that is not, is refused and writes nothing. Removing a value whose partitions
hold published data is refused unless asked for explicitly (``allow_published``): the data stays
in the tables, but the value is no longer a partition key, so no command looks at it any more;
the removal records how many such partitions there were.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from backfiller.errors import BadInputError, ConfigError, PreconditionError
from backfiller.ledger import Ledger, LedgerReader
from backfiller.names import did_you_mean
from backfiller.partitions import DIMENSION_SEPARATOR, DynamicScheme, MultiScheme, valid_value
from backfiller.project import Project

__all__ = [
    "ValueChange",
    "add_partition_values",
    "dynamic_dimension",
    "dynamic_dimensions",
    "published_partitions",
    "remove_partition_values",
]


@dataclass(frozen=True)
class ValueChange:
    """What an addition or removal did."""

    dimension: str
    values: tuple[str, ...]
    #: per removed value, its partitions that held published data (removal only)
    published: dict[str, int]


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


def published_partitions(
    project: Project, reader: LedgerReader, values: Sequence[str], dimension: str | None = None
) -> dict[str, int]:
    """For each of ``values`` that holds published data, in how many assets: a ledger record
    with a data version, or rows in the store (each asset's stored counts read once). A
    multi-dimensional asset whose dynamic ``dimension`` has the value counts when any of its
    cells with that value does."""
    found: dict[str, int] = {}
    for asset in project.graph.keys:
        scheme = project.scheme_of(asset)
        stored = project.store.partition_counts(asset)
        for value in values:
            if isinstance(scheme, MultiScheme):
                if dimension is None or dimension not in scheme.dynamic_dimensions():
                    continue
                at = next(
                    i
                    for i, d in enumerate(scheme.dimensions)
                    if isinstance(d.scheme, DynamicScheme) and d.scheme.dimension == dimension
                )
                recorded = any(
                    r.data_version is not None and _value_at(scheme, r.partition_key, at) == value
                    for r in reader.partitions.all(asset)
                )
                if recorded or any(
                    n > 0 and _value_at(scheme, k, at) == value for k, n in stored.items()
                ):
                    found[value] = found.get(value, 0) + 1
                continue
            if isinstance(scheme, DynamicScheme) and dimension not in (None, scheme.dimension):
                continue
            record = reader.partitions.get(asset, value)
            recorded = record is not None and record.data_version is not None
            if recorded or stored.get(value, 0) > 0:
                found[value] = found.get(value, 0) + 1
    return {v: found[v] for v in values if v in found}


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
    published = published_partitions(project, ledger, wanted, name)
    if published and not allow_published:
        listing = ", ".join(f"{v} ({n} asset(s))" for v, n in published.items())
        raise PreconditionError(
            f"Published data in the partitions of: {listing}; nothing was removed",
            hint="the data stays in the tables but no command will look at it again; if that "
            "is what you want, pass --allow-published (it is recorded)",
        )
    _refuse_absent(
        name,
        ledger.dimensions.remove(name, wanted, operator=operator, reason=why, published=published),
    )
    return ValueChange(name, wanted, published)


def _refuse_absent(dimension: str, absent: Sequence[str]) -> None:
    """Refuse a removal naming the values that are not current (checked before the published
    data, whose message would not fit a value removed already, and again as it is written)."""
    if absent:
        raise BadInputError(
            f"Not a current value of {dimension}: {', '.join(absent)}; nothing was removed",
            hint="'backfiller partitions list' shows the current values",
        )
