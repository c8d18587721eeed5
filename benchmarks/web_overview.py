"""The web view's overview: the first and the repeated ``GET /`` of a server, for N assets ×
D daily partitions and for the demo project.

    python benchmarks/web_overview.py [--assets 10] [--days 100000] [--repeat 5] [--keep]
    python benchmarks/web_overview.py --project DIR --days 100000   # a project kept before

(a) generated: the project of ``benchmarks/planning_scale.py`` (variant ``half``: the first half
    of the days materialised with scattered gaps — failed, check_failed, orphan, missing
    reports, stale upstream — and a manifest that redeclares a month), with ``--days`` days
    (``--keep`` keeps it; ``--project`` reuses one kept, its ``generated`` folder, which must
    have been generated with the same ``--assets`` and ``--days``); its tables keep their data
    files in a folder per partition, as backfiller writes them (``--layout flat``: all at each
    table's top, as other writers may; the label says which);
(b) demo: the project ``backfiller demo`` lays out (March–April materialised but 2026-04-17),
    over its default window.

For each, in this process (imports paid before the clock starts), through the framework's test
client: the project loaded afresh and the server's first ``GET /`` (cold: the manifests loaded,
every cell classified); the seconds after it until the background sweep has stamped the data
folders of the large tables (``stamps``: more than 10,000 folders, see
``backfiller.web.sweep``; awaited before what follows); the median of ``--repeat`` more (the
server's state cache: nothing changed, nothing classified); ``swept``: the same, right after
a background sweep stamped the data folders again (a server's steady state: the stamps are
other objects of the same values); ``restart``: the first ``GET /``
of a second server started with the states file the first one kept on disk
(``backfiller.web.kept``; the project loaded afresh, nothing changed: nothing classified), and
``restored``: the seconds after it until that server's background has read the restored
tables' logs and stamped their data folders (until then, a data file deleted behind a log's
back while no server ran is not seen); the cost of the cache's identity check alone (median
of ``--repeat``); each of the next two measured right after a background sweep ended (not
sharing the CPU with one): one ``GET /`` after a partition report of one asset was written
(that asset classified again; the report is removed afterwards) and one after a partition was
marked stale in the ledger (that asset and those that read it classified again: the ledger's
marks are per asset; the ledger's file written back after); then the HTML's size and the
number of bar segments. The target of issue 14 is under 1 s and under 500 KB for 10 ×
100,000. Never run by the test suite.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def _timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """The median wall seconds of ``repeat`` calls, and the last result."""
    wall, _, result = _timed_cpu(fn, repeat)
    return wall, result


def _timed_cpu(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """The median wall and CPU seconds (this process, every thread) of ``repeat`` calls, and
    the last result: on a shared machine the CPU seconds move less with the load."""
    walls, cpus, result = [], [], None
    for _ in range(repeat):
        started, cpu = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus), result


def measure(
    label: str, root: Path, clock: Any, start: str | None, end: str | None, repeat: int
) -> None:
    from fastapi.testclient import TestClient

    from backfiller import load_project
    from backfiller.web.app import create_app
    from backfiller.web.cache import StateCache

    query = f"/?start={start}&end={end}" if start and end else "/"
    project = load_project(root, clock=clock)
    kept = Path(tempfile.mkdtemp(prefix="web-overview-kept-")) / "states.json"
    app = create_app(project, kept_path=kept)
    with TestClient(app) as client:
        started = time.perf_counter()
        response = client.get(query)
        cold_s = time.perf_counter() - started
        assert response.status_code == 200, response.text[:500]
        # large tables' data folders are stamped in the background after their first
        # classification: measured apart, and awaited before the rest
        cache: StateCache = app.state.states
        started = time.perf_counter()
        while cache.sweep.waiting:
            time.sleep(0.01)
        stamps_s = time.perf_counter() - started
        warm_s, again = _timed(lambda: client.get(query), repeat)
        assert again.content == response.content
        # a server's steady state: its data folders stamped again since (other objects,
        # the same values)
        _between_sweeps(cache)
        swept_s, again = _timed(lambda: client.get(query), repeat)
        assert again.content == response.content
        # the next server, started with the states this one kept on disk (nothing changed)
        restart_s, restored_s = _restarted(root, clock, kept, query, response.content)
        gc.collect()  # that server's leftovers (not timed: in use, it is another process)
        # the server's cache knows its tables' folders (and, while it runs, sweeps them)
        keys = client_keys(project, start, end)
        identity_s, _ = _timed(lambda: cache.identify(keys), repeat)
        _between_sweeps(cache)
        changed_s = _one_report_written(project, client, query)
        _between_sweeps(cache)
        ledger_s = _one_partition_marked(project, client, query)
    data = response_json(app, query)
    segments = sum(len(a["bar"]) for a in data["assets"])
    ranges = sum(a["ranges"] for a in data["assets"])
    cells = sum(sum(a["counts"].values()) for a in data["assets"])
    print(
        f"{label:>24} {cells:>10,} {ranges:>8,} {segments:>6,} {cold_s:>9.3f} {stamps_s:>9.3f} "
        f"{warm_s:>9.3f} {swept_s:>9.3f} {restart_s:>9.3f} {restored_s:>10.3f} "
        f"{identity_s:>10.4f} {changed_s:>10.3f} {ledger_s:>9.3f} "
        f"{len(response.content) / 1024:>9.1f}",
        flush=True,
    )


def _restarted(root: Path, clock: Any, kept: Path, query: str, page: bytes) -> tuple[float, float]:
    """The seconds of a new server's first ``GET /`` (the project loaded afresh, not timed)
    given the states file the first server kept, and the seconds after it until the
    background has told and stamped the restored tables' data folders."""
    from fastapi.testclient import TestClient

    from backfiller import load_project
    from backfiller.web.app import create_app
    from backfiller.web.cache import StateCache

    app = create_app(load_project(root, clock=clock), kept_path=kept)
    with TestClient(app) as client:
        started = time.perf_counter()
        response = client.get(query)
        restart_s = time.perf_counter() - started
        assert response.content == page
        cache: StateCache = app.state.states
        started = time.perf_counter()
        for thread in cache.restoring:
            thread.join()
        while cache.sweep.waiting:
            time.sleep(0.01)
        return restart_s, time.perf_counter() - started


def _between_sweeps(cache: Any) -> None:
    """Wait for the server's background sweep of large tables' data folders to end one (the
    next starts at least 5 s later), so that a request measured next does not share the CPU
    with it; at once when it does not run."""
    thread = cache.sweep.thread
    if thread is None or not thread.is_alive():
        return
    ended = cache.sweep.sweeps
    while cache.sweep.sweeps == ended and thread.is_alive():
        time.sleep(0.01)


def client_keys(project: Any, start: str | None, end: str | None) -> list[str]:
    from backfiller.web import pages

    return pages.window(project, start, end)


def response_json(app: Any, query: str) -> Any:
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        return client.get("/api" + query).json()


def _one_report_written(project: Any, client: Any, query: str) -> float:
    """The seconds of one ``GET /`` after a partition report of the first asset was written
    (a key with none), the report removed afterwards (and its folder's time set back, so the
    project is as before); NaN when every key has a report."""
    from backfiller.web import pages

    asset = project.graph.keys[0]
    folder = project.partition_report_dir(asset)
    have = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
    keys = pages.window(project)
    missing = next((k for k in keys if f"{k}.json" not in have), None)
    if missing is None:
        return float("nan")
    before = folder.stat()
    path = project.partition_report_path(asset, missing)
    path.write_text("{}\n", "utf-8")
    try:
        started = time.perf_counter()
        client.get(query)
        return time.perf_counter() - started
    finally:
        path.unlink()
        os.utime(folder, ns=(before.st_atime_ns, before.st_mtime_ns))


def _one_partition_marked(project: Any, client: Any, query: str) -> float:
    """The seconds of one ``GET /`` after the ledger changed (a materialized partition of
    the second asset marked stale: it and the assets that read it classified again, the
    manifests kept); the
    ledger's file is written back as it was afterwards. NaN for a ledger that is not a
    SQLite file or has no such partition."""
    path = project.config.ledger_path
    if project.config.ledger_url or not path.is_file():
        return float("nan")
    asset = project.graph.keys[min(1, len(project.graph) - 1)]
    reader = project.reader()
    try:
        done = [r for r in reader.partitions.all(asset) if r.status.value == "materialized"]
    finally:
        reader.close()
    if not done:
        return float("nan")
    before = path.read_bytes()
    try:
        with project.ledger() as ledger:
            ledger.partitions.mark_stale(
                asset, done[0].partition_key, run_id=None, operator="bench", reason="bench"
            )
        started = time.perf_counter()
        client.get(query)
        return time.perf_counter() - started
    finally:
        path.write_bytes(before)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assets", type=int, default=10)
    parser.add_argument("--days", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5, help="median of this many runs")
    parser.add_argument("--keep", action="store_true", help="keep the generated projects")
    parser.add_argument("--project", type=Path, help="a generated project kept before")
    parser.add_argument(
        "--layout",
        choices=["folders", "flat"],
        default="folders",
        help="data files in a folder per partition (as backfiller writes them; default) or "
        "all at each table's top",
    )
    args = parser.parse_args()

    import planning_scale
    from rich.console import Console

    from backfiller import FixedClock
    from backfiller.clock import system_clock
    from backfiller.lab.demo import run_demo
    from backfiller.planning.identity import RACY_NS

    base = Path(tempfile.mkdtemp(prefix="web-overview-"))
    print(f"# load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}")
    print(
        f"{'project':>24} {'cells':>10} {'ranges':>8} {'segs':>6} {'cold s':>9} {'stamps s':>9} "
        f"{'warm s':>9} {'swept s':>9} {'restart s':>9} {'restored s':>10} {'identity s':>10} "
        f"{'changed s':>10} {'ledger s':>9} "
        f"{'HTML KiB':>9}"
    )
    try:
        planning_scale.DAYS = args.days
        planning_scale.LAYOUT = args.layout
        root = args.project
        if root is None:
            root = base / "generated"
            started = time.perf_counter()
            planning_scale.generate(root, args.assets, "half")
            print(f"# generated {args.assets} assets × {args.days:,} days in "
                  f"{time.perf_counter() - started:.1f} s")  # fmt: skip
        keys = planning_scale.day_keys()
        last = datetime.fromisoformat(keys[-1]).replace(tzinfo=UTC)
        clock = FixedClock(last.replace(year=last.year + 1))
        written = root / "layout.txt"
        layout = written.read_text("utf-8").strip() if written.exists() else "flat"
        label = f"{args.assets} × {args.days:,} {layout}"
        measure(label, root, clock, keys[0], keys[-1], args.repeat)

        demo = base / "demo"
        with Path(os.devnull).open("w") as sink:
            run_demo(demo, Console(file=sink))
        # a project written a moment ago is not kept (its files' times are not settled yet:
        # backfiller.planning.identity.RACY_NS); a server looks at older ones
        time.sleep(RACY_NS / 1e9)
        measure("demo (default window)", demo, system_clock, None, None, args.repeat)
        print(f"# load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}")
    finally:
        if args.keep:
            print(f"projects kept in {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
