"""``backfiller simulate``: make a gap safely, see it, undo it exactly."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from .context import Context

if TYPE_CHECKING:
    from backfiller.lab.simulation import SimulationRecord

_operator = click.option("--operator", help="Who simulates (default: config, then the OS user).")
_note = click.option("--note", help="Why; recorded with the simulation.")


def _started(obj: Context, record: SimulationRecord, look: str) -> None:
    obj.console.print(f"simulation {record.simulation_id}: {record.target}", markup=False)
    if record.copy_path:
        obj.console.print(f"  moved aside / written to: {record.copy_path}", markup=False)
    obj.console.print(f"  the gap it makes: {record.expected_gap}", markup=False)
    obj.console.print(f"  see it:  {look}", markup=False)
    obj.console.print(f"  undo it: backfiller simulate undo {record.simulation_id}", markup=False)
    obj.console.print("  while it is active every plan is a dry run")


@click.group(name="simulate")
def simulate_group() -> None:
    """Make a gap safely (never by deleting a main table), list and undo simulations."""


@simulate_group.command(name="move-report")
@click.option("--asset", required=True, help="The asset whose partition report moves aside.")
@click.option("--partition", required=True, help="The partition key.")
@_operator
@_note
@click.pass_obj
def move_report_cmd(
    obj: Context, asset: str, partition: str, operator: str | None, note: str | None
) -> None:
    """Move one partition report aside (gap: missing_partition_report)."""
    from backfiller.lab.simulation import simulate_move_report

    project = obj.project()
    record = simulate_move_report(
        project, asset=asset, key=partition, operator=project.operator(operator), note=note
    )
    _started(obj, record, f"backfiller gaps --partition {record.partition_key}")


@simulate_group.command(name="broken-manifest")
@click.option("--manifest", "manifest_id", required=True, help="The manifest id to copy.")
@click.option(
    "--drop-field",
    "fields",
    multiple=True,
    required=True,
    help="A top-level field, or a per-partition field (removed from every partition entry); "
    "repeatable.",
)
@_operator
@_note
@click.pass_obj
def broken_manifest_cmd(
    obj: Context, manifest_id: str, fields: tuple[str, ...], operator: str | None, note: str | None
) -> None:
    """Load a copy of a manifest without some fields in place of the real one
    (gap: manifest_changed; apply, rerun and replay of its partitions are refused)."""
    from backfiller.lab.simulation import simulate_broken_manifest

    project = obj.project()
    record = simulate_broken_manifest(
        project,
        manifest_id=manifest_id,
        fields=list(fields),
        operator=project.operator(operator),
        note=note,
    )
    _started(obj, record, "backfiller gaps --start KEY --end KEY")


@simulate_group.command(name="failing-check")
@click.option("--asset", required=True)
@click.option("--check", "check", required=True, help="The check's name (see the asset).")
@click.option("--partition", required=True)
@_operator
@_note
@click.pass_obj
def failing_check_cmd(
    obj: Context, asset: str, check: str, partition: str, operator: str | None, note: str | None
) -> None:
    """Make one check fail for one partition (gap: check_failed once it is recomputed)."""
    from backfiller.lab.simulation import simulate_failing_check

    project = obj.project()
    record = simulate_failing_check(
        project,
        asset=asset,
        check=check,
        key=partition,
        operator=project.operator(operator),
        note=note,
    )
    _started(
        obj,
        record,
        f"backfiller rerun --asset {asset} --partition {record.partition_key} "
        "(exit 3: checks failed, the old data stays visible)",
    )


@simulate_group.command(name="list")
@click.option("--all", "show_all", is_flag=True, help="Also the simulations already undone.")
@click.pass_obj
def list_cmd(obj: Context, show_all: bool) -> None:
    """What is simulated now."""
    from rich.table import Table

    from backfiller.lab.simulation import read_simulations

    from .render import add_row

    project = obj.project()
    records = [r for r in read_simulations(project.config.state_dir) if show_all or r.active]
    if not records:
        obj.console.print("No active simulation." if not show_all else "No simulation yet.")
        return
    active = sum(1 for r in records if r.active)
    table = Table(title=f"{active} active simulation(s)")
    columns = ["id", "kind", "target", "gap", "since", "by"]
    if show_all:
        columns.append("undone")
    for col in columns:
        table.add_column(col, overflow="fold")
    for r in records:
        cells = [
            r.simulation_id,
            r.kind.value,
            r.target,
            r.expected_gap,
            r.created_at.isoformat(),
            r.operator,
        ]
        if show_all:
            cells.append(f"{r.undone_at.isoformat()}: {r.undo_outcome}" if r.undone_at else "-")
        add_row(table, *cells)
    obj.console.print(table)


@simulate_group.command(name="undo")
@click.argument("simulation_id")
@_operator
@click.pass_obj
def undo_cmd(obj: Context, simulation_id: str, operator: str | None) -> None:
    """Undo a simulation exactly (the report moved back byte-identical, the manifest copy
    removed, the forced failure lifted)."""
    from backfiller.lab.simulation import undo_simulation

    project = obj.project()
    record = undo_simulation(project, simulation_id, operator=project.operator(operator))
    obj.console.print(f"undone {record.simulation_id}: {record.undo_outcome}", markup=False)


COMMANDS = [simulate_group]
