"""Run evidence: a versioned, schema-validated, hash-chained JSON document per apply run;
its verification, its reports for people, and its OpenLineage projection (optional extra)."""

from backfiller.evidence.chain import (
    ChainProblem,
    ProblemKind,
    TamperedEvidenceError,
    evidence_dir,
    verify_chain,
)
from backfiller.evidence.lineage import emit_lineage, lineage_events
from backfiller.evidence.model import SCHEMA_URL, PartitionOutcome, RunEvidence
from backfiller.evidence.render import report_html, report_markdown, summary_text
from backfiller.evidence.writer import build_run_evidence, load_run_evidence, write_run_evidence

__all__ = [
    "SCHEMA_URL",
    "ChainProblem",
    "PartitionOutcome",
    "ProblemKind",
    "RunEvidence",
    "TamperedEvidenceError",
    "build_run_evidence",
    "emit_lineage",
    "evidence_dir",
    "lineage_events",
    "load_run_evidence",
    "report_html",
    "report_markdown",
    "summary_text",
    "verify_chain",
    "write_run_evidence",
]
