"""``backfiller demo``: the seed's story on the bundled example, in seconds.

Lay the example out in a fresh folder, materialize March–April except 2026-04-17, show the
status, write the dry-run plan for 2026-04-17 and print it. Then the same gap with a
product-line dimension (the example's ``product_lines`` project, see
:mod:`backfiller.lab.product_lines`): the product lines added as the values of a dynamic
dimension, the gap day's cells and rollup planned and backfilled, a product line launched later
backfilled over the week, and its removal refused until asked explicitly.
"""

from __future__ import annotations

import os
from pathlib import Path

from rich.console import Console
from rich.rule import Rule

from backfiller.cli.render import print_plan, print_run, print_status
from backfiller.lab.example import GAP_DAY, lay_out_example, materialize_history
from backfiller.lab.product_lines import product_line_story
from backfiller.locations import Location
from backfiller.planning import Mode, make_plan, write_plan
from backfiller.planning.classify import state_ranges
from backfiller.planning.planner import request_for
from backfiller.project import load_project

FIRST, LAST = "2026-03-01", "2026-04-30"


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
