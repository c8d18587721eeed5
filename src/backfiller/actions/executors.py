"""Where the pure part of a step runs: the executor interface and its two implementations.

The coordinator (:mod:`backfiller.actions.runner`) hands each step's computation
(:class:`~backfiller.actions.computation.StepTask`) to an executor and waits for its rows;
everything with a side effect stays with the coordinator. Nothing else in the core knows which
executor runs.

* :class:`LocalExecutor` (the default): the computation runs in the coordinator's thread that
  asks for it — the run's ``max_parallel`` threads are the parallelism, as always;
* the Dask executor (``[executor] kind = "dask"``, ``--executor dask``): the computation runs
  on a ``dask.distributed`` cluster; a worker reads the store and the manifests' input files,
  never the ledger. ``dask`` is imported only when it is chosen
  (:mod:`backfiller.actions.dask_executor`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import pyarrow as pa

from backfiller.actions.computation import StepTask, compute_step
from backfiller.errors import ConfigError

__all__ = [
    "Deferred",
    "Executor",
    "ExecutorKind",
    "ExecutorSettings",
    "LocalExecutor",
    "StepFuture",
    "open_executor",
]


class StepFuture(Protocol):
    """A computation handed out: its rows, or the exception it raised."""

    def result(self) -> pa.Table: ...


class Executor(Protocol):
    """Runs step computations. ``read_upstream`` is a reader of the same pinned rows that is
    at hand in the coordinator's process; an executor that computes elsewhere ignores it."""

    def submit(
        self, task: StepTask, read_upstream: Callable[[str], pa.Table] | None = None
    ) -> StepFuture: ...

    def close(self) -> None:
        """Let go of what the executor holds (a cluster connection); idempotent."""
        ...


class Deferred:
    """A computation run in the thread that asks for its result, once."""

    def __init__(self, compute: Callable[[], pa.Table]) -> None:
        self._compute: Callable[[], pa.Table] | None = compute
        self._value: pa.Table | None = None
        self._error: BaseException | None = None

    def result(self) -> pa.Table:
        if self._compute is not None:
            compute, self._compute = self._compute, None
            try:
                self._value = compute()
            except BaseException as exc:
                self._error = exc
        if self._error is not None:
            raise self._error
        assert self._value is not None
        return self._value


class LocalExecutor:
    """Computes in the coordinator's own threads (the default)."""

    def submit(
        self, task: StepTask, read_upstream: Callable[[str], pa.Table] | None = None
    ) -> StepFuture:
        return Deferred(lambda: compute_step(task, read_upstream))

    def close(self) -> None:
        return None


class ExecutorKind(StrEnum):
    LOCAL = "local"
    DASK = "dask"


@dataclass(frozen=True)
class ExecutorSettings:
    """Which executor a run uses (``[executor]`` in ``backfiller.toml``, or the options
    ``--executor`` and ``--scheduler``); ``scheduler``: the Dask scheduler's address."""

    kind: str = ExecutorKind.LOCAL.value
    scheduler: str = ""
    #: where the settings came from, for the messages
    origin: str = "[executor]"

    def parsed_kind(self) -> ExecutorKind:
        try:
            return ExecutorKind(self.kind)
        except ValueError:
            kinds = " or ".join(repr(k.value) for k in ExecutorKind)
            raise ConfigError(
                f"Unknown executor {self.kind!r} ({self.origin})",
                hint=f"use {kinds}",
            ) from None


def open_executor(settings: ExecutorSettings) -> Executor:
    """The executor ``settings`` name, connected (a Dask scheduler that cannot be reached, or
    a Dask executor without ``dask.distributed`` installed, is a :class:`ConfigError`: exit 2,
    nothing written)."""
    kind = settings.parsed_kind()
    if kind is ExecutorKind.LOCAL:
        if settings.scheduler:
            raise ConfigError(
                f"A scheduler ({settings.scheduler!r}) is set but the executor is local "
                f"({settings.origin})",
                hint="pass --executor dask to use that scheduler, or leave the scheduler out",
            )
        return LocalExecutor()
    try:
        from backfiller.actions.dask_executor import DaskExecutor
    except ImportError as exc:
        raise ConfigError(
            f"The Dask executor ({settings.origin}) needs dask.distributed, which is not "
            f"installed here ({exc.name or exc})",
            hint="pip install 'backfiller[dask]', or run with --executor local",
        ) from exc
    return DaskExecutor.connect(settings.scheduler, origin=settings.origin)
