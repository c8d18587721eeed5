"""The evidence index: the chain of run evidence documents, appended under the ledger's lock
so every run gets its own link; appending seals a run waiting for its evidence."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from backfiller.ledger.database import Database
from backfiller.ledger.states import RunState, RunVerb

__all__ = ["EvidenceIndex", "EvidenceReader", "EvidenceRecord", "SqlEvidenceIndex"]


@dataclass(frozen=True)
class EvidenceRecord:
    seq: int
    run_id: str
    path: str
    sha256: str
    prev_sha256: str | None
    written_at: str


class EvidenceReader(Protocol):
    def index(self) -> list[EvidenceRecord]: ...

    def of_run(self, run_id: str) -> EvidenceRecord | None: ...


class EvidenceIndex(EvidenceReader, Protocol):
    def append(
        self, run_id: str, write: Callable[[int, str | None], tuple[str, str]]
    ) -> EvidenceRecord: ...


class SqlEvidenceIndex:
    """The evidence index, on any ledger database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def append(
        self, run_id: str, write: Callable[[int, str | None], tuple[str, str]]
    ) -> EvidenceRecord:
        """Chain the evidence of ``run_id``, serialised through the ledger: in one
        transaction take the next place in the chain, let ``write(seq, prev_sha256)`` write
        the document (it returns its path and sha256), index it, and seal the run — a run
        waiting for its evidence now takes the outcome it settled with as its state. Another
        process appending at the same time waits for this transaction, so every run gets its
        own link and the chain has no fork (the transaction holds the chain's lock)."""
        with self._db.transaction("evidence chain", f"run {run_id}") as conn:
            row = conn.execute(
                "SELECT seq, sha256 FROM evidence ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            seq = int(row["seq"]) + 1 if row else 1
            prev = str(row["sha256"]) if row else None
            path, sha256 = write(seq, prev)
            now = self._db.now()
            conn.execute(
                "INSERT INTO evidence (seq, run_id, path, sha256, prev_sha256, written_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (seq, run_id, path, sha256, prev, now),
            )
            run = conn.execute(
                "SELECT state, outcome FROM runs WHERE run_id = ?", (run_id,)
            ).fetchone()
            if run is not None and RunState(run["state"]) is RunState.EVIDENCE_PENDING:
                RunVerb.SEAL.apply(RunState.EVIDENCE_PENDING)
                conn.execute("UPDATE runs SET state = outcome WHERE run_id = ?", (run_id,))
            return EvidenceRecord(seq, run_id, path, sha256, prev, now)

    def index(self) -> list[EvidenceRecord]:
        rows = self._db.all("SELECT * FROM evidence ORDER BY seq")
        return [EvidenceRecord(**dict(r)) for r in rows]

    def of_run(self, run_id: str) -> EvidenceRecord | None:
        """The latest evidence of a run (a retried run gets a new document, chained)."""
        row = self._db.one(
            "SELECT * FROM evidence WHERE run_id = ? ORDER BY seq DESC LIMIT 1", (run_id,)
        )
        return EvidenceRecord(**dict(row)) if row else None
