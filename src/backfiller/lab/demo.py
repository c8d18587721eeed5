"""``backfiller demo``: the seed's story on the bundled example, in seconds.

Lay the example out in a fresh folder, materialize March–April except 2026-04-17, show the
status, write the dry-run plan for 2026-04-17 and print it. Then the same gap with a
product-line dimension (the example's ``product_lines`` project): each day × product line
cell, the gap day's cells and rollup planned and backfilled.
"""

from __future__ import annotations

import os
from pathlib import Path

from rich.console import Console
from rich.rule import Rule

from backfiller.actions import RunResult
from backfiller.actions.apply import apply_plan
from backfiller.asset_keys import select_keys
from backfiller.cli.render import print_plan, print_run, print_status
from backfiller.lab.example import lay_out_example, materialize_history
from backfiller.locations import Location
from backfiller.planning import Mode, make_plan, write_plan
from backfiller.planning.classify import state_ranges
from backfiller.planning.planner import request_for
from backfiller.project import load_project

GAP_DAY = "2026-04-17"
FIRST, LAST = "2026-03-01", "2026-04-30"
WEEK = "2026-04-11"  # the product-line history: a week before the gap day


def run_demo(folder: Path, console: Console) -> Location:
    console.print(Rule("1. Lay out the seed's pipeline (examples/omnisupport)"))
    lay_out_example(folder)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("WEEK06_")}
    project = load_project(folder, environ=environ)
    console.print(f"Project folder: {folder}", markup=False)
    console.print(f"Assets: {', '.join(project.graph.keys)}", markup=False)

    console.print(Rule(f"2. Materialize {FIRST} .. {LAST} except {GAP_DAY} (the gap)"))
    keys = [k for k in project.scheme.key_range(FIRST, LAST) if k != GAP_DAY]
    operator = project.operator()
    result = materialize_history(project, keys, reason="demo: the history before the gap")
    rows = sum(s.rows for s in result.steps)
    console.print(
        f"Run {result.run_id}: {result.state.value}, {len(result.steps)} partition "
        f"writes, {rows} rows"
    )
    if result.state.value != "succeeded":
        print_run(console, result)

    console.print(Rule("3. Status: the gap is visible"))
    keys = project.scheme.key_range(FIRST, LAST)
    print_status(console, project, keys, state_ranges(project, project.reader(), keys))

    console.print(Rule(f"4. Dry-run plan for {GAP_DAY} (writes only the plan file)"))
    document = make_plan(project, project.reader(), request_for([GAP_DAY], Mode.DRY_RUN, operator))
    path = write_plan(project, document)
    print_plan(console, document)
    console.print(f"Plan written to {path}", markup=False)
    console.print(
        "\nNext: review the plan, then apply exactly it with\n"
        f"  backfiller --project {folder} apply {path}"
    )
    console.print(Rule("5. The same gap by product line (product_lines: day × product line)"))
    product_line_story(folder / "product_lines", environ, console)
    return path


def product_line_story(folder: Path, environ: dict[str, str], console: Console) -> RunResult:
    """The gap day again, in the example's project whose silver facts are partitioned by day
    × product line (its own ledger): a week of history, the status, the plan of the day's
    cells and rollup, its backfill."""
    project = load_project(folder, environ=environ)
    operator = project.operator()
    for asset in project.graph.keys:
        console.print(f"{asset}: {project.scheme_of(asset).name}", markup=False)
    now = project.clock()
    week = select_keys(
        project.graph, project.graph.keys, partition=None, start=WEEK, end=GAP_DAY, now=now
    )
    history = [k for k in week if not k.startswith(GAP_DAY)]
    result = materialize_history(project, history, reason="demo: a week by product line")
    console.print(f"Run {result.run_id}: {result.state.value}, {len(result.steps)} cell writes")
    print_status(console, project, week, state_ranges(project, project.reader(), week))
    day = select_keys(
        project.graph, project.graph.keys, partition=GAP_DAY, start=None, end=None, now=now
    )
    document = make_plan(project, project.reader(), request_for(day, Mode.DRY_RUN, operator))
    path = write_plan(project, document)
    print_plan(console, document)
    console.print(f"Plan written to {path}", markup=False)
    run = apply_plan(project, document, operator=operator)
    print_run(console, run)
    return run
