"""``backfiller partitions add|remove|list``: the values of a dynamic partition dimension."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from . import documents
from .context import Context
from .documents import json_option

if TYPE_CHECKING:
    from backfiller.ledger import DimensionEvent
    from backfiller.refs import AssetPartition

__all__ = ["COMMANDS", "partitions_group"]

_dimension = click.option(
    "--dimension", help="The dynamic dimension (default: the project's only one)."
)
_values = click.option(
    "--value", "values", multiple=True, required=True, help="A value (repeatable)."
)
_reason = click.option("--reason", help="Why; recorded in the ledger with who and when.")
_operator = click.option("--operator", help="Who (default: config, then the OS user).")


@click.group(name="partitions")
def partitions_group() -> None:
    """The values of a dynamic partition dimension: add, remove, list (each change is
    recorded with who, when and why)."""


@partitions_group.command(name="add")
@_dimension
@_values
@_reason
@_operator
@click.pass_obj
def add_cmd(
    obj: Context,
    dimension: str | None,
    values: tuple[str, ...],
    reason: str | None,
    operator: str | None,
) -> None:
    """Add values; each becomes a partition key (all of them, or none)."""
    from backfiller.dynamic import add_partition_values, dynamic_dimension

    project = obj.project()
    dynamic_dimension(project, dimension)  # refused before the ledger is opened
    with project.ledger() as ledger:
        change = add_partition_values(
            project,
            ledger,
            values,
            operator=project.operator(operator),
            reason=reason,
            dimension=dimension,
        )
    obj.console.print(f"added to {change.dimension}: {', '.join(change.values)}", markup=False)


@partitions_group.command(name="remove")
@_dimension
@_values
@_reason
@_operator
@click.option(
    "--allow-published",
    is_flag=True,
    help="Remove values whose partitions hold published data (the data stays; recorded).",
)
@click.pass_obj
def remove_cmd(
    obj: Context,
    dimension: str | None,
    values: tuple[str, ...],
    reason: str | None,
    operator: str | None,
    allow_published: bool,
) -> None:
    """Remove values (all of them, or none); refused for values whose partitions hold
    published data unless --allow-published."""
    from backfiller.dynamic import dynamic_dimension, remove_partition_values

    project = obj.project()
    dynamic_dimension(project, dimension)
    with project.ledger() as ledger:
        change = remove_partition_values(
            project,
            ledger,
            values,
            operator=project.operator(operator),
            reason=reason,
            dimension=dimension,
            allow_published=allow_published,
        )
    obj.console.print(f"removed from {change.dimension}: {', '.join(change.values)}", markup=False)
    for value, count in change.published.items():
        obj.console.print(
            f"  {value}: published data in {count} asset(s) stays in the tables, no longer "
            "a partition",
            markup=False,
        )
    if change.stale:
        obj.console.print(
            f"marked {len(change.stale)} downstream partition(s) stale: "
            f"{_cells(change.stale)}; 'backfiller plan' recomputes them",
            markup=False,
        )


def _cells(cells: Sequence[AssetPartition], shown: int = 5) -> str:
    """``asset key, …`` for the first ``shown`` cells, then how many more."""
    text = ", ".join(str(c) for c in cells[:shown])
    return text + (f" and {len(cells) - shown} more" if len(cells) > shown else "")


@partitions_group.command(name="list")
@_dimension
@click.option("--history", is_flag=True, help="Every addition and removal, oldest first.")
@json_option
@click.pass_obj
def list_cmd(obj: Context, dimension: str | None, history: bool, as_json: bool) -> None:
    """The current values (in the order they were added), or with --history every change."""
    from backfiller.dynamic import dynamic_dimension

    obj.use_json(as_json)
    project = obj.project()
    name = dynamic_dimension(project, dimension)
    reader = project.reader()
    current = reader.dimensions.values(name)
    events = reader.dimensions.events(name)
    if obj.json:
        documents.emit(
            documents.document(
                "partition_values",
                dimension=name,
                values=current,
                events=[event_entry(e) for e in events],
            )
        )
        return
    if history:
        print_events(obj, events)
        return
    obj.console.print(
        f"{name}: {len(current)} value(s)" + (f": {', '.join(current)}" if current else ""),
        markup=False,
    )


def event_entry(event: DimensionEvent) -> dict[str, Any]:
    return {
        "at": event.at,
        "dimension": event.dimension,
        "value": event.value,
        "verb": event.verb.value,
        "operator": event.operator,
        "reason": event.reason,
        "published": event.published,
    }


def print_events(obj: Context, events: list[DimensionEvent]) -> None:
    from .render import print_dimension_events

    print_dimension_events(obj.console, events)


COMMANDS = [partitions_group]
