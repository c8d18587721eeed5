"""A project for the web view's tests: the bundled example with a few days materialized, one
day whose redelivered seed has a row with an unknown channel (so its rerun fails a blocking
check with that row as the sample, holds what depends on it and leaves it check_failed), the
evidence of both runs, and a saved dry-run plan for the gap day."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from conftest import GAP_DAY, NOW, run_steps

from backfiller import FixedClock, Project, load_project
from backfiller.evidence import write_run_evidence
from backfiller.lab.example import lay_out_example
from backfiller.planning import Mode, make_plan, write_plan
from backfiller.planning.planner import request_for

RAW = "week06/ingestion/raw_ticket_events_partitioned"
SILVER = "week06/silver/ticket_fact_partitioned"
DAYS = ("2026-04-14", "2026-04-15", "2026-04-16")
BAD_DAY = "2026-04-15"
BAD_CHANNEL = "carrier_pigeon"


@dataclass(frozen=True)
class WebProject:
    root: Path
    environ: dict[str, str]
    good_run: str
    failed_run: str
    plan_id: str

    def load(self) -> Project:
        return load_project(self.root, environ=self.environ, clock=FixedClock(NOW))


def redeliver_with_a_bad_row(root: Path, day: str) -> None:
    """The seed file of ``day`` gets a first row with an unknown channel; the manifest
    declares the new file's checksum (a redelivery, so the partition's manifest changed)."""
    rel = f"data/seed/ticket_events/{day}.jsonl"
    path = root / rel
    lines = path.read_text(encoding="utf-8").splitlines()
    first = json.loads(lines[0])
    first["channel"] = BAD_CHANNEL
    lines[0] = json.dumps(first, sort_keys=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    for manifest in (root / "data/manifests").glob("*.json"):
        doc = json.loads(manifest.read_text(encoding="utf-8"))
        for partition in doc["partitions"]:
            for declared in partition["input_files"]:
                if declared["path"] == rel:
                    declared["sha256"] = digest
        manifest.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def build_web_project(root: Path, environ: dict[str, str] | None = None) -> WebProject:
    """Lay the project out at ``root``; ``environ`` names its ledger (nothing: SQLite)."""
    environ = environ or {}
    lay_out_example(root)
    project = load_project(root, environ=environ, clock=FixedClock(NOW))
    with project.ledger() as ledger:
        good = run_steps(project, ledger, [(a, d) for d in DAYS for a in (RAW, SILVER)])
        assert good.state.value == "succeeded", [s.error for s in good.steps if s.error]
        write_run_evidence(project, ledger, good.run_id)
    redeliver_with_a_bad_row(root, BAD_DAY)
    project = load_project(root, environ=environ, clock=FixedClock(NOW))
    with project.ledger() as ledger:
        failed = run_steps(
            project,
            ledger,
            [(RAW, BAD_DAY), (SILVER, BAD_DAY)],
            action="rerun",
            reason="redelivery",
        )
        assert failed.state.value == "checks_failed", failed
        write_run_evidence(project, ledger, failed.run_id)
    request = request_for([GAP_DAY], Mode.DRY_RUN, "alice", reason="late delivery")
    document = make_plan(project, project.reader(), request)
    write_plan(project, document)
    return WebProject(root, environ, good.run_id, failed.run_id, document.plan_id)
