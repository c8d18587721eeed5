"""Run a partition's checks for a project and record every result in the ledger.

The one place that feeds :func:`~backfiller.checks.audit.audit` with what a project knows —
the partition's window, the manifest's expected count, its upstream partitions — for the
runner (staged data), restore (the version it would publish) and ``backfiller check``
(published data).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

import pyarrow as pa

from backfiller.checks.audit import audit_group
from backfiller.checks.model import CheckContext, CheckResult
from backfiller.errors import PreconditionError
from backfiller.ledger import Ledger
from backfiller.project import Project

__all__ = ["check_group", "check_partition", "store_reader"]


def store_reader(project: Project, asset: str, key: str) -> Callable[[str], pa.Table]:
    """Read an upstream asset's partitions that ``(asset, key)`` maps to, from the store."""
    mapping = project.graph.upstream_partitions(asset, key)

    def read(upstream: str) -> pa.Table:
        rows = project.store.read_partitions(upstream, mapping[upstream])
        if rows is None:
            raise PreconditionError(
                f"{asset} {key}: upstream {upstream!r} has no table yet",
                hint=f"backfill {upstream} first",
                asset=asset,
                partition=key,
            )
        return rows

    return read


def check_partition(
    project: Project,
    ledger: Ledger,
    asset: str,
    key: str,
    data: pa.Table,
    *,
    run_id: str | None,
    on_staged: bool,
    read_upstream: Callable[[str], pa.Table] | None = None,
    forced_failures: Collection[tuple[str, str, str]] = (),
) -> list[CheckResult]:
    """Every check of ``asset`` on ``data`` for partition ``key``, recorded in one
    transaction."""
    (outcome,) = check_group(
        project,
        ledger,
        asset,
        [(key, data, read_upstream or store_reader(project, asset, key))],
        run_id=run_id,
        on_staged=on_staged,
        forced_failures=forced_failures,
    )
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def check_group(
    project: Project,
    ledger: Ledger,
    asset: str,
    partitions: Sequence[tuple[str, pa.Table, Callable[[str], pa.Table]]],
    *,
    run_id: str | None,
    on_staged: bool,
    forced_failures: Collection[tuple[str, str, str]] = (),
) -> list[list[CheckResult] | Exception]:
    """Every check of ``asset`` on each of several of its partitions, (key, rows, upstream
    reader) each: a built-in check runs once for the group, grouped by partition. Each
    partition's results are those :func:`check_partition` gives it, recorded as it records
    them (all in one transaction); a partition where a check raised gets the exception, and
    nothing recorded."""
    target = project.graph.get(asset)
    contexts = []
    for key, data, read_upstream in partitions:
        declared = project.manifests.for_partition(key)
        contexts.append(
            CheckContext(
                asset=asset,
                partition_key=key,
                idempotency_key=target.idempotency_key,
                window=project.scheme_of(asset).window(key),
                data=data,
                expected_count=declared[1].expected_record_count if declared else None,
                read_upstream=read_upstream,
            )
        )
    outcomes = audit_group(target, contexts, forced_failures)
    recorded = [(c.partition_key, o) for c, o in zip(contexts, outcomes, strict=True)]
    if any(isinstance(o, list) and o for _, o in recorded):
        with ledger.batch():
            for key, outcome in recorded:
                if isinstance(outcome, list) and outcome:
                    ledger.checks.record(
                        run_id=run_id,
                        asset=asset,
                        key=key,
                        on_staged=on_staged,
                        results=[
                            (
                                r.name,
                                r.status,
                                r.severity,
                                r.blocking,
                                r.expected,
                                r.actual,
                                r.sample,
                            )
                            for r in outcome
                        ],
                    )
    return outcomes
