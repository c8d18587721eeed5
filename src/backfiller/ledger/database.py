"""The database under every part of the ledger, behind one small protocol: a transaction that
yields a connection-like object, reads, the ledger's clock, and the few statements whose SQL
differs between dialects (the lease statements). :class:`SqliteDatabase` is the default;
:class:`~backfiller.ledger.postgres.PostgresDatabase` serves team mode.

The parts write SQL once, with ``?`` placeholders; rows are addressed by column name and
``dict(row)`` gives every column.
"""

from __future__ import annotations

import errno
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from backfiller.clock import Clock, system_clock
from backfiller.errors import ConfigError, write_blocked
from backfiller.ledger.migrations import SCHEMA_VERSION, migrate

__all__ = [
    "TUPLE_BATCH",
    "Connection",
    "Cursor",
    "Database",
    "Row",
    "SqliteDatabase",
    "UnmigratedLedger",
    "schema_version",
]

#: a row: ``row["column"]`` and ``dict(row)`` (``sqlite3.Row``, or psycopg's ``dict_row``)
Row = Any

#: rows per list of :meth:`Database.tuples`
TUPLE_BATCH = 20_000

_UNUSABLE_HINT = "point [ledger] url at the right file, or restore it from a backup"


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Any: ...


class Database(Protocol):
    """What every part of the ledger is written against."""

    #: how the ledger is named in messages (a path, or a URL without its password)
    where: str

    def transaction(self, *locks: str) -> AbstractContextManager[Connection]:
        """One transaction. ``locks`` name what it reads and then writes (a partition, the
        evidence chain): transactions naming the same lock run one after the other.

        Opened inside this thread's open transaction, it is a savepoint of it: what it wrote
        is undone alone when it fails, and made durable with the outer transaction's commit
        (a batch of ledger writes costs one commit)."""
        ...

    def read(self) -> AbstractContextManager[Connection]:
        """A connection to read on: this thread's open transaction if there is one."""
        ...

    def statement(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[Row], int]:
        """One write statement, atomic on its own (one round trip where the backend allows):
        the rows it returns and how many it changed."""
        ...

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None: ...

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    def tuples(self, sql: str, params: Sequence[Any] = ()) -> Iterator[list[tuple[Any, ...]]]:
        """The rows of one query as plain tuples, in lists of at most :data:`TUPLE_BATCH`:
        for readers of many rows (no row object is made, and the rows need not all be in
        memory at once)."""
        ...

    def now(self) -> str: ...

    def moment(self) -> datetime: ...

    def schema_version(self) -> int: ...

    def lease_acquire(
        self,
        asset: str,
        key: str,
        *,
        holder: str,
        plan_id: str | None,
        run_id: str,
        ttl_seconds: float,
        floor: int,
    ) -> tuple[str, Sequence[Any]]:
        """The one statement that takes a lease: insert it, or take it over when it is free,
        expired or held by the same run, with the next fencing token; it returns ``token``,
        ``acquired_at`` and ``expires_at``, or no row when another run holds it live."""
        ...

    def lease_renewal(
        self, asset: str, key: str, token: int, ttl_seconds: float
    ) -> tuple[str, Sequence[Any]]:
        """The statement that extends a lease still held with ``token``."""
        ...

    def lease_live(self) -> tuple[str, Sequence[Any]]:
        """A condition on a ``leases`` row: held and not expired (the one rule for whether a
        lease still excludes others)."""
        ...

    def close(self) -> None: ...


class UnmigratedLedger(ConfigError):
    """A ledger file without any schema: another process has just created it and is
    migrating it (a reader then sees nothing recorded yet)."""


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
    read; the data is then exactly as before the killed transaction).

    One connection; every transaction is ``BEGIN IMMEDIATE`` under one lock, so the named
    locks of :meth:`transaction` are already held (every write is serialised)."""

    def __init__(self, path: Path, *, clock: Clock = system_clock, read_only: bool = False):
        self.path = Path(path)
        self.where = str(self.path)
        self.clock = clock
        self._lock = threading.RLock()
        #: how deep this connection's open transaction is (guarded by ``_lock``)
        self._depth = 0
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
            with self.transaction() as conn:
                migrate(conn, dialect="sqlite", now=self.now(), where=self.where)
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
        if version == 0:
            self.conn.close()
            raise UnmigratedLedger(f"Ledger {self.path} has no schema yet")
        if version != SCHEMA_VERSION:
            self.conn.close()
            raise ConfigError(
                f"Ledger {self.path} has schema version {version}; this backfiller expects "
                f"{SCHEMA_VERSION}",
                hint="run 'backfiller migrate' once to bring it to this version",
            )

    def close(self) -> None:
        self.conn.close()

    def now(self) -> str:
        return self.clock().isoformat()

    def moment(self) -> datetime:
        return self.clock()

    def schema_version(self) -> int:
        return schema_version(self.conn)

    @contextmanager
    def transaction(self, *locks: str) -> Iterator[sqlite3.Connection]:
        with self._lock, self._named_failures():
            depth = self._depth
            if depth:  # inside this thread's transaction (the lock is reentrant): a savepoint
                name = f"backfiller_{depth}"
                self.conn.execute(f"SAVEPOINT {name}")
                self._depth = depth + 1
                try:
                    yield self.conn
                except BaseException:
                    if self.conn.in_transaction:
                        self.conn.execute(f"ROLLBACK TO {name}")
                        self.conn.execute(f"RELEASE {name}")
                    raise
                finally:
                    self._depth = depth
                self.conn.execute(f"RELEASE {name}")
                return
            self.conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self.conn
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
            finally:
                self._depth = 0
            self.conn.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        yield self.conn

    def statement(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[Row], int]:
        with self.transaction() as conn:
            cursor = conn.execute(sql, params)
            return cursor.fetchall(), cursor.rowcount

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        return self.conn.execute(sql, params).fetchone()

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self.conn.execute(sql, params).fetchall()

    def tuples(self, sql: str, params: Sequence[Any] = ()) -> Iterator[list[tuple[Any, ...]]]:
        cursor = self.conn.cursor()
        cursor.row_factory = None  # plain tuples
        try:
            cursor.execute(sql, params)
            while batch := cursor.fetchmany(TUPLE_BATCH):
                yield batch
        finally:
            cursor.close()

    # -- leases: expiry on the ledger's clock (julianday reads every ISO-8601 offset) --------
    def lease_acquire(
        self,
        asset: str,
        key: str,
        *,
        holder: str,
        plan_id: str | None,
        run_id: str,
        ttl_seconds: float,
        floor: int,
    ) -> tuple[str, Sequence[Any]]:
        now = self.moment()
        expires = (now + timedelta(seconds=ttl_seconds)).isoformat()
        sql = (
            "INSERT INTO leases AS l (asset, partition_key, holder, plan_id, run_id, token,"
            " acquired_at, expires_at) VALUES (?, ?, ?, ?, ?, max(?, 0) + 1, ?, ?)"
            " ON CONFLICT (asset, partition_key) DO UPDATE SET holder = excluded.holder,"
            " plan_id = excluded.plan_id, run_id = excluded.run_id,"
            " token = max(l.token, ?) + 1, acquired_at = excluded.acquired_at,"
            " expires_at = excluded.expires_at"
            " WHERE l.holder IS NULL OR l.run_id = excluded.run_id"
            " OR julianday(l.expires_at) <= julianday(excluded.acquired_at)"
            " RETURNING token, acquired_at, expires_at"
        )
        return sql, (asset, key, holder, plan_id, run_id, floor, now.isoformat(), expires, floor)

    def lease_renewal(
        self, asset: str, key: str, token: int, ttl_seconds: float
    ) -> tuple[str, Sequence[Any]]:
        expires = (self.moment() + timedelta(seconds=ttl_seconds)).isoformat()
        sql = (
            "UPDATE leases SET expires_at = ? WHERE asset = ? AND partition_key = ?"
            " AND token = ? AND holder IS NOT NULL"
        )
        return sql, (expires, asset, key, token)

    def lease_live(self) -> tuple[str, Sequence[Any]]:
        return "holder IS NOT NULL AND julianday(expires_at) > julianday(?)", (self.now(),)

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
