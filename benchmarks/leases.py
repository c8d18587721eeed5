"""Team mode, measured: lease cycles per second on each ledger backend, and a year's backfill.

    python benchmarks/leases.py [--seconds 3] [--workers 1,4,16] [--days 365] [--max-parallel 2]

(a) leases: each worker is a thread with its own ledger object (its own connection), taking and
    giving back leases on partitions no other worker touches — ``acquire`` then ``release``, one
    cycle — for ``--seconds`` per configuration, with 1, 4 and 16 workers, on
    * SQLite: one ledger file (``synchronous=FULL``, rollback journal), as today;
    * PostgreSQL: ``PostgresLedger`` (psycopg 3, a pool of one connection per worker);
    * bare psycopg: the same two statements in a plain loop (autocommit, no ledger), the
      baseline for what the server allows.
    PostgreSQL runs on a throwaway cluster started for the benchmark with durable settings
    (fsync and synchronous_commit on), from the server binaries on PATH or under
    /usr/lib/postgresql/<N>/bin — the test suite's cluster helper (tests/postgres_server.py).
(b) the 365-day controlled backfill of ``benchmarks/backfill_365.py`` (its project, assets and
    measurement, reused), once with the SQLite ledger and once with ``[ledger] url`` pointing
    at a database of that cluster.

Never run by the test suite.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

import backfill_365  # noqa: E402 - the year's backfill, reused
from postgres_server import PostgresServer, find_bin_dir  # noqa: E402 - the throwaway cluster

ASSET = "bench/leases"
TTL = 600.0

BARE_ACQUIRE = (
    "INSERT INTO leases AS l (asset, partition_key, holder, plan_id, run_id, token,"
    " acquired_at, expires_at) VALUES (%s, %s, %s, NULL, %s, 1, now()::text,"
    " (now() + interval '10 minutes')::text)"
    " ON CONFLICT (asset, partition_key) DO UPDATE SET holder = excluded.holder,"
    " run_id = excluded.run_id, token = l.token + 1, acquired_at = excluded.acquired_at,"
    " expires_at = excluded.expires_at"
    " WHERE l.holder IS NULL OR l.run_id = excluded.run_id"
    " OR CAST(l.expires_at AS timestamptz) <= now()"
    " RETURNING token"
)
BARE_RELEASE = (
    "UPDATE leases SET holder = NULL, expires_at = NULL"
    " WHERE asset = %s AND partition_key = %s AND token = %s"
)


def _run_workers(workers: int, seconds: float, make: Callable[[int], Callable[[], None]]) -> float:
    """Cycles per second of ``workers`` threads, each calling its own cycle until time is up."""
    cycles = [make(i) for i in range(workers)]
    counts = [0] * workers
    barrier = threading.Barrier(workers + 1)
    stop = threading.Event()

    def work(i: int) -> None:
        barrier.wait()
        n = 0
        while not stop.is_set():
            cycles[i]()
            n += 1
        counts[i] = n

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    barrier.wait()
    began = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - began)


def ledger_cycles(open_ledger: Callable[[], Any], workers: int, seconds: float) -> float:
    ledgers = [open_ledger() for _ in range(workers)]
    try:

        def make(i: int) -> Callable[[], None]:
            led, keys = ledgers[i], [f"w{i:02d}-{k:02d}" for k in range(16)]
            turn = iter(range(10**12))

            def cycle() -> None:
                key = keys[next(turn) % len(keys)]
                lease = led.leases.acquire(
                    ASSET, key, holder=f"worker-{i}", plan_id=None, run_id=f"run-{i}",
                    ttl_seconds=TTL,
                )  # fmt: skip
                led.leases.release(lease)

            return cycle

        return _run_workers(workers, seconds, make)
    finally:
        for led in ledgers:
            led.close()


def bare_cycles(url: str, workers: int, seconds: float) -> float:
    import psycopg

    conns = [psycopg.connect(url, autocommit=True, prepare_threshold=None) for _ in range(workers)]
    try:

        def make(i: int) -> Callable[[], None]:
            conn, keys = conns[i], [f"b{i:02d}-{k:02d}" for k in range(16)]
            turn = iter(range(10**12))

            def cycle() -> None:
                key = keys[next(turn) % len(keys)]
                row = conn.execute(BARE_ACQUIRE, (ASSET, key, f"worker-{i}", f"run-{i}")).fetchone()
                assert row is not None
                conn.execute(BARE_RELEASE, (ASSET, key, row[0]))

            return cycle

        return _run_workers(workers, seconds, make)
    finally:
        for conn in conns:
            conn.close()


def lease_table(server: PostgresServer, folder: Path, counts: list[int], seconds: float) -> None:
    from backfiller.ledger import PostgresLedger, SqliteLedger

    url = server.create_database(name="bench_leases")
    PostgresLedger(url).close()  # the schema, for the bare loop too
    sqlite_path = folder / "leases.db"
    SqliteLedger(sqlite_path).close()

    def sqlite() -> Any:
        return SqliteLedger(sqlite_path)

    def postgres() -> Any:
        return PostgresLedger(url, max_connections=1)

    rows: list[tuple[str, list[float]]] = [
        ("SQLite ledger", [ledger_cycles(sqlite, n, seconds) for n in counts]),
        ("PostgreSQL ledger", [ledger_cycles(postgres, n, seconds) for n in counts]),
        ("bare psycopg loop", [bare_cycles(url, n, seconds) for n in counts]),
    ]
    print()
    print("lease acquire+release cycles per second (durable settings)")
    print(f"{'workers':24}" + "".join(f"{n:>10}" for n in counts))
    for label, values in rows:
        print(f"{label:24}" + "".join(f"{v:>10,.0f}" for v in values))


def backfill_table(server: PostgresServer, folder: Path, days: int, max_parallel: int) -> None:
    results: dict[str, dict[str, Any]] = {}
    for backend in ("sqlite", "postgres"):
        root = folder / f"backfill-{backend}"
        backfill_365.lay_out(root, 10_000, 1_000)
        if backend == "postgres":
            url = server.create_database(name="bench_backfill")
            with (root / "backfiller.toml").open("a", encoding="utf-8") as config:
                config.write(f'\n[ledger]\nurl = "{url}"\n')
        results[backend] = backfill_365.measure("controlled", root, days, False, max_parallel)
        print(f"  {backend}: {results[backend]['seconds']:.1f} s", flush=True)
    s, p = results["sqlite"], results["postgres"]
    print()
    print(f"{days}-day controlled backfill, 2 assets, --max-parallel {max_parallel}")
    print(f"{'':28}{'SQLite':>14}{'PostgreSQL':>14}")
    print(f"{'seconds':28}{s['seconds']:>14.2f}{p['seconds']:>14.2f}")
    steps = 2 * days
    print(f"{'ms per (asset, day)':28}{1000 * s['seconds'] / steps:>14.1f}"
          f"{1000 * p['seconds'] / steps:>14.1f}")  # fmt: skip
    print(f"{'peak RSS MiB':28}{s['rss_peak_mib']:>14.0f}{p['rss_peak_mib']:>14.0f}")
    same = s["rows"] == p["rows"] and s["sample"] == p["sample"]
    print(f"same rows (counts, and fingerprints of the last day): {'yes' if same else 'NO'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per lease configuration")
    parser.add_argument("--workers", default="1,4,16", help="comma-separated worker counts")
    parser.add_argument("--days", type=int, default=365, help="0: skip the backfill")
    parser.add_argument("--max-parallel", type=int, default=2)
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.workers.split(",") if n.strip()]
    bin_dir = find_bin_dir()
    if bin_dir is None:
        parser.error("no PostgreSQL server binaries (pg_ctl, initdb) on PATH or under "
                     "/usr/lib/postgresql/<N>/bin")  # fmt: skip
    folder = Path(tempfile.mkdtemp(prefix="backfiller-bench-team-"))
    server = PostgresServer(bin_dir, durable=True).start()
    try:
        print(f"PostgreSQL cluster (fsync on) in {server.base}; files in {folder}", flush=True)
        lease_table(server, folder, counts, args.seconds)
        if args.days > 0:
            print(flush=True)
            backfill_table(server, folder, args.days, args.max_parallel)
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
