"""``backfiller site --out DIR``: the web view's pages written as static files (for CI
artifacts), each as ``index.html`` with its JSON beside it as ``index.json``, linked
relatively so the folder can be opened from disk. Reads like the server: nothing is written
but the output folder.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backfiller.errors import BackfillerError
from backfiller.ledger.reader import close_reader
from backfiller.web import pages
from backfiller.web.html import Links, render

if TYPE_CHECKING:
    from backfiller.ledger import LedgerReader
    from backfiller.project import Project

__all__ = ["write_site"]


def write_site(project: Project, out: Path) -> list[Path]:
    """Write every page of ``project``'s view under ``out``: the overview, each asset with the
    partitions of its grid, runs, each run with its evidence, plans, each plan, the chain and
    its verification. Returns the files written."""
    out = Path(out)
    written: list[Path] = []
    reader = project.reader()
    try:

        def page(
            path: str,
            template: str,
            build: Callable[[LedgerReader], dict[str, Any]],
            **extra: Any,
        ) -> dict[str, Any] | None:
            try:
                data = build(reader)
            except (pages.NotFound, BackfillerError):
                return None
            folder = out / path
            folder.mkdir(parents=True, exist_ok=True)
            links = Links(_root(path), static=True)
            html = render(template, data, links, **extra)
            written.append(_write(folder / "index.html", html))
            written.append(_write(folder / "index.json", json.dumps(data, indent=2) + "\n"))
            return data

        page("", "overview.html", partial(pages.overview, project))
        for asset in project.graph.keys:
            data = page(
                f"assets/{asset}/", "asset.html", partial(pages.asset_page, project, asset=asset)
            )
            for cell in data["grid"] if data else []:
                key = cell["key"]
                page(
                    f"assets/{asset}/partitions/{key}/",
                    "partition.html",
                    partial(
                        pages.partition_page, project, asset=asset, key=key, state=cell["state"]
                    ),
                )
        runs = page("runs/", "runs.html", partial(pages.runs_page, project))
        for run in runs["runs"] if runs else []:
            run_id = run["run_id"]
            found = page(
                f"runs/{run_id}/", "run.html", partial(pages.run_page, project, run_id=run_id)
            )
            if not (found and found["evidence"]):
                continue
            try:
                report = pages.evidence_report(project, reader, run_id)
            except (pages.NotFound, BackfillerError):
                continue
            written.append(_write(out / "runs" / run_id / "evidence" / "report.html", report))
            page(
                f"runs/{run_id}/evidence/",
                "evidence.html",
                partial(pages.evidence_document, project, run_id=run_id),
                run_id=run_id,
                report="report.html",
            )
        plans = page("plans/", "plans.html", partial(pages.plans_page, project))
        for plan in plans["plans"] if plans else []:
            pid = plan["plan_id"]
            page(f"plans/{pid}/", "plan.html", partial(pages.plan_page, project, plan_id=pid))
        page("evidence/", "chain.html", partial(pages.chain_page, project))
        page("evidence/verify/", "verify.html", partial(pages.verify_page, project))
    finally:
        close_reader(reader)
    return written


def _root(path: str) -> str:
    """The way back from folder ``path`` to the site's root."""
    depth = len([p for p in path.split("/") if p])
    return "../" * depth if depth else "./"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
