"""The recovery commands: rerun, replay, retry, resume, restore, protect."""

from __future__ import annotations

import click

from backfiller.errors import BadInputError

from .context import (
    Context,
    _keys,
    dimension_option,
    executor_options,
    known_run,
    one_partition,
    override_option,
    override_reason,
)

_operator = click.option("--operator", help="Who runs it (default: config, then the OS user).")
_reason = click.option("--reason", help="Why; recorded in the ledger.")


@click.command(name="rerun")
@click.option("--asset", required=True, help="The asset to recompute (and its downstream).")
@click.option("--partition", help="One partition key.")
@click.option("--start", help="First partition key.")
@click.option("--end", help="Last partition key.")
@dimension_option
@_operator
@_reason
@override_option
@executor_options
@click.pass_obj
def rerun_cmd(
    obj: Context,
    asset: str,
    partition: str | None,
    start: str | None,
    end: str | None,
    dimensions: tuple[str, ...],
    operator: str | None,
    reason: str | None,
    override_protected: bool,
) -> None:
    """Recompute named partitions as a new run of the same definition (checks always run)."""
    from backfiller.actions.recovery import rerun

    from .render import finish_run

    override = override_reason(override_protected, reason)
    project = obj.project()
    if partition is None and start is None:
        raise BadInputError("rerun needs --partition K or --start K --end K")
    project.graph.get(asset)
    keys = _keys(project, partition, start, end, [asset], dimensions)  # its own scheme's keys
    with (
        obj.run_options(project) as options,
        project.ledger(max_parallel=obj.max_parallel) as ledger,
    ):
        result = rerun(
            project,
            ledger,
            asset=asset,
            keys=keys,
            operator=project.operator(operator),
            reason=reason,
            override_reason=override,
            options=options,
        )
    finish_run(obj.console, result, project)


@click.command(name="replay")
@click.option("--manifest", "manifest_id", required=True, help="The manifest id to replay.")
@click.option("--partition", help="Only this partition of the manifest.")
@_operator
@_reason
@override_option
@executor_options
@click.pass_obj
def replay_cmd(
    obj: Context,
    manifest_id: str,
    partition: str | None,
    operator: str | None,
    reason: str | None,
    override_protected: bool,
) -> None:
    """Re-ingest exactly a manifest's input (refused if its checksums no longer match)."""
    from backfiller.actions.recovery import replay

    from .render import finish_run

    override = override_reason(override_protected, reason)
    project = obj.project()
    project.manifests.get(manifest_id)  # an unknown id is refused before the ledger opens
    keys = [project.scheme.parse(partition)] if partition else None
    with (
        obj.run_options(project) as options,
        project.ledger(max_parallel=obj.max_parallel) as ledger,
    ):
        result = replay(
            project,
            ledger,
            manifest_id=manifest_id,
            keys=keys,
            operator=project.operator(operator),
            reason=reason,
            override_reason=override,
            options=options,
        )
    finish_run(obj.console, result, project)


@click.command(name="retry")
@click.argument("run_id")
@click.option("--max-attempts", default=3, show_default=True, type=click.IntRange(1, 10))
@_operator
@executor_options
@click.pass_obj
def retry_cmd(obj: Context, run_id: str, max_attempts: int, operator: str | None) -> None:
    """Retry only the failed, transient attempts of a run (same plan, same inputs)."""
    from backfiller.actions.recovery import retry

    from .render import finish_run

    project = obj.project()
    known_run(project, run_id)
    with (
        obj.run_options(project) as options,
        project.ledger(max_parallel=obj.max_parallel) as ledger,
    ):
        result = retry(
            project,
            ledger,
            run_id=run_id,
            operator=project.operator(operator),
            max_attempts=max_attempts,
            options=options,
        )
    finish_run(obj.console, result, project)


@click.command(name="resume")
@click.argument("run_id")
@_operator
@executor_options
@click.pass_obj
def resume_cmd(obj: Context, run_id: str, operator: str | None) -> None:
    """Finish what a crashed run left unfinished; never duplicates what landed."""
    from backfiller.actions.recovery import resume

    from .render import finish_run

    project = obj.project()
    known_run(project, run_id)
    with (
        obj.run_options(project) as options,
        project.ledger(max_parallel=obj.max_parallel) as ledger,
    ):
        result = resume(
            project, ledger, run_id=run_id, operator=project.operator(operator), options=options
        )
    finish_run(obj.console, result, project)


@click.command(name="restore")
@click.option("--asset", required=True)
@click.option("--partition", required=True)
@dimension_option
@click.option("--to-version", type=int, help="The Delta table version to restore.")
@click.option("--before-run", help="Restore the version before this run's first commit.")
@_operator
@_reason
@override_option
@executor_options
@click.pass_obj
def restore_cmd(
    obj: Context,
    asset: str,
    partition: str,
    dimensions: tuple[str, ...],
    to_version: int | None,
    before_run: str | None,
    operator: str | None,
    reason: str | None,
    override_protected: bool,
) -> None:
    """Publish a retained earlier version of a partition again; downstream becomes stale."""
    from backfiller.actions.recovery import restore

    from .render import finish_run

    override = override_reason(override_protected, reason)
    project = obj.project()
    project.graph.get(asset)
    key = one_partition(project, asset, partition, dimensions)
    if before_run is not None and to_version is None:  # both: refused below, naming both
        known_run(project, before_run)
    with (
        obj.run_options(project) as options,
        project.ledger(max_parallel=obj.max_parallel) as ledger,
    ):
        result = restore(
            project,
            ledger,
            asset=asset,
            key=key,
            operator=project.operator(operator),
            to_version=to_version,
            before_run=before_run,
            reason=reason,
            override_reason=override,
            options=options,
        )
    for held in result.held:
        obj.console.print(f"stale and held: {held}", markup=False)
    finish_run(obj.console, result, project)


@click.command(name="protect")
@click.option("--asset", required=True)
@click.option("--partition", required=True)
@click.option("--reason", required=True, help="Why this baseline must not be overwritten.")
@_operator
@click.pass_obj
def protect_cmd(
    obj: Context, asset: str, partition: str, reason: str, operator: str | None
) -> None:
    """Mark a published baseline as protected."""
    if not reason.strip():
        raise BadInputError(
            "--reason must say why the baseline is protected",
            hint="for example --reason 'published to finance on 2026-05-01'",
        )
    project = obj.project()
    project.graph.get(asset)
    key = project.scheme_of(asset).parse(partition)
    with project.ledger() as ledger:
        ledger.protections.protect(asset, key, reason=reason, operator=project.operator(operator))
    obj.console.print(f"protected: {asset} {key} ({reason})", markup=False)


COMMANDS = [rerun_cmd, replay_cmd, retry_cmd, resume_cmd, restore_cmd, protect_cmd]
