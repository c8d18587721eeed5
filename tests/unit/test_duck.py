"""The process's DuckDB databases (backfiller.duck): a cursor per piece of work, its tables its
own; a thread's databases closed when it ends; a scoped block's database closed at the block's
end; and every database closed at exit, so that a process ends with its own exit status."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
import threading

import duckdb
import pyarrow as pa
import pytest

from backfiller import duck


def _closed(con: duckdb.DuckDBPyConnection) -> bool:
    try:
        con.execute("SELECT 1").fetchall()
    except duckdb.ConnectionException:
        return True
    return False


def test_cursors_of_one_database_do_not_see_each_others_tables() -> None:
    first, second = duck.cursor("planning"), duck.cursor("planning")
    try:
        first.register("mine", pa.table({"a": [1]}))
        first.execute("CREATE TEMP TABLE kept AS SELECT 1 AS a")
        assert first.sql("SELECT count(*) FROM mine, kept").fetchall() == [(1,)]
        for name in ("mine", "kept"):
            with pytest.raises(duckdb.CatalogException):
                second.sql(f"SELECT * FROM {name}").fetchall()
    finally:
        first.close()
        second.close()


def test_the_planning_database_runs_one_thread_in_utc() -> None:
    con = duck.cursor("planning")
    try:
        assert con.sql("SELECT current_setting('threads')").fetchall() == [(1,)]
        assert con.sql("SELECT current_setting('TimeZone')").fetchall() == [("UTC",)]
    finally:
        con.close()


def test_a_threads_databases_are_closed_when_it_ends() -> None:
    opened: list[duckdb.DuckDBPyConnection] = []

    def work() -> None:
        con = duck.cursor("engine")
        con.execute("CREATE TEMP TABLE t AS SELECT range AS a FROM range(1000)")
        con.close()
        opened.append(duck._thread().by_purpose["engine"][1])

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    del thread
    gc.collect()
    assert len(opened) == 1 and _closed(opened[0])
    # this thread's own database is another, still open
    mine = duck.cursor("engine")
    mine.close()
    assert not _closed(duck._thread().by_purpose["engine"][1])


def test_a_scoped_block_has_a_database_of_its_own_closed_at_its_end() -> None:
    shared = duck.cursor("planning")
    shared.close()
    outside = duck._thread().by_purpose["planning"][1]
    with duck.scoped("planning"):
        con = duck.cursor("planning")
        con.execute("CREATE TEMP TABLE t AS SELECT 1 AS a")
        inner = duck._thread().scoped["planning"][-1]
        assert inner is not outside
        con.close()
    assert _closed(inner) and not _closed(outside)
    assert duck._thread().scoped["planning"] == []
    again = duck.cursor("planning")  # the thread's own database again
    again.close()
    assert duck._thread().by_purpose["planning"][1] is outside


@pytest.mark.slow
def test_a_process_whose_threads_queried_exits_with_its_own_status() -> None:
    code = textwrap.dedent(
        """
        import threading
        from backfiller import duck

        def work():
            con = duck.cursor("planning")
            con.execute("CREATE TEMP TABLE t AS SELECT range AS a FROM range(100000)")
            con.close()

        for _ in range(4):
            thread = threading.Thread(target=work)
            thread.start()
            thread.join()
        main = duck.cursor("engine")
        print(main.sql("SELECT 42").fetchall()[0][0])
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert (result.returncode, result.stdout.strip()) == (0, "42"), result.stderr
