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
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from backfiller.actions.checking import check_partition, store_reader
from backfiller.actions.faults import crash_point
from backfiller.actions.heartbeat import Heartbeat
from backfiller.actions.spec import RunSpec, Step, StepSource
from backfiller.assets import Asset, AssetContext
from backfiller.engine import fingerprint_table, query, to_arrow
from backfiller.errors import BackfillerError, WriteBlockedError, write_blocked
from backfiller.ledger import (
    Lease,
    LeaseConflict,
    Ledger,
    LedgerReader,
    PartitionRecord,
    PartitionStatus,
    PublishSuperseded,
)
from backfiller.manifests import verify_inputs
from backfiller.project import Project
from backfiller.refs import AssetPartition
from backfiller.reports import PartitionReport, read_partition_report, write_partition_report
from backfiller.store import CommitInfo, CommitKey, FencedError
from backfiller.store.delta import PARTITION_COLUMN

__all__ = ["StepError", "StepOutcome", "StepResult", "StepRunner", "enforce_guard", "report_of"]


_PUBLISHED_CACHE = 16


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


class StepError(BackfillerError):
    """One (asset, partition) step failed; ``transient`` says whether a retry may help."""

    def __init__(self, message: str, *, transient: bool = False, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.transient = transient


def app_id(run_id: str, key: str) -> str:
    """The app-transaction id of a run's commit of one partition: "did my commit land?"."""
    return f"backfiller:{run_id}:{key}"


def _with_partition_column(table: pa.Table, key: str) -> pa.Table:
    if PARTITION_COLUMN in table.column_names:
        return table
    return table.append_column(PARTITION_COLUMN, pa.array([key] * table.num_rows, pa.string()))


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


def report_of(
    project: Project,
    ledger: LedgerReader,
    record: PartitionRecord,
    *,
    reissued_by: str | None = None,
) -> PartitionReport:
    """The partition report of a published partition, from the ledger alone: its record, the
    attempt that published it and that attempt's run. The one place a report is built."""
    from backfiller.actions.spec import RunSpec  # the run's spec names a restore's source

    run_id, attempt_no = record.last_run_id, record.last_attempt
    if run_id is None or attempt_no is None or record.data_version is None:
        raise StepError(f"{record.asset} {record.partition_key} was never published")
    run = ledger.runs.get(run_id)
    attempt = ledger.runs.attempt(run_id, record.asset, record.partition_key, attempt_no)
    if run is None or attempt is None:
        raise StepError(
            f"{record.asset} {record.partition_key}: the ledger has no attempt {attempt_no} "
            f"of run {run_id}"
        )
    target = AssetPartition(record.asset, record.partition_key)
    restored = next(
        (s.version for s in RunSpec.of_run(run).steps if s.target == target and s.version),
        None,
    )
    window = project.scheme.window(record.partition_key)
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
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stored_counts: dict[str, dict[str, int] | None] = field(default_factory=dict)
    # the last partitions published in this run, for downstream steps to read without a scan
    _published: OrderedDict[AssetPartition, tuple[int, pa.Table]] = field(
        default_factory=OrderedDict
    )
    _read_schemas: dict[str, pa.Schema] = field(default_factory=dict)
    _heartbeat: Heartbeat | None = None

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
        asset, key = step.target
        try:
            lease = self.ledger.leases.acquire(
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
        crash_point("after_lease")
        heartbeat = self.heartbeat
        heartbeat.hold(lease)  # renewed every TTL/3 while the step computes
        try:
            return self.run_leased(step, attempt, lease)
        finally:
            heartbeat.drop(lease)
            self.ledger.leases.release(lease)

    def run_leased(self, step: Step, attempt: int, lease: Lease) -> StepResult:
        """The step under ``lease``; a fenced lease (taken over since) touches nothing."""
        if not self.ledger.leases.is_current(lease):  # fenced: another run's now
            return StepResult(*step.target, StepOutcome.CONFLICT, error=_fenced(lease))
        if step.source is StepSource.REPORT:
            return self._reissue(step, attempt)
        return self._publish_step(step, attempt, lease)

    def _publish_step(self, step: Step, attempt: int, lease: Lease) -> StepResult:
        store, ledger = self.project.store, self.ledger
        asset_key, key = step.target
        asset = self.project.graph.get(asset_key)
        before = ledger.partitions.get(asset_key, key)
        rows_before = before.row_count if before else self._stored_rows(asset_key, key)
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
        ledger.partitions.start(
            asset_key,
            key,
            run_id=self.run_id,
            attempt=attempt,
            operator=self.spec.operator,
            rows_before=rows_before,
        )
        crash_point("after_start")
        try:
            if landed is not None:
                # the commit landed before a crash; record it instead of writing again
                version = self._landed_version(asset_key, key)
                staged = store.read_partition(asset_key, key, version=version)
                assert staged is not None
            else:
                staged = self._stage(step, asset)
                crash_point("after_compute")
                failures = self._audit(asset, key, staged)
                if failures:
                    message = "; ".join(failures)
                    self._settle_failure(step, attempt, lease, message, checks=True)
                    return StepResult(
                        asset_key,
                        key,
                        StepOutcome.CHECK_FAILED,
                        rows=staged.num_rows,
                        rows_before=rows_before,
                        error=message,
                    )
                if not ledger.leases.is_current(lease):
                    raise _TakenOver
                crash_point("before_commit")
                # the lease's token travels into the commit: a table that has seen a newer
                # token refuses it, however late this holder is
                version = store.write_partitions(
                    asset_key, staged, [key], self._commit(step, marker, attempt, lease)
                )
                crash_point("after_commit")
            return self._record(step, asset, attempt, staged, version, before, rows_before, lease)
        except WriteBlockedError:
            raise  # the run stops here, as if interrupted; resume finishes it
        except (FencedError, PublishSuperseded, _TakenOver) as exc:
            message = _superseded(lease, exc)
            self.ledger.partitions.abandon_attempt(
                asset_key, key, run_id=self.run_id, attempt=attempt, error=message
            )
            return StepResult(
                asset_key, key, StepOutcome.CONFLICT, rows_before=rows_before, error=message
            )
        except Exception as exc:
            transient = (isinstance(exc, StepError) and exc.transient) or isinstance(exc, OSError)
            message = (
                exc.message if isinstance(exc, BackfillerError) else f"{type(exc).__name__}: {exc}"
            )
            message = self._settle_failure(step, attempt, lease, message, transient=transient)
            return StepResult(
                asset_key,
                key,
                StepOutcome.FAILED,
                rows_before=rows_before,
                error=message,
                transient=transient,
            )

    def _stage(self, step: Step, asset: Asset) -> pa.Table:
        """The rows the step would publish, not yet visible to anyone."""
        key = step.target.partition_key
        if step.source is StepSource.VERSION:
            assert step.version is not None
            data = self.project.store.read_partition(asset.key, key, version=step.version)
            if data is None or data.num_rows == 0:
                raise StepError(
                    f"{asset.key} {key}: version {step.version} no longer holds this partition",
                    hint="restore needs a snapshot that still exists",
                )
            return enforce_guard(asset, data)
        return enforce_guard(asset, self.compute(asset, key))

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
        mapping = self.project.graph.upstream_partitions(asset.key, key)
        from_store = store_reader(self.project, asset.key, key)

        def read(upstream: str) -> pa.Table:
            cached = self._cached(upstream, mapping[upstream])
            if cached is not None:
                return cached
            data = from_store(upstream)
            if data.num_rows:
                with self._lock:
                    self._read_schemas[upstream] = data.schema
            return data

        return read

    def compute(self, asset: Asset, key: str) -> pa.Table:
        window = self.project.scheme.window(key)
        declared = self.project.manifests.for_partition(key)
        manifest, part = declared if declared else (None, None)
        if asset.uses_manifest:
            if part is None:
                raise StepError(f"{asset.key} {key}: no manifest declares this partition")
            mismatches = verify_inputs(part, self.project.root)
            if mismatches:
                listing = ", ".join(
                    f"{m.path} ({'missing' if m.actual is None else 'checksum differs'})"
                    for m in mismatches
                )
                raise StepError(
                    f"{asset.key} {key}: input files do not match manifest "
                    f"{manifest.manifest_id if manifest else '?'}: {listing}"
                )
        read = self._read_upstream(asset, key)
        if asset.sql is not None:
            tables = {d.asset: read(d.asset) for d in asset.deps}
            params: dict[str, Any] = {"partition_key": key}
            if window is not None:
                params["window_start"] = window.start_utc
                params["window_end"] = window.end_utc
            used = {k: v for k, v in params.items() if f"${k}" in asset.sql}
            data = query(asset.sql, tables, used)
        else:
            assert asset.compute is not None
            context = AssetContext(
                asset=asset,
                partition_key=key,
                window=window,
                manifest=manifest,
                manifest_partition=part,
                project_root=self.project.root,
                read_upstream=read,
                run_id=self.run_id,
            )
            data = to_arrow(asset.compute(context))
        return _with_partition_column(data, key)

    def _cached(self, asset: str, keys: Sequence[str]) -> pa.Table | None:
        """The partitions this run just published, if every one is still the current version
        and has exactly the schema a read from the store gives; else ``None`` (read them)."""
        with self._lock:
            schema = self._read_schemas.get(asset)
            hits = [self._published.get(AssetPartition(asset, k)) for k in keys]
        if schema is None or not keys or any(h is None for h in hits):
            return None
        tables = []
        for k, hit in zip(keys, hits, strict=True):
            assert hit is not None
            version, table = hit
            record = self.ledger.partitions.get(asset, k)
            if record is None or record.data_version != version or table.schema != schema:
                return None
            tables.append(table)
        return pa.concat_tables(tables)

    def _remember(self, target: AssetPartition, version: int, table: pa.Table) -> None:
        with self._lock:
            self._published[target] = (version, table)
            self._published.move_to_end(target)
            while len(self._published) > _PUBLISHED_CACHE:
                self._published.popitem(last=False)

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
    def _audit(self, asset: Asset, key: str, staged: pa.Table) -> list[str]:
        """Run the asset's checks on the staged rows, record every result, and return the
        blocking failures (an empty list: publish)."""
        results = check_partition(
            self.project,
            self.ledger,
            asset.key,
            key,
            staged,
            run_id=self.run_id,
            on_staged=True,
            read_upstream=self._read_upstream(asset, key),
            forced_failures=self.forced_failures,
        )
        return [r.describe() for r in results if r.blocking]

    def _commit(self, step: Step, marker: str, attempt: int, lease: Lease) -> CommitInfo:
        key = step.target.partition_key
        declared = self.project.manifests.for_partition(key)
        extra = {CommitKey.PARTITION_KEYS: key}
        if step.version is not None:
            extra[CommitKey.RESTORED_FROM_VERSION] = str(step.version)
        return CommitInfo(
            run_id=self.run_id,
            plan_id=self.spec.plan_id,
            manifest_ids=(declared[0].manifest_id,)
            if declared and step.source is StepSource.COMPUTE
            else (),
            operator=self.spec.operator,
            action=self.spec.action.value,
            app_id=marker,
            app_version=attempt,
            fences=((key, lease.token),),
            extra=extra,
        )

    def _landed_version(self, asset: str, key: str) -> int:
        for record in self.project.store.history(asset):
            meta = record.metadata
            if meta.get(CommitKey.RUN_ID) == self.run_id and (
                meta.get(CommitKey.PARTITION_KEYS) == key
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

    def _record(
        self,
        step: Step,
        asset: Asset,
        attempt: int,
        staged: pa.Table,
        version: int,
        before: PartitionRecord | None,
        rows_before: int | None,
        lease: Lease,
    ) -> StepResult:
        key = step.target.partition_key
        fingerprint = fingerprint_table(staged)
        if step.source is StepSource.VERSION:
            # a restore publishes what the replaced version was built from
            manifest_id = before.manifest_id if before else None
            checksum = before.manifest_checksum if before else None
            consumed = before.upstream_versions if before else {}
        else:
            declared = self.project.manifests.for_partition(key)
            manifest_id = declared[0].manifest_id if declared else None
            checksum = declared[1].checksum if declared else None
            consumed = {
                up: {
                    k: rec.data_version if (rec := self.ledger.partitions.get(up, k)) else None
                    for k in keys
                }
                for up, keys in self.project.graph.upstream_partitions(asset.key, key).items()
            }
        self.ledger.partitions.publish(
            asset.key,
            key,
            run_id=self.run_id,
            attempt=attempt,
            operator=self.spec.operator,
            data_version=version,
            row_count=staged.num_rows,
            fingerprint=fingerprint,
            manifest_id=manifest_id,
            manifest_checksum=checksum,
            upstream_versions=consumed,
            lease_token=lease.token,
        )
        self._remember(step.target, version, staged)
        crash_point("after_ledger_publish")
        record = self.ledger.partitions.get(asset.key, key)
        assert record is not None
        self._write_report(record)
        crash_point("after_report")
        return StepResult(
            asset.key,
            key,
            StepOutcome.PUBLISHED,
            rows=staged.num_rows,
            rows_before=rows_before,
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
        report = report_of(self.project, self.ledger, record, reissued_by=reissued_by)
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
