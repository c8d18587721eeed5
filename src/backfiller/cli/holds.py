"""Checks on published data, holds, release and readiness."""

from __future__ import annotations

import click
from rich.table import Table

from backfiller.actions.checking import check_partition
from backfiller.errors import BadInputError, ChecksFailedError
from backfiller.holds import is_ready, release

from .context import Context
from .render import add_row


@click.command(name="check")
@click.option("--asset", required=True)
@click.option("--partition", required=True)
@click.pass_obj
def check_cmd(obj: Context, asset: str, partition: str) -> None:
    """Re-run an asset's checks on its published data (recorded in the ledger)."""
    project = obj.project()
    project.graph.get(asset)
    key = project.scheme.parse(partition)
    data = project.store.read_partition(asset, key)
    if data is None:
        raise BadInputError(f"{asset} has no table yet", hint="backfill it first")
    with project.ledger() as ledger:
        results = check_partition(project, ledger, asset, key, data, run_id=None, on_staged=False)
    table = Table(title=f"Checks of {asset} {key} (published data)")
    for col in ("check", "status", "severity", "expected", "actual"):
        table.add_column(col, overflow="fold")
    for r in results:
        add_row(table, r.name, r.status.value, r.severity.value, str(r.expected), str(r.actual))
    obj.console.print(table)
    blocking = [r.name for r in results if r.blocking]
    if blocking:
        raise ChecksFailedError(f"{asset} {key}: blocking checks failed: {', '.join(blocking)}")


@click.command(name="holds")
@click.pass_obj
def holds_cmd(obj: Context) -> None:
    """List what is held and why."""
    project = obj.project()
    with project.ledger() as ledger:
        holds = ledger.holds.all()
    if not holds:
        obj.console.print("Nothing is held.")
        return
    table = Table(title=f"{len(holds)} open hold(s)")
    for col in ("target", "partition", "kind", "reason", "since"):
        table.add_column(col, overflow="fold")
    for h in holds:
        add_row(
            table,
            h.target,
            h.partition_key,
            "consumer" if h.external else "asset",
            h.reason,
            h.placed_at,
        )
    obj.console.print(table)


@click.command(name="release")
@click.option("--run", "run_id", help="Only holds caused by this run.")
@click.option("--force", is_flag=True, help="Release even what is not ready (needs --reason).")
@click.option("--reason", help="Why a forced release is acceptable; recorded.")
@click.option("--operator", help="Who releases.")
@click.pass_obj
def release_cmd(
    obj: Context, run_id: str | None, force: bool, reason: str | None, operator: str | None
) -> None:
    """Release holds whose upstream checks passed and whose evidence exists."""
    if force and not reason:
        raise BadInputError("--force needs --reason TEXT", hint="say why; it is recorded")
    project = obj.project()
    with project.ledger() as ledger:
        outcome = release(
            project,
            ledger,
            operator=project.operator(operator),
            run_id=run_id,
            force_reason=reason if force else None,
        )
    obj.console.print(f"released {len(outcome.released)} hold(s)", markup=False)
    if outcome.blocked:
        lines = [f"  - {h.target} {h.partition_key}: {'; '.join(m)}" for h, m in outcome.blocked]
        raise ChecksFailedError(
            f"{len(outcome.blocked)} hold(s) cannot be released yet:\n" + "\n".join(lines[:50]),
            hint="make the checks pass and write the evidence, or --force --reason TEXT",
        )


@click.command(name="ready")
@click.argument("target")
@click.argument("partition")
@click.pass_obj
def ready_cmd(obj: Context, target: str, partition: str) -> None:
    """Exit 0 when TARGET (an asset or a declared consumer) may consume PARTITION, 1 if held."""
    project = obj.project()
    if target not in project.graph and target not in project.config.downstream_consumers:
        raise BadInputError(
            f"Unknown asset or consumer {target!r}",
            hint="known: " + ", ".join([*project.graph.keys, *project.config.downstream_consumers]),
        )
    key = project.scheme.parse(partition)
    with project.ledger() as ledger:
        reasons = is_ready(project, ledger, target, key)
    if reasons:
        for r in reasons:
            obj.console.print(f"held: {r}", markup=False)
        raise click.exceptions.Exit(1)
    obj.console.print(f"ready: {target} {key}", markup=False)


COMMANDS = [check_cmd, holds_cmd, release_cmd, ready_cmd]
