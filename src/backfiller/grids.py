"""The states of an asset's partitions as grids: one for an asset of one dimension; for a
multi-dimensional asset, one per combination of the values of its other dimensions
(``product_line=billing``), along its time dimension (else its last one) — what ``status
--each`` and the web view's asset page draw."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from backfiller.partitions import MultiScheme, PartitionScheme

__all__ = ["CellGrid", "cell_grids", "dimension_grids"]


@dataclass(frozen=True)
class CellGrid:
    """The cells of one combination of the values of the other dimensions."""

    #: those values, ``{"product_line": "billing"}``
    values: dict[str, str]
    #: per cell, in order: its value along the grid (its day) and its key
    cells: list[tuple[str, str]] = field(default_factory=list)

    @property
    def label(self) -> str:
        return ", ".join(f"{name}={value}" for name, value in self.values.items())


def cell_grids(scheme: MultiScheme, keys: Iterable[str]) -> list[CellGrid]:
    """``keys`` of a multi-dimensional scheme grouped into grids, in the order a grid's first
    key comes."""
    timed = scheme.time_dimension
    along = scheme.names.index(timed.name) if timed is not None else len(scheme.names) - 1
    grids: dict[tuple[str, ...], CellGrid] = {}
    for key in keys:
        values = scheme.split(key)
        others = values[:along] + values[along + 1 :]
        grid = grids.get(others)
        if grid is None:
            names = scheme.names[:along] + scheme.names[along + 1 :]
            grid = grids[others] = CellGrid(dict(zip(names, others, strict=True)))
        grid.cells.append((values[along], key))
    return list(grids.values())


def dimension_grids(
    scheme: PartitionScheme, states: dict[str, str]
) -> list[tuple[str, dict[str, str]]]:
    """``states`` (key -> state) as ``(label, {value: state})`` grids: one unlabelled grid of
    the keys themselves for a single-dimension scheme; for a multi-dimensional one, a grid per
    combination of the values of its other dimensions, keyed by the value along it."""
    if not isinstance(scheme, MultiScheme):
        return [("", states)]
    return [
        (grid.label, {value: states[key] for value, key in grid.cells})
        for grid in cell_grids(scheme, states)
    ]
