"""Verify the evidence chain: the ledger's index against the files in the evidence folder.

Each indexed document is hashed and compared with the sha256 the ledger recorded; its
``chain.seq`` and ``chain.prev_sha256`` must agree with its place in the index; and every file
in the folder must be known to the index. Anything else is named, file by file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from backfiller.canonical import sha256_hex
from backfiller.errors import BackfillerError, ExitCode
from backfiller.ledger import EvidenceRecord, LedgerReader, RunState
from backfiller.locations import Location, files_in
from backfiller.project import Project
from backfiller.schemas import validation_problems

__all__ = [
    "ChainProblem",
    "ProblemKind",
    "TamperedEvidenceError",
    "evidence_dir",
    "file_sha256",
    "indexed_path",
    "verify_chain",
]


class TamperedEvidenceError(BackfillerError):
    """The evidence files disagree with what the ledger recorded about them (exit 4: a
    conflict between the record and the files)."""

    exit_code = ExitCode.CONFLICT


class ProblemKind(Enum):
    EDITED = "edited"  # the file's sha256 differs from the recorded one
    REMOVED = "removed"  # the indexed file is gone
    REORDERED = "reordered"  # its chain fields do not match its place in the index
    UNKNOWN = "unknown"  # a document in the folder that the index does not know
    INVALID = "invalid"  # not JSON, or it fails the run_evidence schema
    MISSING = "missing"  # a settled or finished run that has no evidence document
    PLAN_CHANGED = "plan_changed"  # the applied plan it cites is gone or no longer matches


@dataclass(frozen=True)
class ChainProblem:
    path: str  # project-relative (posix) where possible
    kind: ProblemKind
    detail: str
    seq: int | None = None

    def __str__(self) -> str:
        where = f"{self.path} (seq {self.seq})" if self.seq is not None else self.path
        return f"{where}: {self.kind.value}: {self.detail}"


def evidence_dir(project: Project) -> Location:
    return project.config.report_dir / "evidence"


def indexed_path(project: Project, record: EvidenceRecord) -> Location:
    """Where an index entry's file is (its path is project-relative, absolute, or an
    object-storage URI)."""
    return project.location(record.path)


def file_sha256(path: Location) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _short(digest: str | None) -> str:
    return digest[:12] if digest else "none"


def _check_entry(
    project: Project, record: EvidenceRecord, expected_prev: str | None
) -> list[ChainProblem]:
    path = indexed_path(project, record)
    shown = project.relative(path)

    def problem(kind: ProblemKind, detail: str) -> ChainProblem:
        return ChainProblem(shown, kind, detail, record.seq)

    problems: list[ChainProblem] = []
    if record.prev_sha256 != expected_prev:
        problems.append(
            problem(
                ProblemKind.REORDERED,
                f"the index links it to {_short(record.prev_sha256)}, but the previous "
                f"entry's sha256 is {_short(expected_prev)}",
            )
        )
    if not path.is_file():
        problems.append(problem(ProblemKind.REMOVED, f"the file of run {record.run_id} is gone"))
        return problems
    data = path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != record.sha256:
        problems.append(
            problem(
                ProblemKind.EDITED,
                f"sha256 is {_short(actual)}, the ledger recorded {_short(record.sha256)}",
            )
        )
    try:
        document: Any = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        problems.append(problem(ProblemKind.INVALID, f"not JSON: {exc}"))
        return problems
    schema = validation_problems("run_evidence", document)
    if schema:
        more = f" (and {len(schema) - 3} more)" if len(schema) > 3 else ""
        problems.append(
            problem(ProblemKind.INVALID, "fails the schema: " + "; ".join(schema[:3]) + more)
        )
    chain = document.get("chain") if isinstance(document, dict) else None
    run = document.get("run") if isinstance(document, dict) else None
    if not isinstance(chain, dict) or not isinstance(run, dict):
        return problems
    if chain.get("seq") != record.seq:
        problems.append(problem(ProblemKind.REORDERED, f"its chain.seq is {chain.get('seq')!r}"))
    if chain.get("prev_sha256") != expected_prev:
        problems.append(
            problem(
                ProblemKind.REORDERED,
                f"its chain.prev_sha256 is {_short(chain.get('prev_sha256'))}, the previous "
                f"document's recorded sha256 is {_short(expected_prev)}",
            )
        )
    problems.extend(_check_plan(project, document.get("plan"), problem))
    if run.get("id") != record.run_id:
        problems.append(
            problem(
                ProblemKind.REORDERED,
                f"it holds the evidence of run {run.get('id')!r}, the index says {record.run_id!r}",
            )
        )
    return problems


def _check_plan(
    project: Project, plan: Any, problem: Callable[[ProblemKind, str], ChainProblem]
) -> list[ChainProblem]:
    """The applied plan a document cites must still be there, with the hash it cites."""
    if not isinstance(plan, dict) or not isinstance(plan.get("path"), str):
        return []
    path = project.location(plan["path"])
    try:
        cited = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return [problem(ProblemKind.PLAN_CHANGED, f"the plan it cites, {plan['path']}, is gone")]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return [problem(ProblemKind.PLAN_CHANGED, f"the plan it cites is unreadable: {exc}")]
    actual = sha256_hex(cited)
    if actual != plan.get("plan_sha256"):
        return [
            problem(
                ProblemKind.PLAN_CHANGED,
                f"the plan it cites, {plan['path']}, now hashes to {_short(actual)}, not "
                f"{_short(plan.get('plan_sha256'))}",
            )
        ]
    return []


def verify_chain(project: Project, ledger: LedgerReader) -> list[ChainProblem]:
    """Every way the evidence folder and the ledger's index disagree (empty: intact)."""
    problems: list[ChainProblem] = []
    known: set[str] = set()
    previous: str | None = None
    for expected_seq, record in enumerate(ledger.evidence.index(), start=1):
        path = indexed_path(project, record)
        known.add(str(path.resolve()))
        if record.seq != expected_seq:
            problems.append(
                ChainProblem(
                    project.relative(path),
                    ProblemKind.REORDERED,
                    f"the index skips from seq {expected_seq - 1} to {record.seq}",
                    record.seq,
                )
            )
        problems.extend(_check_entry(project, record, previous))
        previous = record.sha256
    folder = evidence_dir(project)
    for path in files_in(folder, "*.json"):
        if path.name.startswith(".tmp-") or str(path.resolve()) in known:
            continue
        problems.append(
            ChainProblem(
                project.relative(path),
                ProblemKind.UNKNOWN,
                "a document in the evidence folder that the ledger's index does not know",
            )
        )
    with_evidence = {r.run_id for r in ledger.evidence.index()}
    for run in ledger.runs.all():
        if run.run_id in with_evidence or run.state is RunState.RUNNING:
            continue
        problems.append(
            ChainProblem(
                project.relative(evidence_dir(project)),
                ProblemKind.MISSING,
                f"run {run.run_id} ({run.state.value}) has no evidence document; write it "
                f"with 'backfiller resume {run.run_id}'",
            )
        )
    return problems
