"""What every command gets: the project folder, the console, the debug flag; and the shared
reading of partition options."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich.console import Console

from backfiller.errors import BadInputError

F = TypeVar("F", bound=Callable[..., Any])

#: how long planning or finding gaps runs before a progress line appears, in seconds
PROGRESS_AFTER_SECONDS = 0.5

if TYPE_CHECKING:  # the core is imported by the commands that use it (start-up time)
    from backfiller.actions import RunOptions, StepResult
    from backfiller.actions.executors import Executor, ExecutorSettings
    from backfiller.project import Project


def make_console(stderr: bool = False) -> Console:
    """Lines are not hard-wrapped when the output is piped (commands stay copyable)."""
    console = Console(highlight=False, soft_wrap=True, stderr=stderr)
    if not console.is_terminal:
        console.width = max(console.width, 160)
    return console


@dataclass
class Context:
    project_dir: Path
    console: Console
    debug: bool
    max_parallel: int = 1
    json: bool = False
    #: ``--group-size``; ``None``: the project's setting
    group_size: int | None = None
    #: ``--executor`` and ``--scheduler``; ``None``: the project's ``[executor]``
    executor: str | None = None
    scheduler: str | None = None

    def use_json(self, as_json: bool) -> bool:
        """With ``--json``: every message for people goes to stderr, stdout keeps only the
        document. Returns ``as_json``."""
        if as_json:
            self.json = True
            self.console = make_console(stderr=True)
        return as_json

    def project(self, *, apply_allowed: bool = False) -> Project:
        """The project as the active gap simulations make the core see it (their overlay);
        ``apply_allowed``: ``--allow-apply-during-simulation`` was passed."""
        from backfiller.lab import with_simulations
        from backfiller.project import find_project_root, load_project

        root = find_project_root(self.project_dir)
        return with_simulations(load_project(root, environ=os.environ), apply_allowed=apply_allowed)

    @contextmanager
    def progress(self, description: str) -> Iterator[Callable[[int, int], None] | None]:
        """A ``(done, total)`` callback for long reading work (planning, finding gaps) that
        shows a transient progress line on stderr once the work has taken
        :data:`PROGRESS_AFTER_SECONDS` — only on an interactive terminal, never with
        ``--json``; ``None`` where it would show nothing."""
        err = make_console(stderr=True)
        if self.json or not (err.is_terminal and err.is_interactive):
            yield None
            return
        from rich.progress import (
            BarColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        columns = (
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
        )
        bar = Progress(
            *columns, console=err, transient=True, redirect_stdout=False, redirect_stderr=False
        )
        task = bar.add_task(description, total=None)
        began = time.monotonic()
        shown = False

        def on_progress(done: int, total: int) -> None:
            nonlocal shown
            if not shown:
                if time.monotonic() - began < PROGRESS_AFTER_SECONDS:
                    return
                bar.start()
                shown = True
            bar.update(task, completed=done, total=total)

        try:
            yield on_progress
        finally:
            if shown:
                bar.stop()

    def executor_settings(self, project: Project) -> ExecutorSettings:
        """Where the steps compute: ``--executor`` / ``--scheduler`` (a scheduler alone means
        the Dask executor), else ``[executor]`` in the project's configuration."""
        from backfiller.actions.executors import ExecutorKind, ExecutorSettings

        config = project.config
        if self.executor is None and self.scheduler is None:
            origin = config.origin("executor.kind")
            return ExecutorSettings(
                config.executor_kind, config.executor_scheduler, f"[executor] kind {origin}"
            )
        kind = self.executor or ExecutorKind.DASK.value
        scheduler = self.scheduler
        if scheduler is None and kind == config.executor_kind:
            scheduler = config.executor_scheduler
        return ExecutorSettings(kind, scheduler or "", "--executor / --scheduler")

    @contextmanager
    def executor_for(self, project: Project) -> Iterator[Executor]:
        """The executor the options and the project name, connected (exit 2 if it cannot be:
        open it before anything is written); closed at the end."""
        from backfiller.actions.executors import open_executor

        executor = open_executor(self.executor_settings(project))
        try:
            yield executor
        finally:
            executor.close()

    @contextmanager
    def run_options(
        self, project: Project, total: int | None = None, *, executor: Executor | None = None
    ) -> Iterator[RunOptions]:
        """Parallelism from ``--max-parallel``, the executor (``executor``, opened already;
        else ``--executor``, else the project's ``[executor]``, connected before anything is
        written) and a progress bar (done / failed / remaining, rows per second) while the
        run goes."""
        with contextlib.ExitStack() as stack:
            if executor is None:
                executor = stack.enter_context(self.executor_for(project))
            with self._run_options(total) as options:
                yield replace(options, executor=executor)

    @contextmanager
    def _run_options(self, total: int | None = None) -> Iterator[RunOptions]:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        from backfiller.actions import GroupLimits, RunOptions

        columns = (
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=self.console, transient=True) as bar:
            task = bar.add_task("run", total=total, detail="")
            done = failed = rows = 0
            began = time.monotonic()
            lock = threading.Lock()

            def on_step(step: StepResult) -> None:
                nonlocal done, failed, rows
                with lock:
                    ok = step.outcome.succeeded
                    done += ok
                    failed += not ok
                    rows += step.rows
                    speed = rows / max(time.monotonic() - began, 1e-6)
                    left = "" if total is None else f" · {total - done - failed} remaining"
                    bar.update(
                        task,
                        advance=1,
                        detail=f"{done} done · {failed} failed{left} · {speed:,.0f} rows/s",
                    )

            group = None if self.group_size is None else GroupLimits(size=self.group_size)
            yield RunOptions(max_parallel=self.max_parallel, on_step=on_step, group=group)


def _keys(
    project: Project,
    partition: str | None,
    start: str | None,
    end: str | None,
    assets: Sequence[str] | None = None,
    dimensions: Sequence[str] = (),
) -> list[str]:
    """The partition keys the options name for ``assets`` (default: every asset); an empty
    string is a bad key, never 'not given'. Assets with different schemes, or with several
    dimensions: each gets its own keys (:mod:`backfiller.asset_keys`), ``dimensions``
    (``--dimension NAME=VALUE``) narrowing the multi-dimensional ones."""
    from backfiller.asset_keys import dimension_filter, select_keys, shared_scheme
    from backfiller.partitions import MultiScheme

    now = project.clock()
    names = list(assets or project.graph.keys)
    scheme = shared_scheme(project.graph, names) if names else project.scheme
    if partition is not None and (start is not None or end is not None):
        raise BadInputError("Pass --partition or --start/--end, not both")
    if (start is None) != (end is None):
        raise BadInputError("--start and --end go together", hint="pass both")
    chosen = dimension_filter(project.graph, names, dimensions)
    if scheme is None or isinstance(scheme, MultiScheme):
        # each asset its own keys; the default partition is one like --partition
        if partition is None and start is None:
            partition = project.config.default_partition or None
        if partition is None and start is None:
            raise BadInputError("No partition given", hint="pass --partition KEY or --start/--end")
        return _nonempty(
            select_keys(
                project.graph,
                names,
                partition=partition,
                start=start,
                end=end,
                now=now,
                dimensions=chosen,
            ),
            chosen,
        )
    if partition is not None:
        return [scheme.parse(partition, now=now)]
    if start is not None and end is not None:
        scheme.parse(start, now=now)
        scheme.parse(end, now=now)
        return scheme.key_range(start, end)
    if project.config.default_partition:
        return [scheme.parse(project.config.default_partition, now=now)]
    raise BadInputError("No partition given", hint="pass --partition KEY or --start/--end")


def window_keys(
    project: Project,
    partition: str | None,
    start: str | None,
    end: str | None,
    assets: Sequence[str] | None = None,
    dimensions: Sequence[str] = (),
) -> list[str]:
    """One partition, or a window whose missing bounds default to the first configured key
    and the last complete one; with no option at all, the whole configured range. Assets with
    different schemes, or with several dimensions: each over its own keys (a missing bound:
    its first or last key), ``dimensions`` narrowing the multi-dimensional ones."""
    if partition is not None:
        return _keys(project, partition, start, end, assets, dimensions)
    from backfiller.asset_keys import dimension_filter, every_key, select_keys, shared_scheme
    from backfiller.partitions import DynamicScheme, MultiScheme

    now = project.clock()
    names = list(assets or project.graph.keys)
    scheme = shared_scheme(project.graph, names) if names else project.scheme
    chosen = dimension_filter(project.graph, names, dimensions)
    if scheme is None or isinstance(scheme, MultiScheme):
        if start is None and end is None:
            return _nonempty(every_key(project.graph, names, now, chosen), chosen)
        return _nonempty(
            select_keys(
                project.graph,
                names,
                partition=None,
                start=start,
                end=end,
                now=now,
                dimensions=chosen,
            ),
            chosen,
        )
    everything = scheme.keys(now=now)
    if start is None or end is None:
        if not everything and isinstance(scheme, DynamicScheme):
            name = scheme.dimension
            raise BadInputError(
                f"The dynamic dimension {name!r} has no values yet",
                hint=f"add one with 'backfiller partitions add --dimension {name} --value VALUE "
                "--reason TEXT'",
            )
        if not everything:
            raise BadInputError(
                "No partition of the configured range is complete yet",
                hint="pass --start and --end (or --partition)",
            )
        start = everything[0] if start is None else start
        end = everything[-1] if end is None else end
    scheme.parse(start, now=now)
    scheme.parse(end, now=now)
    return scheme.key_range(start, end)


def one_partition(
    project: Project, asset: str, partition: str, dimensions: Sequence[str] = ()
) -> str:
    """The one partition of ``asset`` that ``--partition`` and ``--dimension NAME=VALUE``
    name, for a command that acts on one: the key itself without ``--dimension``; with it,
    the one cell of the multi-dimensional asset's cells of ``--partition`` that has those
    values (``--partition 2026-04-17 --dimension product_line=chat``). Several or none is
    bad input naming them."""
    if not dimensions:
        return project.scheme_of(asset).parse(partition)
    keys = _keys(project, partition, None, None, [asset], dimensions)
    if len(keys) != 1:
        shown = ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
        raise BadInputError(
            f"--partition {partition} with --dimension {' '.join(dimensions)} names "
            f"{len(keys)} partitions of {asset} ({shown}); this command acts on one",
            hint="name one value of each other dimension (--dimension NAME=VALUE), or pass "
            "the cell itself: --partition 'DAY|VALUE'",
        )
    return keys[0]


def _nonempty(keys: list[str], narrowed: Mapping[str, object]) -> list[str]:
    """``keys``; none left by ``--dimension`` is bad input."""
    if narrowed and not keys:
        raise BadInputError(
            "--dimension leaves no partition of the selected assets",
            hint="widen --partition/--start/--end or --dimension",
        )
    return keys


def dimension_option(command: F) -> F:
    """``--dimension NAME=VALUE`` (repeatable) on ``command``."""
    return click.option(
        "--dimension",
        "dimensions",
        multiple=True,
        metavar="NAME=VALUE",
        help="Only the cells of multi-dimensional assets with this value of this dimension, "
        "e.g. product_line=billing (repeatable; values of one dimension add up).",
    )(command)


def known_run(project: Project, run_id: str, *, hint: str = "") -> None:
    """Refuse an unknown run id through the read-only view, before the ledger writer would
    create its file or tables (a refusal writes nothing)."""
    if project.reader().runs.get(run_id) is None:
        raise BadInputError(
            f"No run {run_id!r} in the ledger",
            hint="see 'backfiller runs' for the run ids" + (f"; {hint}" if hint else ""),
        )


def override_reason(override_protected: bool, reason: str | None) -> str | None:
    """The recorded reason for overwriting protected baselines, or ``None`` without the flag."""
    if override_protected and not reason:
        raise BadInputError(
            "--override-protected needs --reason TEXT",
            hint="say why the protected baseline may be overwritten; it is recorded",
        )
    return reason if override_protected else None


def selection(project: Project, names: tuple[str, ...], patterns: tuple[str, ...]) -> list[str]:
    """The assets ``--asset`` and ``--select`` choose (every asset when neither is given)."""
    from backfiller.selection import select_assets

    keys = project.graph.keys
    return select_assets(keys, names, patterns) or list(keys)


def asset_selection(command: F) -> F:
    """``--asset NAME`` and ``--select PATTERN`` (both repeatable) on ``command``."""
    command = click.option(
        "--select",
        "patterns",
        multiple=True,
        metavar="PATTERN",
        help="Only assets whose key matches this glob, e.g. 'week06/silver/*' (repeatable).",
    )(command)
    return click.option(
        "--asset", "asset_names", multiple=True, help="Only this asset (repeatable)."
    )(command)


def _set_on_context(name: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def store(ctx: click.Context, _: click.Parameter, value: Any) -> None:
        if value is not None:
            setattr(ctx.find_object(Context), name, value)

    return store


def executor_options(command: F) -> F:
    """``--executor KIND`` and ``--scheduler ADDRESS`` on a command that runs steps."""
    command = click.option(
        "--scheduler",
        metavar="ADDRESS",
        expose_value=False,
        callback=_set_on_context("scheduler"),
        help="The Dask scheduler to compute on, e.g. tcp://scheduler:8786 (implies "
        "--executor dask; default: [executor] scheduler).",
    )(command)
    return click.option(
        "--executor",
        metavar="KIND",
        expose_value=False,
        callback=_set_on_context("executor"),
        help="Where the steps compute: local (this process's --max-parallel threads) or dask "
        "(a Dask cluster; needs a scheduler). Default: [executor] kind, else local.",
    )(command)


override_option = click.option(
    "--override-protected",
    is_flag=True,
    help="Overwrite protected baselines (needs --reason; recorded).",
)
