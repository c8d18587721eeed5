"""The web view's overview: render time and HTML size, for N assets × D daily partitions and
for the demo project.

    python benchmarks/web_overview.py [--assets 10] [--days 100000] [--repeat 3] [--keep]

(a) generated: the project of ``benchmarks/planning_scale.py`` (variant ``half``: the first half
    of the days materialised with scattered gaps — failed, check_failed, orphan, missing
    reports, stale upstream — and a manifest that redeclares a month), with ``--days`` days;
(b) demo: the project ``backfiller demo`` lays out (March–April materialised but 2026-04-17),
    over its default window.

For each, in this process (imports paid before the clock starts; the median of ``--repeat``):
the state classification alone (``state_ranges``, the query ``status`` and ``gaps`` run; wall
and CPU seconds), the
page's data (``pages.overview``: that classification, the bars built from its ranges, holds,
runs), the HTML rendered from that data, and a whole ``GET /`` through the framework's test
client; then the HTML's size and the number of bar segments. The target of
issue 14 is under 1 s and under 500 KB for 10 × 100,000. Never run by the test suite.
"""

from __future__ import annotations

import argparse
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


def measure(label: str, project: Any, start: str | None, end: str | None, repeat: int) -> None:
    from fastapi.testclient import TestClient

    from backfiller.planning.classify import state_ranges
    from backfiller.web import pages
    from backfiller.web.app import create_app
    from backfiller.web.html import Links, render

    reader = project.reader()
    keys = pages.window(project, start, end)
    classify_s, classify_cpu, _ = _timed_cpu(lambda: state_ranges(project, reader, keys), repeat)
    data_s, data = _timed(lambda: pages.overview(project, reader, start, end), repeat)
    html_s, _ = _timed(lambda: render("overview.html", data, Links("/")), repeat)
    query = f"/?start={start}&end={end}" if start and end else "/"
    with TestClient(create_app(project)) as client:
        client.get(query)  # warm: the first request starts the app
        get_s, response = _timed(lambda: client.get(query), repeat)
    assert response.status_code == 200, response.text[:500]
    cells = len(data["assets"]) * data["window"]["count"]
    segments = sum(len(a["bar"]) for a in data["assets"])
    ranges = sum(a["ranges"] for a in data["assets"])
    print(
        f"{label:>28} {cells:>10,} {ranges:>8,} {segments:>6,} {classify_s:>10.3f} "
        f"{classify_cpu:>8.3f} "
        f"{data_s:>9.3f} {html_s:>9.3f} "
        f"{get_s:>9.3f} {len(response.content) / 1024:>9.1f}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assets", type=int, default=10)
    parser.add_argument("--days", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="median of this many runs")
    parser.add_argument("--keep", action="store_true", help="keep the generated projects")
    args = parser.parse_args()

    import planning_scale
    from rich.console import Console

    from backfiller import FixedClock, load_project
    from backfiller.lab.demo import run_demo

    base = Path(tempfile.mkdtemp(prefix="web-overview-"))
    print(
        f"{'project':>28} {'cells':>10} {'ranges':>8} {'segs':>6} {'classify s':>10} "
        f"{'CPU s':>8} "
        f"{'data s':>9} {'html s':>9} "
        f"{'GET / s':>9} {'HTML KiB':>9}"
    )
    try:
        planning_scale.DAYS = args.days
        root = base / "generated"
        started = time.perf_counter()
        planning_scale.generate(root, args.assets, "half")
        keys = planning_scale.day_keys()
        print(f"# generated {args.assets} assets × {args.days:,} days in "
              f"{time.perf_counter() - started:.1f} s")  # fmt: skip
        last = datetime.fromisoformat(keys[-1]).replace(tzinfo=UTC)
        clock = FixedClock(last.replace(year=last.year + 1))
        project = load_project(root, clock=clock)
        label = f"{args.assets} × {args.days:,}"
        measure(label, project, keys[0], keys[-1], args.repeat)

        demo = base / "demo"
        with Path(os.devnull).open("w") as sink:
            run_demo(demo, Console(file=sink))
        measure("demo (default window)", load_project(demo), None, None, args.repeat)
    finally:
        if args.keep:
            print(f"projects kept in {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
