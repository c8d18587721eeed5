"""The runner: executes the (asset, partition) steps of a plan, write–audit–publish.

For each step, in dependency order::

    ledger.start → compute → stage (in memory; invisible to readers) → idempotency guard
      → checks hook → publish (one Delta commit with run/plan metadata and an app-transaction
      marker) → ledger.publish (version, counts, fingerprint, upstream versions consumed)
      → partition report

A failing step does not stop the steps that do not depend on it; the run's state says whether
every step succeeded, so a partial success is never reported as success.
"""

from __future__ import annotations

import threading
import traceback
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from backfiller.actions.checking import check_partition, store_reader
from backfiller.actions.faults import crash_point
from backfiller.actions.scheduler import run_in_order
from backfiller.assets import Asset, AssetContext
from backfiller.engine import query, to_arrow
from backfiller.errors import BackfillerError, PreconditionError
from backfiller.evidence.writer import write_run_evidence
from backfiller.holds import place_holds
from backfiller.ledger import (
    Lease,
    LeaseConflict,
    PartitionStatus,
    Protection,
    RunState,
    SqliteLedger,
)
from backfiller.manifests import verify_inputs
from backfiller.policy import POLICY_REASON, require_allowed
from backfiller.project import Project
from backfiller.reports import read_partition_report, write_partition_report
from backfiller.store import CommitInfo
from backfiller.store.delta import PARTITION_COLUMN

__all__ = ["RunOptions", "RunResult", "StepOutcome", "StepResult", "execute"]


_PUBLISHED_CACHE = 16


class StepOutcome(Enum):
    PUBLISHED = "published"
    ALREADY_PUBLISHED = "already_published"
    FAILED = "failed"
    CHECK_FAILED = "check_failed"
    SKIPPED = "skipped"  # an upstream step of the same run failed
    CONFLICT = "conflict"  # another operator holds the partition's lease


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


@dataclass(frozen=True)
class RunOptions:
    """How a run executes: parallelism and a progress callback (never what it does)."""

    max_parallel: int = 1
    on_step: Callable[[StepResult], None] | None = None


@dataclass
class RunResult:
    run_id: str
    plan_id: str | None
    steps: list[StepResult] = field(default_factory=list)

    @property
    def state(self) -> RunState:
        outcomes = {s.outcome for s in self.steps}
        if outcomes & {StepOutcome.FAILED, StepOutcome.CONFLICT}:
            return RunState.FAILED
        if StepOutcome.CHECK_FAILED in outcomes:  # steps skipped below a check failure
            return RunState.CHECKS_FAILED
        if StepOutcome.SKIPPED in outcomes:
            return RunState.FAILED
        return RunState.SUCCEEDED

    def count(self, outcome: StepOutcome) -> int:
        return sum(1 for s in self.steps if s.outcome is outcome)


class StepError(BackfillerError):
    """One (asset, partition) step failed; ``transient`` says whether a retry may help."""

    def __init__(self, message: str, *, transient: bool = False, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.transient = transient


def new_run_id(clock_iso: str) -> str:
    stamp = clock_iso[:19].replace("-", "").replace(":", "")
    return f"run-{stamp}-{uuid.uuid4().hex[:8]}"


def _app_id(run_id: str, key: str) -> str:
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


@dataclass
class Runner:
    project: Project
    ledger: SqliteLedger
    run_id: str
    plan_id: str | None
    operator: str
    action: str
    forced_failures: frozenset[tuple[str, str, str]] = frozenset()
    lease_ttl: float = 600.0
    resuming: bool = False
    _stored_counts: dict[str, dict[str, int] | None] = field(default_factory=dict)
    _counts_lock: threading.Lock = field(default_factory=threading.Lock)
    # the last partitions published in this run, for downstream steps to read without a scan
    _published: OrderedDict[tuple[str, str], tuple[int, pa.Table]] = field(
        default_factory=OrderedDict
    )
    _read_schemas: dict[str, pa.Schema] = field(default_factory=dict)

    def _read_upstream(self, asset: Asset, key: str) -> Callable[[str], pa.Table]:
        mapping = self.project.graph.upstream_partitions(asset.key, key)
        from_store = store_reader(self.project, asset.key, key)

        def read(upstream: str) -> pa.Table:
            cached = self._cached(upstream, mapping[upstream])
            if cached is not None:
                return cached
            data = from_store(upstream)
            if data.num_rows:
                with self._counts_lock:
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

    def run_step(self, asset: Asset, key: str, attempt: int = 1) -> StepResult:
        """One (asset, partition) under its lease; a partition leased by another live run is
        a conflict, not a failure."""
        try:
            lease = self.ledger.acquire_lease(
                asset.key,
                key,
                holder=self.operator,
                plan_id=self.plan_id,
                run_id=self.run_id,
                ttl_seconds=self.lease_ttl,
            )
        except LeaseConflict as conflict:
            held = conflict.lease
            return StepResult(
                asset.key,
                key,
                StepOutcome.CONFLICT,
                error=f"leased by {held.holder} (plan {held.plan_id}, run {held.run_id}) "
                f"since {held.acquired_at}, until {held.expires_at}",
            )
        crash_point("after_lease")
        try:
            return self._run_leased(asset, key, attempt, lease)
        finally:
            self.ledger.release_lease(lease)

    def _run_leased(self, asset: Asset, key: str, attempt: int, lease: Lease) -> StepResult:
        store, ledger = self.project.store, self.ledger
        if not ledger.lease_is_current(lease):  # fenced: the partition is another run's now
            return StepResult(
                asset.key,
                key,
                StepOutcome.FAILED,
                error=f"{asset.key} {key}: the lease (token {lease.token}) was taken over by "
                "another run; refusing this late publish",
            )
        before = ledger.partition(asset.key, key)
        if before is not None:
            rows_before: int | None = before.row_count
        else:  # no record: count what is stored (an orphan), from the log
            rows_before = self._stored_rows(asset.key, key)
        app_id = _app_id(self.run_id, key)
        # only a run that was interrupted before can have commits that landed
        landed = store.committed_step(asset.key, app_id) if self.resuming else None
        if (
            landed is not None
            and before is not None
            and before.last_run_id == self.run_id
            and before.status is PartitionStatus.MATERIALIZED
            and self._report_matches(asset.key, key, before.data_version)
        ):
            return StepResult(
                asset.key,
                key,
                StepOutcome.ALREADY_PUBLISHED,
                rows=before.row_count or 0,
                version=before.data_version,
            )
        ledger.start(asset.key, key, run_id=self.run_id, attempt=attempt, operator=self.operator)
        crash_point("after_start")
        try:
            if landed is not None:
                # the commit landed before a crash; record it instead of writing again
                version = self._landed_version(asset.key, key)
                staged = store.read_partition(asset.key, key, version=version)
                assert staged is not None
            else:
                staged = enforce_guard(asset, self.compute(asset, key))
                crash_point("after_compute")
                failures = self._audit(asset, key, staged)
                if failures:
                    message = "; ".join(failures)
                    self._settle_failure(asset.key, key, attempt, lease, message, checks=True)
                    return StepResult(
                        asset.key,
                        key,
                        StepOutcome.CHECK_FAILED,
                        rows=staged.num_rows,
                        rows_before=rows_before,
                        error=message,
                    )
                if not ledger.lease_is_current(lease):
                    raise StepError(
                        f"{asset.key} {key}: the lease (token {lease.token}) was taken over by "
                        "another run; refusing this late publish",
                        asset=asset.key,
                        partition=key,
                    )
                crash_point("before_commit")
                version = store.write_partitions(
                    asset.key, staged, [key], self._commit(app_id, key, attempt)
                )
                crash_point("after_commit")
            return self._record(asset, key, attempt, staged, version, before, rows_before)
        except Exception as exc:
            transient = (isinstance(exc, StepError) and exc.transient) or isinstance(exc, OSError)
            message = (
                exc.message
                if isinstance(exc, BackfillerError)
                else (f"{type(exc).__name__}: {exc}")
            )
            message = self._settle_failure(
                asset.key, key, attempt, lease, message, transient=transient
            )
            if not isinstance(exc, BackfillerError):
                traceback.print_exc()
            return StepResult(
                asset.key, key, StepOutcome.FAILED, rows_before=rows_before, error=message
            )

    def _cached(self, asset: str, keys: Sequence[str]) -> pa.Table | None:
        """The partitions this run just published, if every one is still the current version
        and has exactly the schema a read from the store gives; else ``None`` (read them)."""
        with self._counts_lock:
            schema = self._read_schemas.get(asset)
            hits = [self._published.get((asset, k)) for k in keys]
        if schema is None or not keys or any(h is None for h in hits):
            return None
        tables = []
        for k, hit in zip(keys, hits, strict=True):
            assert hit is not None
            version, table = hit
            record = self.ledger.partition(asset, k)
            if record is None or record.data_version != version or table.schema != schema:
                return None
            tables.append(table)
        return pa.concat_tables(tables)

    def _remember(self, asset: str, key: str, version: int, table: pa.Table) -> None:
        with self._counts_lock:
            self._published[(asset, key)] = (version, table)
            self._published.move_to_end((asset, key))
            while len(self._published) > _PUBLISHED_CACHE:
                self._published.popitem(last=False)

    def _stored_rows(self, asset: str, key: str) -> int | None:
        """Rows stored for a partition the ledger does not know, from the Delta log — read once
        per asset and run: re-reading the whole log for every new partition makes a long
        backfill slower with every day it adds."""
        with self._counts_lock:
            if asset not in self._stored_counts:
                store = self.project.store
                self._stored_counts[asset] = (
                    store.partition_counts(asset) if store.exists(asset) else None
                )
            counts = self._stored_counts[asset]
        return None if counts is None else counts.get(key)

    def _settle_failure(
        self,
        asset: str,
        key: str,
        attempt: int,
        lease: Lease,
        message: str,
        *,
        transient: bool = False,
        checks: bool = False,
    ) -> str:
        """Record a failed step. If the lease was taken over meanwhile, the partition is the
        new holder's: only this attempt is closed, its status is left alone."""
        if not self.ledger.lease_is_current(lease):
            message = f"lease lost to another run; {message}"
            self.ledger.abandon_attempt(
                asset, key, run_id=self.run_id, attempt=attempt, error=message
            )
            return message
        self.ledger.fail(
            asset,
            key,
            run_id=self.run_id,
            attempt=attempt,
            operator=self.operator,
            error=message,
            transient=transient,
            checks=checks,
        )
        return message

    def _report_matches(self, asset: str, key: str, version: int | None) -> bool:
        report = read_partition_report(self.project.partition_report_path(asset, key))
        return (
            report is not None
            and report.get("run_id") == self.run_id
            and report.get("data_version") == version
        )

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

    def _commit(self, app_id: str, key: str, attempt: int) -> CommitInfo:
        declared = self.project.manifests.for_partition(key)
        return CommitInfo(
            run_id=self.run_id,
            plan_id=self.plan_id,
            manifest_ids=(declared[0].manifest_id,) if declared else (),
            operator=self.operator,
            action=self.action,
            app_id=app_id,
            app_version=attempt,
            extra={"partition_keys": key},
        )

    def _landed_version(self, asset: str, key: str) -> int:
        for record in self.project.store.history(asset):
            meta = record.metadata
            if meta.get("backfiller.run_id") == self.run_id and (
                meta.get("backfiller.partition_keys") == key
            ):
                return record.version
        raise StepError(
            f"{asset} {key}: the commit of run {self.run_id} landed but is not in the table history"
        )

    def _record(
        self,
        asset: Asset,
        key: str,
        attempt: int,
        staged: pa.Table,
        version: int,
        before: Any,
        rows_before: int | None,
    ) -> StepResult:
        from backfiller.engine import fingerprint_table

        fingerprint = fingerprint_table(staged)
        declared = self.project.manifests.for_partition(key)
        consumed: dict[str, dict[str, int | None]] = {}
        for up, up_keys in self.project.graph.upstream_partitions(asset.key, key).items():
            consumed[up] = {}
            for k in up_keys:
                rec = self.ledger.partition(up, k)
                consumed[up][k] = rec.data_version if rec else None
        self.ledger.publish(
            asset.key,
            key,
            run_id=self.run_id,
            attempt=attempt,
            operator=self.operator,
            data_version=version,
            row_count=staged.num_rows,
            fingerprint=fingerprint,
            manifest_id=declared[0].manifest_id if declared else None,
            manifest_checksum=declared[1].checksum if declared else None,
            upstream_versions=consumed,
        )
        self._remember(asset.key, key, version, staged)
        crash_point("after_ledger_publish")
        window = self.project.scheme.window(key)
        write_partition_report(
            self.project.partition_report_path(asset.key, key),
            {
                "asset": asset.key,
                "partition_key": key,
                "window_start": window.render()[0] if window else None,
                "window_end": window.render()[1] if window else None,
                "run_id": self.run_id,
                "plan_id": self.plan_id,
                "action": self.action,
                "operator": self.operator,
                "data_version": version,
                "previous_data_version": before.data_version if before else None,
                "row_count": staged.num_rows,
                "previous_row_count": rows_before,
                "fingerprint": fingerprint,
                "manifest_id": declared[0].manifest_id if declared else None,
                "manifest_checksum": declared[1].checksum if declared else None,
                "idempotency_guard": asset.idempotency_guard,
                "upstream_versions": consumed,
            },
        )
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


def execute(
    project: Project,
    ledger: SqliteLedger,
    steps: Sequence[tuple[str, str]],
    *,
    action: str,
    operator: str,
    plan_id: str | None = None,
    reason: str | None = None,
    arguments: dict[str, Any] | None = None,
    run_id: str | None = None,
    forced_failures: frozenset[tuple[str, str, str]] | None = None,
    on_step: Callable[[StepResult], None] | None = None,
    override_reason: str | None = None,
    lease_ttl: float = 600.0,
    parent_run_id: str | None = None,
    write_evidence: bool = True,
    max_parallel: int = 1,
    attempts: Mapping[tuple[str, str], int] | None = None,
) -> RunResult:
    """Run ``steps`` as one run; a step whose upstream step failed in this run is skipped.

    Refused before anything is written (exit 2): a step on an asset ``[policy]
    backfill_assets`` does not allow; a step on a partition declared by a broken manifest;
    protected partitions — a ledger protection, or a ``[policy] protected`` object that holds
    published data — unless ``override_reason`` is given, which is recorded for each of them.
    ``forced_failures`` defaults to the active failing-check simulations.
    """
    if forced_failures is None:
        from backfiller.simulation.registry import forced_failures as simulated

        forced_failures = simulated(project.config.state_dir)
    require_allowed(
        project.policy,
        project.graph,
        [a for a, _ in _ordered(project, steps)],
        action=f"This {action}",
    )
    project.manifests.require_usable(k for _, k in steps)
    run_id = run_id or new_run_id(project.clock().isoformat())
    stored: dict[str, dict[str, int]] = {}
    protected = [
        (a, k, p)
        for a, k in steps
        if (p := protection_of(project, ledger, a, k, stored)) is not None
    ]
    if protected and not override_reason:
        listing = "; ".join(f"{a} {k} ({p.reason}, by {p.operator})" for a, k, p in protected)
        raise PreconditionError(
            f"Refusing to overwrite protected baseline(s): {listing}",
            hint="pass --override-protected --reason TEXT to overwrite them (it is recorded)",
        )
    for a, k, _ in protected:
        assert override_reason is not None
        ledger.record_override(
            run_id=run_id, asset=a, key=k, reason=override_reason, operator=operator
        )
    resuming = ledger.run(run_id) is not None
    if not resuming:
        ledger.begin_run(
            run_id=run_id,
            plan_id=plan_id,
            action=action,
            operator=operator,
            reason=reason,
            arguments={**(arguments or {}), "steps": [list(x) for x in _ordered(project, steps)]},
            parent_run_id=parent_run_id,
        )
    runner = Runner(
        project,
        ledger,
        run_id,
        plan_id,
        operator,
        action,
        forced_failures=forced_failures,
        lease_ttl=lease_ttl,
        resuming=resuming,
    )
    result = RunResult(run_id, plan_id)
    graph = project.graph
    ordered = _ordered(project, steps)
    inside = set(ordered)
    depends = {
        (a, k): {(up, uk) for up, keys in graph.upstream_partitions(a, k).items() for uk in keys}
        & inside
        for a, k in ordered
    }
    collect = threading.Lock()

    def record(step: StepResult) -> None:
        with collect:
            result.steps.append(step)
            if on_step is not None:
                on_step(step)

    def skip(step: tuple[str, str], cause: tuple[str, str]) -> None:
        record(
            StepResult(
                step[0],
                step[1],
                StepOutcome.SKIPPED,
                error=f"upstream {cause[0]} {cause[1]} did not succeed in this run",
            )
        )

    run_in_order(
        ordered,
        depends,
        lambda step: runner.run_step(graph.get(step[0]), step[1], (attempts or {}).get(step, 1)),
        lambda step: step.outcome in {StepOutcome.PUBLISHED, StepOutcome.ALREADY_PUBLISHED},
        max_parallel=max_parallel,
        on_done=lambda _, step: record(step),
        on_blocked=skip,
    )
    position = {s: i for i, s in enumerate(ordered)}
    result.steps.sort(key=lambda s: position[(s.asset, s.partition_key)])
    published = [
        (s.asset, s.partition_key) for s in result.steps if s.outcome is StepOutcome.PUBLISHED
    ]
    place_holds(
        project,
        ledger,
        run_id=run_id,
        operator=operator,
        changed=published,
        failed_checks=[
            (s.asset, s.partition_key)
            for s in result.steps
            if s.outcome is StepOutcome.CHECK_FAILED
        ],
        recomputed=published,
    )
    errors = [f"{s.asset} {s.partition_key}: {s.error}" for s in result.steps if s.error]
    ledger.finish_run(run_id, result.state, "; ".join(errors)[:2000] or None)
    if write_evidence:  # the seed's order: checks, then evidence, and only then release
        write_run_evidence(project, ledger, run_id)
    return result


def protection_of(
    project: Project,
    ledger: SqliteLedger,
    asset: str,
    key: str,
    stored: dict[str, dict[str, int]],
) -> Protection | None:
    """The ledger's protection of (asset, key), else the policy's — which only guards data
    that exists: the first materialization of a protected object overwrites nothing."""
    found = ledger.protection(asset, key)
    if found is not None:
        return found
    declared = project.policy.protection(asset, key)
    if declared is None:
        return None
    record = ledger.partition(asset, key)
    if record is None or record.data_version is None:
        if asset not in stored:
            stored[asset] = project.store.partition_counts(asset)
        if not stored[asset].get(key):
            return None
    return Protection(asset, key, f"{POLICY_REASON}: {declared.spec}", "policy", "")


def _ordered(project: Project, steps: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """Partition by partition, upstream first: a partition's assets finish close together
    (its downstream is consumable early). The scheduler still waits for every dependency, so
    mappings across keys (lookbacks, coarser windows) stay correct."""
    rank = {k: i for i, k in enumerate(project.graph.keys)}
    unique = list(dict.fromkeys(steps))
    return sorted(unique, key=lambda s: (s[1], rank[s[0]]))
