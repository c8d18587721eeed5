"""The durable state of every (asset, partition): its status — moved only by a
:class:`~backfiller.ledger.states.Verb` inside one transaction, logged in ``events`` — and the
attempts that moved it."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from backfiller.ledger.database import Connection, Database, Row
from backfiller.ledger.records import PartitionRecord
from backfiller.ledger.states import AttemptStatus, PartitionStatus, Verb

__all__ = [
    "STATE_COLUMNS",
    "PartitionBook",
    "PartitionReader",
    "PublishSuperseded",
    "SqlPartitionBook",
]


class PublishSuperseded(Exception):
    """Internal: the partition's record was published under a lease token at least as new
    as the one offered (carries that token and the run that holds the record)."""

    def __init__(self, token: int, run_id: str | None) -> None:
        super().__init__(f"published under lease token {token} by run {run_id}")
        self.token = token
        self.run_id = run_id


#: the columns of :meth:`PartitionReader.state_rows`, in this order (the asset is said once per
#: batch, not once per row)
STATE_COLUMNS = (
    "partition_key",
    "status",
    "data_version",
    "row_count",
    "manifest_id",
    "manifest_checksum",
    "upstream_versions",
    "last_run_id",
    "last_error",
)


class PartitionReader(Protocol):
    def get(self, asset: str, partition_key: str) -> PartitionRecord | None: ...

    def all(self, asset: str | None = None) -> list[PartitionRecord]: ...

    def state_rows(
        self, assets: Sequence[str], columns: Sequence[str] = STATE_COLUMNS
    ) -> Iterator[tuple[str, Sequence[tuple[Any, ...]]]]:
        """The records of ``assets`` as ``(asset, rows)`` batches, each row a tuple of
        ``columns`` (some of :data:`STATE_COLUMNS`, in their order; ``upstream_versions`` as
        its JSON text), in no particular order: for readers of many partitions at once, who
        need no record objects (nor the columns they do not read)."""
        ...

    def change_marks(self, assets: Sequence[str]) -> dict[str, tuple[int, str] | None]:
        """Per asset, its newest partition event (its number and time; None: none yet).
        Every change of an asset's partition records is an event, so a reader that kept
        something read from them may keep it while the mark is the same."""
        ...

    def stale_reasons(self, asset: str, keys: Sequence[str]) -> dict[str, str]:
        """Per key of ``keys`` ever marked stale, the reason its newest mark gave (what a
        stale partition's gap says: who made it stale and why); a key whose newest mark
        gave none (an empty reason, or a detail not as the ledger writes it) is left out."""
        ...


class PartitionBook(PartitionReader, Protocol):
    def start(
        self,
        asset: str,
        key: str,
        *,
        run_id: str,
        attempt: int,
        operator: str,
        rows_before: int | None = None,
    ) -> PartitionStatus: ...

    def publish(
        self,
        asset: str,
        key: str,
        *,
        run_id: str,
        attempt: int,
        operator: str,
        data_version: int,
        row_count: int,
        fingerprint: str,
        manifest_id: str | None,
        manifest_checksum: str | None,
        upstream_versions: dict[str, dict[str, int | None]],
        lease_token: int,
    ) -> PartitionStatus: ...

    def fail(
        self,
        asset: str,
        key: str,
        *,
        run_id: str,
        attempt: int,
        operator: str,
        error: str,
        transient: bool,
        checks: bool = False,
    ) -> PartitionStatus: ...

    def abandon_attempt(
        self, asset: str, key: str, *, run_id: str, attempt: int, error: str
    ) -> None: ...

    def reissue_attempt(
        self,
        asset: str,
        key: str,
        *,
        run_id: str,
        attempt: int,
        rows: int | None,
        version: int | None,
        fingerprint: str | None,
    ) -> None: ...

    def mark_stale(
        self, asset: str, key: str, *, run_id: str | None, operator: str, reason: str
    ) -> PartitionStatus: ...

    def events(self, asset: str, key: str) -> list[dict[str, Any]]: ...


def _partition(row: Row) -> PartitionRecord:
    return PartitionRecord(
        asset=row["asset"],
        partition_key=row["partition_key"],
        status=PartitionStatus(row["status"]),
        data_version=row["data_version"],
        row_count=row["row_count"],
        fingerprint=row["fingerprint"],
        manifest_id=row["manifest_id"],
        manifest_checksum=row["manifest_checksum"],
        upstream_versions=json.loads(row["upstream_versions"]),
        last_run_id=row["last_run_id"],
        last_attempt=row["last_attempt"],
        last_error=row["last_error"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


#: the keys one query of :meth:`SqlPartitionBook.stale_reasons` asks for (SQLite allows
#: 32,766 parameters)
_KEYS_PER_QUERY = 500


def _reason(detail: str | None) -> str | None:
    """The ``reason`` of an event's detail (``None``: none, or a detail not as the ledger
    writes it: a reason is only words to show, never worth failing for)."""
    try:
        found = json.loads(detail or "{}")
    except ValueError:
        return None
    reason = found.get("reason") if isinstance(found, dict) else None
    return reason if isinstance(reason, str) else None


def _lock(asset: str, key: str) -> str:
    """The lock of one partition's record: its state machine and its lease-token check."""
    return f"partition {asset} {key}"


def _forget_attempt(conn: Connection, run_id: str, asset: str, key: str, attempt: int) -> None:
    """Drop an attempt's row before it is written anew (what SQLite's ``INSERT OR REPLACE``
    did, in SQL both backends speak)."""
    conn.execute(
        "DELETE FROM attempts WHERE run_id = ? AND asset = ? AND partition_key = ? AND attempt = ?",
        (run_id, asset, key, attempt),
    )


class SqlPartitionBook:
    """The partition book, on any ledger database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- reading --------------------------------------------------------------------------
    def get(self, asset: str, partition_key: str) -> PartitionRecord | None:
        row = self._db.one(
            "SELECT * FROM partitions WHERE asset = ? AND partition_key = ?",
            (asset, partition_key),
        )
        return _partition(row) if row else None

    def all(self, asset: str | None = None) -> list[PartitionRecord]:
        if asset is None:
            rows = self._db.all("SELECT * FROM partitions ORDER BY asset, partition_key")
        else:
            rows = self._db.all(
                "SELECT * FROM partitions WHERE asset = ? ORDER BY partition_key", (asset,)
            )
        return [_partition(r) for r in rows]

    def state_rows(
        self, assets: Sequence[str], columns: Sequence[str] = STATE_COLUMNS
    ) -> Iterator[tuple[str, Sequence[tuple[Any, ...]]]]:
        # one query per asset, through the primary key: the asset column need not cross into
        # Python once per row (a third of the cost of reading 1.8 million records on SQLite,
        # where naming 500 assets at once in an IN list was measured slower)
        unknown = [c for c in columns if c not in STATE_COLUMNS]
        if unknown:  # the names go into the query's text: only the known ones
            raise ValueError(f"not a state column: {', '.join(unknown)}")
        query = f"SELECT {', '.join(columns)} FROM partitions WHERE asset = ?"
        for asset in dict.fromkeys(assets):
            for rows in self._db.tuples(query, (asset,)):
                yield asset, rows

    def change_marks(self, assets: Sequence[str]) -> dict[str, tuple[int, str] | None]:
        # one look-up per asset in the index (asset, id): microseconds, however many events
        marks: dict[str, tuple[int, str] | None] = {}
        for asset in dict.fromkeys(assets):
            row = self._db.one(
                "SELECT id, at FROM events WHERE asset = ? ORDER BY id DESC LIMIT 1", (asset,)
            )
            marks[asset] = None if row is None else (int(row["id"]), str(row["at"]))
        return marks

    def stale_reasons(self, asset: str, keys: Sequence[str]) -> dict[str, str]:
        # some keys at a time, looked up in the index (asset, partition_key): no ORDER BY,
        # which would have the asset's every event read in the order of (asset, id); the
        # newest mark of each key is found here
        newest: dict[str, tuple[int, str | None]] = {}
        wanted = list(dict.fromkeys(keys))
        for at in range(0, len(wanted), _KEYS_PER_QUERY):
            chunk = wanted[at : at + _KEYS_PER_QUERY]
            rows = self._db.all(
                "SELECT id, partition_key, detail FROM events WHERE asset = ? AND verb = ? "
                f"AND partition_key IN ({', '.join('?' * len(chunk))})",
                (asset, Verb.MARK_STALE.value, *chunk),
            )
            for row in rows:
                key, number = str(row["partition_key"]), int(row["id"])
                if key not in newest or number > newest[key][0]:
                    newest[key] = (number, _reason(row["detail"]))
        return {key: reason for key, (_, reason) in newest.items() if reason}

    def events(self, asset: str, key: str) -> list[dict[str, Any]]:
        rows = self._db.all(
            "SELECT * FROM events WHERE asset = ? AND partition_key = ? ORDER BY id",
            (asset, key),
        )
        return [dict(r) for r in rows]

    # -- verbs ---------------------------------------------------------------------------
    def _transition(
        self,
        conn: Connection,
        verb: Verb,
        asset: str,
        key: str,
        *,
        run_id: str | None,
        operator: str | None,
        detail: dict[str, Any] | None = None,
        **fields: Any,
    ) -> PartitionStatus:
        row = conn.execute(
            "SELECT status FROM partitions WHERE asset = ? AND partition_key = ?", (asset, key)
        ).fetchone()
        current = PartitionStatus(row["status"]) if row else None
        target = verb.apply(current)
        now = self._db.now()
        values = {"status": target.value, "updated_at": now, **fields}
        if row is None:
            values.setdefault("upstream_versions", "{}")
            cols = ["asset", "partition_key", "created_at", *values]
            conn.execute(
                f"INSERT INTO partitions ({', '.join(cols)}) "
                f"VALUES ({', '.join('?' for _ in cols)})",
                (asset, key, now, *values.values()),
            )
        else:
            assignments = ", ".join(f"{c} = ?" for c in values)
            conn.execute(
                f"UPDATE partitions SET {assignments} WHERE asset = ? AND partition_key = ?",
                (*values.values(), asset, key),
            )
        conn.execute(
            "INSERT INTO events (at, asset, partition_key, verb, from_status, to_status, run_id,"
            " operator, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                now,
                asset,
                key,
                verb.value,
                current.value if current else None,
                target.value,
                run_id,
                operator,
                json.dumps(detail or {}, sort_keys=True),
            ),
        )
        return target

    def start(
        self,
        asset: str,
        key: str,
        *,
        run_id: str,
        attempt: int,
        operator: str,
        rows_before: int | None = None,
    ) -> PartitionStatus:
        """Begin an attempt. ``rows_before``: the rows stored before it when the ledger has no
        count (data written outside backfiller)."""
        with self._db.transaction(_lock(asset, key)) as conn:
            before = conn.execute(
                "SELECT data_version, row_count, fingerprint FROM partitions"
                " WHERE asset = ? AND partition_key = ?",
                (asset, key),
            ).fetchone()
            status = self._transition(
                conn,
                Verb.START,
                asset,
                key,
                run_id=run_id,
                operator=operator,
                last_run_id=run_id,
                last_attempt=attempt,
                last_error=None,
            )
            _forget_attempt(conn, run_id, asset, key, attempt)
            conn.execute(
                "INSERT INTO attempts (run_id, asset, partition_key, attempt, status,"
                " started_at, version_before, rows_before, fingerprint_before)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    asset,
                    key,
                    attempt,
                    AttemptStatus.RUNNING.value,
                    self._db.now(),
                    before["data_version"] if before else None,
                    before["row_count"]
                    if before and before["row_count"] is not None
                    else rows_before,
                    before["fingerprint"] if before else None,
                ),
            )
            return status

    def publish(
        self,
        asset: str,
        key: str,
        *,
        run_id: str,
        attempt: int,
        operator: str,
        data_version: int,
        row_count: int,
        fingerprint: str,
        manifest_id: str | None,
        manifest_checksum: str | None,
        upstream_versions: dict[str, dict[str, int | None]],
        lease_token: int,
    ) -> PartitionStatus:
        """Record a published version. Fenced like the commit that wrote it: refused with
        :class:`PublishSuperseded` when the partition's recorded version was published under
        a newer (or the same) lease token — a holder that lost its lease after its commit
        cannot overwrite the newer holder's record, whatever the order they arrive in."""
        with self._db.transaction(_lock(asset, key)) as conn:
            row = conn.execute(
                "SELECT lease_token, last_run_id FROM partitions"
                " WHERE asset = ? AND partition_key = ?",
                (asset, key),
            ).fetchone()
            recorded = None if row is None else row["lease_token"]
            if recorded is not None and int(recorded) >= lease_token:
                raise PublishSuperseded(int(recorded), row["last_run_id"])
            status = self._transition(
                conn,
                Verb.PUBLISH,
                asset,
                key,
                run_id=run_id,
                operator=operator,
                detail={"data_version": data_version, "row_count": row_count},
                data_version=data_version,
                row_count=row_count,
                fingerprint=fingerprint,
                manifest_id=manifest_id,
                manifest_checksum=manifest_checksum,
                upstream_versions=json.dumps(upstream_versions, sort_keys=True),
                lease_token=lease_token,
            )
            self._end_attempt(
                conn,
                run_id,
                asset,
                key,
                attempt,
                AttemptStatus.SUCCEEDED,
                None,
                False,
                row_count,
                data_version,
            )
            conn.execute(
                "UPDATE attempts SET fingerprint = ?"
                " WHERE run_id = ? AND asset = ? AND partition_key = ? AND attempt = ?",
                (fingerprint, run_id, asset, key, attempt),
            )
            return status

    def fail(
        self,
        asset: str,
        key: str,
        *,
        run_id: str,
        attempt: int,
        operator: str,
        error: str,
        transient: bool,
        checks: bool = False,
    ) -> PartitionStatus:
        verb = Verb.FAIL_CHECKS if checks else Verb.FAIL
        with self._db.transaction(_lock(asset, key)) as conn:
            status = self._transition(
                conn,
                verb,
                asset,
                key,
                run_id=run_id,
                operator=operator,
                detail={"error": error, "transient": transient},
                last_error=error,
            )
            self._end_attempt(
                conn,
                run_id,
                asset,
                key,
                attempt,
                AttemptStatus(status.value),
                error,
                transient,
                None,
                None,
            )
            return status

    def abandon_attempt(
        self, asset: str, key: str, *, run_id: str, attempt: int, error: str
    ) -> None:
        """End an attempt that lost its lease: the partition now belongs to another run, so
        its status is left alone; only the attempt records what happened."""
        with self._db.transaction(_lock(asset, key)) as conn:
            self._end_attempt(
                conn, run_id, asset, key, attempt, AttemptStatus.FAILED, error, False, None, None
            )

    def reissue_attempt(
        self,
        asset: str,
        key: str,
        *,
        run_id: str,
        attempt: int,
        rows: int | None,
        version: int | None,
        fingerprint: str | None,
    ) -> None:
        """Record that a step of ``run_id`` wrote a partition's report again and published
        nothing: the partition's status is left alone."""
        now = self._db.now()
        with self._db.transaction(_lock(asset, key)) as conn:
            _forget_attempt(conn, run_id, asset, key, attempt)
            conn.execute(
                "INSERT INTO attempts (run_id, asset, partition_key, attempt, status,"
                " started_at, ended_at, rows_written, data_version, version_before, rows_before,"
                " fingerprint_before, fingerprint) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    asset,
                    key,
                    attempt,
                    AttemptStatus.REPORT_REISSUED.value,
                    now,
                    now,
                    rows,
                    version,
                    version,
                    rows,
                    fingerprint,
                    fingerprint,
                ),
            )

    def mark_stale(
        self, asset: str, key: str, *, run_id: str | None, operator: str, reason: str
    ) -> PartitionStatus:
        with self._db.transaction(_lock(asset, key)) as conn:
            return self._transition(
                conn,
                Verb.MARK_STALE,
                asset,
                key,
                run_id=run_id,
                operator=operator,
                detail={"reason": reason},
            )

    def _end_attempt(
        self,
        conn: Connection,
        run_id: str,
        asset: str,
        key: str,
        attempt: int,
        status: AttemptStatus,
        error: str | None,
        transient: bool,
        rows: int | None,
        version: int | None,
    ) -> None:
        conn.execute(
            "UPDATE attempts SET status = ?, error = ?, transient = ?, ended_at = ?,"
            " rows_written = ?, data_version = ?"
            " WHERE run_id = ? AND asset = ? AND partition_key = ? AND attempt = ?",
            (
                status.value,
                error,
                int(transient),
                self._db.now(),
                rows,
                version,
                run_id,
                asset,
                key,
                attempt,
            ),
        )
