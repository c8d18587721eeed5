"""Build the evidence of a finished apply run from the ledger, write it, chain it.

The document goes to ``<report_dir>/evidence/<seq:06d>_<run_id>.json``, written atomically,
validated against its schema first, and recorded in the ledger's evidence index with the sha256
of its bytes and the sha256 of the previous document. Writing the evidence of a run twice
returns the file already written, as long as it still matches its recorded hash.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Literal

from backfiller.actions.faults import crash_point
from backfiller.atomic import atomic_write_bytes
from backfiller.canonical import sha256_hex, stable_id
from backfiller.checks.model import CheckStatus, Severity
from backfiller.errors import BadInputError, GraphError, PreconditionError, write_blocked
from backfiller.evidence.chain import (
    TamperedEvidenceError,
    evidence_dir,
    file_sha256,
    indexed_path,
)
from backfiller.evidence.model import (
    ChainLink,
    CheckCounts,
    CheckEntry,
    HoldCounts,
    HoldEntry,
    Holds,
    InputRef,
    PartitionCounts,
    PartitionEntry,
    PartitionOutcome,
    PartitionWindow,
    PlanRef,
    RunArgument,
    RunEvidence,
    RunInfo,
    Summary,
    UpstreamRef,
    canonical_document,
)
from backfiller.ledger import (
    AttemptRecord,
    AttemptStatus,
    CheckRecord,
    HoldRecord,
    Ledger,
    LedgerReader,
    RunRecord,
    RunState,
)
from backfiller.locations import Location
from backfiller.project import Project
from backfiller.refs import AssetPartition
from backfiller.schemas import validation_problems

__all__ = ["build_run_evidence", "evidence_file_name", "load_run_evidence", "write_run_evidence"]

_ATTEMPT_OUTCOME = {
    AttemptStatus.SUCCEEDED: PartitionOutcome.PUBLISHED,
    AttemptStatus.REPORT_REISSUED: PartitionOutcome.REPORT_REISSUED,
    AttemptStatus.FAILED: PartitionOutcome.FAILED,
    AttemptStatus.CHECK_FAILED: PartitionOutcome.CHECK_FAILED,
    AttemptStatus.RUNNING: PartitionOutcome.INTERRUPTED,
    AttemptStatus.QUEUED: PartitionOutcome.INTERRUPTED,
}
log = logging.getLogger(__name__)

_FINISHED: dict[RunState, Literal["succeeded", "failed", "checks_failed"]] = {
    RunState.SUCCEEDED: "succeeded",
    RunState.FAILED: "failed",
    RunState.CHECKS_FAILED: "checks_failed",
}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def _moment(value: str) -> datetime:
    """A ledger timestamp; a naive one (never written by backfiller) is taken as UTC."""
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _maybe(value: str | None) -> datetime | None:
    return _moment(value) if value else None


def evidence_file_name(seq: int, run_id: str) -> str:
    return f"{seq:06d}_{_UNSAFE.sub('_', run_id)}.json"


def _version() -> str:
    from backfiller import __version__  # late: the package imports its parts first

    return __version__


def _outcome(run: RunRecord) -> RunState:
    """The state a run ends in: its state once finished, the outcome it settled with while
    its evidence is pending."""
    if run.state is RunState.EVIDENCE_PENDING and run.outcome is not None:
        return run.outcome
    return run.state


def _run_info(run: RunRecord, attempts: list[AttemptRecord]) -> RunInfo:
    assert run.ended_at is not None
    return RunInfo(
        id=run.run_id,
        parent_run_id=run.parent_run_id,
        action=run.action,
        mode="apply",
        attempt=max((a.attempt for a in attempts), default=0),
        state=_FINISHED[_outcome(run)],
        started_at=_moment(run.started_at),
        ended_at=_moment(run.ended_at),
        arguments=[RunArgument(name=k, value=v) for k, v in sorted(run.arguments.items())],
        backfiller_version=_version(),
        error=run.error,
        operator=run.operator,
        reason=run.reason,
    )


def _plan_ref(ledger: Ledger, plan_id: str | None) -> PlanRef | None:
    if plan_id is None:
        return None
    record = ledger.runs.plan(plan_id)
    if record is None:
        return None
    return PlanRef(plan_id=plan_id, path=record.path, plan_sha256=sha256_hex(record.document))


def _steps(run: RunRecord, attempts: Iterable[AttemptRecord]) -> list[AssetPartition]:
    """Every (asset, partition) of the run: the steps it was started with, then any attempt
    outside them (in order of first appearance)."""
    from backfiller.actions.spec import RunSpec  # the run's recorded specification

    steps = [s.target for s in RunSpec.of_run(run).steps]
    steps += [AssetPartition(a.asset, a.partition_key) for a in attempts]
    return list(dict.fromkeys(steps))


def _guard(project: Project, asset: str) -> str | None:
    try:
        return project.graph.get(asset).idempotency_guard
    except GraphError:  # the asset was removed from the project since the run
        return None


def _window(project: Project, asset: str, key: str) -> PartitionWindow | None:
    """The window of ``asset``'s key in its own scheme (the project's, for an asset removed
    since the run)."""
    try:
        scheme = project.scheme_of(asset)
    except GraphError:
        scheme = project.scheme
    try:
        window = scheme.window(key)
    except BadInputError:
        return None
    if window is None:
        return None
    return PartitionWindow(start=window.start_utc, end=window.end_utc)


def _partition(
    project: Project,
    ledger: Ledger,
    run_id: str,
    asset: str,
    key: str,
    tries: list[AttemptRecord],
) -> PartitionEntry:
    window = _window(project, asset, key)
    guard = _guard(project, asset)
    if not tries:
        return PartitionEntry(
            asset=asset,
            partition_key=key,
            window=window,
            status=PartitionOutcome.NOT_ATTEMPTED,
            attempts=0,
            previous_data_version=None,
            new_data_version=None,
            rows_before=None,
            rows_after=None,
            fingerprint_before=None,
            fingerprint_after=None,
            idempotency_guard=guard,
            upstream=[],
            error=None,
            started_at=None,
            ended_at=None,
            duration_ms=None,
        )
    last = max(tries, key=lambda a: a.attempt)
    first = min(tries, key=lambda a: a.attempt)
    status = _ATTEMPT_OUTCOME.get(last.status, PartitionOutcome.FAILED)
    upstream: list[UpstreamRef] = []
    record = ledger.partitions.get(asset, key)
    if status is PartitionOutcome.PUBLISHED and record and record.last_run_id == run_id:
        upstream = [
            UpstreamRef(asset=up, partition_key=k, data_version=v)
            for up, versions in sorted(record.upstream_versions.items())
            for k, v in sorted(versions.items())
        ]
    started, ended = _moment(last.started_at), _maybe(last.ended_at)
    duration = None if ended is None else max(0, round((ended - started).total_seconds() * 1000))
    return PartitionEntry(
        asset=asset,
        partition_key=key,
        window=window,
        status=status,
        attempts=len(tries),
        # before the run: what the first attempt saw; after: what the last one wrote
        previous_data_version=first.version_before,
        new_data_version=last.data_version,
        rows_before=first.rows_before,
        rows_after=last.rows_written,
        fingerprint_before=first.fingerprint_before,
        fingerprint_after=last.fingerprint,
        idempotency_guard=guard,
        upstream=upstream,
        error=last.error,
        started_at=started,
        ended_at=ended,
        duration_ms=duration,
    )


def _inputs(ledger: Ledger, run_id: str, partitions: list[PartitionEntry]) -> list[InputRef]:
    """The manifest partitions that this run's published partitions were built from."""
    found: dict[tuple[str, str], InputRef] = {}
    for entry in partitions:
        if entry.status is not PartitionOutcome.PUBLISHED:
            continue
        record = ledger.partitions.get(entry.asset, entry.partition_key)
        if record is None or record.last_run_id != run_id or record.manifest_id is None:
            continue
        found.setdefault(
            (record.manifest_id, record.partition_key),
            InputRef(
                manifest_id=record.manifest_id,
                partition_key=record.partition_key,
                manifest_checksum=record.manifest_checksum,
            ),
        )
    return [found[k] for k in sorted(found)]


def _check(record: CheckRecord) -> CheckEntry:
    return CheckEntry(
        name=record.check_name,
        asset=record.asset,
        partition_key=record.partition_key,
        status=record.status,
        severity=record.severity,
        blocking=record.blocking,
        expected=record.expected,
        actual=record.actual,
    )


def _hold(record: HoldRecord) -> HoldEntry:
    return HoldEntry(
        target=record.target,
        partition_key=record.partition_key,
        external=record.external,
        reason=record.reason,
        cause_asset=record.cause_asset,
        cause_partition=record.cause_partition,
        placed_at=_moment(record.placed_at),
        released_at=_maybe(record.released_at),
        released_by=record.released_by,
        release_reason=record.release_reason,
        forced=record.forced,
    )


def _holds(ledger: Ledger, run: RunInfo) -> Holds:
    placed: list[HoldEntry] = []
    released: list[HoldEntry] = []
    for record in ledger.holds.all(open_only=False):
        ours = record.cause_run_id == run.id
        entry = _hold(record)
        if ours:
            placed.append(entry)
        at = entry.released_at
        if at is not None and (ours or run.started_at <= at <= run.ended_at):
            released.append(entry)
    return Holds(placed=placed, released=released)


def _summary(partitions: list[PartitionEntry], checks: list[CheckEntry], holds: Holds) -> Summary:
    def count(outcome: PartitionOutcome) -> int:
        return sum(1 for p in partitions if p.status is outcome)

    failed = [c for c in checks if c.status is CheckStatus.FAILED]
    return Summary(
        partitions=PartitionCounts(
            total=len(partitions),
            published=count(PartitionOutcome.PUBLISHED),
            failed=count(PartitionOutcome.FAILED),
            check_failed=count(PartitionOutcome.CHECK_FAILED),
            interrupted=count(PartitionOutcome.INTERRUPTED),
            not_attempted=count(PartitionOutcome.NOT_ATTEMPTED),
            report_reissued=count(PartitionOutcome.REPORT_REISSUED),
        ),
        checks=CheckCounts(
            total=len(checks),
            passed=sum(1 for c in checks if c.status is CheckStatus.PASSED),
            failed=sum(1 for c in failed if c.severity is Severity.ERROR),
            warned=sum(1 for c in failed if c.severity is not Severity.ERROR),
        ),
        holds=HoldCounts(placed=len(holds.placed), released=len(holds.released)),
    )


def _finished_run(ledger: Ledger, run_id: str) -> RunRecord:
    run = ledger.runs.get(run_id)
    if run is None:
        raise BadInputError(
            f"No run {run_id!r} in the ledger",
            hint="evidence is written for apply runs; a dry run writes only a plan",
            run_id=run_id,
        )
    if run.state is RunState.RUNNING or run.ended_at is None:
        raise PreconditionError(
            f"Run {run_id} has not finished; its evidence would be incomplete",
            hint=f"finish it with 'backfiller resume {run_id}', then write its evidence",
            run_id=run_id,
        )
    return run


def build_run_evidence(
    project: Project,
    ledger: Ledger,
    run_id: str,
    *,
    seq: int,
    prev_sha256: str | None,
) -> RunEvidence:
    """The evidence document of a finished run, as link ``seq`` of the chain."""
    run = _finished_run(ledger, run_id)
    attempts = ledger.runs.attempts(run_id)
    info = _run_info(run, attempts)
    by_step: dict[AssetPartition, list[AttemptRecord]] = {}
    for attempt in attempts:
        by_step.setdefault(AssetPartition(attempt.asset, attempt.partition_key), []).append(attempt)
    partitions = [
        _partition(project, ledger, run_id, *target, by_step.get(target, []))
        for target in _steps(run, attempts)
    ]
    checks = [_check(r) for r in ledger.checks.results(run_id=run_id)]
    holds = _holds(ledger, info)
    return RunEvidence(
        evidence_id=stable_id("evidence", {"run_id": run_id, "seq": seq}),
        producer=f"backfiller/{_version()}",
        generated_at=project.clock(),
        project=project.config.name,
        run=info,
        plan=_plan_ref(ledger, run.plan_id),
        inputs=_inputs(ledger, run_id, partitions),
        partitions=partitions,
        checks=checks,
        holds=holds,
        summary=_summary(partitions, checks, holds),
        chain=ChainLink(seq=seq, prev_sha256=prev_sha256),
    )


def _existing(project: Project, ledger: LedgerReader, run_id: str) -> Location | None:
    record = ledger.evidence.of_run(run_id)
    if record is None:
        return None
    path = indexed_path(project, record)
    if not path.is_file():
        raise TamperedEvidenceError(
            f"The evidence of run {run_id} (seq {record.seq}) was recorded as {record.path}, "
            "but the file is gone",
            hint="restore it from a backup; 'backfiller evidence verify' lists every problem",
            run_id=run_id,
        )
    if file_sha256(path) != record.sha256:
        raise TamperedEvidenceError(
            f"The evidence of run {run_id} ({record.path}) no longer matches the sha256 "
            "the ledger recorded",
            hint="restore it from a backup; 'backfiller evidence verify' lists every problem",
            run_id=run_id,
        )
    return path


def _continued(path: Location, ledger: Ledger, run_id: str) -> bool:
    """Whether the run went on after its evidence was written (retry and resume reuse the run
    id): then a new document is chained after the old one, which stays as it was."""
    # appending evidence seals a run in the same transaction, so a run that has evidence
    # and waits for evidence again was continued (by retry) after it
    run = ledger.runs.get(run_id)
    return run is not None and run.state is RunState.EVIDENCE_PENDING


def write_run_evidence(project: Project, ledger: Ledger, run_id: str) -> Location:
    """Write, validate and chain the evidence of a settled run; return its path. Appending
    is serialised through the ledger (:meth:`Ledger.append_evidence`), which seals the
    run: only then is it finished.

    Idempotent: the evidence of a run already written is returned as it is (and refused with
    :class:`TamperedEvidenceError` if its file is gone or no longer matches its hash).
    """
    _finished_run(ledger, run_id)
    existing = _existing(project, ledger, run_id)
    if existing is not None and not _continued(existing, ledger, run_id):
        return existing

    def write(seq: int, prev: str | None) -> tuple[str, str]:
        document = build_run_evidence(project, ledger, run_id, seq=seq, prev_sha256=prev)
        body = document.to_dict()
        problems = validation_problems("run_evidence", body)
        if problems:  # a bug, not bad input: the builder made a document its schema refuses
            raise AssertionError("run evidence does not match its schema: " + "; ".join(problems))
        data = canonical_document(body)
        path = evidence_dir(project) / evidence_file_name(seq, run_id)
        # the file first, inside the ledger's transaction: a crash before the index entry
        # leaves a file that the next write of this run replaces (same seq, same name)
        try:
            atomic_write_bytes(path, data)
        except OSError as exc:
            raise write_blocked(f"the evidence of {run_id}", exc, run_id=run_id) from exc
        crash_point("after_evidence_file")
        return project.relative(path), hashlib.sha256(data).hexdigest()

    record = ledger.evidence.append(run_id, write)
    return indexed_path(project, record)


def load_run_evidence(project: Project, ledger: LedgerReader, run_id: str) -> RunEvidence:
    """The recorded evidence of a run, refused if its file no longer matches its hash."""
    path = _existing(project, ledger, run_id)
    if path is None:
        raise BadInputError(
            f"No evidence was written for run {run_id!r}",
            hint=f"write it with 'backfiller evidence write {run_id}'",
            run_id=run_id,
        )
    return RunEvidence.from_bytes(path.read_bytes())
