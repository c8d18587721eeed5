"""The evidence commands: verify the chain, show a run's evidence, write a report."""

from __future__ import annotations

import re
from pathlib import Path

import click
from rich.markup import escape

from . import documents
from .context import Context, known_run
from .documents import json_option

__all__ = ["COMMANDS", "evidence"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


@click.group(name="evidence")
def evidence() -> None:
    """Run evidence: verify the hash chain, show a run's evidence, write a report."""


@evidence.command()
@click.pass_obj
def verify(obj: Context) -> None:
    """Check every evidence file against the ledger's index (exit 4 if any disagrees)."""
    from backfiller.evidence import TamperedEvidenceError, verify_chain

    project = obj.project()
    reader = project.reader()  # reading only: a fresh project's ledger is not created
    problems = verify_chain(project, reader)
    count = len(reader.evidence.index())
    if problems:
        for problem in problems:
            obj.console.print(f"[red]✗[/] {escape(str(problem))}", highlight=False)
        raise TamperedEvidenceError(
            f"{len(problems)} problem(s) in the evidence chain of {count} document(s)",
            hint="restore the named files from a backup; never edit evidence by hand",
        )
    obj.console.print(f"Evidence chain intact: {count} document(s).", markup=False)


_DRY_RUNS = "evidence is written for apply runs, a dry run writes only a plan"


@evidence.command()
@click.argument("run_id")
@click.pass_obj
def write(obj: Context, run_id: str) -> None:
    """Write the evidence of a finished run (if it has none yet) and print where it is."""
    from backfiller.evidence import write_run_evidence

    project = obj.project()
    known_run(project, run_id, hint=_DRY_RUNS)
    with project.ledger() as ledger:
        path = write_run_evidence(project, ledger, run_id)
    obj.console.print(f"Evidence of {run_id}: {project.relative(path)}", markup=False)


@evidence.command()
@click.argument("run_id")
@json_option
@click.pass_obj
def show(obj: Context, run_id: str, as_json: bool) -> None:
    """A short summary of a run's evidence (with --json: the evidence document itself)."""
    from backfiller.evidence import load_run_evidence, summary_text

    obj.use_json(as_json)
    project = obj.project()
    known_run(project, run_id, hint=_DRY_RUNS)
    with project.ledger() as ledger:
        doc = load_run_evidence(project, ledger, run_id)
        record = ledger.evidence.of_run(run_id)
    if obj.json:
        path = None if record is None else project.relative(project.location(record.path))
        documents.emit(documents.document("evidence", path=path, evidence=doc.to_dict()))
        return
    obj.console.print(summary_text(doc), markup=False, end="")


@evidence.command()
@click.argument("run_id")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["md", "html"]),
    default="md",
    show_default=True,
    help="Markdown, or one self-contained HTML file.",
)
@click.option(
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Where to write it (default: <report_dir>/evidence/<run_id>.md|html).",
)
@click.pass_obj
def report(obj: Context, run_id: str, fmt: str, output: Path | None) -> None:
    """A report of a run's evidence for a reviewer."""
    from backfiller.atomic import atomic_write_text
    from backfiller.evidence import evidence_dir, load_run_evidence, report_html, report_markdown

    project = obj.project()
    known_run(project, run_id, hint=_DRY_RUNS)
    with project.ledger() as ledger:
        doc = load_run_evidence(project, ledger, run_id)
    text = report_markdown(doc) if fmt == "md" else report_html(doc)
    path = output or evidence_dir(project) / f"{_UNSAFE.sub('_', run_id)}.{fmt}"
    atomic_write_text(path, text)
    obj.console.print(f"Report written to {project.relative(path)}", markup=False)


COMMANDS = [evidence]
