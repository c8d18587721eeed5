"""Reading a manifest: what every command that loads the project pays per manifest file.

    python benchmarks/manifest_parse.py [--days 3650,100000] [--repeat 5]

For a manifest declaring ``--days`` consecutive days (each with a record count and one input
file), in this process: ``json.loads`` of the file alone (the floor: what reading it without
any checking costs), then ``load_manifest`` — the JSON Schema's rules through the model, every
``date-time`` checked as RFC 3339, repeated keys, and each key checked against the project's
daily scheme — and the ratio of the two. The median of ``--repeat`` runs, CPU seconds of this
process. Never run by the test suite.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from backfiller.manifests import load_manifest
from backfiller.partitions import scheme_from_config

START = date(1990, 1, 1)


def _manifest(days: int) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "manifest_id": f"bench-{days}",
        "source": "bench/events",
        "batch_id": "b-1",
        "created_at": "2026-05-01T00:00:00+00:00",
        "partitions": [
            {
                "partition_key": (START + timedelta(days=i)).isoformat(),
                "expected_record_count": 100 + i % 7,
                "input_files": [{"path": f"data/seed/{i}.jsonl", "sha256": f"{i:064x}"}],
            }
            for i in range(days)
        ],
    }


def _cpu(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        began = time.process_time()
        fn()
        times.append(time.process_time() - began)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", default="3650,100000", help="comma-separated sizes")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    scheme = scheme_from_config(kind="daily", start=START.isoformat())
    print(f"{'days':>8} {'json.loads':>11} {'load_manifest':>14} {'ratio':>7}")
    with tempfile.TemporaryDirectory(prefix="manifest-parse-") as folder:
        for days in (int(d) for d in args.days.split(",")):
            path = Path(folder) / f"m-{days}.json"
            path.write_text(json.dumps(_manifest(days)), encoding="utf-8")
            load_manifest(path, scheme)  # once: the first model validation's set-up
            plain = _cpu(lambda p=path: json.loads(p.read_text(encoding="utf-8")), args.repeat)
            checked = _cpu(lambda p=path: load_manifest(p, scheme), args.repeat)
            print(f"{days:>8} {plain:>10.3f}s {checked:>13.3f}s {checked / plain:>6.1f}×")


if __name__ == "__main__":
    main()
