"""Run a partition's checks for a project and record every result in the ledger.

The one place that feeds :func:`~backfiller.checks.audit.audit` with what a project knows —
the partition's window, the manifest's expected count, its upstream partitions — for the
runner (staged data), restore (the version it would publish) and ``backfiller check``
(published data).
"""

from __future__ import annotations

from collections.abc import Callable, Collection

import pyarrow as pa

from backfiller.checks.audit import audit
from backfiller.checks.model import CheckResult
from backfiller.errors import PreconditionError
from backfiller.ledger import Ledger
from backfiller.project import Project

__all__ = ["check_partition", "store_reader"]


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
    declared = project.manifests.for_partition(key)
    results = audit(
        project.graph.get(asset),
        key,
        data,
        window=project.scheme.window(key),
        expected_count=declared[1].expected_record_count if declared else None,
        read_upstream=read_upstream or store_reader(project, asset, key),
        forced_failures=forced_failures,
    )
    ledger.checks.record(
        run_id=run_id,
        asset=asset,
        key=key,
        on_staged=on_staged,
        results=[
            (r.name, r.status, r.severity, r.blocking, r.expected, r.actual, r.sample)
            for r in results
        ],
    )
    return results
