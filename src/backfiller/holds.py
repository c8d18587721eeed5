"""Holds: downstream consumers wait until the upstream checks passed and evidence exists.

When a run re-publishes (or restores) a partition, or its checks fail, every downstream
partition that consumed it — through the graph and its mappings — becomes stale and held, and so
do the external consumers declared in ``[downstream] consumers`` (they read the graph's leaf
assets). ``release`` lifts only holds whose cause passed its checks and has evidence; tools
outside backfiller obey holds through ``backfiller ready`` or ``<report_dir>/holds.json``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from backfiller.atomic import atomic_write_text
from backfiller.errors import BadInputError, IllegalTransitionError
from backfiller.ledger import HoldRecord, Ledger, LedgerReader, PartitionStatus
from backfiller.locations import Location
from backfiller.project import Project
from backfiller.refs import AssetPartition

__all__ = ["Release", "holds_file", "is_ready", "place_holds", "release", "write_holds_file"]

HOLDS_FILE_VERSION = 1


def holds_file(project: Project) -> Location:
    return project.config.report_dir / "holds.json"


def _mark_stale(
    ledger: Ledger, asset: str, key: str, *, run_id: str, operator: str, why: str
) -> None:
    """Mark a materialized partition stale. Another operator may begin recomputing it between
    the read that found it materialized and this write: then it is left to that run, whose own
    record says which upstream version it consumed (and gap detection compares that with the
    current one); the hold is placed all the same."""
    for _ in range(3):
        try:
            ledger.partitions.mark_stale(asset, key, run_id=run_id, operator=operator, reason=why)
            return
        except IllegalTransitionError:
            now = ledger.partitions.get(asset, key)
            if now is None or now.status is not PartitionStatus.MATERIALIZED:
                return
            # published again in between: stale all the same, try once more


def place_holds(
    project: Project,
    ledger: Ledger,
    *,
    run_id: str,
    operator: str,
    changed: Iterable[AssetPartition],
    failed_checks: Iterable[AssetPartition] = (),
    recomputed: Iterable[AssetPartition] = (),
) -> list[tuple[str, str, bool]]:
    """Hold what depends on ``changed`` (re-published) and ``failed_checks`` partitions.

    Downstream partitions recomputed in the same run are not stale (they consumed the new
    version) but are still held until release, like the external consumers. Returns the
    (target, partition, external) holds placed.
    """
    graph = project.graph
    done = set(recomputed)
    consumers = project.config.downstream_consumers
    leaves = {a for a in graph.keys if not graph.downstream_of(a)}
    placed: list[tuple[str, str, bool]] = []
    causes = [(c, "republished") for c in changed] + [(c, "checks failed") for c in failed_checks]
    for (asset, key), why in causes:
        reason = f"{asset} {key} {why} in run {run_id}"
        closure = graph.downstream_closure([(asset, key)], include_targets=False)
        for down, down_key in closure:
            record = ledger.partitions.get(down, down_key)
            if (
                (down, down_key) not in done
                and record is not None
                and (record.status is PartitionStatus.MATERIALIZED)
            ):
                _mark_stale(ledger, down, down_key, run_id=run_id, operator=operator, why=reason)
            if ledger.holds.place(
                target=down,
                key=down_key,
                external=False,
                reason=reason,
                cause_asset=asset,
                cause_partition=key,
                cause_run_id=run_id,
            ):
                placed.append((down, down_key, False))
        for leaf, leaf_key in [(asset, key), *closure]:
            if leaf not in leaves:
                continue
            for consumer in consumers:
                if ledger.holds.place(
                    target=consumer,
                    key=leaf_key,
                    external=True,
                    reason=reason,
                    cause_asset=asset,
                    cause_partition=key,
                    cause_run_id=run_id,
                ):
                    placed.append((consumer, leaf_key, True))
    write_holds_file(project, ledger)
    return placed


def missing_for_release(project: Project, ledger: Ledger, hold: HoldRecord) -> list[str]:
    """What must still happen before ``hold`` may be released (empty: it may)."""
    missing: list[str] = []
    cause = ledger.partitions.get(hold.cause_asset, hold.cause_partition)
    label = f"{hold.cause_asset} {hold.cause_partition}"
    if cause is None or cause.status is not PartitionStatus.MATERIALIZED:
        state = cause.status.value if cause else "not materialized"
        missing.append(f"{label} is {state}; its checks must pass (rerun it after a fix)")
    else:
        run = cause.last_run_id
        results = ledger.checks.results(
            run_id=run, asset=hold.cause_asset, key=hold.cause_partition
        )
        if project.graph.get(hold.cause_asset).checks and not results:
            missing.append(f"{label} has no check results from run {run}")
        blocking = [r.check_name for r in results if r.blocking]
        if blocking:
            missing.append(f"{label}: blocking checks failed: {', '.join(blocking)}")
        for evidence_run in {hold.cause_run_id, run} - {None}:
            assert evidence_run is not None
            if ledger.evidence.of_run(evidence_run) is None:
                missing.append(f"run {evidence_run} has no evidence yet")
    if not hold.external:
        target = ledger.partitions.get(hold.target, hold.partition_key)
        if target is None or target.status is not PartitionStatus.MATERIALIZED:
            state = target.status.value if target else "missing"
            missing.append(
                f"{hold.target} {hold.partition_key} is {state}: rerun it "
                f"('backfiller rerun --asset {hold.target} --partition {hold.partition_key}')"
            )
    return missing


@dataclass(frozen=True)
class Release:
    released: list[HoldRecord]
    blocked: list[tuple[HoldRecord, list[str]]]


def release(
    project: Project,
    ledger: Ledger,
    *,
    operator: str,
    run_id: str | None = None,
    targets: Iterable[AssetPartition] | None = None,
    force_reason: str | None = None,
) -> Release:
    """Release the open holds (of one cause run, or on given targets) whose conditions hold;
    with ``force_reason``, release them all and record why."""
    if run_id is not None and ledger.runs.get(run_id) is None:
        raise BadInputError(
            f"No run {run_id!r} in the ledger", hint="see 'backfiller runs' for the run ids"
        )
    wanted = set(targets) if targets is not None else None
    released: list[HoldRecord] = []
    blocked: list[tuple[HoldRecord, list[str]]] = []
    for hold in ledger.holds.all():
        if run_id is not None and hold.cause_run_id != run_id:
            continue
        if wanted is not None and (hold.target, hold.partition_key) not in wanted:
            continue
        missing = missing_for_release(project, ledger, hold)
        if missing and force_reason is None:
            blocked.append((hold, missing))
            continue
        ledger.holds.release(
            hold.id, by=operator, reason=force_reason, forced=bool(missing and force_reason)
        )
        released.append(hold)
    write_holds_file(project, ledger)
    return Release(released, blocked)


def is_ready(project: Project, ledger: LedgerReader, target: str, key: str) -> list[str]:
    """Why ``target`` (an asset or an external consumer) may not consume ``key`` yet; empty
    when it may."""
    reasons = [h.reason for h in ledger.holds.all() if (h.target, h.partition_key) == (target, key)]
    if target in project.graph:
        record = ledger.partitions.get(target, key)
        if record is None or record.status is not PartitionStatus.MATERIALIZED:
            recorded = f"recorded as {record.status.value}" if record else "no ledger record"
            reasons.append(f"{target} {key} is not materialized ({recorded})")
    return reasons


def write_holds_file(project: Project, ledger: Ledger) -> Location:
    """The open holds as a small JSON file, for tools outside backfiller."""
    document = {
        "schema_version": HOLDS_FILE_VERSION,
        "project": project.config.name,
        "holds": [
            {
                "target": h.target,
                "partition_key": h.partition_key,
                "external": h.external,
                "reason": h.reason,
                "cause": {
                    "asset": h.cause_asset,
                    "partition_key": h.cause_partition,
                    "run_id": h.cause_run_id,
                },
                "placed_at": h.placed_at,
            }
            for h in ledger.holds.all()
        ],
    }
    return atomic_write_text(holds_file(project), json.dumps(document, indent=2) + "\n")
