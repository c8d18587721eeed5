"""The values of dynamic partition dimensions, as an append-only log of additions and
removals (who, when, why). A value is current when its latest event is an addition; the
current values are ordered by that addition."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from backfiller.ledger.database import Connection, Database, Row
from backfiller.ledger.records import DimensionEvent
from backfiller.ledger.states import DimensionVerb

__all__ = ["DimensionBook", "DimensionReader", "SqlDimensionBook"]

_CURRENT = """
SELECT e.value FROM dimension_values e
WHERE e.dimension = ? AND e.verb = 'add' AND e.id = (
    SELECT max(l.id) FROM dimension_values l
    WHERE l.dimension = e.dimension AND l.value = e.value
)
ORDER BY e.id
"""


class DimensionReader(Protocol):
    def values(self, dimension: str) -> list[str]:
        """The current values of ``dimension``, in the order they were added."""
        ...

    def events(self, dimension: str | None = None) -> list[DimensionEvent]:
        """Every addition and removal (of ``dimension``, or of all), oldest first."""
        ...


class DimensionBook(DimensionReader, Protocol):
    def add(
        self, dimension: str, values: Sequence[str], *, operator: str, reason: str
    ) -> list[str]:
        """Add ``values`` — all of them, or none: the values that are current already are
        returned and nothing is written."""
        ...

    def remove(
        self,
        dimension: str,
        values: Sequence[str],
        *,
        operator: str,
        reason: str,
        published: Mapping[str, int],
    ) -> list[str]:
        """Remove ``values`` — all of them, or none: the values that are not current are
        returned and nothing is written. ``published``: each value's partitions with
        published data, recorded with its removal."""
        ...


def _event(row: Row) -> DimensionEvent:
    data = dict(row)
    return DimensionEvent(**{**data, "verb": DimensionVerb(data["verb"])})


class SqlDimensionBook:
    """Dynamic dimension values, on any ledger database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def values(self, dimension: str) -> list[str]:
        return [r["value"] for r in self._db.all(_CURRENT, (dimension,))]

    def events(self, dimension: str | None = None) -> list[DimensionEvent]:
        if dimension is None:
            rows = self._db.all("SELECT * FROM dimension_values ORDER BY id")
        else:
            rows = self._db.all(
                "SELECT * FROM dimension_values WHERE dimension = ? ORDER BY id", (dimension,)
            )
        return [_event(r) for r in rows]

    def add(
        self, dimension: str, values: Sequence[str], *, operator: str, reason: str
    ) -> list[str]:
        with self._db.transaction(f"dimension {dimension}") as conn:
            current = set(_current(conn, dimension))
            present = [v for v in values if v in current]
            if present:
                return present
            self._write(conn, dimension, values, DimensionVerb.ADD, operator, reason, {})
        return []

    def remove(
        self,
        dimension: str,
        values: Sequence[str],
        *,
        operator: str,
        reason: str,
        published: Mapping[str, int],
    ) -> list[str]:
        with self._db.transaction(f"dimension {dimension}") as conn:
            current = set(_current(conn, dimension))
            absent = [v for v in values if v not in current]
            if absent:
                return absent
            self._write(conn, dimension, values, DimensionVerb.REMOVE, operator, reason, published)
        return []

    def _write(
        self,
        conn: Connection,
        dimension: str,
        values: Sequence[str],
        verb: DimensionVerb,
        operator: str,
        reason: str,
        published: Mapping[str, int],
    ) -> None:
        at = self._db.now()
        for value in dict.fromkeys(values):  # each value once, in the order given
            conn.execute(
                "INSERT INTO dimension_values"
                " (at, dimension, value, verb, operator, reason, published)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (at, dimension, value, verb.value, operator, reason, published.get(value, 0)),
            )


def _current(conn: Connection, dimension: str) -> list[str]:
    return [r["value"] for r in conn.execute(_CURRENT, (dimension,)).fetchall()]
