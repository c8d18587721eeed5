"""Several processes writing the same partition of a table that does not exist yet.

Before the empty creating commit, delta-rs retried a losing creation as a later commit that
skipped an overwrite's conflict and fencing checks, so the partition could end with two or
three writers' rows side by side (1 round in 6 with 8 writers). Now the first commit of a
table is empty and every data commit is a fenced overwrite: whatever the timing, the partition
holds exactly one writer's rows, the writer with the newest token among those whose commit
landed, and no two writers were given the same version.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from backfiller.store import DeltaStore
from backfiller.store.base import PARTITION_COLUMN, CommitInfo, CommitKey

pytestmark = pytest.mark.slow

WRITERS = 8
ROUNDS = 12
ASSET = "lake/orders"
KEY = "2026-01-01"
ROWS = 10


def _writer(root: str, writer: int, barrier: Barrier, results: Any) -> None:
    """One process: in every round, write the partition of a fresh table with token
    ``writer + 1`` at the same moment as the others."""
    data = pa.table(
        {
            "writer": pa.array([writer] * ROWS, pa.int64()),
            PARTITION_COLUMN: pa.array([KEY] * ROWS),
        }
    )
    for round_ in range(ROUNDS):
        store = DeltaStore(Path(root) / f"round-{round_}")
        commit = CommitInfo(run_id=f"w{writer}", fences=((KEY, writer + 1),))
        barrier.wait()
        try:
            version = store.write_partitions(ASSET, data, [KEY], commit)
        except Exception as exc:  # reported, judged by the test
            results.put((round_, writer, type(exc).__name__, None))
        else:
            results.put((round_, writer, "ok", version))


def test_writers_creating_one_table_at_once_leave_one_writers_rows(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(WRITERS)
    results = context.Queue()
    processes = [
        context.Process(target=_writer, args=(str(tmp_path), w, barrier, results))
        for w in range(WRITERS)
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=120) for _ in range(WRITERS * ROUNDS)]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0

    for round_ in range(ROUNDS):
        mine = [o for o in outcomes if o[0] == round_]
        landed = {writer: version for _, writer, kind, version in mine if kind == "ok"}
        refused = {kind for _, _, kind, _ in mine if kind != "ok"}
        assert landed, f"round {round_}: no writer landed"
        # a refusal is the fence (a newer token holds the partition) or Delta's conflict
        assert refused <= {"FencedError", "CommitFailedError"}, (round_, refused)
        assert len(set(landed.values())) == len(landed), (round_, landed)  # own versions

        store = DeltaStore(tmp_path / f"round-{round_}")
        rows = store.read_partition(ASSET, KEY)
        assert rows is not None
        writers = set(rows.column("writer").to_pylist())
        assert rows.num_rows == ROWS and len(writers) == 1, (round_, rows.num_rows, writers)
        # the rows are those of the newest token that landed, committed last
        (winner,) = writers
        assert winner == max(landed), (round_, winner, landed)
        history = store.history(ASSET)
        # nothing lands after the winner: no late creation replacing the table's metadata
        assert landed[winner] == store.version(ASSET), [(h.version, h.metadata) for h in history]
        assert history[-1].metadata == {CommitKey.CREATED.value: "1"}
        assert history[0].metadata[CommitKey.RUN_ID.value] == f"w{winner}"
