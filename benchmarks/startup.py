"""Start-up time of the command line: what a user waits for before anything happens.

    python benchmarks/startup.py [--repeat 15] [--keep]

Lays the bundled example out in a temporary folder as ``backfiller demo`` does (March–April
2026 materialized except 2026-04-17), then runs, each ``--repeat`` times in a fresh process:

* ``python -c pass`` — the interpreter alone, the floor;
* ``backfiller --help``;
* ``backfiller status`` in the example project (reads the ledger, the manifests and the
  Delta tables: 2 assets × 280 partitions).

It prints the median wall time and the median CPU time (user + system, of the child process)
of each, and their ratio to ``python -c pass``. The commands run this checkout's
``src/backfiller`` (``PYTHONPATH``) with the interpreter running this script, with Python's
bytecode cache as a user's machine has it: a first, unmeasured run writes the ``.pyc`` files
(``PYTHONDONTWRITEBYTECODE`` is removed from the children's environment — with it, every
process compiles every module again). Never run by the test suite.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
ENTRY = "import sys; from backfiller.cli.main import main; sys.exit(main())"


def _environment() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("WEEK06_", "BACKFILLER_")) and k != "PYTHONDONTWRITEBYTECODE"
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH", "")]))
    env["COLUMNS"] = "160"
    return env


def _measure(argv: list[str], cwd: Path, repeat: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``argv`` over ``repeat`` fresh processes."""
    env = _environment()
    walls, cpus = [], []
    # warm the caches: the bytecode of every module imported, the OS's file cache
    subprocess.run(argv, cwd=cwd, env=env, capture_output=True, check=True)
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        began = time.perf_counter()
        subprocess.run(argv, cwd=cwd, env=env, capture_output=True, check=True)
        walls.append(time.perf_counter() - began)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(
            (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        )
    return statistics.median(walls), statistics.median(cpus)


def _lay_out(folder: Path) -> None:
    sys.path.insert(0, str(SRC))
    from rich.console import Console

    from backfiller.lab.demo import run_demo

    run_demo(folder, Console(file=io.StringIO()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15, help="processes per command")
    parser.add_argument("--keep", action="store_true", help="keep the example project")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="backfiller-startup-")) / "omni"
    try:
        print(f"laying out the example in {folder} …", flush=True)
        _lay_out(folder)
        python = sys.executable
        cases = [
            ("python -c pass", [python, "-c", "pass"]),
            ("backfiller --help", [python, "-c", ENTRY, "--help"]),
            ("backfiller status", [python, "-c", ENTRY, "status"]),
        ]
        results = [(name, *_measure(argv, folder, args.repeat)) for name, argv in cases]
        floor_wall, floor_cpu = results[0][1], results[0][2]
        print(f"\nmedian of {args.repeat} runs each ({python}, {os.cpu_count()} CPUs)\n")
        print(f"{'command':<20} {'wall s':>8} {'cpu s':>8} {'wall ×':>8} {'cpu ×':>8}")
        for name, wall, cpu in results:
            print(
                f"{name:<20} {wall:>8.3f} {cpu:>8.3f} {wall / floor_wall:>8.1f} "
                f"{cpu / max(floor_cpu, 1e-3):>8.1f}"
            )
    finally:
        if args.keep:
            print(f"\nkept {folder}")
        else:
            shutil.rmtree(folder.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
