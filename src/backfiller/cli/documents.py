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

from backfiller.entries import json_default

if TYPE_CHECKING:
    from backfiller.actions import RunResult
    from backfiller.checks.model import CheckResult

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
    click.echo(json.dumps(doc, indent=2, ensure_ascii=False, default=json_default))


def span(keys: list[str]) -> dict[str, Any]:
    """The partition keys looked at: first, last, how many."""
    return {
        "first": keys[0] if keys else None,
        "last": keys[-1] if keys else None,
        "count": len(keys),
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
