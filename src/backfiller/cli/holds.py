"""Checks on published data, holds, release and readiness."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from backfiller import entries
from backfiller.errors import BadInputError, ChecksFailedError
from backfiller.names import did_you_mean

from . import documents
from .context import Context, dimension_option, known_run, one_partition
from .documents import json_option

if TYPE_CHECKING:
    from backfiller.checks.model import CheckResult
    from backfiller.ledger import HoldRecord


@click.command(name="check")
@click.option("--asset", required=True)
@click.option("--partition", required=True)
@dimension_option
@json_option
@click.pass_obj
def check_cmd(
    obj: Context, asset: str, partition: str, dimensions: tuple[str, ...], as_json: bool
) -> None:
    """Re-run an asset's checks on its published data (recorded in the ledger)."""
    from backfiller.actions.checking import check_partition

    obj.use_json(as_json)
    project = obj.project()
    project.graph.get(asset)
    key = one_partition(project, asset, partition, dimensions)
    data = project.store.read_partition(asset, key)
    if data is None:
        raise BadInputError(f"{asset} has no table yet", hint="backfill it first")
    with project.ledger() as ledger:
        results = check_partition(project, ledger, asset, key, data, run_id=None, on_staged=False)
    blocking = [r.name for r in results if r.blocking]
    if obj.json:
        documents.emit(
            documents.document(
                "check",
                asset=asset,
                partition_key=key,
                passed=not blocking,
                blocking_failures=blocking,
                counts=documents.counts(r.status.value for r in results),
                results=[documents.check_entry(r) for r in results],
            )
        )
    else:
        _print_checks(obj, asset, key, results)
    if blocking:
        raise ChecksFailedError(f"{asset} {key}: blocking checks failed: {', '.join(blocking)}")


def _print_checks(obj: Context, asset: str, key: str, results: list[CheckResult]) -> None:
    from rich.table import Table

    from .render import add_row

    table = Table(title=f"Checks of {asset} {key} (published data)")
    for col in ("check", "status", "severity", "expected", "actual"):
        table.add_column(col, overflow="fold")
    for r in results:
        add_row(table, r.name, r.status.value, r.severity.value, str(r.expected), str(r.actual))
    obj.console.print(table)


@click.command(name="holds")
@click.option("--asset", "assets", multiple=True, help="Only holds on this asset (repeatable).")
@click.option(
    "--consumer", "consumers", multiple=True, help="Only holds on this consumer (repeatable)."
)
@dimension_option
@json_option
@click.pass_obj
def holds_cmd(
    obj: Context,
    assets: tuple[str, ...],
    consumers: tuple[str, ...],
    dimensions: tuple[str, ...],
    as_json: bool,
) -> None:
    """List what is held and why (all, or only the named assets and consumers; --dimension
    keeps the holds on, or caused by, cells of multi-dimensional assets with those values)."""
    from backfiller.asset_keys import dimension_filter, judged_by_values

    obj.use_json(as_json)
    project = obj.project()
    for name in assets:
        project.graph.get(name)
    chosen = dimension_filter(project.graph, list(assets or project.graph.keys), dimensions)
    known = project.config.downstream_consumers
    for name in consumers:
        if name not in known:
            raise BadInputError(
                f"Unknown consumer {name!r}{did_you_mean(name, known)}",
                hint="declared in [downstream] consumers: " + (", ".join(known) or "none"),
            )
    every = project.reader().holds.all()  # reading only: nothing is created
    wanted = {(a, False) for a in assets} | {(c, True) for c in consumers}

    def of_the_cells(h: HoldRecord) -> bool:
        """Its target or its cause is a cell with the values ``--dimension`` names (a hold
        on and caused by no cell of an asset with those dimensions is kept)."""
        cells = [(h.cause_asset, h.cause_partition)]
        if not h.external:
            cells.append((h.target, h.partition_key))
        judged = [
            judged_by_values(project.scheme_of(a), k, chosen)
            for a, k in cells
            if a in project.graph
        ]
        said = [j for j in judged if j is not None]
        return not said or any(said)

    holds = [
        h
        for h in every
        if (not wanted or (h.target, h.external) in wanted) and (not chosen or of_the_cells(h))
    ]
    if obj.json:
        documents.emit(
            documents.document(
                "holds",
                filters={
                    "assets": list(assets),
                    "consumers": list(consumers),
                    "dimensions": chosen,
                },
                count=len(holds),
                left_out=len(every) - len(holds),
                holds=[entries.hold_entry(h) for h in holds],
            )
        )
        return
    if len(every) > len(holds):
        obj.console.print(f"{len(every) - len(holds)} hold(s) left out by the filters.")
    if not holds:
        obj.console.print("No hold matches the filters." if every else "Nothing is held.")
        return
    from rich.table import Table

    from .render import add_row

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
    from backfiller.holds import release

    if force and not reason:
        raise BadInputError("--force needs --reason TEXT", hint="say why; it is recorded")
    project = obj.project()
    if run_id is not None:
        known_run(project, run_id)
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
    from backfiller.holds import is_ready

    project = obj.project()
    if target not in project.graph and target not in project.config.downstream_consumers:
        raise BadInputError(
            f"Unknown asset or consumer {target!r}",
            hint="known: " + ", ".join([*project.graph.keys, *project.config.downstream_consumers]),
        )
    if target in project.graph:  # a key of the asset's own scheme
        key = project.scheme_of(target).parse(partition)
    else:  # a consumer may read any asset's keys
        from backfiller.asset_keys import require_owned

        require_owned(project.graph, [partition], project.graph.keys)
        key = partition
    reasons = is_ready(project, project.reader(), target, key)  # reading only
    if reasons:
        for r in reasons:
            obj.console.print(f"held: {r}", markup=False)
        raise click.exceptions.Exit(1)
    obj.console.print(f"ready: {target} {key}", markup=False)


COMMANDS = [check_cmd, holds_cmd, release_cmd, ready_cmd]
