"""``--json``: one JSON document per command on stdout, for machines (``docs/json.md``).

Every document has a top-level ``kind`` naming it and ``version`` (1); the keys of each kind
are stable. Documents the core already defines (the plan, the run evidence) are carried whole.
Messages for people go to stderr; errors keep their exit code.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from backfiller.actions import RunResult
    from backfiller.checks.model import CheckResult
    from backfiller.ledger.holds import HoldRecord
    from backfiller.ledger.records import AttemptRecord, RunRecord
    from backfiller.planning import Gap
    from backfiller.store.base import CommitRecord

__all__ = ["JSON_VERSION", "document", "emit", "json_option"]

JSON_VERSION = 1

json_option = click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON document on stdout instead of tables (keys: docs/json.md).",
)


def document(kind: str, **body: Any) -> dict[str, Any]:
    """A document of ``kind``: ``kind`` and ``version`` first, then ``body``."""
    return {"kind": kind, "version": JSON_VERSION, **body}


def emit(doc: Mapping[str, Any]) -> None:
    """Print ``doc`` as the one thing on stdout."""
    click.echo(json.dumps(doc, indent=2, ensure_ascii=False, default=_fallback))


def _fallback(value: Any) -> Any:
    """What ``json`` cannot write by itself (dates, decimals, sets in check results)."""
    if isinstance(value, set | frozenset | tuple):
        return sorted(value, key=str)
    isoformat = getattr(value, "isoformat", None)
    if callable(isoformat):
        return isoformat()
    return str(value)


def span(keys: list[str]) -> dict[str, Any]:
    """The partition keys looked at: first, last, how many."""
    return {
        "first": keys[0] if keys else None,
        "last": keys[-1] if keys else None,
        "count": len(keys),
    }


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
        "target": hold.target,
        "partition_key": hold.partition_key,
        "kind": "consumer" if hold.external else "asset",
        "reason": hold.reason,
        "cause_asset": hold.cause_asset,
        "cause_partition": hold.cause_partition,
        "cause_run_id": hold.cause_run_id,
        "placed_at": hold.placed_at,
    }


def check_entry(result: CheckResult) -> dict[str, Any]:
    return {
        "name": result.name,
        "status": result.status.value,
        "severity": result.severity.value,
        "blocking": result.blocking,
        "expected": result.expected,
        "actual": result.actual,
        "sample": list(result.sample),
    }


def run_result(result: RunResult) -> dict[str, Any]:
    """A run as ``apply`` (``plan --mode apply``) ends it: its state and one entry per step."""
    return {
        "run_id": result.run_id,
        "state": result.state.value,
        "steps": [
            {
                "asset": s.asset,
                "partition_key": s.partition_key,
                "outcome": s.outcome.value,
                "rows_before": s.rows_before,
                "rows": s.rows,
                "version": s.version,
                "error": s.error,
            }
            for s in result.steps
        ],
    }


def counts(values: Iterable[str]) -> dict[str, int]:
    """How many of each value, by name."""
    found: dict[str, int] = {}
    for v in values:
        found[v] = found.get(v, 0) + 1
    return dict(sorted(found.items()))
