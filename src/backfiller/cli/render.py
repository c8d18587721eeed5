"""Readable output for people: tables, the status grid, the plan."""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

from backfiller.errors import ChecksFailedError, RunFailedError
from backfiller.ledger import CheckStatus, RunState

# the actions are imported by the functions that show a run, rich's tables by those that make
# one (``status``, the command run most, makes none)
if TYPE_CHECKING:
    from rich.table import Table

    from backfiller.actions import RunResult
    from backfiller.ledger import DimensionEvent
    from backfiller.planning import AnyPlan, Gap, GapReason
    from backfiller.planning.gaps import PartitionState
    from backfiller.planning.ranges import KeyRange
    from backfiller.project import Project


def print_plain(console: Console, text: str) -> None:
    """``text`` as it is (no markup, no highlighting) and a newline: written straight to the
    console's file when nothing is being recorded or held in its buffer, since rich takes some
    ten microseconds to render a line — a second for the ninety thousand range lines of a
    thousand assets."""
    buffered: object = getattr(console, "_buffer_index", None)  # inside ``with console:``
    if console.record or buffered:
        console.out(text, highlight=False)
        return
    console.file.write(text + "\n")
    console.file.flush()


def add_row(table: Table, *cells: object) -> None:
    """Cells are data, not markup: '[us, tz=UTC]' must print as it is."""
    table.add_row(*(escape(str(c)) for c in cells))


#: one mark per partition state (:class:`~backfiller.planning.gaps.PartitionState` values)
GRID_MARKS = {
    "materialized": ("█", "green"),
    "missing_partition": ("·", "red"),
    "missing_partition_report": ("r", "yellow"),
    "count_mismatch": ("#", "red"),
    "manifest_changed": ("m", "yellow"),
    "failed_run": ("x", "red"),
    "upstream_changed": ("~", "yellow"),
    "check_failed": ("!", "red"),
    "orphan_output": ("?", "magenta"),
    "no_expected_input": ("-", "dim"),
    "missing_upstream": ("^", "blue"),
}


def by_asset(
    ranges: list[KeyRange[PartitionState]],
) -> dict[str, list[KeyRange[PartitionState]]]:
    """The status ranges (:func:`~backfiller.planning.classify.state_ranges`) of each asset, in
    order: one pass over them, not one per asset."""
    found: dict[str, list[KeyRange[PartitionState]]] = {}
    for r in ranges:
        found.setdefault(r.asset, []).append(r)
    return found


def partition_states(ranges: list[KeyRange[PartitionState]], keys: list[str]) -> dict[str, str]:
    """Each key's state, from the status ranges of one asset (they cover every key of ``keys``
    in order, so a range's keys are found by position)."""
    states: dict[str, str] = {}
    for r in ranges:
        states.update(dict.fromkeys(keys[len(states) : len(states) + r.count], r.value.value))
    return states


def print_status(
    console: Console,
    project: Project,
    keys: list[str],
    ranges: list[KeyRange[PartitionState]],
    assets: list[str] | None = None,
    *,
    each: bool = False,
) -> None:
    """Per asset of ``assets`` (default: every asset) over ``keys``: how many partitions are
    in each state, then its ranges (from :func:`~backfiller.planning.classify.state_ranges`)
    of consecutive partitions in one state — or, with ``each``, a grid with one mark per
    partition."""
    from backfiller.asset_keys import keys_of, shared_scheme

    names = project.graph.keys if assets is None else assets
    shared = shared_scheme(project.graph, names) if names else project.scheme
    if shared is not None:
        console.print(
            f"[bold]{project.config.name}[/] — {shared.name}; "
            f"{len(keys)} partitions {keys[0]} .. {keys[-1]}"
            if keys
            else "no partitions"
        )
    else:  # each asset over its own keys, its scheme named on its line
        console.print(f"[bold]{project.config.name}[/] — each asset over its own partitions")
    per_asset = by_asset(ranges)
    for asset in names:
        mine = per_asset.get(asset, [])
        counts: Counter[str] = Counter()
        for r in mine:
            counts[r.value.value] += r.count
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        own = keys if shared is not None else keys_of(project.graph, asset, keys)
        scheme = "" if shared is not None else f"  {project.scheme_of(asset).name}; "
        scheme += f"{len(own)} partitions {own[0]} .. {own[-1]}" if scheme and own else ""
        console.print(f"\n[bold cyan]{escape(asset)}[/]  ({summary}){escape(scheme)}")
        if each:
            from backfiller.grids import dimension_grids

            states = partition_states(mine, own)
            for label, cells in dimension_grids(project.scheme_of(asset), states):
                if label:  # a multi-dimensional asset: a grid per value of its other dimensions
                    console.print(f"  {escape(label)}", highlight=False)
                for line in _grid_lines(cells):
                    console.print(("  " if label else "") + line, highlight=False)
            continue
        lines = [f"  {GRID_MARKS[r.value.value][0]} {r.span()} {r.value.value}" for r in mine]
        print_plain(console, "\n".join(lines))
    if each:
        legend = "  ".join(f"[{st}]{mark}[/] {name}" for name, (mark, st) in GRID_MARKS.items())
        console.print(f"\n{legend}")
    else:
        console.print("\nOne mark per partition: add --each.", markup=False)


def _is_day(key: str) -> bool:
    """Whether ``key`` is a day (``YYYY-MM-DD``), not a static or dynamic value of ten
    characters."""
    try:
        date.fromisoformat(key)
    except ValueError:
        return False
    return len(key) == 10


def _grid_lines(states: dict[str, str]) -> list[str]:
    """One line per month for daily keys; rows of 31 marks otherwise."""
    daily = all(_is_day(k) for k in states)
    groups: dict[str, list[tuple[str, str]]] = {}
    keys = list(states)
    for i, key in enumerate(keys):
        label = key[:7] if daily else keys[i - i % 31]
        groups.setdefault(label, []).append((key, states[key]))
    lines = []
    for label, items in groups.items():
        pad = " " * (date.fromisoformat(items[0][0]).day - 1) if daily else ""
        marks = "".join(f"[{GRID_MARKS[s][1]}]{GRID_MARKS[s][0]}[/]" for _, s in items)
        lines.append(f"  {label}  {pad}{marks}")
    return lines


def _gaps_heading(
    console: Console, looked_at: list[str] | None, left_out: int, found: bool
) -> bool:
    """Name the partition keys examined and the gaps the filters left out (never "no gaps"
    when there are some); whether there is anything to list."""
    if looked_at:
        span = looked_at[0] if len(looked_at) == 1 else f"{looked_at[0]} .. {looked_at[-1]}"
        console.print(f"Looked at {span} ({len(looked_at)} partition(s)).", markup=False)
    if left_out:
        console.print(f"{left_out} gap(s) left out by the filters.", markup=False)
    if not found and not left_out:
        console.print("No gaps: manifests, store, ledger and reports agree.")
    return found


def print_gap_ranges(
    console: Console,
    ranges: list[KeyRange[GapReason]],
    *,
    looked_at: list[str] | None = None,
    left_out: int = 0,
) -> None:
    """The gaps as ranges, one line per run of consecutive partitions of one asset with the
    same reason (and so the same action): "2025-01-01 .. 2025-03-31 (90 partitions)"."""
    if not _gaps_heading(console, looked_at, left_out, bool(ranges)):
        return
    total = sum(r.count for r in ranges)
    console.print(f"{total} gap(s) in {len(ranges)} range(s)", markup=False)
    lines, asset = [], None
    for r in ranges:  # plain lines: thousands of ranges print in a moment, not a table's time
        if r.asset != asset:
            asset = r.asset
            lines.append(f"\n{asset}")
        lines.append(f"  {r.span()}  {r.value.value} -> {r.value.proposed_action.value}")
    print_plain(console, "\n".join(lines))
    console.print("\nPer partition, with counts and details: add --each.", markup=False)


def print_gaps(
    console: Console, gaps: list[Gap], *, looked_at: list[str] | None = None, left_out: int = 0
) -> None:
    """The gaps as a table, one row per gap; ``looked_at``: the partition keys examined, named
    first; ``left_out``: gaps the filters left out, said so."""
    if not _gaps_heading(console, looked_at, left_out, bool(gaps)):
        return
    from rich.table import Table

    table = Table(title=f"{len(gaps)} gap(s)")
    for col in (
        "asset",
        "partition",
        "gap_reason",
        "expected",
        "stored",
        "proposed_action",
        "detail",
    ):
        table.add_column(col, overflow="fold")
    for g in gaps:
        add_row(
            table,
            g.asset,
            g.partition_key,
            g.reason.value,
            "-" if g.expected_count is None else str(g.expected_count),
            str(g.current_count),
            g.proposed_action.value,
            g.detail,
        )
    console.print(table)


SEED_FIELDS = (
    "partition_key",
    "window_start",
    "window_end",
    "mode",
    "upstream_manifest_id",
    "expected_input_count",
    "current_output_count",
    "gap_reason",
    "proposed_action",
    "idempotency_guard",
    "downstream_impact",
    "operator",
    "target_assets",
    "report_path",
)


#: ranges of a plan printed before "... and N more"
PLAN_RANGES_SHOWN = 40


def print_dimension_events(console: Console, events: list[DimensionEvent]) -> None:
    """The values of dynamic dimensions added and removed: who, when, why (and, for a
    removal, in how many assets the value held published data)."""
    from rich.table import Table

    from backfiller.ledger import DimensionVerb

    table = Table(title="Values added and removed")
    for col in ("at", "dimension", "value", "change", "operator", "reason", "published"):
        table.add_column(col, overflow="fold")
    for e in events:
        add_row(
            table,
            e.at,
            e.dimension,
            e.value,
            e.verb.value,
            e.operator,
            e.reason,
            e.published if e.verb is DimensionVerb.REMOVE else "",
        )
    console.print(table)


def print_plan(console: Console, document: AnyPlan) -> None:
    data = document.model_dump(mode="json", include=set(SEED_FIELDS))
    from rich.table import Table

    table = Table(
        title=f"Backfill plan {document.plan_id} ({document.mode.value})", show_header=False
    )
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for name in SEED_FIELDS:
        value = data[name]
        if isinstance(value, list):
            value = "\n".join(value) or "(none)"
        add_row(table, name, "null" if value is None else str(value))
    add_row(table, "plan_id", document.plan_id)
    add_row(table, "state_fingerprint", document.state_fingerprint[:16] + "…")
    console.print(table)
    from backfiller.planning import PlanDocument
    from backfiller.planning.gaps import PartitionState

    if isinstance(document, PlanDocument):
        if len(document.partitions) > 1:  # a plan made before plans of ranges
            states = Counter(PartitionState.of(e.gap_reason).value for e in document.partitions)
            console.print(
                f"{len(document.partitions)} partitions by state: "
                + ", ".join(f"{n} {s}" for s, n in sorted(states.items())),
                markup=False,
            )
        return
    counts: Counter[str] = Counter()
    for entry in document.ranges:
        counts[PartitionState.of(entry.gap_reason).value] += entry.count
    console.print(
        f"{document.partition_count} partitions by state: "
        + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())),
        markup=False,
    )
    # the targets last: their names are as long as an asset's, the other columns are short
    rows = [("partitions", "state", "proposed action", "gaps", "targets")]
    for entry in document.ranges[:PLAN_RANGES_SHOWN]:
        span = entry.first if entry.count == 1 else f"{entry.first} .. {entry.last}"
        targets = document.target_sets[entry.targets].assets
        gaps = Counter(g.gap_reason.value for g in document.gap_sets[entry.gaps])
        rows.append(
            (
                f"{span} ({entry.count})",
                PartitionState.of(entry.gap_reason).value,
                entry.proposed_action.value,
                ", ".join(f"{n} {r}" for r, n in sorted(gaps.items())) or "-",
                _assets_text([document.assets[i] for i in targets]),
            )
        )
    shown = min(len(document.ranges), PLAN_RANGES_SHOWN)
    if not shown:
        console.print(f"{len(document.ranges)} ranges", markup=False)
        return
    more = f", the first {shown}" if shown < len(document.ranges) else ""
    console.print(f"{len(document.ranges)} ranges{more}:", markup=False)
    # aligned columns written plainly (a table of rich's took some 25 ms for 40 rows)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = [
        "  " + "  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[-1]])
        for row in rows
    ]
    print_plain(console, "\n".join(line.rstrip() for line in lines))
    if len(document.ranges) > PLAN_RANGES_SHOWN:
        console.print(
            f"... and {len(document.ranges) - PLAN_RANGES_SHOWN} more ranges (the plan file "
            "has them all)",
            markup=False,
        )


def _assets_text(names: list[str], shown: int = 3) -> str:
    if not names:
        return "(none)"
    head = ", ".join(names[:shown])
    return head if len(names) <= shown else f"{head} and {len(names) - shown} more"


def print_run(console: Console, result: RunResult) -> None:
    from rich.table import Table

    from backfiller.actions import StepOutcome

    table = Table(title=f"Run {result.run_id}: {result.state.value}")
    for col in ("asset", "partition", "outcome", "rows before", "rows", "version", "error"):
        table.add_column(col, overflow="fold")
    for s in result.steps:
        add_row(
            table,
            s.asset,
            s.partition_key,
            s.outcome.value,
            "-" if s.rows_before is None else str(s.rows_before),
            str(s.rows),
            "-" if s.version is None else str(s.version),
            s.error or "",
        )
    console.print(table)
    parts = ", ".join(f"{result.count(o)} {o.value}" for o in StepOutcome if result.count(o))
    console.print(parts or "nothing to do")


def _failure_hint(result: RunResult) -> str:
    """What may cure the failures: ``retry`` only when every failure is transient (it refuses
    a run with any other), else a fix and a rerun of the first permanent one."""
    from backfiller.actions import StepOutcome

    failed = [s for s in result.steps if s.outcome is StepOutcome.FAILED]
    permanent = [s for s in failed if not s.transient]
    if not permanent:
        return f"the failures are transient: 'backfiller retry {result.run_id}'"
    first = permanent[0]
    return (
        f"fix the cause shown above, then 'backfiller rerun --asset {first.asset} --partition "
        f"{first.partition_key}' (a retry would fail the same way)"
    )


def print_run_summary(console: Console, project: Project, result: RunResult) -> None:
    """What the run leaves behind: the checks that ran, its evidence, the holds it placed,
    and the next command."""
    with project.ledger() as ledger:
        checks = ledger.checks.results(run_id=result.run_id)
        evidence = ledger.evidence.of_run(result.run_id)
        held = [h for h in ledger.holds.all() if h.cause_run_id == result.run_id]
    if checks:
        passed = sum(1 for c in checks if c.status is CheckStatus.PASSED)
        blocking = sum(1 for c in checks if c.status is CheckStatus.FAILED and c.blocking)
        warned = len(checks) - passed - blocking
        partitions = len({(c.asset, c.partition_key) for c in checks})
        console.print(
            f"checks: {len(checks)} ran on {partitions} partition(s) — {passed} passed, "
            f"{blocking} failed, {warned} warned",
            markup=False,
        )
    if evidence is not None:
        console.print(f"evidence: {evidence.path}", markup=False)
    if held:
        targets = list(dict.fromkeys(f"{h.target} {h.partition_key}" for h in held))
        shown = ", ".join(targets[:6]) + (
            f" and {len(targets) - 6} more" if len(targets) > 6 else ""
        )
        console.print(f"held until release: {shown}", markup=False)
        if result.state is RunState.SUCCEEDED:
            console.print(f"next: backfiller release --run {result.run_id}", markup=False)
    else:
        console.print("held: nothing (no published partition was replaced)", markup=False)


def finish_run(console: Console, result: RunResult, project: Project | None = None) -> None:
    """Show the run (and, given the project, what it leaves behind); turn anything but full
    success into its error (and exit code)."""
    from backfiller.actions import StepOutcome
    from backfiller.actions.recovery import conflict_error

    print_run(console, result)
    if project is not None and result.steps:
        print_run_summary(console, project, result)
    conflict = conflict_error(result)
    if conflict is not None:
        raise conflict
    if result.state is RunState.FAILED:
        raise RunFailedError(
            f"Run {result.run_id} failed: {result.count(StepOutcome.FAILED)} failed, "
            f"{result.count(StepOutcome.SKIPPED)} skipped",
            hint=_failure_hint(result),
        )
    if result.state is RunState.CHECKS_FAILED:
        raise ChecksFailedError(
            f"Run {result.run_id}: {result.count(StepOutcome.CHECK_FAILED)} partition(s) "
            "failed blocking checks; the previous data stays visible",
            hint="investigate the failing checks, fix, then rerun",
        )
