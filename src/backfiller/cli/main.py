"""The command line: thin commands over the library, one error boundary.

Every command loads the project, calls the library and renders the result. Errors derived from
:class:`~backfiller.errors.BackfillerError` become a message and their exit code; ``--debug``
shows the traceback.
"""

from __future__ import annotations

import contextlib
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.markup import escape

from backfiller import __version__, entries
from backfiller.errors import BackfillerError, BadInputError, ExitCode
from backfiller.names import did_you_mean

from . import documents
from .context import (
    Context,
    _keys,
    asset_selection,
    dimension_option,
    executor_options,
    make_console,
    override_option,
    override_reason,
    selection,
    window_keys,
)
from .documents import json_option
from .evidence import COMMANDS as EVIDENCE_COMMANDS
from .holds import COMMANDS as HOLD_COMMANDS
from .inspect import COMMANDS as INSPECT_COMMANDS
from .logs import log_lines
from .partitions import COMMANDS as PARTITION_COMMANDS
from .recovery import COMMANDS as RECOVERY_COMMANDS
from .simulate import COMMANDS as SIMULATE_COMMANDS
from .strategy import COMMANDS as STRATEGY_COMMANDS
from .web import COMMANDS as WEB_COMMANDS

if TYPE_CHECKING:  # the core is imported by the commands that use it (start-up time)
    from backfiller.actions.executors import Executor
    from backfiller.locations import Location
    from backfiller.planning import AnyPlan, GapReason, Mode
    from backfiller.project import Project

SEED_HINT = (
    "Expected input is 0: first confirm that the seed data really has records for {key} "
    "(and that the manifest declares them)."
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--project",
    "project_dir",
    type=click.Path(path_type=Path),
    default=".",
    show_default=True,
    help="The project folder (with backfiller.toml).",
)
@click.option(
    "--max-parallel",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Independent partitions computed at once.",
)
@click.option(
    "--group-size",
    default=None,
    type=click.IntRange(1, 10_000),
    help="Partitions of one asset published by one commit (default: [project] group_size, "
    "64 unless set; 1: a commit per partition).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.version_option(__version__, prog_name="backfiller")
@click.pass_context
def cli(
    ctx: click.Context, project_dir: Path, max_parallel: int, group_size: int | None, debug: bool
) -> None:
    """Make a backfill a controlled action: see the gap, plan it, apply exactly that plan."""
    ctx.obj = Context(project_dir, make_console(), debug, max_parallel, group_size=group_size)


_allow_option = click.option(
    "--allow-apply-during-simulation",
    "allow_apply_during_simulation_",
    is_flag=True,
    help="Apply even while gap simulations are active (recorded in the plan's reason).",
)


@cli.command()
@click.argument("folder", required=False, type=click.Path(path_type=Path))
@click.option("--name", help="The project's name (default: the folder's name).")
@click.pass_obj
def init(obj: Context, folder: Path | None, name: str | None) -> None:
    """Start a new project: backfiller.toml, an assets module with one daily asset, folders."""
    from backfiller.scaffold import init_project

    target = folder or obj.project_dir
    written = init_project(target, name=name)
    for path in written:
        obj.console.print(f"wrote {path}", markup=False)
    obj.console.print(
        f"Next: 'backfiller --project {target} status', then edit assets.py and declare your "
        "inputs in data/manifests/",
        markup=False,
    )


@cli.command()
@click.pass_obj
def migrate(obj: Context) -> None:
    """Bring the ledger's schema to this backfiller's version (once, after an upgrade: the
    read-only commands refuse an older ledger). Creates the ledger if there is none."""
    import os

    from backfiller.project import ProjectConfig, find_project_root, open_config_ledger

    config = ProjectConfig.load(find_project_root(obj.project_dir), os.environ)
    with open_config_ledger(config) as ledger:
        obj.console.print(
            f"Ledger {ledger.where}: schema version {ledger.schema_version}", markup=False
        )


@cli.command()
@click.option("--start", help="First partition of the grid (default: the scheme's start).")
@click.option("--end", help="Last partition of the grid (default: the last complete one).")
@click.option("--each", is_flag=True, help="A grid with one mark per partition.")
@dimension_option
@asset_selection
@json_option
@click.pass_obj
def status(
    obj: Context,
    start: str | None,
    end: str | None,
    each: bool,
    dimensions: tuple[str, ...],
    asset_names: tuple[str, ...],
    patterns: tuple[str, ...],
    as_json: bool,
) -> None:
    """Per asset: partitions by state, then ranges of consecutive partitions in one state
    (--each: a per-day grid). A state is the gap reason 'gaps' finds, or materialized."""
    from backfiller.grids import dimension_grids
    from backfiller.planning.classify import state_ranges

    from .render import by_asset, partition_states, print_status

    obj.use_json(as_json)
    project = obj.project()
    chosen = selection(project, asset_names, patterns)
    keys = window_keys(project, None, start, end, chosen, dimensions)
    reader = project.reader()
    with obj.progress("reading the state") as on_progress:
        ranges = state_ranges(project, reader, keys, chosen, on_progress=on_progress)
    if not obj.json:
        print_status(obj.console, project, keys, ranges, chosen, each=each)
        return
    from backfiller.asset_keys import keys_of, shared_scheme

    assets = []
    per_asset = by_asset(ranges)
    shared = shared_scheme(project.graph, chosen) is not None
    for asset in chosen:
        mine = keys if shared else keys_of(project.graph, asset, keys)
        states = partition_states(per_asset.get(asset, []), mine)
        entry = {"asset": asset, "counts": documents.counts(states.values()), "partitions": states}
        if not shared:  # each asset over its own keys
            entry |= {"scheme": project.scheme_of(asset).name, "window": documents.span(mine)}
        grids = dimension_grids(project.scheme_of(asset), states)
        if (
            grids and grids[0][0]
        ):  # a multi-dimensional asset: the counts per value of its dimensions
            entry["grids"] = {label: documents.counts(s.values()) for label, s in grids}
        assets.append(entry)
    documents.emit(
        documents.document(
            "status",
            project=project.config.name,
            scheme=project.scheme.name,
            window=documents.span(keys),
            assets=assets,
        )
    )


@cli.command()
@click.option("--start", help="First partition key (default: the scheme's start).")
@click.option("--end", help="Last partition key (default: the last complete one).")
@click.option("--partition", help="One partition key.")
@click.option("--reason", "reasons", multiple=True, help="Only gaps with this reason (repeatable).")
@click.option("--needs-action", is_flag=True, help="Leave out gaps whose action is nothing_to_do.")
@click.option(
    "--each",
    is_flag=True,
    help="One line per gap (asset, partition, counts, detail) instead of one per range.",
)
@dimension_option
@asset_selection
@json_option
@click.pass_obj
def gaps(
    obj: Context,
    start: str | None,
    end: str | None,
    partition: str | None,
    reasons: tuple[str, ...],
    needs_action: bool,
    each: bool,
    dimensions: tuple[str, ...],
    asset_names: tuple[str, ...],
    patterns: tuple[str, ...],
    as_json: bool,
) -> None:
    """Reconcile manifests, store, ledger and reports into gaps with proposed actions (by
    default over the whole configured range; each missing bound defaults to its end). Shown
    as ranges: consecutive partitions of one asset with the same reason on one line."""
    from backfiller.planning import ProposedAction, find_gaps
    from backfiller.planning.classify import gap_ranges

    from .render import print_gap_ranges, print_gaps

    wanted = {_gap_reason(r) for r in reasons}
    obj.use_json(as_json)
    project = obj.project()
    chosen = selection(project, asset_names, patterns)
    keys = window_keys(project, partition, start, end, chosen, dimensions)
    if not obj.json and not each:
        with obj.progress("finding gaps") as on_progress:
            ranges = gap_ranges(project, project.reader(), keys, on_progress=on_progress)
        shown = [
            r
            for r in ranges
            if r.asset in chosen
            and (not wanted or r.value in wanted)
            and not (needs_action and r.value.proposed_action is ProposedAction.NOTHING_TO_DO)
        ]
        left = sum(r.count for r in ranges) - sum(r.count for r in shown)
        print_gap_ranges(obj.console, shown, looked_at=keys, left_out=left)
        return
    with obj.progress("finding gaps") as on_progress:
        every = find_gaps(project, project.reader(), keys, on_progress=on_progress)
    found = [
        g
        for g in every
        if g.asset in chosen
        and (not wanted or g.reason in wanted)
        and not (needs_action and g.proposed_action is ProposedAction.NOTHING_TO_DO)
    ]
    left_out = len(every) - len(found)
    if not obj.json:
        print_gaps(obj.console, found, looked_at=keys, left_out=left_out)
        return
    documents.emit(
        documents.document(
            "gaps",
            window=documents.span(keys),
            filters={
                "reasons": sorted(r.value for r in wanted),
                "needs_action": needs_action,
                "assets": chosen,
            },
            count=len(found),
            left_out=left_out,
            by_reason=documents.counts(g.reason.value for g in found),
            gaps=[entries.gap_entry(g) for g in found],
        )
    )


def _gap_reason(text: str) -> GapReason:
    from backfiller.planning import GapReason

    names = [r.value for r in GapReason]
    if text not in names:
        raise BadInputError(
            f"Unknown gap reason {text!r}{did_you_mean(text, names)}",
            hint="reasons: " + ", ".join(names),
        )
    return GapReason(text)


@cli.command()
@click.option("--partition", help="One partition key (default: the project's default).")
@click.option("--start", help="First partition key of a window.")
@click.option("--end", help="Last partition key of a window.")
@click.option(
    "--mode",
    "mode_text",
    default="dry-run",
    show_default=True,
    help="dry-run writes only the plan file; apply writes it, then applies it.",
)
@click.option("--operator", help="Who makes the plan (default: config, then the OS user).")
@click.option("--reason", help="Why; recorded in the plan.")
@click.option(
    "--include-materialized",
    is_flag=True,
    help="Also recompute partitions without a gap (needs --reason).",
)
@override_option
@_allow_option
@dimension_option
@asset_selection
@json_option
@executor_options
@click.pass_obj
def plan(
    obj: Context,
    partition: str | None,
    start: str | None,
    end: str | None,
    mode_text: str,
    operator: str | None,
    reason: str | None,
    include_materialized: bool,
    override_protected: bool,
    allow_apply_during_simulation_: bool,
    dimensions: tuple[str, ...],
    asset_names: tuple[str, ...],
    patterns: tuple[str, ...],
    as_json: bool,
) -> None:
    """Write a backfill plan for a partition or a window (of every asset, or of those
    --asset and --select choose)."""
    obj.use_json(as_json)
    override = override_reason(override_protected, reason)
    _plan(
        obj,
        partition,
        start,
        end,
        mode_text,
        operator,
        reason,
        include_materialized,
        override,
        apply_allowed=allow_apply_during_simulation_,
        asset_names=asset_names,
        patterns=patterns,
        dimensions=dimensions,
    )


def _plan(
    obj: Context,
    partition: str | None,
    start: str | None,
    end: str | None,
    mode_text: str,
    operator: str | None,
    reason: str | None,
    include_materialized: bool,
    override_reason: str | None = None,
    *,
    apply_allowed: bool = False,
    asset_names: tuple[str, ...] = (),
    patterns: tuple[str, ...] = (),
    dimensions: tuple[str, ...] = (),
) -> None:
    from backfiller.planning import Mode, make_plan, parse_mode
    from backfiller.planning.planner import request_for
    from backfiller.selection import select_assets

    mode = parse_mode(mode_text)
    if include_materialized and not reason:
        raise BadInputError(
            "--include-materialized needs --reason TEXT",
            hint="say why materialized partitions must be recomputed",
        )
    project = obj.project(apply_allowed=apply_allowed)
    chosen = select_assets(project.graph.keys, asset_names, patterns)
    keys = _keys(project, partition, start, end, chosen, dimensions)
    request = request_for(keys, mode, project.operator(operator), reason, include_materialized)
    if chosen is not None:
        request = request.model_copy(update={"assets": chosen})
    with contextlib.ExitStack() as stack:
        # applied right away: the executor is connected first (nothing written if it cannot be)
        executor = stack.enter_context(obj.executor_for(project)) if mode is Mode.APPLY else None
        with obj.progress("planning") as on_progress:
            document = make_plan(project, project.reader(), request, on_progress=on_progress)
        _write_and_apply(obj, project, document, mode, operator, override_reason, executor=executor)


def _write_and_apply(
    obj: Context,
    project: Project,
    document: AnyPlan,
    mode: Mode,
    operator: str | None,
    override_reason: str | None,
    *,
    executor: Executor | None,
) -> None:
    """Write the plan, print it, and with ``--mode apply`` apply it on ``executor``."""
    from backfiller.planning import Mode, write_plan

    from .render import print_plan

    path = write_plan(project, document)
    if not obj.json:
        print_plan(obj.console, document)
    broken = project.manifests.broken
    empty = [
        key
        for key, manifest_id, expected in document.declared()
        if not expected
        and manifest_id not in broken
        # a key of another scheme (a month): its upstream keys are declared, not it
        and not (expected is None and manifest_id)
    ]
    if empty:
        hint = SEED_HINT.format(key=", ".join(empty[:5]))
        obj.console.print(f"[yellow]{escape(hint)}[/]")
    obj.console.print(f"Plan written to {project.relative(path)}", markup=False)
    if obj.json:
        body: dict[str, object] = {"path": project.relative(path), "plan": document.to_dict()}
        body["warnings"] = [hint] if empty else []
        if mode is not Mode.APPLY:
            documents.emit(documents.document("plan", **body, run=None))
            return
        _apply(obj, project, document, operator, override_reason, then=body, executor=executor)
        return
    if mode is Mode.APPLY:
        # the plan this command made, not the file read back: another operator planning the
        # same window at the same moment writes the same file name
        _apply(obj, project, document, operator, override_reason, executor=executor)


def _apply(
    obj: Context,
    project: Project,
    document: AnyPlan,
    operator: str | None,
    override_reason: str | None = None,
    *,
    then: dict[str, object] | None = None,
    executor: Executor | None = None,
) -> None:
    """Apply ``document`` (on ``executor``, connected already; else the one the options and
    the project name); ``then``: the plan's JSON document, printed with the run (whatever its
    outcome) before its error, if any, is raised."""
    from backfiller.actions.apply import apply_plan

    from .render import finish_run

    with obj.run_options(project, document.work_count, executor=executor) as options:
        result = apply_plan(
            project,
            document,
            operator=project.operator(operator),
            options=options,
            override_reason=override_reason,
        )
    if then is not None:
        documents.emit(documents.document("plan", **then, run=documents.run_result(result)))
    finish_run(obj.console, result, project)


def plan_location(project: Project, text: str) -> Location:
    """The plan file an operator named: a path (relative to the working folder), or a
    ``file://`` / object-storage URI reached with ``[storage.options]``."""
    from backfiller.locations import location_of
    from backfiller.store.location import is_uri

    if not is_uri(text):
        return Path(text)
    try:
        options = project.config.storage_options
        return location_of(text, root=Path.cwd(), options=options, setting="PLAN_FILE")
    except ValueError as exc:
        raise BadInputError(
            f"PLAN_FILE {text!r} is not a plan backfiller can reach: {exc}",
            hint="pass a path, file:///absolute/path, or s3://bucket/key (gs://, az://)",
        ) from None


@cli.command()
@click.argument("plan_file")
@click.option("--operator", help="Who applies the plan.")
@click.option("--reason", help="Why protected baselines may be overwritten (recorded).")
@override_option
@_allow_option
@executor_options
@click.pass_obj
def apply(
    obj: Context,
    plan_file: str,
    operator: str | None,
    reason: str | None,
    override_protected: bool,
    allow_apply_during_simulation_: bool,
) -> None:
    """Apply exactly the saved plan (a path, or a URI where [project] report_dir is on object
    storage); refused if the state changed since it was made."""
    override = override_reason(override_protected, reason)
    project = obj.project(apply_allowed=allow_apply_during_simulation_)
    from backfiller.planning import read_plan

    _apply(obj, project, read_plan(plan_location(project, plan_file)), operator, override)


@cli.command()
@click.option(
    "--dir",
    "target",
    type=click.Path(path_type=Path),
    help="A new folder to lay the example out in (default: a new temporary folder).",
)
@click.option(
    "--lesson",
    is_flag=True,
    help="Walk through the seed's self-check step by step: simulate a gap safely, find, plan, "
    "apply, check, evidence, release, undo, and show the main tables were never damaged.",
)
@click.pass_obj
def demo(obj: Context, target: Path | None, lesson: bool) -> None:
    """The seed's story on the bundled example: a gap on 2026-04-17, found and planned
    (with --lesson: the seed's self-check, step by step)."""
    import tempfile

    from backfiller.lab.demo import run_demo
    from backfiller.lab.lesson import run_lesson

    folder = target or Path(tempfile.mkdtemp(prefix="backfiller-demo-"))
    if lesson:
        run_lesson(folder, obj.console)
    else:
        run_demo(folder, obj.console)


for _command in [
    *RECOVERY_COMMANDS,
    *HOLD_COMMANDS,
    *INSPECT_COMMANDS,
    *PARTITION_COMMANDS,
    *SIMULATE_COMMANDS,
    *STRATEGY_COMMANDS,
    *EVIDENCE_COMMANDS,
    *WEB_COMMANDS,
]:
    cli.add_command(_command)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code (the one error boundary)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    if debug:  # a global option, accepted after the subcommand too
        args = ["--debug", *(a for a in args if a != "--debug")]
    err = make_console(stderr=True)
    try:
        with log_lines(err, debug=debug):
            code = cli.main(args=args, prog_name="backfiller", standalone_mode=False)
        if isinstance(code, int) and code:
            return code
    except BackfillerError as exc:
        if debug:
            traceback.print_exc()
        err.print(f"[bold red]error:[/] {escape(exc.message)}")
        if exc.hint:
            err.print(f"[bold]next step:[/] {escape(exc.hint)}")
        return int(exc.exit_code)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.Abort:
        err.print("aborted")
        return int(ExitCode.UNEXPECTED)
    except click.ClickException as exc:
        exc.show()
        return int(ExitCode.BAD_INPUT)
    except Exception:
        err.print("[bold red]unexpected error[/] (run with --debug for the traceback)")
        if debug:
            traceback.print_exc()
        else:
            err.print(escape(traceback.format_exc().strip().splitlines()[-1]))
        return int(ExitCode.UNEXPECTED)
    return int(ExitCode.OK)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
