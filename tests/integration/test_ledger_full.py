"""A ledger that cannot grow (a full disk) stops a run naming the cause, not as a raw SQLite
error, and leaves a run that ``resume`` finishes once space is back.

The full disk is real to SQLite: ``PRAGMA max_page_count`` at the file's current size makes
every write that needs a new page fail with SQLITE_FULL ("database or disk is full"), exactly
the error a full file system gives it.
"""

from __future__ import annotations

import pytest
from conftest import run_steps

from backfiller import PartitionStatus, Project, RunState
from backfiller.actions.recovery import resume
from backfiller.errors import WriteBlockedError
from backfiller.ledger import SqliteLedger

RAW = "week06/ingestion/raw_ticket_events_partitioned"
SILVER = "week06/silver/ticket_fact_partitioned"
KEYS = ["2026-04-17", "2026-04-21", "2026-04-22", "2026-04-23"]
UNLIMITED = 1_073_741_823  # SQLite's default max_page_count


def test_a_full_ledger_stops_the_run_naming_the_cause_and_resume_finishes(
    april_project: Project,
) -> None:
    project = april_project
    steps = [(asset, key) for key in KEYS for asset in (RAW, SILVER)]
    with project.ledger() as ledger:
        assert isinstance(ledger, SqliteLedger)
        conn = ledger._db.conn  # type: ignore[attr-defined]
        # room for the run to start, then not one page more
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute("VACUUM")  # no free pages left to reuse
        conn.execute(f"PRAGMA max_page_count = {pages + 2}")

        with pytest.raises(WriteBlockedError) as blocked:
            run_steps(project, ledger, steps, reason="fill the gap and four new days")

        message = blocked.value.message
        assert message.startswith("Cannot write the ledger: database or disk is full")
        assert str(ledger.path) in message
        assert "free space" in (blocked.value.hint or "")
        assert "sqlite3" not in message and "OperationalError" not in message

        conn.execute(f"PRAGMA max_page_count = {UNLIMITED}")  # space is back
        (run,) = [r for r in ledger.runs.all() if r.state is RunState.RUNNING]
        result = resume(project, ledger, run_id=run.run_id, operator="tests")

        assert result.state is RunState.SUCCEEDED
        for asset, key in steps:
            record = ledger.partitions.get(asset, key)
            assert record is not None and record.status is PartitionStatus.MATERIALIZED, (
                asset,
                key,
            )
            assert record.last_run_id == run.run_id
        assert ledger.leases.held() == []
