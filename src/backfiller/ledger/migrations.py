"""Numbered migrations of the ledger schema. Append only; never edit an applied one.

One list for both backends. A migration is written in SQLite's dialect; PostgreSQL gets the
same statements with two rewrites (:func:`statements`): ``INTEGER PRIMARY KEY AUTOINCREMENT``
becomes an identity column and ``INTEGER`` becomes ``BIGINT`` (SQLite's integers are 64-bit).
A later migration that cannot be written so adds its PostgreSQL text to
:data:`POSTGRES_VARIANTS`. :func:`migrate` applies the pending ones in the caller's
transaction, which holds the database's migration lock.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from backfiller.errors import ConfigError

if TYPE_CHECKING:
    from backfiller.ledger.database import Connection

__all__ = ["MIGRATIONS", "POSTGRES_VARIANTS", "SCHEMA_VERSION", "migrate", "statements"]

MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "partitions, plans, runs, attempts, events",
        """
        CREATE TABLE partitions (
            asset TEXT NOT NULL,
            partition_key TEXT NOT NULL,
            status TEXT NOT NULL,
            data_version INTEGER,
            row_count INTEGER,
            fingerprint TEXT,
            manifest_id TEXT,
            manifest_checksum TEXT,
            upstream_versions TEXT NOT NULL DEFAULT '{}',
            last_run_id TEXT,
            last_attempt INTEGER,
            last_error TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (asset, partition_key)
        );
        CREATE TABLE plans (
            plan_id TEXT PRIMARY KEY,
            action TEXT NOT NULL,
            mode TEXT NOT NULL,
            path TEXT NOT NULL,
            state_fingerprint TEXT NOT NULL,
            created_at TEXT NOT NULL,
            document TEXT NOT NULL
        );
        CREATE TABLE runs (
            run_id TEXT PRIMARY KEY,
            plan_id TEXT,
            action TEXT NOT NULL,
            state TEXT NOT NULL,
            operator TEXT NOT NULL,
            reason TEXT,
            parent_run_id TEXT,
            started_at TEXT NOT NULL,
            ended_at TEXT,
            arguments TEXT NOT NULL DEFAULT '{}',
            error TEXT
        );
        CREATE TABLE attempts (
            run_id TEXT NOT NULL,
            asset TEXT NOT NULL,
            partition_key TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            status TEXT NOT NULL,
            error TEXT,
            transient INTEGER NOT NULL DEFAULT 0,
            started_at TEXT NOT NULL,
            ended_at TEXT,
            rows_written INTEGER,
            data_version INTEGER,
            PRIMARY KEY (run_id, asset, partition_key, attempt)
        );
        CREATE TABLE events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            at TEXT NOT NULL,
            asset TEXT NOT NULL,
            partition_key TEXT NOT NULL,
            verb TEXT NOT NULL,
            from_status TEXT,
            to_status TEXT NOT NULL,
            run_id TEXT,
            operator TEXT,
            detail TEXT
        );
        CREATE INDEX events_by_partition ON events (asset, partition_key);
        """,
    ),
]

MIGRATIONS.append(
    (
        2,
        "leases with fencing tokens, protected baselines, overrides",
        """
        CREATE TABLE leases (
            asset TEXT NOT NULL,
            partition_key TEXT NOT NULL,
            holder TEXT,
            plan_id TEXT,
            run_id TEXT,
            token INTEGER NOT NULL DEFAULT 0,
            acquired_at TEXT,
            expires_at TEXT,
            PRIMARY KEY (asset, partition_key)
        );
        CREATE TABLE protections (
            asset TEXT NOT NULL,
            partition_key TEXT NOT NULL,
            reason TEXT NOT NULL,
            operator TEXT NOT NULL,
            created_at TEXT NOT NULL,
            PRIMARY KEY (asset, partition_key)
        );
        CREATE TABLE overrides (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            at TEXT NOT NULL,
            run_id TEXT,
            asset TEXT NOT NULL,
            partition_key TEXT NOT NULL,
            reason TEXT NOT NULL,
            operator TEXT NOT NULL
        );
        """,
    )
)

MIGRATIONS.append(
    (
        3,
        "check results, holds, evidence index",
        """
        CREATE TABLE check_results (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id TEXT,
            asset TEXT NOT NULL,
            partition_key TEXT NOT NULL,
            check_name TEXT NOT NULL,
            status TEXT NOT NULL,
            severity TEXT NOT NULL,
            blocking INTEGER NOT NULL,
            expected TEXT,
            actual TEXT,
            sample TEXT NOT NULL DEFAULT '[]',
            on_staged INTEGER NOT NULL,
            at TEXT NOT NULL
        );
        CREATE INDEX check_results_by_partition ON check_results (asset, partition_key);
        CREATE INDEX check_results_by_run ON check_results (run_id);
        CREATE TABLE holds (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            target TEXT NOT NULL,
            partition_key TEXT NOT NULL,
            external INTEGER NOT NULL,
            reason TEXT NOT NULL,
            cause_asset TEXT NOT NULL,
            cause_partition TEXT NOT NULL,
            cause_run_id TEXT,
            placed_at TEXT NOT NULL,
            released_at TEXT,
            released_by TEXT,
            release_reason TEXT,
            forced INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX holds_open ON holds (target, partition_key, released_at);
        ALTER TABLE attempts ADD COLUMN rows_before INTEGER;
        ALTER TABLE attempts ADD COLUMN version_before INTEGER;
        ALTER TABLE attempts ADD COLUMN fingerprint_before TEXT;
        ALTER TABLE attempts ADD COLUMN fingerprint TEXT;
        CREATE TABLE evidence (
            seq INTEGER PRIMARY KEY,
            run_id TEXT NOT NULL,
            path TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            prev_sha256 TEXT,
            written_at TEXT NOT NULL
        );
        CREATE INDEX evidence_by_run ON evidence (run_id, seq);
        """,
    )
)

MIGRATIONS.append(
    (
        4,
        "run outcome: a settled run waits for its evidence before it is finished",
        """
        ALTER TABLE runs ADD COLUMN outcome TEXT;
        """,
    )
)

MIGRATIONS.append(
    (
        5,
        "the lease token of each partition's published version: an older holder's record is "
        "refused",
        """
        ALTER TABLE partitions ADD COLUMN lease_token INTEGER;
        """,
    )
)

MIGRATIONS.append(
    (
        6,
        "the values of dynamic partition dimensions: each addition and removal, by whom and why",
        """
        CREATE TABLE dimension_values (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            at TEXT NOT NULL,
            dimension TEXT NOT NULL,
            value TEXT NOT NULL,
            verb TEXT NOT NULL,
            operator TEXT NOT NULL,
            reason TEXT NOT NULL,
            published INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX dimension_values_by_value ON dimension_values (dimension, value, id);
        """,
    )
)

MIGRATIONS.append(
    (
        7,
        "the newest event of each asset found through an index: a reader's change marks",
        """
        CREATE INDEX events_by_asset ON events (asset, id);
        """,
    )
)

SCHEMA_VERSION = MIGRATIONS[-1][0]

#: migration number -> its PostgreSQL text, where the rewrite of :func:`statements` does not do
POSTGRES_VARIANTS: dict[int, str] = {}

_SCHEMA_MIGRATIONS = (
    "CREATE TABLE IF NOT EXISTS schema_migrations "
    "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
)


def statements(sql: str, dialect: str, number: int | None = None) -> list[str]:
    """The statements of a migration's text in ``dialect`` (``sqlite`` or ``postgres``)."""
    if dialect == "postgres":
        sql = POSTGRES_VARIANTS.get(number, sql) if number is not None else sql
        sql = re.sub(
            r"\bINTEGER PRIMARY KEY AUTOINCREMENT\b",
            "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
            sql,
        )
        sql = re.sub(r"\bINTEGER\b", "BIGINT", sql)
    return [s.strip() for s in sql.split(";") if s.strip()]


def migrate(conn: Connection, *, dialect: str, now: str, where: str) -> int:
    """Bring the schema to :data:`SCHEMA_VERSION` inside the caller's transaction; refuse a
    schema newer than this backfiller. Returns how many migrations were applied."""
    (create,) = statements(_SCHEMA_MIGRATIONS, dialect)
    conn.execute(create)
    row = conn.execute("SELECT MAX(version) AS version FROM schema_migrations").fetchone()
    current = int(row["version"] or 0)
    if current > SCHEMA_VERSION:
        raise ConfigError(
            f"Ledger {where} has schema version {current}, newer than this backfiller "
            f"understands ({SCHEMA_VERSION})",
            hint="upgrade backfiller",
        )
    applied = 0
    for number, name, sql in MIGRATIONS:
        if number <= current:
            continue
        for statement in statements(sql, dialect, number):
            conn.execute(statement)
        conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
            (number, name, now),
        )
        applied += 1
    return applied
