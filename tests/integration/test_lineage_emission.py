"""A run sends its OpenLineage events where the environment it was loaded with says, and
reports what became of them (:attr:`RunResult.lineage`); every problem on the way is one
warning and the outcome's ``problem``, never an exception: the run is what its evidence says."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
from conftest import NOW, run_steps
from openlineage_spec import event_problems

from backfiller import FixedClock, Project, load_project
from backfiller.evidence.lineage_emission import LineageOutcome, emit_run_lineage
from backfiller.lineage_settings import LineageSettings

RAW = "week06/ingestion/raw_ticket_events_partitioned"
SILVER = "week06/silver/ticket_fact_partitioned"
KEY = "2026-04-15"
LOGGER = "backfiller.evidence.lineage_emission"


@pytest.fixture(autouse=True)
def _no_openlineage_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("OPENLINEAGE"):
            monkeypatch.delenv(name)


def with_environ(project: Project, project_environ: dict[str, str], **extra: str) -> Project:
    return load_project(project.root, environ={**project_environ, **extra}, clock=FixedClock(NOW))


def rerun(project: Project) -> tuple[str, LineageOutcome | None]:
    with project.ledger() as ledger:
        result = run_steps(project, ledger, [(RAW, KEY), (SILVER, KEY)], action="rerun")
    assert result.state.value == "succeeded"
    return result.run_id, result.lineage


def test_a_run_sends_its_events_where_its_environment_says(
    april_project: Project, project_environ: dict[str, str], tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    config = tmp_path / "openlineage.yml"
    config.write_text(f"transport:\n  type: file\n  log_file_path: {events}\n  append: true\n")
    project = with_environ(april_project, project_environ, OPENLINEAGE_CONFIG=str(config))
    assert "OPENLINEAGE_CONFIG" not in os.environ  # the environment the project was given

    _, outcome = rerun(project)

    sent = [json.loads(line) for line in events.read_text().splitlines()]
    assert outcome == LineageOutcome(sent=6, total=6, target=f"the transport of {config}")
    assert outcome.ok
    assert len(sent) == 6
    assert [p for e in sent for p in event_problems(e)] == []


def test_a_run_without_lineage_configuration_reports_none(april_project: Project) -> None:
    assert not april_project.config.lineage.enabled
    _, outcome = rerun(april_project)
    assert outcome is None


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (None, "no client could be configured from $OPENLINEAGE_CONFIG (FileNotFoundError"),
        ("- a list\n", "is not a YAML mapping of OpenLineage settings"),
        (
            "filters: []\n",
            "it names no transport (the client fell back to its console transport)",
        ),
    ],
    ids=["missing-file", "not-a-mapping", "no-transport"],
)
def test_a_client_configuration_that_cannot_send_is_a_warning(
    april_project: Project,
    project_environ: dict[str, str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    content: str | None,
    said: str,
) -> None:
    config = tmp_path / "openlineage.yml"
    if content is not None:
        config.write_text(content)
    project = with_environ(april_project, project_environ, OPENLINEAGE_CONFIG=str(config))

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        run_id, outcome = rerun(project)

    assert outcome is not None and not outcome.ok
    assert outcome.sent == 0
    assert outcome.problem is not None and said in outcome.problem
    assert outcome.problem.endswith("; the run itself is not affected")
    (record,) = [r for r in caplog.records if r.name == LOGGER]
    assert (record.levelno, record.getMessage()) == (logging.WARNING, outcome.problem)
    with project.ledger() as ledger:
        run = ledger.runs.get(run_id)
        assert run is not None and run.state.value == "succeeded"


def test_evidence_that_cannot_be_read_is_a_warning(tmp_path: Path) -> None:
    settings = LineageSettings(source="$OPENLINEAGE_URL", url="http://user:pw@127.0.0.1:9")
    outcome = emit_run_lineage(settings, tmp_path / "000001_run-x.json")
    assert outcome is not None
    assert outcome.target == "http://user:***@127.0.0.1:9/api/v1/lineage"  # no password
    assert outcome.problem is not None
    assert outcome.problem.startswith(
        "OpenLineage: the events of 000001_run-x.json could not be built (FileNotFoundError"
    )
    assert emit_run_lineage(LineageSettings(), tmp_path / "nothing.json") is None
