"""The recovery actions besides backfill (which is ``plan`` + ``apply``), each refusing to run
when its precondition is missing:

* retry   — a failed attempt of an existing run, classified transient; same run, same inputs;
* rerun   — the same job definition over named partitions, as a new run, through the checks;
* replay  — a manifest whose input files still match their checksums;
* restore — a retained earlier version of the partition (Delta time travel);
* resume  — finish what a crashed run left unfinished, never recomputing what landed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import pyarrow as pa

from backfiller.actions.checking import check_partition
from backfiller.actions.runner import (
    RunOptions,
    RunResult,
    StepOutcome,
    StepResult,
    execute,
    new_run_id,
    protection_of,
)
from backfiller.engine import fingerprint_table
from backfiller.errors import BadInputError, ConflictError, PreconditionError
from backfiller.evidence.writer import write_run_evidence
from backfiller.holds import place_holds
from backfiller.ledger import LeaseConflict, RunState, SqliteLedger
from backfiller.manifests import verify_inputs
from backfiller.project import Project
from backfiller.reports import write_partition_report
from backfiller.store import CommitInfo

__all__ = ["replay", "rerun", "restore", "resume", "retry"]


def _closure(project: Project, pairs: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    return project.graph.downstream_closure(pairs)


def rerun(
    project: Project,
    ledger: SqliteLedger,
    *,
    asset: str,
    keys: Sequence[str],
    operator: str,
    reason: str | None = None,
    override_reason: str | None = None,
    options: RunOptions = RunOptions(),  # noqa: B008 - frozen
) -> RunResult:
    """A new run of the same definition over named partitions (and what depends on them)."""
    target = project.graph.get(asset)
    if not target.idempotency_key:  # pragma: no cover - Asset refuses this at definition
        raise PreconditionError(f"{asset} has no idempotency guard; a rerun could duplicate")
    steps = _closure(project, [(asset, k) for k in keys])
    return execute(
        project,
        ledger,
        steps,
        action="rerun",
        operator=operator,
        reason=reason,
        arguments={"asset": asset, "partitions": list(keys)},
        override_reason=override_reason,
        max_parallel=options.max_parallel,
        on_step=options.on_step,
    )


def replay(
    project: Project,
    ledger: SqliteLedger,
    *,
    manifest_id: str,
    keys: Sequence[str] | None,
    operator: str,
    reason: str | None = None,
    override_reason: str | None = None,
    options: RunOptions = RunOptions(),  # noqa: B008 - frozen
) -> RunResult:
    """Re-ingest exactly the input a manifest declares; refused if it no longer matches."""
    manifest = project.manifests.get(manifest_id)
    declared = {p.partition_key: p for p in manifest.partitions}
    wanted = list(keys) if keys else sorted(declared)
    unknown = [k for k in wanted if k not in declared]
    if unknown:
        raise PreconditionError(
            f"Manifest {manifest_id} declares no input for {', '.join(unknown)}",
            hint=f"pass a partition that {manifest_id} declares",
        )
    problems = []
    for key in wanted:
        for m in verify_inputs(declared[key], project.root):
            state = "missing" if m.actual is None else f"sha256 {m.actual[:12]}…"
            problems.append(f"{key}: {m.path} ({state}, declared {m.expected[:12]}…)")
    if problems:
        raise PreconditionError(
            f"Cannot replay {manifest_id}: its input evidence no longer matches:\n  - "
            + "\n  - ".join(problems),
            hint="restore the input files, or declare the new input in a new manifest and "
            "backfill with it",
        )
    for key in wanted:  # the newest declaration must be this manifest, or we'd replay another
        current = project.manifests.for_partition(key)
        if current is None or current[0].manifest_id != manifest_id:
            other = current[0].manifest_id if current else "none"
            raise PreconditionError(
                f"{key} is now declared by {other}, not {manifest_id}",
                hint=f"replay --manifest {other}",
            )
    roots = [a.key for a in project.graph.assets if a.uses_manifest]
    steps = _closure(project, [(a, k) for k in wanted for a in roots])
    return execute(
        project,
        ledger,
        steps,
        action="replay",
        operator=operator,
        reason=reason,
        arguments={"manifest_id": manifest_id, "partitions": wanted},
        override_reason=override_reason,
        max_parallel=options.max_parallel,
        on_step=options.on_step,
    )


def retry(
    project: Project,
    ledger: SqliteLedger,
    *,
    run_id: str,
    operator: str,
    max_attempts: int = 3,
    backoff_seconds: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> RunResult:
    """Re-execute only the failed, transient attempts of ``run_id``, in the same run (pinned to
    its plan and inputs), at most ``max_attempts`` attempts each, with exponential backoff."""
    run = ledger.run(run_id)
    if run is None:
        raise BadInputError(f"Unknown run {run_id!r}", hint="see 'backfiller runs'")
    latest: dict[tuple[str, str], tuple[int, bool, str]] = {}
    for a in ledger.attempts(run_id):
        latest[(a.asset, a.partition_key)] = (a.attempt, a.transient, a.status)
    failed = {k: v for k, v in latest.items() if v[2] in {"failed", "running"}}
    if not failed:
        raise PreconditionError(
            f"Run {run_id} has no failed attempt to retry",
            hint="a retry only re-executes failed attempts of an existing run",
        )
    permanent = [
        f"{a} {k}"
        for (a, k), (_, transient, st) in failed.items()
        if not transient and st == "failed"
    ]
    if permanent:
        raise PreconditionError(
            f"Run {run_id}: {len(permanent)} attempt(s) failed with a non-transient error "
            f"({', '.join(permanent[:5])}); a retry would fail the same way",
            hint="fix the cause, then 'backfiller rerun --asset A --partition K'",
        )
    exhausted = [f"{a} {k}" for (a, k), (n, _, _) in failed.items() if n >= max_attempts]
    if exhausted:
        raise PreconditionError(
            f"Run {run_id}: {', '.join(exhausted)} already used {max_attempts} attempts",
            hint="investigate, then rerun",
        )
    # the steps of the run that never got an attempt: skipped below a failure
    attempted = set(latest)
    planned = [(str(a), str(k)) for a, k in run.arguments.get("steps", [])]
    skipped = [s for s in planned if s not in attempted]
    steps = sorted(failed) + [s for s in skipped if s not in failed]
    sleep(backoff_seconds * 2 ** (max(n for n, _, _ in failed.values()) - 1))
    return execute(
        project,
        ledger,
        steps,
        action=run.action,
        operator=operator,
        plan_id=run.plan_id,
        run_id=run_id,
        reason=run.reason,
        attempts={s: failed[s][0] + 1 for s in failed},
    )


def resume(
    project: Project,
    ledger: SqliteLedger,
    *,
    run_id: str,
    operator: str,
    options: RunOptions = RunOptions(),  # noqa: B008 - frozen
) -> RunResult:
    """Finish only what ``run_id`` left unfinished; a step whose commit already landed is
    recorded from the Delta transaction marker, not written again."""
    run = ledger.run(run_id)
    if run is None:
        raise BadInputError(f"Unknown run {run_id!r}", hint="see 'backfiller runs'")
    if run.state is RunState.SUCCEEDED:
        # nothing is unfinished; resuming would re-publish over whatever came after it
        return RunResult(run_id, run.plan_id)
    if run.state.finished:
        raise PreconditionError(
            f"Run {run_id} finished ({run.state.value}); resume only finishes a run that was "
            "interrupted",
            hint=f"'backfiller retry {run_id}' for transient failures, else rerun after a fix",
        )
    steps = [(str(a), str(k)) for a, k in run.arguments.get("steps", [])]
    if not steps:
        raise PreconditionError(f"Run {run_id} recorded no steps; nothing to resume")
    return execute(
        project,
        ledger,
        steps,
        action=run.action,
        operator=operator,
        plan_id=run.plan_id,
        run_id=run_id,
        reason=run.reason,
        max_parallel=options.max_parallel,
        on_step=options.on_step,
    )


def restore(
    project: Project,
    ledger: SqliteLedger,
    *,
    asset: str,
    key: str,
    operator: str,
    to_version: int | None = None,
    before_run: str | None = None,
    reason: str | None = None,
    override_reason: str | None = None,
) -> tuple[RunResult, list[tuple[str, str]]]:
    """Publish a retained earlier version of one partition again; mark what consumed the
    replaced version stale. Returns the run and the stale downstream partitions."""
    project.graph.get(asset)
    store = project.store
    if (to_version is None) == (before_run is None):
        raise BadInputError("Pass exactly one of --to-version V or --before-run RUN_ID")
    if before_run is not None:
        commits = [
            c for c in store.history(asset) if c.metadata.get("backfiller.run_id") == before_run
        ]
        if not commits:
            raise PreconditionError(f"Run {before_run} made no commit to {asset}")
        to_version = min(c.version for c in commits) - 1
    assert to_version is not None
    current = store.version(asset)
    if current is None or to_version < 0 or to_version > current:
        raise PreconditionError(
            f"{asset} has no version {to_version} (current: {current})",
            hint="pick a version from 'backfiller history --asset A'",
        )
    try:
        data = store.read_partition(asset, key, version=to_version)
    except Exception as exc:  # vacuumed files or a cleaned-up log
        raise PreconditionError(
            f"Version {to_version} of {asset} is no longer retained: {exc}",
            hint="restore needs a snapshot that still exists",
        ) from exc
    if data is None:
        raise PreconditionError(f"Version {to_version} of {asset} is not retained")
    if data.num_rows == 0:
        raise PreconditionError(
            f"{asset} {key} had no rows at version {to_version}: restoring it would empty the "
            "partition",
            hint="pick a version at which the partition was published "
            "('backfiller history --asset A')",
        )
    protection = protection_of(project, ledger, asset, key, {})
    if protection is not None and not override_reason:
        raise PreconditionError(
            f"Refusing to overwrite protected baseline {asset} {key} ({protection.reason})",
            hint="pass --override-protected --reason TEXT",
        )
    run_id = new_run_id(project.clock().isoformat())
    try:
        lease = ledger.acquire_lease(
            asset, key, holder=operator, plan_id=None, run_id=run_id, ttl_seconds=600.0
        )
    except LeaseConflict as conflict:
        held = conflict.lease
        raise ConflictError(
            f"{asset} {key} is leased by {held.holder} (plan {held.plan_id}, run "
            f"{held.run_id}) since {held.acquired_at}",
            hint="wait for that run to finish (or its lease to expire), then restore",
        ) from None
    try:
        return _restore_leased(
            project,
            ledger,
            asset=asset,
            key=key,
            operator=operator,
            data=data,
            to_version=to_version,
            run_id=run_id,
            reason=reason,
            override_reason=override_reason if protection is not None else None,
        )
    finally:
        ledger.release_lease(lease)


def _restore_leased(
    project: Project,
    ledger: SqliteLedger,
    *,
    asset: str,
    key: str,
    operator: str,
    data: pa.Table,
    to_version: int,
    run_id: str,
    reason: str | None,
    override_reason: str | None,
) -> tuple[RunResult, list[tuple[str, str]]]:
    store = project.store
    ledger.begin_run(
        run_id=run_id,
        plan_id=None,
        action="restore",
        operator=operator,
        reason=reason,
        arguments={"asset": asset, "partition": key, "to_version": to_version},
    )
    if override_reason:
        ledger.record_override(
            run_id=run_id, asset=asset, key=key, reason=override_reason, operator=operator
        )
    before = ledger.partition(asset, key)
    rows_before = store.partition_counts(asset).get(key, 0)
    ledger.start(asset, key, run_id=run_id, attempt=1, operator=operator)
    # write–audit–publish holds for a restore too: the old version must pass today's checks
    results = check_partition(project, ledger, asset, key, data, run_id=run_id, on_staged=True)
    failures = [r.describe() for r in results if r.blocking]
    if failures:
        message = "; ".join(failures)
        ledger.fail(
            asset,
            key,
            run_id=run_id,
            attempt=1,
            operator=operator,
            error=message,
            transient=False,
            checks=True,
        )
        place_holds(
            project,
            ledger,
            run_id=run_id,
            operator=operator,
            changed=[],
            failed_checks=[(asset, key)],
        )
        ledger.finish_run(run_id, RunState.CHECKS_FAILED, message)
        write_run_evidence(project, ledger, run_id)
        step = StepResult(
            asset,
            key,
            StepOutcome.CHECK_FAILED,
            rows=data.num_rows,
            rows_before=rows_before,
            error=message,
        )
        return RunResult(run_id, None, [step]), []
    version = store.write_partitions(
        asset,
        data,
        [key],
        CommitInfo(
            run_id=run_id,
            operator=operator,
            action="restore",
            app_id=f"backfiller:{run_id}:{key}",
            app_version=1,
            extra={"partition_keys": key, "restored_from_version": str(to_version)},
        ),
    )
    fingerprint = fingerprint_table(data)
    ledger.publish(
        asset,
        key,
        run_id=run_id,
        attempt=1,
        operator=operator,
        data_version=version,
        row_count=data.num_rows,
        fingerprint=fingerprint,
        manifest_id=before.manifest_id if before else None,
        manifest_checksum=before.manifest_checksum if before else None,
        upstream_versions=before.upstream_versions if before else {},
    )
    write_partition_report(
        project.partition_report_path(asset, key),
        {
            "asset": asset,
            "partition_key": key,
            "run_id": run_id,
            "action": "restore",
            "operator": operator,
            "restored_from_version": to_version,
            "data_version": version,
            "previous_data_version": before.data_version if before else None,
            "row_count": data.num_rows,
            "previous_row_count": rows_before,
            "fingerprint": fingerprint,
            "idempotency_guard": project.graph.get(asset).idempotency_guard,
        },
    )
    placed = place_holds(project, ledger, run_id=run_id, operator=operator, changed=[(asset, key)])
    stale = [(t, k) for t, k, external in placed if not external]
    result = RunResult(
        run_id,
        None,
        [
            StepResult(
                asset,
                key,
                StepOutcome.PUBLISHED,
                rows=data.num_rows,
                rows_before=rows_before,
                version=version,
                version_before=before.data_version if before else None,
                fingerprint=fingerprint,
            )
        ],
    )
    ledger.finish_run(run_id, RunState.SUCCEEDED)
    write_run_evidence(project, ledger, run_id)
    return result, stale


def conflict_error(result: RunResult) -> ConflictError | None:
    conflicts = [s for s in result.steps if s.outcome is StepOutcome.CONFLICT]
    if not conflicts:
        return None
    listing = "\n".join(f"  - {s.asset} {s.partition_key}: {s.error}" for s in conflicts)
    return ConflictError(
        f"{len(conflicts)} partition(s) are leased by another operator:\n{listing}",
        hint="wait for that run to finish (or its lease to expire), then make a new plan",
    )
