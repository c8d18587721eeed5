"""``backfiller demo --lesson``: the seed's self-check, step by step, on a fresh copy of the
example.

Lay out and materialize March–April; simulate two gaps safely (a partition report moved aside,
a check forced to fail); find them; plan them as a dry run; apply (after undoing the simulated
defect, with the explicit allow flag for the report simulation that stays active); look at the
checks; write the evidence; release the held consumers; undo the last simulation; and show that
the main tables were never damaged: every partition's content fingerprint and data version
compared before and after, the one intentional rewrite named.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.compute as pc
from rich.console import Console
from rich.markup import escape
from rich.rule import Rule
from rich.table import Table

from backfiller.actions import StepOutcome
from backfiller.actions.apply import apply_plan
from backfiller.actions.recovery import rerun
from backfiller.cli.render import add_row, print_gaps, print_plan, print_run
from backfiller.engine import fingerprint_table
from backfiller.errors import BackfillerError
from backfiller.evidence.chain import indexed_path
from backfiller.holds import release
from backfiller.lab.example import lay_out_example, materialize_history
from backfiller.lab.product_lines import product_line_story
from backfiller.lab.simulation import (
    active_simulations,
    simulate_failing_check,
    simulate_move_report,
    undo_simulation,
    with_simulations,
)
from backfiller.lab.strategy import write_strategy
from backfiller.ledger import RunState
from backfiller.locations import Location
from backfiller.planning import Mode, find_gaps, make_plan, write_plan
from backfiller.planning.planner import request_for
from backfiller.project import Project, load_project
from backfiller.store.delta import PARTITION_COLUMN

FIRST, LAST = "2026-03-01", "2026-04-30"
RAW = "week06/ingestion/raw_ticket_events_partitioned"
SILVER = "week06/silver/ticket_fact_partitioned"
REPORT_DAY = "2026-04-17"  # its raw partition report is moved aside
CHECK_DAY = "2026-04-16"  # its silver in_window check is forced to fail
CHECK = "in_window(event_time)"


@dataclass(frozen=True)
class Snapshot:
    """The main tables: each asset's table version; per partition, the content fingerprint
    and the data version the ledger records."""

    table_versions: dict[str, int | None]
    fingerprints: dict[tuple[str, str], str]
    data_versions: dict[tuple[str, str], int | None]


def snapshot(project: Project, keys: list[str]) -> Snapshot:
    versions: dict[str, int | None] = {}
    fingerprints: dict[tuple[str, str], str] = {}
    data_versions: dict[tuple[str, str], int | None] = {}
    reader = project.reader()
    for asset in project.graph.keys:
        versions[asset] = project.store.version(asset)
        table = project.store.read_partitions(asset, keys)
        for key in keys:
            if table is not None:
                rows = table.filter(pc.equal(table.column(PARTITION_COLUMN), key))
                fingerprints[(asset, key)] = fingerprint_table(rows)
            record = reader.partitions.get(asset, key)
            data_versions[(asset, key)] = record.data_version if record else None
    return Snapshot(versions, fingerprints, data_versions)


@dataclass
class LessonResult:
    folder: Path
    before: Snapshot | None = None
    after: Snapshot | None = None
    rewritten: list[tuple[str, str]] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)
    simulations: list[str] = field(default_factory=list)
    evidence: list[Location] = field(default_factory=list)
    released: int = 0
    still_held: int = 0
    remaining_gaps: int = -1
    strategy: Location | None = None


def compare(
    before: Snapshot, after: Snapshot, rewritten: list[tuple[str, str]]
) -> tuple[list[str], list[str]]:
    """(damage, intentional changes): every partition must keep its content fingerprint;
    only the intentionally rewritten ones may have a new data version, and a table's version
    may only grow by their commits."""
    damage: list[str] = []
    intended: list[str] = []
    for pair, fingerprint in before.fingerprints.items():
        if after.fingerprints.get(pair) != fingerprint:
            damage.append(f"{pair[0]} {pair[1]}: content fingerprint changed")
    for pair, version in before.data_versions.items():
        now = after.data_versions.get(pair)
        if now == version:
            continue
        if pair in rewritten:
            intended.append(f"{pair[0]} {pair[1]}: data version {version} → {now} (same content)")
        else:
            damage.append(f"{pair[0]} {pair[1]}: data version {version} → {now}, not planned")
    for asset, version in before.table_versions.items():
        commits = sum(1 for a, _ in rewritten if a == asset)
        now = after.table_versions.get(asset)
        if version is None or now is None or now - version != commits:
            damage.append(f"{asset}: table version {version} → {now}, {commits} commit(s) planned")
    return damage, intended


class _Lesson:
    def __init__(self, folder: Path, console: Console) -> None:
        self.folder = folder
        self.console = console
        self.step = 0
        self.result = LessonResult(folder)

    def title(self, text: str) -> None:
        self.step += 1
        self.console.print(Rule(f"{self.step}. {text}"))

    def say(self, text: str) -> None:
        self.console.print(text)

    def command(self, text: str) -> None:
        self.console.print(f"[dim]$ backfiller {escape(text)}[/]")


def run_lesson(folder: Path, console: Console) -> LessonResult:
    """Walk through the seed's self-check in ``folder`` (a new folder)."""
    lesson = _Lesson(folder, console)
    say, command = lesson.say, lesson.command
    result = lesson.result

    lesson.title("Lay out the seed's pipeline and read its recovery policy")
    lay_out_example(folder)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("WEEK06_")}
    project = load_project(folder, environ=environ)
    policy = project.policy
    operator = project.operator()
    say(f"Project folder: {folder}")
    say(f"default partition: {project.config.default_partition}")
    say(f"assets allowed to backfill: {', '.join(policy.allowed(project.graph))}")
    say(f"protected: {', '.join(p.spec for p in policy.protected) or 'none'}")
    say(f"dry-run report path: {project.relative(project.plan_dir)}")
    for asset, checks in policy.required_checks.items():
        say(f"required checks of {asset}: {', '.join(checks)}")

    lesson.title(f"Materialize the history {FIRST} .. {LAST} (daily partitions)")
    say(
        "Daily partitions are the default: easy to explain, to replay, and aligned with "
        "business time."
    )
    keys = project.scheme.key_range(FIRST, LAST)
    run = materialize_history(project, keys, reason="lesson: the history")
    say(f"Run {run.run_id}: {run.state.value}, {len(run.steps)} partition writes")
    with project.ledger() as ledger:
        baseline = release(project, ledger, operator=operator, run_id=run.run_id)
    say(
        f"Its checks passed and its evidence is written: {len(baseline.released)} downstream "
        "hold(s) released. This is the baseline the lesson must not damage."
    )
    before = result.before = snapshot(project, keys)
    say("Snapshot taken: every partition's content fingerprint and data version, and each")
    say(f"table's version ({', '.join(f'{a}: v{v}' for a, v in before.table_versions.items())}).")

    lesson.title("Simulate gaps safely — never by deleting a main table")
    command(f"simulate move-report --asset {RAW} --partition {REPORT_DAY}")
    moved = simulate_move_report(project, asset=RAW, key=REPORT_DAY, operator=operator)
    say(
        f"{moved.simulation_id}: the partition report of raw {REPORT_DAY} is moved aside into "
        f"{moved.copy_path}; data and ledger are untouched."
    )
    command(f"simulate failing-check --asset {SILVER} --check '{CHECK}' --partition {CHECK_DAY}")
    failing = simulate_failing_check(
        project, asset=SILVER, check=CHECK, key=CHECK_DAY, operator=operator
    )
    say(
        f"{failing.simulation_id}: check {CHECK} of silver {CHECK_DAY} will fail whenever that "
        "partition is recomputed; nothing is written."
    )
    result.simulations = [moved.simulation_id, failing.simulation_id]
    project = with_simulations(project)  # the core sees the simulations through an overlay
    untouched, _ = compare(before, snapshot(project, keys), [])
    say(
        "Main tables after simulating: "
        + ("untouched (same fingerprints and versions)." if not untouched else str(untouched))
    )
    say("While a simulation is active, every plan is a dry run.")

    lesson.title("Find the gaps")
    april = project.scheme.key_range("2026-04-01", LAST)
    command("gaps --start 2026-04-01 --end 2026-04-30")
    print_gaps(console, find_gaps(project, project.reader(), april))
    say(
        "The moved report shows at once. A failing check shows when the partition is "
        "recomputed — rerun it under the simulation:"
    )
    command(f"rerun --asset {SILVER} --partition {CHECK_DAY}")
    with project.ledger() as ledger:
        failed_run = rerun(
            project, ledger, asset=SILVER, keys=[CHECK_DAY], operator=operator, reason="lesson"
        )
    print_run(console, failed_run)
    kept = project.store.fingerprint(SILVER, CHECK_DAY) == before.fingerprints[(SILVER, CHECK_DAY)]
    say(
        f"Run {failed_run.run_id}: {failed_run.state.value} (the CLI exits 3). The staged rows "
        "were not published: "
        + ("the previous data stays visible." if kept else "[red]the data changed![/]")
    )
    with project.ledger() as ledger:
        held = [h for h in ledger.holds.all() if h.cause_run_id == failed_run.run_id]
    say(
        "Downstream consumers are held until the checks pass: "
        + ", ".join(f"{h.target} {h.partition_key}" for h in held)
    )
    command("gaps --start 2026-04-01 --end 2026-04-30")
    print_gaps(console, find_gaps(project, project.reader(), april))

    lesson.title("Plan the boundary as a dry run")
    command(f"plan --start {CHECK_DAY} --end {REPORT_DAY} --mode dry-run")
    window = project.scheme.key_range(CHECK_DAY, REPORT_DAY)
    document = make_plan(project, project.reader(), request_for(window, Mode.DRY_RUN, operator))
    path = write_plan(project, document)
    print_plan(console, document)
    say(f"Plan written to {project.relative(path)} — the only file a dry run writes.")
    command(f"plan --start {CHECK_DAY} --end {REPORT_DAY} --mode apply")
    try:
        make_plan(project, project.reader(), request_for(window, Mode.APPLY, operator))
    except BackfillerError as refusal:
        say(f"[yellow]refused (exit {int(refusal.exit_code)}):[/] {refusal.message}")

    lesson.title("Apply — after undoing the simulated defect, with the explicit allow flag")
    say(
        f"Applying while {failing.simulation_id} is active would fail the same check again: "
        "the failing check stands for a real defect, and a defect is fixed before the rerun. "
        "So undo it first (the 'fix')."
    )
    command(f"simulate undo {failing.simulation_id}")
    undone = undo_simulation(project, failing.simulation_id, operator=operator)
    project = with_simulations(project)
    say(f"undone: {undone.undo_outcome}")
    say(
        f"{moved.simulation_id} stays active: for raw {REPORT_DAY} the plan recomputes nothing "
        "(it re-verifies the data against the ledger and re-issues the report), so it may be "
        "applied during the simulation — but only explicitly:"
    )
    command(f"apply {project.relative(path)} --allow-apply-during-simulation")
    allowed = with_simulations(project, apply_allowed=True)
    applied = apply_plan(allowed, document, operator=operator)
    print_run(console, applied)
    result.rewritten = [
        (s.asset, s.partition_key) for s in applied.steps if s.outcome is StepOutcome.PUBLISHED
    ]
    say(f"Run {applied.run_id}: {applied.state.value}.")

    lesson.title("Checks: they ran on the staged data, before publishing")
    with project.ledger() as ledger:
        results = ledger.checks.results(run_id=applied.run_id)
    table = Table(title=f"Checks of run {applied.run_id}")
    for col in ("asset", "partition", "check", "status", "required by the policy"):
        table.add_column(col, overflow="fold")
    for r in results:
        required = r.check_name in policy.required_checks.get(r.asset, ())
        add_row(
            table, r.asset, r.partition_key, r.check_name, r.status.value, "yes" if required else ""
        )
    console.print(table)

    lesson.title("Evidence: what the backfill changed, written down")
    say("Every run wrote its evidence as it finished; a run is not finished without it.")
    with project.ledger() as ledger:
        for run_id in [failed_run.run_id, applied.run_id]:
            record = ledger.evidence.of_run(run_id)
            assert record is not None, f"run {run_id} finished without evidence"
            written = indexed_path(project, record)
            result.evidence.append(written)
            command(f"evidence show {run_id}")
            say(f"evidence of {run_id}: {project.relative(written)}")

    lesson.title("Release the held consumers — only now")
    command("release")
    with project.ledger() as ledger:
        outcome = release(project, ledger, operator=operator)
    result.released, result.still_held = len(outcome.released), len(outcome.blocked)
    say(
        f"released {len(outcome.released)} hold(s): "
        + ", ".join(dict.fromkeys(f"{h.target} {h.partition_key}" for h in outcome.released))
    )
    for hold, missing in outcome.blocked[:10]:
        say(f"still held: {hold.target} {hold.partition_key}: {'; '.join(missing)}")

    lesson.title("Undo the last simulation")
    command(f"simulate undo {moved.simulation_id}")
    undone = undo_simulation(project, moved.simulation_id, operator=operator)
    project = with_simulations(project)
    say(f"undone: {undone.undo_outcome}")
    say(f"active simulations: {len(active_simulations(project.config.state_dir))}")

    lesson.title("The main tables were never damaged")
    after = result.after = snapshot(project, keys)
    damage, intended = compare(before, after, result.rewritten)
    result.damaged = damage
    table = Table(title="Before and after")
    for col in ("", "before", "after"):
        table.add_column(col)
    for asset in project.graph.keys:
        add_row(
            table,
            f"{asset} table version",
            before.table_versions[asset],
            after.table_versions[asset],
        )
    same = sum(1 for p, f in before.fingerprints.items() if after.fingerprints.get(p) == f)
    add_row(table, "partitions with the same content", len(before.fingerprints), same)
    console.print(table)
    for line in intended:
        say(f"intentionally rewritten: {line}")
    if damage:
        for line in damage:
            say(f"[red]damaged:[/] {line}")
    else:
        say(
            "Every partition keeps its content fingerprint; no data version moved except the "
            "partition the plan rewrote."
        )
    remaining = find_gaps(project, project.reader(), keys)
    result.remaining_gaps = len(remaining)
    say(f"gaps {FIRST} .. {LAST}: {len(remaining) or 'none'}")

    lesson.title("Write the recovery strategy")
    command("strategy")
    result.strategy = write_strategy(project)
    text = result.strategy.read_text(encoding="utf-8")
    section = text.split(f"## {policy.strategy_heading}", 1)[-1].split("\n## ", 1)[0]
    console.print(f"## {policy.strategy_heading}{section.rstrip()}", markup=False)
    say(f"Strategy written to {project.relative(result.strategy)}")
    lesson.title(
        "The same gap by product line: dynamic product lines, a multi-dimensional gap, plan "
        "and backfill, a line added later"
    )
    say(
        "The example's product_lines project partitions the silver facts by day × product "
        "line, and rolls every product line of a day up. The product lines are a dynamic "
        "dimension: new lines appear over time, so they are added (and removed) at run time, "
        "each change recorded with who, when and why. A ticket's line is derived from its "
        "event (billing, voice, chat); the gap day is one cell per line and a rollup:"
    )
    lines = product_line_story(folder / "product_lines", environ, console)
    state = (
        "succeeded"
        if applied.state is RunState.SUCCEEDED and not damage and lines.succeeded
        else "needs a look"
    )
    say(f"\nLesson {state}. Folder: {folder}")
    return result
