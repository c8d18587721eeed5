"""Evidence for people: a short text (``evidence show``), a Markdown and an HTML report.

A reviewer should get it in a minute: who ran what and why, what changed per partition
(rows and versions before → after, fingerprints shortened), which checks failed or warned,
which holds were placed. Both reports are built from one list of sections; the HTML is one
self-contained file (inline CSS, no links, no scripts) with every value escaped.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from backfiller.checks.model import CheckStatus
from backfiller.evidence.model import (
    CheckEntry,
    HoldEntry,
    PartitionEntry,
    RunEvidence,
)

__all__ = ["report_html", "report_markdown", "summary_text"]

SHORT = 12


def _short(digest: str | None) -> str:
    return digest[:SHORT] if digest else "—"


def _value(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def _when(moment: datetime | None) -> str:
    return moment.isoformat() if moment else "—"


def _arrow(before: Any, after: Any) -> str:
    return f"{_value(before)} → {_value(after)}"


def _seconds(ms: int | None) -> str:
    return "—" if ms is None else f"{ms / 1000:.1f} s"


def _run_seconds(doc: RunEvidence) -> str:
    return f"{(doc.run.ended_at - doc.run.started_at).total_seconds():.1f} s"


def _counts(doc: RunEvidence) -> tuple[str, str, str]:
    p, c, h = doc.summary.partitions, doc.summary.checks, doc.summary.holds
    parts = [f"{p.published} published"]
    for label, n in (
        ("report reissued", p.report_reissued),
        ("failed", p.failed),
        ("check_failed", p.check_failed),
        ("interrupted", p.interrupted),
        ("not attempted", p.not_attempted),
    ):
        if n:
            parts.append(f"{n} {label}")
    return (
        f"{p.total} partition(s): " + ", ".join(parts),
        f"{c.total} check(s): {c.passed} passed, {c.failed} failed, {c.warned} warned",
        f"holds: {h.placed} placed, {h.released} released",
    )


# -- the shared content ---------------------------------------------------------------------
@dataclass(frozen=True)
class _Section:
    title: str
    headers: tuple[str, ...] = ()
    rows: list[tuple[str, ...]] = field(default_factory=list)
    note: str = ""


def _facts(doc: RunEvidence) -> list[tuple[str, str]]:
    run = doc.run
    plan = (
        f"{doc.plan.plan_id} ({doc.plan.path}, sha256 {_short(doc.plan.plan_sha256)})"
        if doc.plan
        else "— (no saved plan)"
    )
    facts = [
        ("run", run.id),
        ("state", run.state),
        ("action", f"{run.action} ({run.mode})"),
        ("operator", run.operator),
        ("reason", run.reason or "—"),
        ("plan", plan),
        ("started", _when(run.started_at)),
        ("ended", f"{_when(run.ended_at)} ({_run_seconds(doc)})"),
    ]
    if run.parent_run_id:
        facts.append(("parent run", run.parent_run_id))
    if run.error:
        facts.append(("error", run.error))
    facts += [
        ("project", doc.project),
        (
            "evidence",
            f"{doc.evidence_id}, seq {doc.chain.seq}, previous "
            f"{_short(doc.chain.prev_sha256)}, by {doc.producer} at {_when(doc.generated_at)}",
        ),
    ]
    return facts


def _partition_row(p: PartitionEntry) -> tuple[str, ...]:
    return (
        p.asset,
        p.partition_key,
        p.status.value,
        _arrow(p.rows_before, p.rows_after),
        _arrow(p.previous_data_version, p.new_data_version),
        f"{_short(p.fingerprint_before)} → {_short(p.fingerprint_after)}",
        p.idempotency_guard or "—",
        str(p.attempts),
        _seconds(p.duration_ms),
        p.error or "",
    )


def _check_row(c: CheckEntry) -> tuple[str, ...]:
    outcome = "warned" if c.status is CheckStatus.FAILED and not c.blocking else c.status.value
    return (
        c.asset,
        c.partition_key,
        c.name,
        outcome,
        c.severity.value,
        _value(c.expected),
        _value(c.actual),
    )


def _hold_row(h: HoldEntry) -> tuple[str, ...]:
    released = "open"
    if h.released_at is not None:
        released = f"{_when(h.released_at)} by {h.released_by or '—'}"
        if h.release_reason:
            released += f" ({h.release_reason})"
        if h.forced:
            released += " [forced]"
    return (
        h.target,
        h.partition_key,
        "external" if h.external else "internal",
        f"{h.cause_asset} {h.cause_partition}",
        h.reason,
        released,
    )


def _sections(doc: RunEvidence) -> list[_Section]:
    sections = [_Section("Summary", rows=[(line,) for line in _counts(doc)])]
    sections.append(
        _Section(
            "What changed, per partition",
            (
                "asset",
                "partition",
                "outcome",
                "rows before → after",
                "version before → after",
                "fingerprint before → after",
                "idempotency guard",
                "attempts",
                "duration",
                "error",
            ),
            [_partition_row(p) for p in doc.partitions],
            "" if doc.partitions else "This run had no partitions.",
        )
    )
    failing = [c for c in doc.checks if c.status is not CheckStatus.PASSED]
    passed = Counter((c.asset, c.name) for c in doc.checks if c.status is CheckStatus.PASSED)
    sections.append(
        _Section(
            "Checks that failed or warned",
            ("asset", "partition", "check", "outcome", "severity", "expected", "actual"),
            [_check_row(c) for c in failing],
            "" if failing else "None: every check passed." if doc.checks else "No checks ran.",
        )
    )
    if passed:
        sections.append(
            _Section(
                "Checks that passed",
                ("asset", "check", "partitions passed"),
                [(a, n, str(k)) for (a, n), k in sorted(passed.items())],
            )
        )
    sections.append(
        _Section(
            "Holds placed by this run",
            ("target", "partition", "kind", "cause", "reason", "released"),
            [_hold_row(h) for h in doc.holds.placed],
            "" if doc.holds.placed else "None.",
        )
    )
    others = [h for h in doc.holds.released if h not in doc.holds.placed]
    if others:
        sections.append(
            _Section(
                "Other holds released while it ran",
                ("target", "partition", "kind", "cause", "reason", "released"),
                [_hold_row(h) for h in others],
            )
        )
    sections.append(
        _Section(
            "Inputs (manifests)",
            ("manifest", "partition", "checksum"),
            [(i.manifest_id, i.partition_key, _short(i.manifest_checksum)) for i in doc.inputs],
            "" if doc.inputs else "None recorded.",
        )
    )
    return sections


def _title(doc: RunEvidence) -> str:
    return f"Run evidence: {doc.run.id} ({doc.run.state})"


# -- text -----------------------------------------------------------------------------------
def summary_text(doc: RunEvidence) -> str:
    """A few lines for a terminal: who, why, the counts, and one line per partition."""
    run = doc.run
    lines = [
        f"{run.id} · {run.action} · {run.state} · by {run.operator}",
        f"reason: {run.reason or '—'}",
        f"plan: {doc.plan.plan_id} (sha256 {_short(doc.plan.plan_sha256)})"
        if doc.plan
        else "plan: — (no saved plan)",
        f"started {_when(run.started_at)}, ended {_when(run.ended_at)} ({_run_seconds(doc)})",
        *_counts(doc),
        f"evidence: seq {doc.chain.seq}, {doc.evidence_id}, previous "
        f"{_short(doc.chain.prev_sha256)}",
    ]
    if run.error:
        lines.append(f"error: {run.error}")
    for p in doc.partitions:
        line = (
            f"  {p.asset} {p.partition_key}: {p.status.value}, rows "
            f"{_arrow(p.rows_before, p.rows_after)}, version "
            f"{_arrow(p.previous_data_version, p.new_data_version)}"
        )
        lines.append(line + (f" ({p.error})" if p.error else ""))
    failing = [c for c in doc.checks if c.status is not CheckStatus.PASSED]
    for c in failing:
        _, key, name, outcome, severity, expected, actual = _check_row(c)
        lines.append(
            f"  check {name} on {c.asset} {key}: {outcome} ({severity}), "
            f"expected {expected}, got {actual}"
        )
    return "\n".join(lines) + "\n"


# -- markdown -------------------------------------------------------------------------------
def _md(text: str) -> str:
    """One table cell or inline value: no line breaks; pipes, markup and raw HTML escaped
    (an underscore inside a word is not emphasis, so asset keys stay as they are)."""
    flat = " ".join(text.split())
    for char in "\\`*[]<>|":
        flat = flat.replace(char, "\\" + char)
    return flat


def report_markdown(doc: RunEvidence) -> str:
    out = [f"# {_md(_title(doc))}", ""]
    out += [f"- **{label}:** {_md(value)}" for label, value in _facts(doc)]
    for section in _sections(doc):
        out += ["", f"## {section.title}", ""]
        if section.headers and section.rows:
            out.append("| " + " | ".join(_md(h) for h in section.headers) + " |")
            out.append("|" + "---|" * len(section.headers))
            out += ["| " + " | ".join(_md(c) for c in row) + " |" for row in section.rows]
        elif section.rows:
            out += [f"- {_md(row[0])}" for row in section.rows]
        if section.note:
            out.append(_md(section.note))
    return "\n".join(out) + "\n"


# -- html -----------------------------------------------------------------------------------
_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem; color: #1d1d1f; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.1rem; margin-top: 1.8rem; }
table { border-collapse: collapse; margin: .4rem 0; }
th, td { border: 1px solid #d0d0d5; padding: .25rem .5rem; text-align: left;
         vertical-align: top; }
th { background: #f2f2f5; }
dl { display: grid; grid-template-columns: max-content auto; gap: .2rem 1rem; }
dt { font-weight: 600; } dd { margin: 0; }
td.published, td.passed { color: #17663a; }
td.failed, td.check_failed, td.interrupted, td.not_attempted { color: #a1131a;
  font-weight: 600; }
td.warned { color: #8a5a00; font-weight: 600; }
.note { color: #555; }
"""


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _cell(text: str, header: str) -> str:
    if header in {"status", "outcome"}:
        return f'<td class="{_e(text)}">{_e(text)}</td>'
    return f"<td>{_e(text)}</td>"


def report_html(doc: RunEvidence) -> str:
    title = _e(_title(doc))
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{title}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{title}</h1>",
        "<dl>",
    ]
    out += [f"<dt>{_e(label)}</dt><dd>{_e(value)}</dd>" for label, value in _facts(doc)]
    out.append("</dl>")
    for section in _sections(doc):
        out.append(f"<h2>{_e(section.title)}</h2>")
        if section.headers and section.rows:
            out.append("<table>")
            out.append("<tr>" + "".join(f"<th>{_e(h)}</th>" for h in section.headers) + "</tr>")
            for row in section.rows:
                cells = "".join(_cell(c, h) for c, h in zip(row, section.headers, strict=True))
                out.append(f"<tr>{cells}</tr>")
            out.append("</table>")
        elif section.rows:
            out.append("<ul>" + "".join(f"<li>{_e(row[0])}</li>" for row in section.rows) + "</ul>")
        if section.note:
            out.append(f'<p class="note">{_e(section.note)}</p>')
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"
