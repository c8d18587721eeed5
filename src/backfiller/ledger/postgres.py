"""The PostgreSQL ledger (team mode; ``pip install 'backfiller[postgres]'``): the same parts as
the SQLite ledger, over :class:`PostgresDatabase`.

* psycopg 3 with a bounded pool (``psycopg_pool``): at most ``max_connections`` per process
  (a project asks for ``max_parallel + 2``); a thread borrows a connection for one
  transaction or one read, and its reads inside its own transaction use that transaction.
* Works behind PgBouncer in transaction mode: no session state — locks are
  ``pg_advisory_xact_lock`` (released with their transaction), no server-side prepared
  statements (``prepare_threshold=None``), no start-up options.
* Under READ COMMITTED, what SQLite serialises with ``BEGIN IMMEDIATE`` is serialised by the
  transaction's named locks (a partition's state machine and lease-token check, a run's state,
  the evidence chain, a target's holds); a lease is taken in one statement.
* Lease expiry is judged on the database server's clock (``clock_timestamp()`` inside the
  statement), so operators on several machines agree; when the ledger is given a clock other
  than the system's (tests freeze one), that clock's time is passed to the statement instead.
  Timestamps are stored as ISO-8601 text, exactly as the SQLite ledger stores them.
* Migrations: the numbered list of :mod:`~backfiller.ledger.migrations`, applied in one
  transaction under a transaction-level advisory lock, so two processes migrating at once
  are safe.

psycopg is imported here only, when a PostgreSQL ledger is opened: importing backfiller does
not need it.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from backfiller.clock import Clock, system_clock
from backfiller.errors import ConfigError, MissingDependencyError
from backfiller.ledger.composed import DatabaseLedger, ReadOnlyLedger
from backfiller.ledger.database import TUPLE_BATCH, Cursor, Row
from backfiller.ledger.migrations import SCHEMA_VERSION, migrate
from backfiller.ledger.reader import EmptyLedger, LedgerReader
from backfiller.urls import redact

if TYPE_CHECKING:
    import psycopg
    import psycopg_pool

__all__ = [
    "INSTALL_HINT",
    "PostgresDatabase",
    "PostgresLedger",
    "lock_id",
    "open_postgres_reader",
    "redact",
]

INSTALL_HINT = "pip install 'backfiller[postgres]'"

#: seconds a thread waits for a pooled connection, and to connect
_POOL_TIMEOUT = 120.0
_CONNECT_TIMEOUT = 10

#: the lease clock: the injected time when there is one, else the server's
_AT = "COALESCE(CAST(? AS timestamptz), clock_timestamp())"


def _iso(moment: str) -> str:
    """SQL rendering a timestamptz as Python's ``datetime.isoformat()`` renders it in UTC
    (microseconds only when there are some)."""
    return (
        f"to_char(({moment}) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS')"
        f" || CASE WHEN to_char(({moment}), 'US') = '000000' THEN ''"
        f" ELSE to_char(({moment}) AT TIME ZONE 'UTC', '.US') END || '+00:00'"
    )


_EXPIRES = "t.at + t.ttl * interval '1 second'"

_ACQUIRE = (
    f"WITH t AS (SELECT {_AT} AS at, CAST(? AS double precision) AS ttl)"
    " INSERT INTO leases AS l (asset, partition_key, holder, plan_id, run_id, token,"
    " acquired_at, expires_at)"
    f" SELECT ?, ?, ?, ?, ?, GREATEST(CAST(? AS bigint), 0) + 1, {_iso('t.at')},"
    f" {_iso(_EXPIRES)} FROM t"
    " ON CONFLICT (asset, partition_key) DO UPDATE SET holder = excluded.holder,"
    " plan_id = excluded.plan_id, run_id = excluded.run_id,"
    " token = GREATEST(l.token, excluded.token - 1) + 1, acquired_at = excluded.acquired_at,"
    " expires_at = excluded.expires_at"
    " WHERE l.holder IS NULL OR l.run_id = excluded.run_id"
    " OR CAST(l.expires_at AS timestamptz) <= CAST(excluded.acquired_at AS timestamptz)"
    " RETURNING token, acquired_at, expires_at"
)

_RENEW = (
    f"UPDATE leases SET expires_at = {_iso('t.at')}"
    f" FROM (SELECT {_AT} + CAST(? AS double precision) * interval '1 second' AS at) AS t"
    " WHERE asset = ? AND partition_key = ? AND token = ? AND holder IS NOT NULL"
)

_LIVE = f"holder IS NOT NULL AND CAST(expires_at AS timestamptz) > {_AT}"


def lock_id(name: str) -> int:
    """The 64-bit key of the advisory lock named ``name``."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), signed=True)


_MIGRATION_LOCK = lock_id("backfiller schema migrations")


@lru_cache(maxsize=1024)
def _pg(sql: str) -> str:
    """The parts' ``?`` placeholders as psycopg's ``%s`` (a literal ``%`` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


def _drivers() -> tuple[Any, Any]:
    try:
        import psycopg
        import psycopg_pool
    except ImportError as exc:
        raise MissingDependencyError(
            "A PostgreSQL ledger needs psycopg and psycopg-pool, which are not installed",
            hint=INSTALL_HINT,
        ) from exc
    return psycopg, psycopg_pool


class _Connection:
    """A psycopg connection speaking the parts' SQL (``?`` placeholders)."""

    def __init__(self, conn: psycopg.Connection[dict[str, Any]]) -> None:
        self._conn = conn

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor:
        return self._conn.execute(_pg(sql), tuple(parameters))

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> None:
        with self._conn.cursor() as cursor:
            cursor.executemany(_pg(sql), [tuple(p) for p in parameters])


class _NoSchema(Exception):
    """Internal: the database holds no ledger (a reader then sees an empty one)."""


class PostgresDatabase:
    """A ledger in a PostgreSQL database at ``url`` (``postgresql://user:pw@host/db``).

    ``clock``: the time written into records; when it is not the system clock it is also the
    lease clock (tests), else leases expire on the server's clock. ``read_only``: every
    transaction is ``READ ONLY``; the schema must exist and be current (nothing is created).
    """

    def __init__(
        self,
        url: str,
        *,
        clock: Clock = system_clock,
        read_only: bool = False,
        max_connections: int = 3,
    ) -> None:
        driver, pools = _drivers()
        from psycopg.rows import dict_row

        self.url = url
        self.where = redact(url)
        self.clock = clock
        self._lease_clock = None if clock is system_clock else clock
        self._local = threading.local()
        kwargs: dict[str, Any] = {
            "autocommit": not read_only,
            "prepare_threshold": None,
            "row_factory": dict_row,
            "connect_timeout": _CONNECT_TIMEOUT,
        }
        try:
            first = driver.connect(url, **kwargs)
        except driver.OperationalError as exc:
            raise self._unreachable(exc) from exc
        try:
            first.read_only = read_only
            self._prepare(first, read_only)
        finally:
            first.close()

        def configure(conn: psycopg.Connection[Any]) -> None:
            conn.read_only = read_only

        self._pool: psycopg_pool.ConnectionPool[Any] = pools.ConnectionPool(
            url,
            min_size=1,
            max_size=max(1, max_connections),
            kwargs=kwargs,
            configure=configure,
            open=True,
            timeout=_POOL_TIMEOUT,
            name="backfiller-ledger",
        )
        # a view dropped without close() (a reader is often a temporary) gives its
        # connections back when it is collected
        self._finalizer = weakref.finalize(self, self._pool.close)

    def _unreachable(self, exc: Exception) -> ConfigError:
        text = " ".join(str(exc).split())
        if "does not exist" in text:
            hint = (
                "create that database (createdb NAME) or point [ledger] url / "
                "BACKFILLER_LEDGER_URL at an existing one"
            )
        else:
            hint = (
                "start the PostgreSQL server or make it accept connections, or point "
                "[ledger] url / BACKFILLER_LEDGER_URL at one that does"
            )
        return ConfigError(f"Cannot connect to the ledger at {self.where}: {text}", hint=hint)

    def _prepare(self, conn: psycopg.Connection[dict[str, Any]], read_only: bool) -> None:
        """Migrate (a writer), or check the schema (a reader), on the first connection."""
        with conn.transaction():
            version = _version(_Connection(conn))
            if read_only:
                if version == 0:
                    raise _NoSchema
                if version != SCHEMA_VERSION:
                    raise ConfigError(
                        f"Ledger {self.where} has schema version {version}; this backfiller "
                        f"expects {SCHEMA_VERSION}",
                        hint="run 'backfiller migrate' once to bring it to this version",
                    )
                return
            if version == SCHEMA_VERSION:  # current: nothing to create, no lock to wait for
                return
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            migrate(_Connection(conn), dialect="postgres", now=self.now(), where=self.where)

    # -- the Database protocol -----------------------------------------------------------
    def close(self) -> None:
        self._finalizer()

    def now(self) -> str:
        return self.clock().isoformat()

    def moment(self) -> datetime:
        return self.clock()

    def schema_version(self) -> int:
        with self.read() as conn:
            return _version(conn)

    @contextmanager
    def transaction(self, *locks: str) -> Iterator[_Connection]:
        outer = getattr(self._local, "conn", None)
        if outer is not None:  # inside this thread's transaction: a savepoint of it
            with outer.transaction():
                for key in sorted({lock_id(name) for name in locks}):
                    outer.execute("SELECT pg_advisory_xact_lock(%s)", (key,))
                yield _Connection(outer)
            return
        with self._pool.connection() as conn, conn.transaction():
            self._local.conn = conn
            try:
                for key in sorted({lock_id(name) for name in locks}):
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (key,))
                yield _Connection(conn)
            finally:
                self._local.conn = None

    @contextmanager
    def read(self) -> Iterator[_Connection]:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            yield _Connection(conn)
            return
        with self._pool.connection() as pooled:
            yield _Connection(pooled)

    def statement(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[Row], int]:
        """Autocommit: one round trip (inside this thread's transaction, if one is open, as
        a savepoint of it: a failing statement must not abort the whole transaction)."""
        outer = getattr(self._local, "conn", None)
        if outer is not None:
            with outer.transaction():
                cursor = outer.execute(_pg(sql), tuple(params))
                return (cursor.fetchall() if cursor.description else []), cursor.rowcount
        with self.read() as conn:
            cursor = conn._conn.execute(_pg(sql), tuple(params))
            rows = cursor.fetchall() if cursor.description else []
            return rows, cursor.rowcount

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        with self.read() as conn:
            return conn.execute(sql, params).fetchone()

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with self.read() as conn:
            return conn.execute(sql, params).fetchall()

    def tuples(self, sql: str, params: Sequence[Any] = ()) -> Iterator[list[tuple[Any, ...]]]:
        from psycopg.rows import tuple_row

        with self.read() as conn, conn._conn.cursor(row_factory=tuple_row) as cursor:
            cursor.execute(_pg(sql), tuple(params))
            while batch := cursor.fetchmany(TUPLE_BATCH):
                yield batch

    # -- leases: on the server's clock, or the injected one ------------------------------
    def _at(self) -> str | None:
        return None if self._lease_clock is None else self._lease_clock().isoformat()

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
        params = (self._at(), float(ttl_seconds), asset, key, holder, plan_id, run_id, floor)
        return _ACQUIRE, params

    def lease_renewal(
        self, asset: str, key: str, token: int, ttl_seconds: float
    ) -> tuple[str, Sequence[Any]]:
        return _RENEW, (self._at(), float(ttl_seconds), asset, key, token)

    def lease_live(self) -> tuple[str, Sequence[Any]]:
        return _LIVE, (self._at(),)


def _version(conn: _Connection) -> int:
    row = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL AS present").fetchone()
    if not row["present"]:
        return 0
    row = conn.execute("SELECT MAX(version) AS version FROM schema_migrations").fetchone()
    return int(row["version"] or 0)


class PostgresLedger(DatabaseLedger):
    """The ledger writer on PostgreSQL (created and migrated on open). ``max_connections``:
    the pool's bound — ``max_parallel + 2`` (the steps computing at once, their lease
    heartbeats and the run itself share it)."""

    def __init__(self, url: str, *, clock: Clock = system_clock, max_connections: int = 3) -> None:
        self.url = url
        super().__init__(PostgresDatabase(url, clock=clock, max_connections=max_connections))


def open_postgres_reader(url: str) -> LedgerReader:
    """A read-only view of the ledger at ``url`` (every transaction ``READ ONLY``, one
    connection, given back when the view is closed or dropped); an empty reader when the
    database holds no ledger yet — nothing is created."""
    try:
        db = PostgresDatabase(url, read_only=True, max_connections=1)
    except _NoSchema:
        return EmptyLedger()
    return ReadOnlyLedger(db)
