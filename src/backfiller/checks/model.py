"""The check model: a rule run on the staged data of one (asset, partition) before publish."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from backfiller.ledger.states import CheckStatus, Severity

if TYPE_CHECKING:
    import pyarrow as pa

    from backfiller.partitions import Window

__all__ = ["Check", "CheckContext", "CheckResult", "CheckStatus", "Severity"]

SAMPLE_ROWS = 5


@dataclass(frozen=True)
class CheckContext:
    """What a check sees: the staged rows and what they should agree with."""

    asset: str
    partition_key: str
    idempotency_key: tuple[str, ...]
    window: Window | None
    data: pa.Table
    expected_count: int | None
    read_upstream: Callable[[str], pa.Table]


@dataclass(frozen=True)
class CheckResult:
    name: str
    asset: str
    partition_key: str
    status: CheckStatus
    severity: Severity
    expected: Any = None
    actual: Any = None
    sample: list[dict[str, Any]] = field(default_factory=list)

    @property
    def blocking(self) -> bool:
        return self.status is CheckStatus.FAILED and self.severity is Severity.ERROR

    def describe(self) -> str:
        return f"{self.name}: expected {self.expected!r}, got {self.actual!r}"


class Check(ABC):
    """A named rule; subclasses implement :meth:`evaluate` returning (passed, expected,
    actual, failing sample rows)."""

    def __init__(self, name: str, severity: Severity | str = Severity.ERROR) -> None:
        self.name = name
        self.severity = Severity(severity)

    @abstractmethod
    def evaluate(self, ctx: CheckContext) -> tuple[bool, Any, Any, list[dict[str, Any]]]: ...

    def run(self, ctx: CheckContext) -> CheckResult:
        return self.result(ctx, self.evaluate(ctx))

    def run_group(self, contexts: Sequence[CheckContext]) -> list[CheckResult | Exception]:
        """The check on each of several partitions of the asset: its result, or the exception
        it raised there (the others are still checked). Built-in checks override this with one
        query for the group; each partition's result is the one :meth:`run` gives."""
        results: list[CheckResult | Exception] = []
        for ctx in contexts:
            try:
                results.append(self.run(ctx))
            except Exception as exc:
                results.append(exc)
        return results

    def result(
        self, ctx: CheckContext, outcome: tuple[bool, Any, Any, list[dict[str, Any]]]
    ) -> CheckResult:
        """The result of an outcome (passed, expected, actual, failing sample rows)."""
        passed, expected, actual, sample = outcome
        return CheckResult(
            name=self.name,
            asset=ctx.asset,
            partition_key=ctx.partition_key,
            status=CheckStatus.PASSED if passed else CheckStatus.FAILED,
            severity=self.severity,
            expected=expected,
            actual=actual,
            sample=sample[:SAMPLE_ROWS],
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, severity={self.severity.value!r})"
