"""A throwaway PostgreSQL cluster for the tests (and the benchmarks): ``initdb`` into a temporary
folder (as the ``postgres`` user when running as root: initdb refuses root), the socket in that
folder, no TCP; stopped and removed at the end. Nothing is downloaded.

The server binaries are found on PATH, else under ``/usr/lib/postgresql/<N>/bin``. When they
are missing the PostgreSQL tests are skipped — unless ``BACKFILLER_REQUIRE_POSTGRES=1`` (CI),
which makes that an error.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["PostgresServer", "find_bin_dir", "postgres_required"]


def postgres_required() -> bool:
    return os.environ.get("BACKFILLER_REQUIRE_POSTGRES", "") not in ("", "0")


def find_bin_dir() -> Path | None:
    """The folder holding ``pg_ctl`` and ``initdb``."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    return versions[-1].parent if versions else None


class PostgresServer:
    """One cluster. ``durable``: keep fsync on (the benchmarks); the tests turn it off."""

    def __init__(self, bin_dir: Path, *, durable: bool = False) -> None:
        self.bin_dir = bin_dir
        self.durable = durable
        # not under pytest's tmp folder: its parents are 0700 and the server may run as
        # another user; a short path also keeps the socket's path under the OS limit
        self.base = Path(tempfile.mkdtemp(prefix="bf-pg-"))
        self.data = self.base / "data"
        self._as_postgres = os.geteuid() == 0
        self._names = itertools.count(1)
        #: the server's version (``server_version_num``), once started
        self.version = 0
        #: the databases made without a name, which :meth:`drop_scratch` drops
        self.scratch: list[str] = []
        if self._as_postgres:
            shutil.chown(self.base, user="postgres", group="postgres")

    def _run(self, *args: str) -> None:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            log = self.base / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}{tail}")

    def start(self) -> PostgresServer:
        self._run(
            "initdb", "-D", str(self.data), "--auth=trust", "-U", "postgres", "-E", "UTF8",
            "--no-sync", "--no-instructions",
        )  # fmt: skip
        # pg_ctl hands these to a shell: the empty listen_addresses (no TCP) is quoted
        settings = [f"unix_socket_directories={self.base}", "listen_addresses=''"]
        settings.append("max_connections=200")
        if not self.durable:
            settings += ["fsync=off", "synchronous_commit=off", "full_page_writes=off"]
        options = " ".join(f"-c {setting}" for setting in settings)
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.base / "server.log"),
            "-w", "start",
        )  # fmt: skip
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            row = conn.execute("SELECT current_setting('server_version_num')::int").fetchone()
        assert row is not None
        self.version = int(row[0])
        return self

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@/{database}?host={self.base}"

    def create_database(self, template: str = "template0", name: str | None = None) -> str:
        """A new database (copied from ``template``); returns its URL. One made without a
        ``name`` is scratch: :meth:`drop_scratch` drops it. Copied file by file on PostgreSQL
        15 and later (a small template copies about three times faster than through the WAL)."""
        import psycopg

        if name is None:
            name = f"t{os.getpid()}_{next(self._names)}"
            self.scratch.append(name)
        strategy = " STRATEGY FILE_COPY" if self.version >= 150000 else ""
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"{strategy}')
        return self.url(name)

    def drop_scratch(self) -> None:
        """Drop the scratch databases (their connections closed first), so that a suite making
        hundreds keeps a few on disk (each is about 8 MB)."""
        import psycopg

        force = " WITH (FORCE)" if self.version >= 130000 else ""
        with psycopg.connect(self.url(), autocommit=True) as conn:
            while self.scratch:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.scratch.pop()}"{force}')
