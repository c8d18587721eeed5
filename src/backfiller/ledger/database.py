"""The SQLite database under every part of the ledger: one connection, writes serialised by a
lock inside ``BEGIN IMMEDIATE`` transactions, the schema migrated on open, one clock."""

from __future__ import annotations

import errno
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from backfiller.clock import Clock, system_clock
from backfiller.errors import ConfigError, write_blocked
from backfiller.ledger.migrations import MIGRATIONS, SCHEMA_VERSION

__all__ = ["SqliteDatabase", "schema_version"]

_UNUSABLE_HINT = "point [project] ledger at the right file, or restore it from a backup"


def schema_version(conn: sqlite3.Connection) -> int:
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    ).fetchone()
    if not exists:
        return 0
    row = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
    return int(row[0] or 0)


class SqliteDatabase:
    """The ledger file. ``read_only``: a view that refuses every write statement, opened
    read-write (not ``mode=ro``) because a process killed inside a ledger transaction leaves
    a hot journal that only a read-write handle may roll back (SQLite does that on the first
    read; the data is then exactly as before the killed transaction)."""

    def __init__(self, path: Path, *, clock: Clock = system_clock, read_only: bool = False):
        self.path = Path(path)
        self.clock = clock
        self._lock = threading.RLock()
        if read_only:
            self.conn = sqlite3.connect(
                f"{self.path.resolve().as_uri()}?mode=rw", uri=True, check_same_thread=False
            )
            self.conn.execute("PRAGMA query_only = ON")
            self.conn.row_factory = sqlite3.Row
            self._require_current()
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, timeout=30.0
        )
        self.conn.row_factory = sqlite3.Row
        try:
            # a rollback journal, not WAL: a read-only reader of a WAL database creates
            # -wal/-shm files, and a dry run must write nothing
            self.conn.execute("PRAGMA journal_mode=DELETE")
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            raise ConfigError(
                f"Ledger {self.path} is not a usable SQLite database: {exc}", hint=_UNUSABLE_HINT
            ) from exc
        except BaseException:
            self.conn.close()
            raise

    def _require_current(self) -> None:
        try:
            version = schema_version(self.conn)
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            raise ConfigError(
                f"Ledger {self.path} is not a usable SQLite database: {exc}", hint=_UNUSABLE_HINT
            ) from exc
        if version != SCHEMA_VERSION:
            self.conn.close()
            raise ConfigError(
                f"Ledger {self.path} has schema version {version}; this backfiller expects "
                f"{SCHEMA_VERSION}",
                hint="run a command that writes (for example 'backfiller apply') to migrate it",
            )

    def close(self) -> None:
        self.conn.close()

    def now(self) -> str:
        return self.clock().isoformat()

    def moment(self) -> datetime:
        return self.clock()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._named_failures():
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    @contextmanager
    def _named_failures(self) -> Iterator[None]:
        """A full disk or a read-only file is named as such, not as a raw SQLite error."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            text = str(exc).lower()
            if "full" in text or "readonly" in text or "disk i/o" in text:
                cause = OSError(errno.ENOSPC if "full" in text else errno.EACCES, str(exc))
                cause.filename = str(self.path)
                raise write_blocked("the ledger", cause) from exc
            raise

    def _migrate(self) -> None:
        with self.transaction() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            current = schema_version(conn)
            if current > SCHEMA_VERSION:
                raise ConfigError(
                    f"Ledger {self.path} has schema version {current}, newer than this "
                    f"backfiller understands ({SCHEMA_VERSION})",
                    hint="upgrade backfiller",
                )
            for number, name, sql in MIGRATIONS:
                if number <= current:
                    continue
                for statement in sql.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, ?)", (number, name, self.now())
                )
