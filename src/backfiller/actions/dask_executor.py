"""The Dask executor: step computations on a ``dask.distributed`` cluster.

Imported only when ``[executor] kind = "dask"`` (or ``--executor dask``) is chosen; install
with ``pip install 'backfiller[dask]'``. What the workers need:

* backfiller and the libraries the assets use, installed as on the coordinator;
* the store (the upstream tables, read at the versions the coordinator pinned) and the
  manifests' input files, reachable under the same paths or URIs;
* never the ledger, the reports or the plans: those stay with the coordinator.

The project's own modules (the assets module and whatever else is imported from the project
folder, packages and namespace packages alike) travel with each task, pickled by value, so
workers need no copy of the project. A
computation is pure: when a worker dies, the scheduler runs it again elsewhere and the
coordinator, which has not committed anything for that step yet, just waits longer.
"""

from __future__ import annotations

import sys
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import CancelledError
from pathlib import Path
from typing import Any

import cloudpickle
import pyarrow as pa
from distributed import Client, KilledWorker

from backfiller.actions.computation import StepError, StepTask, compute_step
from backfiller.errors import ConfigError

__all__ = ["DaskExecutor"]

#: how long connecting to the scheduler may take before the run is refused
CONNECT_TIMEOUT = "10s"


class DaskExecutor:
    """Submits each step's computation to a Dask cluster through ``client``."""

    def __init__(self, client: Client, *, owns_client: bool = False) -> None:
        self.client = client
        self._owns_client = owns_client
        #: the modules looked at already, with the project folder they were looked at for
        self._seen: set[tuple[str, Path]] = set()
        self._lock = threading.Lock()

    @classmethod
    def connect(cls, address: str, *, origin: str = "--scheduler") -> DaskExecutor:
        """A client of the scheduler at ``address`` (``tcp://host:8786``); one that cannot
        be reached is a :class:`ConfigError` before anything is written."""
        if not address:
            raise ConfigError(
                f"The dask executor needs the scheduler's address ({origin})",
                hint="pass --scheduler tcp://HOST:8786, or set [executor] scheduler in "
                "backfiller.toml",
            )
        try:
            client = Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
        except Exception as exc:
            raise ConfigError(
                f"Cannot reach the Dask scheduler at {address!r} ({origin}): {exc}",
                hint="start the scheduler (dask scheduler) and its workers, or fix the address; "
                "nothing was written",
            ) from exc
        return cls(client, owns_client=True)

    def submit(
        self, task: StepTask, read_upstream: Callable[[str], pa.Table] | None = None
    ) -> _DaskFuture:
        """Hand ``task`` to the cluster (``read_upstream`` is the coordinator's: ignored; a
        worker reads the pinned versions from the store)."""
        self._register_project_modules(task.project_root)
        payload = cloudpickle.dumps(task)
        key = f"backfiller-{task.asset.key}-{task.partition_key}-{uuid.uuid4().hex[:12]}"
        return _DaskFuture(self.client.submit(_compute_payload, payload, key=key, pure=False))

    def close(self) -> None:
        if self._owns_client:
            self._owns_client = False
            self.client.close()

    def _register_project_modules(self, root: Path) -> None:
        """Pickle the project's own modules by value (those imported from the project
        folder, as the assets module is): a worker cannot import them. Each module is looked
        at once."""
        root = Path(root).resolve()
        with self._lock:
            for name, module in list(sys.modules.items()):
                if (name, root) in self._seen:
                    continue
                self._seen.add((name, root))
                if "." in name or name == "backfiller":
                    continue
                if root in _folders_of(module):  # its submodules go by value with it
                    cloudpickle.register_pickle_by_value(module)


def _folders_of(module: Any) -> list[Path]:
    """The folders a top-level module was imported from: the one holding its file (or its
    package's folder); for a namespace package (no ``__init__.py``, so no ``__file__``), the
    folder holding each of its portions."""
    file = getattr(module, "__file__", None)
    if file:
        where = Path(file).resolve()
        return [where.parent.parent if where.name == "__init__.py" else where.parent]
    try:
        portions = [str(p) for p in getattr(module, "__path__", None) or ()]
    except TypeError:  # a __path__ that is no list of folders
        return []
    return [Path(p).resolve().parent for p in portions]


class _DaskFuture:
    """A Dask future's rows; a computation the cluster gave up on (its workers died, or the
    client lost the scheduler) is a transient step error: a retry may cure it."""

    def __init__(self, future: Any) -> None:
        self._future = future

    def result(self) -> pa.Table:
        try:
            rows = self._future.result()
        except (KilledWorker, CancelledError) as exc:
            raise StepError(
                f"the Dask cluster gave up on the computation: {type(exc).__name__}: {exc}",
                hint="the step published nothing; 'backfiller retry RUN_ID' computes it again",
                transient=True,
            ) from exc
        finally:
            self._future.release()
        assert isinstance(rows, bytes)
        return pa.ipc.open_stream(rows).read_all()


def _compute_payload(payload: bytes) -> bytes:
    """On a worker: the rows of the pickled task, as an Arrow IPC stream (its buffers come
    back aligned, as Arrow's compute kernels want them; a pickled table's may not be)."""
    task = cloudpickle.loads(payload)
    assert isinstance(task, StepTask)
    rows = compute_step(task)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, rows.schema) as writer:
        writer.write_table(rows)
    return bytes(sink.getvalue().to_pybytes())
