"""Apply a saved plan: exactly that plan, refused if it is not a backfill or the world moved."""

from __future__ import annotations

from backfiller.actions.runner import RunOptions, RunResult, StepOutcome, StepResult, execute
from backfiller.engine import fingerprint_table
from backfiller.errors import PreconditionError
from backfiller.evidence.writer import write_run_evidence
from backfiller.ledger import PartitionStatus, RunState, SqliteLedger
from backfiller.planning import PlanDocument, ProposedAction, check_fresh
from backfiller.project import Project
from backfiller.reports import read_partition_report, write_partition_report

__all__ = ["apply_plan", "require_backfill_fields"]

BACKFILL_FIELDS = ("window_start", "window_end", "upstream_manifest_id", "idempotency_guard")


def require_backfill_fields(document: PlanDocument) -> None:
    """The seed's rule: without these four fields it is a gamble on a rerun, not a backfill."""
    problems: list[str] = []
    for entry in document.partitions:
        if entry.proposed_action is ProposedAction.NOTHING_TO_DO and not entry.target_assets:
            continue
        missing = [f for f in BACKFILL_FIELDS if not getattr(entry, f)]
        if missing:
            problems.append(f"{entry.partition_key}: missing {', '.join(missing)}")
    if problems:
        raise PreconditionError(
            "not a backfill: " + "; ".join(problems),
            hint="a backfill needs window_start, window_end, upstream_manifest_id and "
            "idempotency_guard for every partition; declare the partition in a manifest and "
            "make a new plan with 'backfiller plan'",
        )


def apply_plan(
    project: Project,
    document: PlanDocument,
    *,
    operator: str,
    options: RunOptions = RunOptions(),  # noqa: B008 - frozen
    override_reason: str | None = None,
) -> RunResult:
    require_backfill_fields(document)
    check_fresh(project, project.reader(), document)
    with project.ledger() as ledger:
        ledger.record_plan(
            plan_id=document.plan_id,
            action=document.action,
            mode=document.mode.value,
            path=document.report_path,
            state_fingerprint=document.state_fingerprint,
            created_at=document.created_at.isoformat(),
            document=document.to_dict(),
        )
        result = execute(
            project,
            ledger,
            document.work,
            action=document.action,
            operator=operator,
            plan_id=document.plan_id,
            reason=document.reason,
            arguments={"plan": document.report_path},
            write_evidence=False,  # after the reports are reissued, below
            max_parallel=options.max_parallel,
            on_step=options.on_step,
            override_reason=override_reason,
        )
        for entry in document.partitions:
            for gap in entry.asset_gaps:
                if gap.proposed_action is ProposedAction.REISSUE_PARTITION_REPORT:
                    result.steps.append(
                        reissue_report(
                            project, ledger, gap.asset, entry.partition_key, result.run_id
                        )
                    )
        if result.state is not RunState.SUCCEEDED:
            errors = [f"{s.asset} {s.partition_key}: {s.error}" for s in result.steps if s.error]
            ledger.finish_run(result.run_id, result.state, "; ".join(errors)[:2000] or None)
        write_run_evidence(project, ledger, result.run_id)
    return result


def reissue_report(
    project: Project, ledger: SqliteLedger, asset: str, key: str, run_id: str
) -> StepResult:
    """Re-verify a published partition against the ledger and write its report again;
    nothing is recomputed."""
    record = ledger.partition(asset, key)
    data = project.store.read_partition(asset, key)
    if record is None or record.status is not PartitionStatus.MATERIALIZED or data is None:
        return StepResult(asset, key, StepOutcome.FAILED, error="not materialized; cannot reissue")
    actual = fingerprint_table(data)
    if actual != record.fingerprint:
        return StepResult(
            asset,
            key,
            StepOutcome.FAILED,
            error=f"stored data fingerprint {actual[:12]} differs from the ledger's "
            f"{(record.fingerprint or '')[:12]}; replay or restore instead",
        )
    path = project.partition_report_path(asset, key)
    if read_partition_report(path) is None:
        window = project.scheme.window(key)
        write_partition_report(
            path,
            {
                "asset": asset,
                "partition_key": key,
                "window_start": window.render()[0] if window else None,
                "window_end": window.render()[1] if window else None,
                "run_id": record.last_run_id,
                "reissued_by_run_id": run_id,
                "data_version": record.data_version,
                "row_count": record.row_count,
                "fingerprint": record.fingerprint,
                "manifest_id": record.manifest_id,
                "manifest_checksum": record.manifest_checksum,
                "idempotency_guard": project.graph.get(asset).idempotency_guard,
                "upstream_versions": record.upstream_versions,
            },
        )
    return StepResult(
        asset,
        key,
        StepOutcome.ALREADY_PUBLISHED,
        rows=record.row_count or 0,
        version=record.data_version,
        fingerprint=actual,
    )
