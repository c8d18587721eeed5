"""One step of a run, write–audit–publish, for every kind of step.

For each (asset, partition) step, under its lease::

    ledger.start → stage (compute, or read a retained version) → idempotency guard
      → checks on the staged rows → fencing check → publish (one Delta commit with the run's
      metadata and an app-transaction marker) → ledger.publish (version, counts, fingerprint,
      upstream versions consumed) → partition report

A step that re-issues a lost partition report publishes nothing: it verifies the stored data
against the ledger and writes the report. Whatever the step, the partition report is written
here and only here, from the ledger's record (:func:`report_of`).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

import pyarrow as pa
import pyarrow.compute as pc

from backfiller.actions.checking import check_group, store_reader
from backfiller.actions.computation import PinnedUpstream, StepError, StepTask
from backfiller.actions.executors import Deferred, Executor, LocalExecutor, StepFuture
from backfiller.actions.faults import crash_point
from backfiller.actions.heartbeat import Heartbeat
from backfiller.actions.published import PublishedCache
from backfiller.actions.spec import RunSpec, Step, StepSource
from backfiller.assets import Asset
from backfiller.atomic import one_folder_sync
from backfiller.engine import fingerprint_table, fingerprint_tables
from backfiller.errors import BackfillerError, WriteBlockedError, write_blocked
from backfiller.ledger import (
    Lease,
    LeaseConflict,
    Ledger,
    LedgerReader,
    PartitionRecord,
    PartitionStatus,
    PublishSuperseded,
    RunRecord,
)
from backfiller.partitions import dimension_columns
from backfiller.project import Project
from backfiller.refs import AssetPartition
from backfiller.reports import PartitionReport, read_partition_report, write_partition_report
from backfiller.store import CommitInfo, CommitKey, FencedError

__all__ = [
    "GroupLimits",
    "StepError",
    "StepOutcome",
    "StepResult",
    "StepRunner",
    "enforce_guard",
    "report_of",
]


#: the partitions this run just published, kept for downstream steps to read without a scan:
#: up to this many bytes. What it does not keep is read from its own files in a few ms: on the
#: year benchmark at 10,000 rows a day, 32 MiB peaked at 442 MiB of RSS and 64 MiB at 484, for
#: the same CPU
_PUBLISHED_CACHE_BYTES = 32 * 2**20
#: and at most this many (tiny partitions would otherwise keep one entry per step of the run)
_PUBLISHED_CACHE_ENTRIES = 16_384


class StepOutcome(Enum):
    PUBLISHED = "published"
    ALREADY_PUBLISHED = "already_published"  # done before (by this run); nothing written now
    REPORT_REISSUED = "report_reissued"  # the partition's report written again; no publish
    FAILED = "failed"
    CHECK_FAILED = "check_failed"
    SKIPPED = "skipped"  # an upstream step of the same run did not succeed
    CONFLICT = "conflict"  # another operator holds the partition's lease

    @property
    def succeeded(self) -> bool:
        return self in _SUCCEEDED


_SUCCEEDED = frozenset(
    {StepOutcome.PUBLISHED, StepOutcome.ALREADY_PUBLISHED, StepOutcome.REPORT_REISSUED}
)


@dataclass(frozen=True)
class StepResult:
    asset: str
    partition_key: str
    outcome: StepOutcome
    rows: int = 0
    rows_before: int | None = None
    version: int | None = None
    version_before: int | None = None
    fingerprint: str | None = None
    error: str | None = None
    #: a failure a retry may cure (an ``OSError`` or a step error marked transient)
    transient: bool = False

    @property
    def target(self) -> AssetPartition:
        return AssetPartition(self.asset, self.partition_key)


def app_id(run_id: str, key: str) -> str:
    """The app-transaction id of a run's commit of one partition: "did my commit land?"."""
    return f"backfiller:{run_id}:{key}"


def enforce_guard(asset: Asset, table: pa.Table) -> pa.Table:
    """Apply the idempotency guard: duplicate keys are dropped where the asset declares
    deduplication, and fail the step (naming them) everywhere else."""
    missing = [c for c in asset.idempotency_key if c not in table.column_names]
    if missing:
        raise StepError(
            f"{asset.key}: idempotency key column(s) {missing} are not in the data",
            asset=asset.key,
        )
    if table.num_rows == 0:
        return table
    keys = list(asset.idempotency_key)
    if _all_distinct(table, keys):
        return table  # the common case, without a hash aggregation
    counted = table.group_by(keys).aggregate([([], "count_all")])
    dupes = counted.filter(pc.greater(counted.column("count_all"), 1))
    if dupes.num_rows == 0:
        return table
    if not asset.deduplicate:
        sample = dupes.slice(0, 5).select(keys).to_pylist()
        raise StepError(
            f"{asset.key}: {dupes.num_rows} duplicate idempotency key(s) "
            f"({asset.idempotency_guard}), e.g. {sample}",
            hint="fix the input, or declare deduplicate=True on the asset",
            asset=asset.key,
        )
    indexed = table.append_column("__row", pa.array(range(table.num_rows), pa.int64()))
    firsts = indexed.group_by(keys).aggregate([("__row", "min")]).column("__row_min")
    return table.take(pc.take(firsts, pc.sort_indices(firsts)))


def _all_distinct(table: pa.Table, keys: list[str]) -> bool:
    """Whether no two rows share ``keys``, told by counting distinct values (no hash
    aggregation): key columns holding one value in every row (the partition key, within a
    partition) are left out; with one column left, its distinct count is the answer. ``False``
    means "not told this way", and the caller aggregates."""
    try:
        counts = {k: pc.count_distinct(table.column(k), mode="all").as_py() for k in keys}
    except pa.ArrowNotImplementedError:  # a key column of a type it does not count
        return False
    varying = [n for n in counts.values() if n > 1]
    if not varying:
        return bool(table.num_rows == 1)
    return len(varying) == 1 and varying[0] == table.num_rows


def report_of(
    project: Project,
    ledger: LedgerReader,
    record: PartitionRecord,
    *,
    reissued_by: str | None = None,
    run: RunRecord | None = None,
) -> PartitionReport:
    """The partition report of a published partition, from the ledger alone: its record, the
    attempt that published it and that attempt's run (``run``: that run's record, when the
    caller holds it — a run writing its reports reads its own record once, not per report).
    The one place a report is built."""
    from backfiller.actions.spec import Action, RunSpec  # a restore's spec names its source

    run_id, attempt_no = record.last_run_id, record.last_attempt
    if run_id is None or attempt_no is None or record.data_version is None:
        raise StepError(f"{record.asset} {record.partition_key} was never published")
    if run is None or run.run_id != run_id:
        run = ledger.runs.get(run_id)
    attempt = ledger.runs.attempt(run_id, record.asset, record.partition_key, attempt_no)
    if run is None or attempt is None:
        raise StepError(
            f"{record.asset} {record.partition_key}: the ledger has no attempt {attempt_no} "
            f"of run {run_id}"
        )
    target = AssetPartition(record.asset, record.partition_key)
    # only a restore's steps name a version: a run of any other action is not parsed (its
    # steps are every partition it computes, and every one of them gets a report)
    restored = (
        next(
            (s.version for s in RunSpec.of_run(run).steps if s.target == target and s.version),
            None,
        )
        if run.action == Action.RESTORE.value
        else None
    )
    window = project.scheme_of(record.asset).window(record.partition_key)
    rendered = window.render() if window else (None, None)
    return PartitionReport(
        asset=record.asset,
        partition_key=record.partition_key,
        window_start=rendered[0],
        window_end=rendered[1],
        run_id=run_id,
        plan_id=run.plan_id,
        action=run.action,
        operator=run.operator,
        data_version=record.data_version,
        previous_data_version=attempt.version_before,
        row_count=record.row_count or 0,
        previous_row_count=attempt.rows_before,
        fingerprint=record.fingerprint or "",
        manifest_id=record.manifest_id,
        manifest_checksum=record.manifest_checksum,
        idempotency_guard=project.graph.get(record.asset).idempotency_guard,
        upstream_versions=record.upstream_versions,
        restored_from_version=restored,
        reissued_by_run_id=reissued_by,
    )


@dataclass
class StepRunner:
    """Executes the steps of one run; shared by the run's worker threads."""

    project: Project
    ledger: Ledger
    run_id: str
    spec: RunSpec
    forced_failures: frozenset[tuple[str, str, str]] = frozenset()
    resuming: bool = False
    #: where each step's computation runs (the run's own threads unless told otherwise)
    executor: Executor = field(default_factory=LocalExecutor)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stored_counts: dict[str, dict[str, int] | None] = field(default_factory=dict)
    # partitions published in this run, for downstream steps to read without a scan
    _published: PublishedCache = field(
        default_factory=lambda: PublishedCache(
            max_bytes=_PUBLISHED_CACHE_BYTES, max_entries=_PUBLISHED_CACHE_ENTRIES
        )
    )
    _read_schemas: dict[str, pa.Schema] = field(default_factory=dict)
    #: each step handed out and not yet recorded: its task (the upstream tables pinned) and
    #: the data version of each upstream partition at that pin — what the step read, which
    #: its record names (not what the ledger says by the time it publishes)
    _pins: dict[AssetPartition, tuple[StepTask, dict[str, dict[str, int | None]]]] = field(
        default_factory=dict
    )
    _heartbeat: Heartbeat | None = None
    #: this run's ledger record (its action, plan and operator never change), read once
    _run_record: RunRecord | None = None

    @property
    def lease_ttl(self) -> float:
        return self.spec.lease_ttl or float(self.project.config.lease_ttl_seconds)

    @property
    def heartbeat(self) -> Heartbeat:
        with self._lock:
            if self._heartbeat is None:
                self._heartbeat = Heartbeat(self.ledger.leases, self.lease_ttl)
            return self._heartbeat

    def close(self) -> None:
        """Stop renewing leases (the run's steps are over)."""
        if self._heartbeat is not None:
            self._heartbeat.stop()

    # -- the step -----------------------------------------------------------------------
    def run_step(self, step: Step, attempt: int) -> StepResult:
        """One step under its lease; a partition leased by another live run is a conflict,
        not a failure."""
        lease = self._acquire(step)
        if isinstance(lease, StepResult):
            return lease
        crash_point("after_lease")
        heartbeat = self.heartbeat
        heartbeat.hold(lease)  # renewed every TTL/3 while the step computes
        try:
            return self.run_leased(step, attempt, lease)
        finally:
            heartbeat.drop(lease)
            self.ledger.leases.release(lease)

    def _acquire(self, step: Step) -> Lease | StepResult:
        """The step's lease, or its result when another live run holds it (a conflict)."""
        asset, key = step.target
        try:
            return self.ledger.leases.acquire(
                asset,
                key,
                holder=self.spec.operator,
                plan_id=self.spec.plan_id,
                run_id=self.run_id,
                ttl_seconds=self.lease_ttl,
                # never a token the table would refuse (a ledger started afresh)
                floor=self.project.store.fence_token(asset, key) or 0,
            )
        except LeaseConflict as conflict:
            held = conflict.lease
            return StepResult(
                asset,
                key,
                StepOutcome.CONFLICT,
                error=f"leased by {held.holder} (plan {held.plan_id}, run {held.run_id}) "
                f"since {held.acquired_at}, until {held.expires_at}",
            )

    # -- a group of steps, published together ----------------------------------------------
    def run_group(self, items: Sequence[tuple[Step, int]], limits: GroupLimits) -> list[StepResult]:
        """Compute steps of one asset (none depending on another) published by as few Delta
        commits as ``limits`` allow. Each step is leased, started and staged as if alone;
        the staged steps of a commit are checked together (a built-in check runs once for
        them, grouped by partition; each step's results are its own, recorded as if alone);
        those whose blocking checks pass are published together, in one commit that
        replaces exactly their partitions and carries each one's fencing token and marker
        (so each partition's version, rows and fingerprint — computed in one pass for the
        commit, each partition's as if alone — are known exactly, and resume finds a landed
        commit per partition). A step that fails, fails a blocking check or
        loses its lease is settled alone and left out of the commit: its old version stays
        visible while the others publish. The ledger records each phase of the group in one
        transaction."""
        asset = self.project.graph.get(items[0][0].target.asset)
        results: dict[AssetPartition, StepResult] = {}
        members: list[_Member] = []
        with self.ledger.batch():
            for step, attempt in items:
                lease = self._acquire(step)
                if isinstance(lease, StepResult):
                    results[step.target] = lease
                    continue
                members.append(self._start(step, attempt, lease))
        # a group's leases and its attempts' starts are one ledger transaction: both points
        # lie after it
        crash_point("after_lease")
        crash_point("after_start")
        heartbeat = self.heartbeat
        for member in members:
            heartbeat.hold(member.lease)
        try:
            # every member's computation is handed out at once (an executor with a cluster
            # computes them side by side); they are taken back in order, and each is let go
            # once taken: a computation keeps its rows, and the group holds only what it has
            # staged and not yet published (``limits.bytes``), not every member's rows
            pinned: dict[str, int | None] = {}  # the upstream tables' versions, read once
            computing = deque(self._submit(member.step, asset, pinned) for member in members)
            staged: list[tuple[_Member, pa.Table]] = []
            rows = size = 0
            began = time.monotonic()
            for member in members:
                future = computing.popleft()
                if not self.ledger.leases.is_current(member.lease):
                    results[member.step.target] = self._superseded(member, _TakenOver())
                    continue
                outcome = self._staged(member, asset, future)
                if isinstance(outcome, StepResult):
                    results[member.step.target] = outcome
                    continue
                staged.append((member, outcome))
                rows += outcome.num_rows
                size += outcome.nbytes
                if (
                    rows >= limits.rows
                    or size >= limits.bytes
                    or time.monotonic() - began >= limits.seconds
                ):
                    results.update(self._audit_and_publish(asset, staged))
                    staged, rows, size = [], 0, 0
                    began = time.monotonic()
            if staged:
                results.update(self._audit_and_publish(asset, staged))
        finally:
            for member in members:
                heartbeat.drop(member.lease)
            with self.ledger.batch():
                for member in members:
                    self.ledger.leases.release(member.lease)
        return [results[step.target] for step, _ in items]

    def _start(
        self, step: Step, attempt: int, lease: Lease, before: PartitionRecord | None = None
    ) -> _Member:
        """Record the attempt's start (``before``: the partition's record, if read already)."""
        asset, key = step.target
        if before is None:
            before = self.ledger.partitions.get(asset, key)
        rows_before = before.row_count if before else self._stored_rows(asset, key)
        self.ledger.partitions.start(
            asset,
            key,
            run_id=self.run_id,
            attempt=attempt,
            operator=self.spec.operator,
            rows_before=rows_before,
        )
        return _Member(step, attempt, lease, before, rows_before)

    def _staged(
        self, member: _Member, asset: Asset, future: StepFuture | None = None
    ) -> pa.Table | StepResult:
        """The member's staged rows (``future``: its computation, handed out already); else
        its settled result (the step failed)."""
        try:
            future = future or self._submit(member.step, asset)
            staged = enforce_guard(asset, future.result())
            crash_point("after_compute")
        except WriteBlockedError:
            raise
        except Exception as exc:
            return self._failed(member, exc)
        return staged

    def _audit_and_publish(
        self, asset: Asset, staged: list[tuple[_Member, pa.Table]]
    ) -> dict[AssetPartition, StepResult]:
        """Check the staged members together (each check once for them all, each member's
        results recorded as its own), settle those that fail or fail a blocking check, and
        publish the others by one commit."""
        results: dict[AssetPartition, StepResult] = {}
        passed = []
        audits = self._audit_group(asset, staged)
        for (member, table), failures in zip(staged, audits, strict=True):
            step = member.step
            if isinstance(failures, WriteBlockedError):
                raise failures
            if isinstance(failures, Exception):
                results[step.target] = self._failed(member, failures)
            elif failures:
                message = "; ".join(failures)
                self._settle_failure(step, member.attempt, member.lease, message, checks=True)
                results[step.target] = StepResult(
                    *step.target,
                    StepOutcome.CHECK_FAILED,
                    rows=table.num_rows,
                    rows_before=member.rows_before,
                    error=message,
                )
            else:
                passed.append((member, table))
        if passed:
            results.update(self._publish_group(asset, passed))
        return results

    def _failed(self, member: _Member, exc: Exception) -> StepResult:
        with self._lock:
            self._pins.pop(member.step.target, None)
        transient = (isinstance(exc, StepError) and exc.transient) or isinstance(exc, OSError)
        message = (
            exc.message if isinstance(exc, BackfillerError) else f"{type(exc).__name__}: {exc}"
        )
        message = self._settle_failure(
            member.step, member.attempt, member.lease, message, transient=transient
        )
        return StepResult(
            *member.step.target,
            StepOutcome.FAILED,
            rows_before=member.rows_before,
            error=message,
            transient=transient,
        )

    def _superseded(self, member: _Member, exc: Exception) -> StepResult:
        message = _superseded(member.lease, exc)
        asset, key = member.step.target
        self.ledger.partitions.abandon_attempt(
            asset, key, run_id=self.run_id, attempt=member.attempt, error=message
        )
        return StepResult(
            asset, key, StepOutcome.CONFLICT, rows_before=member.rows_before, error=message
        )

    def _publish_group(
        self, asset: Asset, staged: list[tuple[_Member, pa.Table]]
    ) -> dict[AssetPartition, StepResult]:
        """One commit for the staged members still holding their leases, then their ledger
        records (one transaction) and their reports."""
        results: dict[AssetPartition, StepResult] = {}
        live = []
        for member, table in staged:
            if self.ledger.leases.is_current(member.lease):
                live.append((member, table))
            else:
                results[member.step.target] = self._superseded(member, _TakenOver())
        version = None
        while live:
            crash_point("before_commit")
            try:
                version = self.project.store.write_partitions(
                    asset.key,
                    _concat([table for _, table in live]),
                    [m.step.target.partition_key for m, _ in live],
                    self._group_commit([m for m, _ in live]),
                )
            except FencedError as exc:  # that partition is another holder's: the rest go on
                (fenced,) = [m for m, _ in live if m.step.target.partition_key == exc.partition]
                results[fenced.step.target] = self._superseded(fenced, exc)
                live = [(m, t) for m, t in live if m is not fenced]
                continue
            except WriteBlockedError:
                raise
            except Exception as exc:
                results.update({m.step.target: self._failed(m, exc) for m, _ in live})
                return results
            crash_point("after_commit")
            break
        if live:
            assert version is not None
            results.update(self._record_landed(asset, live, version))
        return results

    def _record_landed(
        self, asset: Asset, landed: list[tuple[_Member, pa.Table]], version: int
    ) -> dict[AssetPartition, StepResult]:
        """Record the members whose rows landed in commit ``version`` (one ledger
        transaction; a record an operator with a newer token has made since is a conflict),
        then write their reports."""
        results: dict[AssetPartition, StepResult] = {}
        # one pass over the group's rows, each partition's fingerprint as if alone
        prints = fingerprint_tables([table for _, table in landed])
        with self.ledger.batch():
            for (member, table), fingerprint in zip(landed, prints, strict=True):
                try:
                    results[member.step.target] = self._publish_record(
                        member, asset, table, version, fingerprint
                    )
                except PublishSuperseded as exc:
                    results[member.step.target] = self._superseded(member, exc)
        crash_point("after_ledger_publish")
        reported = [t for t, r in results.items() if r.outcome is StepOutcome.PUBLISHED]
        try:
            # the reports are written together: all synced, then all renamed into place
            with one_folder_sync():
                for target in reported:
                    self._write_current_report(target)
        except OSError as exc:  # finishing the writes (one that could not start says so)
            keys = ", ".join(t.partition_key for t in reported)
            what = f"the partition report(s) of {asset.key} {keys}"
            raise write_blocked(what, exc, run_id=self.run_id) from exc
        for _ in reported:
            crash_point("after_report")
        return results

    def _group_commit(self, members: Sequence[_Member]) -> CommitInfo:
        """What the commit of ``members`` carries: the run's metadata, the partition keys (a
        restore: the version it restores), each partition's marker ("did my commit land?")
        and fencing token (the lease's: a table that has seen a newer token refuses the
        commit, however late this holder is)."""
        keys = [m.step.target.partition_key for m in members]
        manifests = dict.fromkeys(
            found[0].manifest_id
            for m in members
            if m.step.source is StepSource.COMPUTE
            and (found := self.project.manifests.for_partition(m.step.target.partition_key))
        )
        extra = {CommitKey.PARTITION_KEYS: ",".join(keys)}
        restored = {m.step.version for m in members if m.step.version is not None}
        if restored:
            (version,) = restored
            extra[CommitKey.RESTORED_FROM_VERSION] = str(version)
        return CommitInfo(
            dimension_columns=dimension_columns(
                self.project.scheme_of(members[0].step.target.asset)
            ),
            run_id=self.run_id,
            plan_id=self.spec.plan_id,
            manifest_ids=tuple(manifests),
            operator=self.spec.operator,
            action=self.spec.action.value,
            markers=tuple(
                (app_id(self.run_id, m.step.target.partition_key), m.attempt) for m in members
            ),
            fences=tuple((m.step.target.partition_key, m.lease.token) for m in members),
            extra=extra,
        )

    def run_leased(self, step: Step, attempt: int, lease: Lease) -> StepResult:
        """The step under ``lease``; a fenced lease (taken over since) touches nothing."""
        if not self.ledger.leases.is_current(lease):  # fenced: another run's now
            return StepResult(*step.target, StepOutcome.CONFLICT, error=_fenced(lease))
        if step.source is StepSource.REPORT:
            return self._reissue(step, attempt)
        return self._publish_step(step, attempt, lease)

    def _publish_step(self, step: Step, attempt: int, lease: Lease) -> StepResult:
        store = self.project.store
        asset_key, key = step.target
        asset = self.project.graph.get(asset_key)
        before = self.ledger.partitions.get(asset_key, key)
        marker = app_id(self.run_id, key)
        # only a run that was interrupted before can have commits that landed
        landed = store.committed_step(asset_key, marker) if self.resuming else None
        if landed is not None and before is not None and before.last_run_id != self.run_id:
            return StepResult(
                asset_key,
                key,
                StepOutcome.FAILED,
                error=f"run {before.last_run_id} wrote this partition after this run's "
                "commit landed; this run's version is no longer current",
            )
        member = self._start(step, attempt, lease, before)
        crash_point("after_start")
        if landed is None:
            outcome = self._staged(member, asset)
            if isinstance(outcome, StepResult):
                return outcome
            # a group of one: the same checks, commit, record and report as a group's
            return self._audit_and_publish(asset, [(member, outcome)])[step.target]
        try:
            # the commit landed before a crash; record it instead of writing again
            version = self._landed_version(asset_key, key)
            staged = store.read_partition(asset_key, key, version=version)
            assert staged is not None
            return self._record_landed(asset, [(member, staged)], version)[step.target]
        except WriteBlockedError:
            raise  # the run stops here, as if interrupted; resume finishes it
        except Exception as exc:
            return self._failed(member, exc)

    def _submit(
        self, step: Step, asset: Asset, pinned: dict[str, int | None] | None = None
    ) -> StepFuture:
        """The rows the step would publish, not yet visible to anyone: its computation handed
        to the executor, or (a restore) the retained version, read here. A computation that
        cannot be handed out fails when its result is asked for. ``pinned``: upstream table
        versions read already for the steps handed out with this one (filled in)."""
        if step.source is StepSource.VERSION:
            return Deferred(lambda: self._retained(step, asset))
        key = step.target.partition_key
        try:
            task = self._task(asset, key, {} if pinned is None else pinned)
            return self.executor.submit(task, self._read_upstream(asset, key))
        except Exception as exc:  # e.g. a task that does not pickle, a cluster gone
            return _Raising(exc)

    def _retained(self, step: Step, asset: Asset) -> pa.Table:
        key = step.target.partition_key
        assert step.version is not None
        data = self.project.store.read_partition(asset.key, key, version=step.version)
        if data is None or data.num_rows == 0:
            raise StepError(
                f"{asset.key} {key}: version {step.version} no longer holds this partition",
                hint="restore needs a snapshot that still exists",
            )
        return data

    def _reissue(self, step: Step, attempt: int) -> StepResult:
        """Verify a published partition against the ledger and write its report again; nothing
        is recomputed or published."""
        asset, key = step.target
        record = self.ledger.partitions.get(asset, key)
        data = self.project.store.read_partition(asset, key)
        if record is None or record.status is not PartitionStatus.MATERIALIZED or data is None:
            return StepResult(
                asset, key, StepOutcome.FAILED, error="not materialized; cannot reissue its report"
            )
        actual = fingerprint_table(data)
        if actual != record.fingerprint:
            return StepResult(
                asset,
                key,
                StepOutcome.FAILED,
                error=f"stored data fingerprint {actual[:12]} differs from the ledger's "
                f"{(record.fingerprint or '')[:12]}; replay or restore instead",
            )
        if not self.report_is_current(record):
            self._write_report(record, reissued_by=self.run_id)
        crash_point("after_report")
        self.ledger.partitions.reissue_attempt(
            asset,
            key,
            run_id=self.run_id,
            attempt=attempt,
            rows=record.row_count,
            version=record.data_version,
            fingerprint=record.fingerprint,
        )
        return StepResult(
            asset,
            key,
            StepOutcome.REPORT_REISSUED,
            rows=record.row_count or 0,
            rows_before=record.row_count,
            version=record.data_version,
            version_before=record.data_version,
            fingerprint=actual,
        )

    # -- compute ------------------------------------------------------------------------
    def _read_upstream(self, asset: Asset, key: str) -> Callable[[str], pa.Table]:
        """A reader of the upstream rows ``(asset, key)`` reads: the versions its task pinned
        (from this run's cache of what it just published when that is the same version),
        with either executor; the store's latest for a step handed out by no task."""
        mapping = self.project.graph.upstream_partitions(asset.key, key)
        with self._lock:
            pin = self._pins.get(AssetPartition(asset.key, key))
        from_store = (
            store_reader(self.project, asset.key, key) if pin is None else pin[0].read_pinned
        )

        def read(upstream: str) -> pa.Table:
            cached = self._cached(upstream, mapping[upstream], None if pin is None else pin[1])
            if cached is not None:
                return cached
            data = from_store(upstream)
            if data.num_rows:
                with self._lock:
                    self._read_schemas[upstream] = data.schema
            return data

        return read

    def _task(self, asset: Asset, key: str, pinned: dict[str, int | None]) -> StepTask:
        """The pure computation of ``(asset, key)``: its window, its manifest's declaration
        and its upstream partitions pinned at the tables' current versions (every upstream
        step of this run is done: the scheduler saw to it); ``pinned``: versions read
        already, for the other steps handed out at the same time."""
        store = self.project.store
        mapping = self.project.graph.upstream_partitions(asset.key, key)
        # the ledger first, then the tables: a publish is committed before it is recorded,
        # so every version recorded now is in the table version pinned after it
        read = {
            up: {
                k: rec.data_version if (rec := self.ledger.partitions.get(up, k)) else None
                for k in keys
            }
            for up, keys in mapping.items()
        }
        versions: dict[str, int | None] = {}
        for up in mapping:
            if up not in pinned:
                pinned[up] = store.version(up)
            version = pinned[up]
            newest = max((v for v in read[up].values() if v is not None), default=None)
            if newest is not None and (version is None or newest > version):
                version = store.version(up)  # published since the group's pin: read that
            versions[up] = version
        declared = self.project.manifests.for_partition(key)
        manifest, part = declared if declared else (None, None)
        task = StepTask(
            asset=asset,
            partition_key=key,
            window=self.project.scheme_of(asset.key).window(key),
            manifest=manifest,
            manifest_partition=part,
            project_root=self.project.root,
            run_id=self.run_id,
            store=store,
            upstream=tuple(
                PinnedUpstream(up, tuple(keys), versions[up]) for up, keys in mapping.items()
            ),
            storage_options=self.project.config.storage_options,
        )
        with self._lock:
            self._pins[AssetPartition(asset.key, key)] = (task, read)
        return task

    def compute(self, asset: Asset, key: str) -> pa.Table:
        """The rows of ``(asset, key)``, computed by the executor (before the guard)."""
        return self._submit(Step(AssetPartition(asset.key, key)), asset).result()

    def _cached(
        self, asset: str, keys: Sequence[str], read: dict[str, dict[str, int | None]] | None
    ) -> pa.Table | None:
        """The partitions this run just published, if every one is the version the step reads
        (``read``: the versions its task pinned; ``None``: the ledger's current ones) and has
        exactly the schema a read from the store gives; else ``None`` (read them)."""
        with self._lock:
            schema = self._read_schemas.get(asset)
        hits = [self._published.get(AssetPartition(asset, k)) for k in keys]
        if schema is None or not keys or any(h is None for h in hits):
            return None
        tables = []
        for k, hit in zip(keys, hits, strict=True):
            assert hit is not None
            version, table = hit
            if read is not None:
                expected = read.get(asset, {}).get(k)
            else:
                record = self.ledger.partitions.get(asset, k)
                expected = None if record is None else record.data_version
            if expected != version or table.schema != schema:
                return None
            tables.append(table)
        return pa.concat_tables(tables)

    def expect_reads(self, readers: Mapping[AssetPartition, int]) -> None:
        """The run takes a new stretch of steps: ``readers`` says how many of them read each
        partition (what this run publishes of those stays in memory until they are done)."""
        self._published.expect(readers)

    def done_reading(self, targets: Iterable[AssetPartition]) -> None:
        """A step of the stretch is settled: it reads ``targets`` no more."""
        self._published.done(targets)

    def _remember(self, target: AssetPartition, version: int, table: pa.Table) -> None:
        self._published.put(target, version, table)

    def _stored_rows(self, asset: str, key: str) -> int | None:
        """Rows stored for a partition the ledger does not know, from the Delta log — read once
        per asset and run: re-reading the whole log for every new partition makes a long
        backfill slower with every day it adds."""
        with self._lock:
            if asset not in self._stored_counts:
                store = self.project.store
                self._stored_counts[asset] = (
                    store.partition_counts(asset) if store.exists(asset) else None
                )
            counts = self._stored_counts[asset]
        return None if counts is None else counts.get(key)

    # -- audit, commit, record ----------------------------------------------------------
    def _audit_group(
        self, asset: Asset, staged: Sequence[tuple[_Member, pa.Table]]
    ) -> list[list[str] | Exception]:
        """Run the asset's checks on each member's staged rows (a built-in check once for
        them all), record every result, and return each member's blocking failures (an
        empty list: publish) or the exception a check raised there."""
        outcomes = check_group(
            self.project,
            self.ledger,
            asset.key,
            [
                (key, table, self._read_upstream(asset, key))
                for m, table in staged
                for key in [m.step.target.partition_key]
            ],
            run_id=self.run_id,
            on_staged=True,
            forced_failures=self.forced_failures,
        )
        return [
            o if isinstance(o, Exception) else [r.describe() for r in o if r.blocking]
            for o in outcomes
        ]

    def _landed_version(self, asset: str, key: str) -> int:
        for record in self.project.store.history(asset):
            meta = record.metadata
            keys = meta.get(CommitKey.PARTITION_KEYS) or ""
            # one key, or a group commit's keys (never grouped: a key holding a comma)
            if meta.get(CommitKey.RUN_ID) == self.run_id and (
                keys == key or key in keys.split(",")
            ):
                return record.version
        raise StepError(
            f"{asset} {key}: the commit of run {self.run_id} landed but is not in the table history"
        )

    def _settle_failure(
        self,
        step: Step,
        attempt: int,
        lease: Lease,
        message: str,
        *,
        transient: bool = False,
        checks: bool = False,
    ) -> str:
        """Record a failed step. If the lease was taken over meanwhile, the partition is the
        new holder's: only this attempt is closed, its status is left alone."""
        asset, key = step.target
        if not self.ledger.leases.is_current(lease):
            message = f"lease lost to another run; {message}"
            self.ledger.partitions.abandon_attempt(
                asset, key, run_id=self.run_id, attempt=attempt, error=message
            )
            return message
        self.ledger.partitions.fail(
            asset,
            key,
            run_id=self.run_id,
            attempt=attempt,
            operator=self.spec.operator,
            error=message,
            transient=transient,
            checks=checks,
        )
        return message

    def _write_current_report(self, target: AssetPartition) -> None:
        record = self.ledger.partitions.get(*target)
        assert record is not None
        self._write_report(record)

    def _publish_record(
        self, member: _Member, asset: Asset, staged: pa.Table, version: int, fingerprint: str
    ) -> StepResult:
        """Record the member's landed publication in the ledger (its report comes after);
        ``fingerprint``: that of ``staged``."""
        step, before = member.step, member.before
        key = step.target.partition_key
        if step.source is StepSource.VERSION:
            # a restore publishes what the replaced version was built from
            manifest_id = before.manifest_id if before else None
            checksum = before.manifest_checksum if before else None
            consumed = before.upstream_versions if before else {}
        else:
            declared = self.project.manifests.for_partition(key)
            manifest_id = declared[0].manifest_id if declared else None
            checksum = declared[1].checksum if declared else None
            with self._lock:
                pin = self._pins.pop(step.target, None)
            # what its computation read; a commit that landed before a crash (recorded by
            # resume, not computed here): the versions the ledger names now
            consumed = (
                pin[1]
                if pin is not None
                else {
                    up: {
                        k: rec.data_version if (rec := self.ledger.partitions.get(up, k)) else None
                        for k in keys
                    }
                    for up, keys in self.project.graph.upstream_partitions(asset.key, key).items()
                }
            )
        self.ledger.partitions.publish(
            asset.key,
            key,
            run_id=self.run_id,
            attempt=member.attempt,
            operator=self.spec.operator,
            data_version=version,
            row_count=staged.num_rows,
            fingerprint=fingerprint,
            manifest_id=manifest_id,
            manifest_checksum=checksum,
            upstream_versions=consumed,
            lease_token=member.lease.token,
        )
        self._remember(step.target, version, staged)
        return StepResult(
            asset.key,
            key,
            StepOutcome.PUBLISHED,
            rows=staged.num_rows,
            rows_before=member.rows_before,
            version=version,
            version_before=before.data_version if before else None,
            fingerprint=fingerprint,
        )

    # -- the partition report -----------------------------------------------------------
    def report_is_current(self, record: PartitionRecord) -> bool:
        """Whether the partition's report file describes the ledger's current version."""
        report = read_partition_report(
            self.project.partition_report_path(record.asset, record.partition_key)
        )
        return (
            report is not None
            and report.run_id == record.last_run_id
            and report.data_version == record.data_version
            and report.fingerprint == record.fingerprint
        )

    def _write_report(self, record: PartitionRecord, *, reissued_by: str | None = None) -> None:
        """Write the report; a file system that refuses stops the run as an interruption
        (the publication is recorded; resume writes the report)."""
        path = self.project.partition_report_path(record.asset, record.partition_key)
        if self._run_record is None:
            self._run_record = self.ledger.runs.get(self.run_id)
        report = report_of(
            self.project, self.ledger, record, reissued_by=reissued_by, run=self._run_record
        )
        try:
            write_partition_report(path, report)
        except OSError as exc:
            raise write_blocked(
                f"the partition report of {record.asset} {record.partition_key}",
                exc,
                run_id=self.run_id,
            ) from exc

    def finish_published(self, target: AssetPartition) -> StepResult:
        """A step this run published before (it was interrupted, or is being retried): write
        its report if a crash came between the ledger record and the report."""
        record = self.ledger.partitions.get(*target)
        assert record is not None
        if record.last_run_id == self.run_id and not self.report_is_current(record):
            self._write_report(record)
        return StepResult(
            target.asset,
            target.partition_key,
            StepOutcome.ALREADY_PUBLISHED,
            rows=record.row_count or 0,
            version=record.data_version,
            fingerprint=record.fingerprint,
        )


@dataclass(frozen=True)
class GroupLimits:
    """How many partitions of one asset a run publishes by one commit: up to ``size`` (the
    scheduler's unit), committed early once the staged rows reach ``rows`` or their Arrow
    buffers ``bytes`` (what a group holds in memory), or staging has taken ``seconds`` (a slow
    group still shows its progress)."""

    size: int = 1
    rows: int = 500_000
    #: a commit of 64 MiB of staged rows made the process peak above 600 MiB on the year
    #: benchmark at 10,000 rows a day (the Delta writer holds several times what it writes);
    #: at 16 MiB it peaked at 493 MiB, at 8 MiB 457 MiB, for the same CPU (a group of 64 days
    #: at 1,000 rows a day, about 8 MiB, still commits whole)
    bytes: int = 8 * 2**20
    seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.size < 1 or self.rows < 1 or self.bytes < 1 or self.seconds <= 0:
            raise ValueError("group limits must be positive")


@dataclass(frozen=True)
class _Member:
    """A step of a group, leased and started."""

    step: Step
    attempt: int
    lease: Lease
    before: PartitionRecord | None
    rows_before: int | None


class _Raising:
    """A computation that could not be handed out: its result is the exception."""

    def __init__(self, error: Exception) -> None:
        self._error = error

    def result(self) -> pa.Table:
        raise self._error


def _concat(tables: list[pa.Table]) -> pa.Table:
    """The staged partitions as one table (columns a partition lacks are nulls there)."""
    if len(tables) == 1:
        return tables[0]
    return pa.concat_tables(tables, promote_options="default")


def _fenced(lease: Lease) -> str:
    return (
        f"{lease.asset} {lease.partition_key}: the lease (token {lease.token}) was taken over "
        "by another run; refusing this late publish"
    )


class _TakenOver(Exception):
    """The lease was taken over before the commit (seen in the ledger)."""


def _superseded(lease: Lease, exc: Exception) -> str:
    """Why a holder that lost its lease wrote nothing (the commit refused) or recorded
    nothing (its commit replaced by a newer holder's)."""
    if isinstance(exc, _TakenOver):
        return _fenced(lease)
    if isinstance(exc, FencedError):
        return (
            f"the lease (token {lease.token}) was taken over by another run, which holds token "
            f"{exc.seen}; the table refused this late commit, nothing was written"
        )
    assert isinstance(exc, PublishSuperseded)
    return (
        f"the lease (token {lease.token}) was taken over by run {exc.run_id} (token "
        f"{exc.token}), which published after this commit; its version stands"
    )


def new_run_id(clock_iso: str) -> str:
    stamp = clock_iso[:19].replace("-", "").replace(":", "")
    return f"run-{stamp}-{uuid.uuid4().hex[:8]}"
