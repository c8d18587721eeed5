"""Read-only views: runs and their attempts, a table's commit history, the store verified
against the ledger."""

from __future__ import annotations

import click
from rich.table import Table

from backfiller.errors import BadInputError, ConflictError
from backfiller.verify import verify_store

from .context import Context
from .render import add_row


@click.command(name="runs")
@click.option("--run", "run_id", help="Show the attempts of one run.")
@click.pass_obj
def runs_cmd(obj: Context, run_id: str | None) -> None:
    """List runs (who, what, why, outcome), or the attempts of one run."""
    project = obj.project()
    reader = project.reader()
    if run_id is not None:
        if reader.runs.get(run_id) is None:
            raise BadInputError(f"No run {run_id!r}", hint="see 'backfiller runs' for the run ids")
        table = Table(title=f"Attempts of {run_id}")
        for col in ("asset", "partition", "attempt", "status", "transient", "rows", "error"):
            table.add_column(col, overflow="fold")
        for a in reader.runs.attempts(run_id):
            add_row(
                table,
                a.asset,
                a.partition_key,
                a.attempt,
                a.status.value,
                a.transient,
                "-" if a.rows_written is None else a.rows_written,
                a.error or "",
            )
        obj.console.print(table)
        return
    table = Table(title="Runs")
    for col in ("run", "action", "state", "operator", "reason", "started", "ended"):
        table.add_column(col, overflow="fold")
    for r in reader.runs.all():
        add_row(
            table,
            r.run_id,
            r.action,
            r.state.value,
            r.operator,
            r.reason or "",
            r.started_at,
            r.ended_at or "",
        )
    obj.console.print(table)


@click.command(name="history")
@click.option("--asset", required=True)
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000))
@click.pass_obj
def history_cmd(obj: Context, asset: str, limit: int) -> None:
    """The Delta commits of an asset's table, with the run and plan behind each."""
    project = obj.project()
    project.graph.get(asset)
    table = Table(title=f"History of {asset}")
    for col in ("version", "operation", "run", "plan", "action", "partitions"):
        table.add_column(col, overflow="fold")
    for c in project.store.history(asset, limit=limit):
        m = c.metadata
        add_row(
            table,
            c.version,
            c.operation,
            m.get("backfiller.run_id", ""),
            m.get("backfiller.plan_id", ""),
            m.get("backfiller.action", ""),
            m.get("backfiller.partition_keys", ""),
        )
    obj.console.print(table)


@click.command(name="verify")
@click.pass_obj
def verify_cmd(obj: Context) -> None:
    """Check every published partition: its data files exist and its stored content has the
    fingerprint the ledger recorded (exit 4 naming each one that does not)."""
    project = obj.project()
    result = verify_store(project, project.reader())
    if result.problems:
        for problem in result.problems:
            obj.console.print(f"✗ {problem}", markup=False)
        raise ConflictError(
            f"{len(result.problems)} problem(s) in {result.checked} published partition(s): "
            "the store no longer holds what the ledger recorded",
            hint="backfill or restore the named partitions ('backfiller gaps' proposes how)",
        )
    obj.console.print(
        f"Verified {result.checked} published partition(s): every data file is there and "
        "every stored fingerprint matches the ledger.",
        markup=False,
    )


COMMANDS = [verify_cmd, runs_cmd, history_cmd]
