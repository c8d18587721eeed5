"""Apply a saved plan: exactly that plan, refused if it is not a backfill or the world moved."""

from __future__ import annotations

from itertools import chain

from backfiller.actions.preconditions import ProtectedBaselineError
from backfiller.actions.run import RunOptions, RunResult, execute
from backfiller.actions.spec import Action, RunSpec, Step, StepSource
from backfiller.errors import ConflictError, PreconditionError, StalePlanError
from backfiller.ledger import Ledger
from backfiller.planning import check_fresh
from backfiller.planning.compact import AnyPlan, RangePlan
from backfiller.planning.planner import archive_plan, settle_archive
from backfiller.project import Project

__all__ = ["apply_plan", "require_backfill_fields", "spec_of_plan"]

BACKFILL_FIELDS = ("window_start", "window_end", "upstream_manifest_id", "idempotency_guard")


def require_backfill_fields(document: AnyPlan) -> None:
    """The seed's rule: without these four fields it is a gamble on a rerun, not a backfill."""
    problems = document.missing_backfill_fields(BACKFILL_FIELDS)
    if problems:
        shown = problems[:20] + ([f"and {len(problems) - 20} more"] if len(problems) > 20 else [])
        raise PreconditionError(
            "not a backfill: " + "; ".join(shown),
            hint="a backfill needs window_start, window_end, upstream_manifest_id and "
            "idempotency_guard for every partition; declare the partition in a manifest and "
            "make a new plan with 'backfiller plan'",
        )


def spec_of_plan(
    document: AnyPlan, *, operator: str, override_reason: str | None = None
) -> RunSpec:
    """The run a plan stands for: its recomputations, then the reports it re-issues (both
    streamed from the plan: a plan of ranges is expanded as the steps are taken)."""
    steps = chain(
        (Step(target) for target in document.iter_work()),
        (Step(target, StepSource.REPORT) for target in document.iter_reports()),
    )
    return RunSpec(
        action=Action.BACKFILL,
        operator=operator,
        steps=tuple(dict.fromkeys(steps)),
        plan_id=document.plan_id,
        reason=document.reason,
        override_reason=override_reason,
        arguments={"plan": document.report_path},
    )


def _refuse_applied_again(project: Project, document: AnyPlan) -> None:
    """A plan is applied once: the run that applied it changed the state it describes."""
    reader = project.reader()
    runs = [r for r in reader.runs.all() if r.plan_id == document.plan_id]
    if not runs:
        return
    run = runs[-1]
    if run.state.finished:
        hint = "make a new plan ('backfiller plan ... --mode dry-run') for what is left"
    else:
        hint = f"finish that run with 'backfiller resume {run.run_id}'"
    raise StalePlanError(
        f"Plan {document.plan_id} was already applied by run {run.run_id} at "
        f"{run.started_at} ({run.state.value})",
        hint=hint,
    )


def _in_flight(project: Project, document: AnyPlan) -> ConflictError | None:
    """Another run writing partitions of this plan right now (a live lease): a plan made
    meanwhile saw its writes half recorded (stored but not yet in the ledger), so "nothing to
    do" would not be the truth — the answer is the conflict (exit 4)."""
    keys = set(
        document.request.keys
        if isinstance(document, RangePlan)
        else (e.partition_key for e in document.partitions)
    )
    with project.ledger() as ledger:
        live = [
            lease
            for lease in ledger.leases.held()
            if lease.partition_key in keys
            and ledger.leases.live(lease.asset, lease.partition_key) is not None
        ]
    if not live:
        return None
    listing = "\n".join(
        f"  - {lease.asset} {lease.partition_key}: leased by {lease.holder} (run "
        f"{lease.run_id}) until {lease.expires_at}"
        for lease in live[:10]
    )
    more = f"\n  … and {len(live) - 10} more" if len(live) > 10 else ""
    return ConflictError(
        f"{len(live)} partition(s) of plan {document.plan_id} are being written by another "
        f"run right now:\n{listing}{more}",
        hint="wait for that run to finish (or its lease to expire), then make a new plan",
    )


def apply_plan(
    project: Project,
    document: AnyPlan,
    *,
    operator: str,
    options: RunOptions = RunOptions(),  # noqa: B008 - frozen
    override_reason: str | None = None,
) -> RunResult:
    require_backfill_fields(document)
    spec = spec_of_plan(document, operator=operator, override_reason=override_reason)
    if not spec.steps:
        in_flight = _in_flight(project, document)
        if in_flight is not None:
            raise in_flight
        # a run that finished since the plan was made: the plan is stale (exit 4), which is
        # the truth before "nothing to do"
        check_fresh(project, project.reader(), document)
        raise PreconditionError(
            f"Plan {document.plan_id} has nothing to do: no partition to recompute and no "
            "report to re-issue",
            hint="there is nothing to apply; 'backfiller gaps' shows what is missing",
        )
    _refuse_applied_again(project, document)
    check_fresh(project, project.reader(), document)

    def record(ledger: Ledger) -> None:
        archived = archive_plan(project, document)  # what the ledger and the evidence cite
        ledger.runs.record_plan(
            plan_id=document.plan_id,
            action=document.action,
            mode=document.mode.value,
            path=project.relative(archived),
            state_fingerprint=document.state_fingerprint,
            created_at=document.created_at.isoformat(),
            document=document.to_dict(),
        )
        recorded = ledger.runs.plan(document.plan_id)  # the first recorded for this id
        if recorded is not None:
            settle_archive(project.location(recorded.path), recorded.document)

    with project.ledger(max_parallel=options.max_parallel) as ledger:
        try:
            return execute(project, ledger, spec, options, record_first=record)
        except ProtectedBaselineError:
            # another operator may have published (so protected) a partition between the
            # freshness check and the run: then the plan is stale (exit 4), naming the change
            check_fresh(project, project.reader(), document)
            raise
