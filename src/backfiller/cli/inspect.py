"""Read-only views: runs and their attempts, a table's commit history, the store verified
against the ledger."""

from __future__ import annotations

import click

from backfiller import entries
from backfiller.errors import BadInputError, ConflictError

from . import documents
from .context import Context
from .documents import json_option


@click.command(name="runs")
@click.option("--run", "run_id", help="Show the attempts of one run.")
@json_option
@click.pass_obj
def runs_cmd(obj: Context, run_id: str | None, as_json: bool) -> None:
    """List runs (who, what, why, outcome), or the attempts of one run."""
    from rich.table import Table

    from .render import add_row

    obj.use_json(as_json)
    project = obj.project()
    reader = project.reader()
    if run_id is not None:
        record = reader.runs.get(run_id)
        if record is None:
            raise BadInputError(
                f"No run {run_id!r} in the ledger", hint="see 'backfiller runs' for the run ids"
            )
        if obj.json:
            attempts = reader.runs.attempts(run_id)
            documents.emit(
                documents.document(
                    "run",
                    run=entries.run_entry(record),
                    attempts=[entries.attempt_entry(a) for a in attempts],
                )
            )
            return
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
    if obj.json:
        every = reader.runs.all()
        documents.emit(
            documents.document("runs", count=len(every), runs=[entries.run_entry(r) for r in every])
        )
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
@json_option
@click.pass_obj
def history_cmd(obj: Context, asset: str, limit: int, as_json: bool) -> None:
    """The Delta commits of an asset's table, with the run and plan behind each; for dynamic
    partitions (its own, or a dimension of its multi-dimensional key), also every value added
    and removed."""
    from rich.table import Table

    from backfiller.partitions import DynamicScheme, MultiScheme

    from .partitions import event_entry, print_events
    from .render import add_row

    obj.use_json(as_json)
    project = obj.project()
    project.graph.get(asset)
    scheme = project.graph.scheme(asset)
    dimensions: list[str] = []
    if isinstance(scheme, DynamicScheme):
        dimensions = [scheme.dimension]
    elif isinstance(scheme, MultiScheme):
        dimensions = scheme.dynamic_dimensions()
    events = (
        [e for e in project.reader().dimensions.events() if e.dimension in dimensions]
        if dimensions
        else []
    )
    if obj.json:
        commits = project.store.history(asset, limit=limit)
        documents.emit(
            documents.document(
                "history",
                asset=asset,
                limit=limit,
                count=len(commits),
                commits=[entries.commit_entry(c) for c in commits],
                dimension_events=[event_entry(e) for e in events],
            )
        )
        return
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
            m.get("backfiller.action") or ("created, empty" if m.get("backfiller.created") else ""),
            m.get("backfiller.partition_keys", ""),
        )
    obj.console.print(table)
    if events:
        print_events(obj, events)


@click.command(name="verify")
@click.pass_obj
def verify_cmd(obj: Context) -> None:
    """Check every published partition: its data files exist and its stored content has the
    fingerprint the ledger recorded (exit 4 naming each one that does not)."""
    from backfiller.verify import verify_store

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
