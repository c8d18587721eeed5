"""Run an asset's checks on staged data (write–audit–publish: the audit step)."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TYPE_CHECKING

from backfiller.checks.model import CheckContext, CheckResult, CheckStatus, Severity

if TYPE_CHECKING:
    import pyarrow as pa

    from backfiller.assets import Asset
    from backfiller.partitions import Window

__all__ = ["audit"]


def audit(
    asset: Asset,
    key: str,
    data: pa.Table,
    *,
    window: Window | None,
    expected_count: int | None,
    read_upstream: Callable[[str], pa.Table],
    forced_failures: Collection[tuple[str, str, str]] = (),
) -> list[CheckResult]:
    """Every check of ``asset`` on ``data``. A check named in ``forced_failures`` as
    (asset, check, partition) fails whatever the data (a safe, reversible gap simulation)."""
    ctx = CheckContext(
        asset=asset.key,
        partition_key=key,
        idempotency_key=asset.idempotency_key,
        window=window,
        data=data,
        expected_count=expected_count,
        read_upstream=read_upstream,
    )
    results = []
    for check in asset.checks:
        result = check.run(ctx)
        if (asset.key, check.name, key) in forced_failures:
            result = CheckResult(
                name=result.name,
                asset=result.asset,
                partition_key=key,
                status=CheckStatus.FAILED,
                severity=Severity.ERROR,
                expected=result.expected,
                actual="simulated failure",
            )
        results.append(result)
    return results
