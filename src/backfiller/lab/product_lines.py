"""The product-line story of the demo (step 5) and the lesson (its last step), on the example's
``product_lines`` project: the silver facts partitioned by day × product line, the product
lines a dynamic dimension.

The story adds the product lines the ticket events give (billing, voice, chat) through the same
call as ``backfiller partitions add``, backfills a week of history by product line, then the
gap day: its multi-dimensional gap, its plan and its backfill. Then a fourth line is launched:
its cells of every day are gaps, backfilled (empty: no ticket event is derived to it yet, and
an empty cell is a partition like any other), the day rollups recomputed with it and their
consumer's holds released. Removing that line is refused while its cells hold published data,
and done when asked explicitly; every change is in the history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from backfiller.actions import RunResult
from backfiller.actions.apply import apply_plan
from backfiller.asset_keys import select_keys
from backfiller.cli.render import (
    print_dimension_events,
    print_gaps,
    print_plan,
    print_run,
    print_status,
)
from backfiller.dynamic import add_partition_values, remove_partition_values
from backfiller.errors import BackfillerError
from backfiller.holds import release
from backfiller.lab.example import GAP_DAY, materialize_history
from backfiller.ledger import RunState
from backfiller.planning import Mode, find_gaps, make_plan, write_plan
from backfiller.planning.classify import state_ranges
from backfiller.planning.planner import request_for
from backfiller.project import Project, load_project

WEEK = "2026-04-11"  # the product-line history: a week before the gap day
DIMENSION = "product_line"
LINES = ("billing", "voice", "chat")  # what the derivation gives (see the example's assets)
NEW_LINE = "enterprise"  # launched later; no ticket event is derived to it yet
BY_LINE = "week06/silver/ticket_fact_by_product_line"


@dataclass
class ProductLineStory:
    """What the story did: its runs, and what it was refused."""

    runs: list[RunResult] = field(default_factory=list)
    refused: str = ""

    @property
    def succeeded(self) -> bool:
        """Every run succeeded and the removal of a published value was refused first."""
        return (
            bool(self.runs)
            and bool(self.refused)
            and all(r.state is RunState.SUCCEEDED for r in self.runs)
        )


def product_line_story(folder: Path, environ: dict[str, str], console: Console) -> ProductLineStory:
    """The story told in ``folder`` (the example's ``product_lines`` project, its own ledger)."""
    story = ProductLineStory()

    def command(text: str) -> None:
        console.print(f"[dim]$ backfiller --project product_lines {escape(text)}[/]")

    def add(values: tuple[str, ...], reason: str) -> Project:
        """``partitions add`` of ``values``, shown and done; the project as it now is."""
        listed = " ".join(f"--value {v}" for v in values)
        command(f'partitions add --dimension {DIMENSION} {listed} --reason "{reason}"')
        with project.ledger() as ledger:
            added = add_partition_values(
                project, ledger, values, operator=operator, reason=reason, dimension=DIMENSION
            )
        console.print(f"added to {added.dimension}: {', '.join(added.values)}", markup=False)
        return load_project(folder, environ=environ)

    def backfill_week(done: str) -> None:
        """The week's gaps shown, planned and applied, ``done`` said, its holds released."""
        week = _keys(project, start=WEEK, end=GAP_DAY)
        command(f"gaps --start {WEEK} --end {GAP_DAY}")
        print_gaps(console, find_gaps(project, project.reader(), week), looked_at=week)
        command(f"plan --start {WEEK} --end {GAP_DAY}")
        run = _plan_and_apply(project, week, console, operator, show_plan=False)
        story.runs.append(run)
        console.print(done, markup=False)
        command(f"release --run {run.run_id}")
        with project.ledger() as ledger:
            released = release(project, ledger, operator=operator, run_id=run.run_id)
        console.print(f"released {len(released.released)} hold(s)", markup=False)

    project = load_project(folder, environ=environ)
    operator = project.operator()
    for asset in project.graph.keys:
        console.print(f"{asset}: {project.scheme_of(asset).name}", markup=False)

    console.print("\nThe product lines are a dynamic dimension: add the ones the tickets give.")
    project = add(LINES, "the product lines the ticket events are derived to")
    console.print(f"{BY_LINE}: {project.scheme_of(BY_LINE).name}", markup=False)

    week = _keys(project, start=WEEK, end=GAP_DAY)
    history = [k for k in week if not k.startswith(GAP_DAY)]
    result = materialize_history(project, history, reason="demo: a week by product line")
    story.runs.append(result)
    console.print(f"Run {result.run_id}: {result.state.value}, {len(result.steps)} cell writes")
    print_status(console, project, week, state_ranges(project, project.reader(), week))

    command(f"gaps --partition {GAP_DAY}")
    day = _keys(project, partition=GAP_DAY)
    print_gaps(console, find_gaps(project, project.reader(), day), looked_at=day)
    command(f"plan --partition {GAP_DAY}")
    story.runs.append(_plan_and_apply(project, day, console, operator))

    console.print(f"\nA product line is launched, {NEW_LINE}: its cells of every day are gaps.")
    project = add((NEW_LINE,), f"the {NEW_LINE} line launched")
    backfill_week(
        f"Its cells are empty partitions (no ticket is derived to {NEW_LINE} yet), checked "
        "and published like any other; the day rollups were recomputed with it."
    )

    console.print(f"\n{NEW_LINE} is merged back into billing: remove the value.")
    reason = f"{NEW_LINE} merged into billing"
    remove = f'partitions remove --dimension {DIMENSION} --value {NEW_LINE} --reason "{reason}"'
    command(remove)
    with project.ledger() as ledger:
        try:
            remove_partition_values(
                project, ledger, [NEW_LINE], operator=operator, reason=reason, dimension=DIMENSION
            )
        except BackfillerError as exc:  # the CLI's exit 2
            story.refused = exc.message
            console.print(f"refused (exit 2): {exc.message}", markup=False)
        else:
            console.print(f"removed from {DIMENSION}: {NEW_LINE} (it held no published data)")
    if story.refused:
        command(f"{remove} --allow-published")
        with project.ledger() as ledger:
            removed = remove_partition_values(
                project,
                ledger,
                [NEW_LINE],
                operator=operator,
                reason=reason,
                dimension=DIMENSION,
                allow_published=True,
            )
        for value, count in removed.published.items():
            console.print(
                f"removed from {removed.dimension}: {value} (its published data in {count} "
                "asset(s) stays in the tables, no longer a partition)",
                markup=False,
            )
        if removed.stale:
            console.print(
                f"marked {len(removed.stale)} day rollup(s) stale: they counted {NEW_LINE}",
                markup=False,
            )
            project = load_project(folder, environ=environ)
            backfill_week(f"The rollups were recomputed without {NEW_LINE}.")
    command(f"history --asset {BY_LINE}")
    print_dimension_events(console, project.reader().dimensions.events(DIMENSION))
    return story


def _keys(
    project: Project,
    *,
    partition: str | None = None,
    start: str | None = None,
    end: str | None = None,
) -> list[str]:
    """Every asset's keys of a selection, as ``--partition`` or ``--start/--end`` select."""
    return select_keys(
        project.graph,
        project.graph.keys,
        partition=partition,
        start=start,
        end=end,
        now=project.clock(),
    )


def _plan_and_apply(
    project: Project, keys: list[str], console: Console, operator: str, *, show_plan: bool = True
) -> RunResult:
    """The dry-run plan of ``keys`` written (and shown), then applied as it is."""
    document = make_plan(project, project.reader(), request_for(keys, Mode.DRY_RUN, operator))
    path = write_plan(project, document)
    if show_plan:
        print_plan(console, document)
    console.print(f"Plan written to {path}", markup=False)
    run = apply_plan(project, document, operator=operator)
    print_run(console, run)
    return run
