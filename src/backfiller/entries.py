"""Ledger and store records as plain JSON entries, the same keys wherever they are shown: the
command line's ``--json`` documents (``docs/json.md``) and the web view's (``docs/web.md``).
A key is only ever added."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from backfiller.ledger.holds import HoldRecord
    from backfiller.ledger.records import AttemptRecord, RunRecord
    from backfiller.planning import Gap
    from backfiller.store.base import CommitRecord

__all__ = [
    "attempt_entry",
    "commit_entry",
    "gap_entry",
    "hold_entry",
    "json_default",
    "run_entry",
]


def json_default(value: Any) -> Any:
    """What ``json`` cannot write by itself (dates, decimals, sets in check results), as the
    documents write it: ``json.dumps(..., default=json_default)``."""
    if isinstance(value, set | frozenset | tuple):
        return sorted(value, key=str)
    isoformat = getattr(value, "isoformat", None)
    if callable(isoformat):
        return isoformat()
    return str(value)


def gap_entry(gap: Gap) -> dict[str, Any]:
    return {
        "asset": gap.asset,
        "partition_key": gap.partition_key,
        "gap_reason": gap.reason.value,
        "expected_count": gap.expected_count,
        "current_count": gap.current_count,
        "proposed_action": gap.proposed_action.value,
        "detail": gap.detail,
    }


def run_entry(run: RunRecord) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "plan_id": run.plan_id,
        "action": run.action,
        "state": run.state.value,
        "outcome": None if run.outcome is None else run.outcome.value,
        "operator": run.operator,
        "reason": run.reason,
        "parent_run_id": run.parent_run_id,
        "started_at": run.started_at,
        "ended_at": run.ended_at,
        "error": run.error,
    }


def attempt_entry(attempt: AttemptRecord) -> dict[str, Any]:
    return {
        "run_id": attempt.run_id,
        "asset": attempt.asset,
        "partition_key": attempt.partition_key,
        "attempt": attempt.attempt,
        "status": attempt.status.value,
        "transient": attempt.transient,
        "rows_before": attempt.rows_before,
        "rows_written": attempt.rows_written,
        "version_before": attempt.version_before,
        "data_version": attempt.data_version,
        "started_at": attempt.started_at,
        "ended_at": attempt.ended_at,
        "error": attempt.error,
    }


def commit_entry(commit: CommitRecord) -> dict[str, Any]:
    meta = commit.metadata
    keys = meta.get("backfiller.partition_keys", "")
    return {
        "version": commit.version,
        "timestamp_ms": commit.timestamp_ms,
        "operation": commit.operation,
        "run_id": meta.get("backfiller.run_id") or None,
        "plan_id": meta.get("backfiller.plan_id") or None,
        "action": meta.get("backfiller.action") or None,
        "partition_keys": [k for k in keys.split(",") if k],
        "metadata": dict(meta),
    }


def hold_entry(hold: HoldRecord) -> dict[str, Any]:
    return {
        "id": hold.id,
        "target": hold.target,
        "partition_key": hold.partition_key,
        "kind": "consumer" if hold.external else "asset",
        "reason": hold.reason,
        "cause_asset": hold.cause_asset,
        "cause_partition": hold.cause_partition,
        "cause_run_id": hold.cause_run_id,
        "placed_at": hold.placed_at,
        "released_at": hold.released_at,
        "released_by": hold.released_by,
        "release_reason": hold.release_reason,
        "forced": hold.forced,
    }
