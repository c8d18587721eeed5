"""Run an asset's checks on staged data (write–audit–publish: the audit step)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING

from backfiller.checks.model import CheckContext, CheckResult, CheckStatus, Severity

if TYPE_CHECKING:
    import pyarrow as pa

    from backfiller.assets import Asset
    from backfiller.partitions import Window

__all__ = ["audit", "audit_group"]


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
    (outcome,) = audit_group(asset, [ctx], forced_failures)
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def audit_group(
    asset: Asset,
    contexts: Sequence[CheckContext],
    forced_failures: Collection[tuple[str, str, str]] = (),
) -> list[list[CheckResult] | Exception]:
    """Every check of ``asset`` on each of several of its partitions (``contexts``): for each,
    the results :func:`audit` gives it, or the exception the first check to raise there
    raised (its later checks are not run, as :func:`audit` would not run them). Each check
    runs once for the whole group (:meth:`~backfiller.checks.model.Check.run_group`: one
    query grouped by partition for a built-in check, partition by partition for the others).
    """
    outcomes: list[list[CheckResult] | Exception] = [[] for _ in contexts]
    for check in asset.checks:
        alive = [i for i, outcome in enumerate(outcomes) if not isinstance(outcome, Exception)]
        if not alive:
            break
        for i, result in zip(alive, check.run_group([contexts[i] for i in alive]), strict=True):
            found = outcomes[i]
            assert not isinstance(found, Exception)
            if isinstance(result, Exception):
                outcomes[i] = result
                continue
            if (asset.key, check.name, result.partition_key) in forced_failures:
                result = CheckResult(
                    name=result.name,
                    asset=result.asset,
                    partition_key=result.partition_key,
                    status=CheckStatus.FAILED,
                    severity=Severity.ERROR,
                    expected=result.expected,
                    actual="simulated failure",
                )
            found.append(result)
    return outcomes
