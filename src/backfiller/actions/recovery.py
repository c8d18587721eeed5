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

from backfiller.actions.preconditions import protection_of
from backfiller.actions.run import RunOptions, RunResult, continue_run, execute
from backfiller.actions.runner import StepOutcome
from backfiller.actions.spec import Action, RunSpec, Step, StepSource
from backfiller.errors import BadInputError, ConflictError, PreconditionError
from backfiller.ledger import AttemptStatus, Ledger, RunState
from backfiller.manifests import verify_inputs
from backfiller.project import Project
from backfiller.refs import AssetPartition
from backfiller.store import CommitKey

__all__ = ["replay", "rerun", "restore", "resume", "retry"]


def _closure(project: Project, pairs: Sequence[tuple[str, str]]) -> list[AssetPartition]:
    return project.graph.downstream_closure(pairs)


def rerun(
    project: Project,
    ledger: Ledger,
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
    spec = RunSpec.compute(
        Action.RERUN,
        operator,
        _closure(project, [(asset, k) for k in keys]),
        reason=reason,
        override_reason=override_reason,
        arguments={"asset": asset, "partitions": list(keys)},
    )
    return execute(project, ledger, spec, options)


def replay(
    project: Project,
    ledger: Ledger,
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
        for m in verify_inputs(declared[key], project.root, project.config.storage_options):
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
    spec = RunSpec.compute(
        Action.REPLAY,
        operator,
        _closure(project, [(a, k) for k in wanted for a in roots]),
        reason=reason,
        override_reason=override_reason,
        arguments={"manifest_id": manifest_id, "partitions": wanted},
    )
    return execute(project, ledger, spec, options)


def retry(
    project: Project,
    ledger: Ledger,
    *,
    run_id: str,
    operator: str,
    max_attempts: int = 3,
    backoff_seconds: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
    options: RunOptions = RunOptions(),  # noqa: B008 - frozen
) -> RunResult:
    """Re-execute only the failed, transient attempts of ``run_id`` (and the steps skipped
    below them), in the same run — pinned to its specification, plan and inputs — at most
    ``max_attempts`` attempts each, with exponential backoff. The run is reopened: a run
    that succeeded never is."""
    run = ledger.runs.get(run_id)
    if run is None:
        raise BadInputError(f"No run {run_id!r} in the ledger", hint="see 'backfiller runs'")
    if not run.state.finished:
        raise PreconditionError(
            f"Run {run_id} is {run.state.value}, not finished",
            hint=f"finish it first with 'backfiller resume {run_id}'",
        )
    latest: dict[AssetPartition, tuple[int, bool, AttemptStatus]] = {}
    for a in ledger.runs.attempts(run_id):
        latest[AssetPartition(a.asset, a.partition_key)] = (a.attempt, a.transient, a.status)
    failed = {k: v for k, v in latest.items() if v[2] is AttemptStatus.FAILED}
    if run.state is RunState.SUCCEEDED or not failed:
        raise PreconditionError(
            f"Run {run_id} has no failed attempt to retry",
            hint="a retry only re-executes failed attempts of an existing run",
        )
    permanent = [str(t) for t, (_, transient, _) in failed.items() if not transient]
    if permanent:
        raise PreconditionError(
            f"Run {run_id}: {len(permanent)} attempt(s) failed with a non-transient error "
            f"({', '.join(permanent[:5])}); a retry would fail the same way",
            hint="fix the cause, then 'backfiller rerun --asset A --partition K'",
        )
    exhausted = [str(t) for t, (n, _, _) in failed.items() if n >= max_attempts]
    if exhausted:
        raise PreconditionError(
            f"Run {run_id}: {', '.join(exhausted)} already used {max_attempts} attempts",
            hint="investigate, then rerun",
        )
    sleep(backoff_seconds * 2 ** (max(n for n, _, _ in failed.values()) - 1))
    ledger.runs.reopen(
        run_id, [(t.asset, t.partition_key, n + 1) for t, (n, _, _) in failed.items()]
    )
    return continue_run(project, ledger, run_id, options, operator=operator)


def resume(
    project: Project,
    ledger: Ledger,
    *,
    run_id: str,
    operator: str,
    options: RunOptions = RunOptions(),  # noqa: B008 - frozen
) -> RunResult:
    """Finish what ``run_id`` left unfinished — whatever its action — from its recorded
    specification: steps not yet done, a commit that landed recorded from its Delta
    transaction marker (never written again), holds, the outcome, the evidence."""
    run = ledger.runs.get(run_id)
    if run is None:
        raise BadInputError(f"No run {run_id!r} in the ledger", hint="see 'backfiller runs'")
    if run.state.finished:
        if ledger.evidence.of_run(run_id) is None:  # finished before evidence was part of it
            return continue_run(project, ledger, run_id, options, operator=operator)
        if run.state is RunState.SUCCEEDED:
            return RunResult(run_id, run.plan_id)  # nothing is unfinished
        raise PreconditionError(
            f"Run {run_id} finished ({run.state.value}); resume only finishes a run that was "
            "interrupted",
            hint=f"'backfiller retry {run_id}' for transient failures, else rerun after a fix",
        )
    return continue_run(project, ledger, run_id, options, operator=operator)


def restore(
    project: Project,
    ledger: Ledger,
    *,
    asset: str,
    key: str,
    operator: str,
    to_version: int | None = None,
    before_run: str | None = None,
    reason: str | None = None,
    override_reason: str | None = None,
    options: RunOptions = RunOptions(),  # noqa: B008 - frozen
) -> RunResult:
    """Publish a retained earlier version of one partition again, as a run whose one step's
    source is that stored version: under its lease, through today's checks, one atomic
    commit, recorded, reported; what consumed the replaced version becomes stale and held
    (:attr:`RunResult.held`)."""
    project.graph.get(asset)
    store = project.store
    if (to_version is None) == (before_run is None):
        raise BadInputError("Pass exactly one of --to-version V or --before-run RUN_ID")
    if before_run is not None:
        commits = [
            c for c in store.history(asset) if c.metadata.get(CommitKey.RUN_ID) == before_run
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
    lease = ledger.leases.live(asset, key)
    if lease is not None:
        raise ConflictError(
            f"{asset} {key} is leased by {lease.holder} (plan {lease.plan_id}, run "
            f"{lease.run_id}) since {lease.acquired_at}, until {lease.expires_at}",
            hint="wait for that run to finish (or 'backfiller resume' it), then restore",
        )
    if protection_of(project, ledger, asset, key, {}) is None:
        override_reason = None  # nothing protected: nothing to record
    spec = RunSpec(
        action=Action.RESTORE,
        operator=operator,
        steps=(Step(AssetPartition(asset, key), StepSource.VERSION, to_version),),
        reason=reason,
        override_reason=override_reason,
        arguments={"asset": asset, "partition": key, "to_version": to_version},
    )
    return execute(project, ledger, spec, options)


def conflict_error(result: RunResult) -> ConflictError | None:
    conflicts = [s for s in result.steps if s.outcome is StepOutcome.CONFLICT]
    if not conflicts:
        return None
    listing = "\n".join(f"  - {s.asset} {s.partition_key}: {s.error}" for s in conflicts)
    return ConflictError(
        f"{len(conflicts)} partition(s) are leased by another operator:\n{listing}",
        hint="wait for that run to finish (or its lease to expire), then make a new plan",
    )
