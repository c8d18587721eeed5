"""Run lineage on the command line: with the standard OpenLineage configuration
(``OPENLINEAGE_CONFIG``, ``OPENLINEAGE_URL``) or a ``[lineage]`` section, apply and every
recovery action send their run's OpenLineage events, and every event and facet is one the
official JSON Schemas accept (the custom ``backfiller`` facet: its own published schema).

Events are captured without a network: the client's file transport (``OPENLINEAGE_CONFIG``
naming a YAML file) or a local HTTP server in a thread. Lineage is a side channel: with no
configuration nothing is sent, and a transport that fails is one warning line on stderr while
the exit code stays the run's.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cli_calls import run
from conftest import (
    GAP_DAY,
    both_backends,
    cli_environment,
    interrupted_at,
    run_steps,
    tree_fingerprint,
)
from lab_project import FLAKY, LAB_KEY, STEADY, write_lab
from openlineage_spec import event_problems

from backfiller import Project, RunState, load_project
from backfiller.evidence import PartitionOutcome, RunEvidence, load_run_evidence
from backfiller.evidence.lineage import INSTALL_LINE, parent_run_id

pytestmark = both_backends

RAW = "week06/ingestion/raw_ticket_events_partitioned"
SILVER = "week06/silver/ticket_fact_partitioned"
KEY = "2026-04-15"
MANIFEST_ID = "week06-seed-manifest-001"


@pytest.fixture(autouse=True)
def _cli_environment(
    monkeypatch: pytest.MonkeyPatch, project_environ: dict[str, str]
) -> Iterator[None]:
    """A wide console; no project or OpenLineage settings from the environment but the ledger
    backend's. The client copies ``OPENLINEAGE_URL`` into ``OPENLINEAGE__TRANSPORT__*``
    variables of the process: those are removed after the test."""
    cli_environment(monkeypatch, project_environ, also_clear=("OPENLINEAGE",))
    before = set(os.environ)
    yield
    for name in set(os.environ) - before:
        if name.startswith("OPENLINEAGE"):
            del os.environ[name]


def one_line(text: str) -> str:
    return " ".join(text.split())


def run_ids(project: Project) -> set[str]:
    with project.ledger() as ledger:
        return {r.run_id for r in ledger.runs.all()}


def new_run_id(project: Project, before: set[str]) -> str:
    """The one run begun since ``before`` (the template's runs began at a frozen moment: the
    latest by time need not be the newest)."""
    (run_id,) = run_ids(project) - before
    return run_id


def file_transport(monkeypatch: pytest.MonkeyPatch, folder: Path) -> Path:
    """Point ``OPENLINEAGE_CONFIG`` at a client configuration whose transport appends every
    event to a file; return the file."""
    events = folder / "lineage-events.jsonl"
    config = folder / "openlineage.yml"
    config.write_text(
        f"transport:\n  type: file\n  log_file_path: {events}\n  append: true\n", encoding="utf-8"
    )
    monkeypatch.setenv("OPENLINEAGE_CONFIG", str(config))
    return events


def read_events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


class Collector:
    """A local OpenLineage HTTP endpoint: records every POST, answers ``status``."""

    def __init__(self, status: int = 201) -> None:
        self.status = status
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                collector.requests.append((self.path, dict(self.headers), body))
                self.send_response(collector.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, _, body in self.requests]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector()
    yield server
    server.stop()


def evidence_of(project: Project, run_id: str) -> RunEvidence:
    with project.ledger() as ledger:
        return load_run_evidence(project, ledger, run_id)


def assert_lineage_of_run(
    events: list[dict[str, Any]], project: Project, run_id: str, action: str
) -> RunEvidence:
    """``events`` are exactly the run's: valid against the official schemas (every facet
    too), one parent run around one child run per attempted partition, the custom facet
    naming the run and its evidence, and every check result's expected and actual values the
    evidence's, as JSON values."""
    doc = evidence_of(project, run_id)
    assert events, "no OpenLineage event was sent"
    problems = [f"event {i}: {p}" for i, e in enumerate(events) for p in event_problems(e)]
    assert problems == []
    parent = parent_run_id(run_id)
    assert (events[0]["eventType"], events[0]["run"]["runId"]) == ("START", parent)
    end = "COMPLETE" if doc.run.state == "succeeded" else "FAIL"
    assert (events[-1]["eventType"], events[-1]["run"]["runId"]) == (end, parent)
    assert {e["job"]["name"] for e in (events[0], events[-1])} == {
        f"{project.config.name}.{action}"
    }
    attempted = [p for p in doc.partitions if p.status is not PartitionOutcome.NOT_ATTEMPTED]
    assert len(events) == 2 + 2 * len(attempted)
    custom = [e["run"]["facets"]["backfiller"] for e in events]
    assert {(f["runId"], f["evidenceId"], f["action"]) for f in custom} == {
        (run_id, doc.evidence_id, action)
    }
    children = {(f["asset"], f["partitionKey"]) for f in custom if "asset" in f}
    assert children == {(p.asset, p.partition_key) for p in attempted}
    sent = {
        (
            e["run"]["facets"]["backfiller"]["asset"],
            e["run"]["facets"]["backfiller"]["partitionKey"],
            t["name"],
        ): t
        for e in events
        if e["eventType"] != "START" and "test" in e["run"]["facets"]
        for t in e["run"]["facets"]["test"]["tests"]
    }
    recorded = {(c.asset, c.partition_key, c.name): c for c in doc.checks}
    assert sent.keys() == recorded.keys()
    for key, test in sent.items():
        check = recorded[key]
        for field in ("expected", "actual"):
            value = getattr(check, field)
            if value is None:
                assert field not in test, key
            else:
                assert json.loads(test[field]) == value, (key, field, test[field])
    return doc


# -- every action sends its lineage ---------------------------------------------------------


def _backfill(project: Project, capsys: pytest.CaptureFixture[str]) -> tuple[list[str], str | None]:
    return ["plan", "--partition", GAP_DAY, "--mode", "apply"], None


def _apply(project: Project, capsys: pytest.CaptureFixture[str]) -> tuple[list[str], str | None]:
    code, _, err = run(capsys, project.root, "plan", "--partition", GAP_DAY)
    assert code == 0, err
    plan = project.root / f"reports/week06/backfill/backfill_plan_{GAP_DAY}.json"
    assert plan.is_file()
    return ["apply", str(plan)], None


def _reissue(project: Project, capsys: pytest.CaptureFixture[str]) -> tuple[list[str], str | None]:
    """A backfill whose only work is writing a lost partition report again."""
    project.partition_report_path(RAW, KEY).unlink()
    return ["plan", "--partition", KEY, "--mode", "apply", "--asset", RAW], None


def _rerun(project: Project, capsys: pytest.CaptureFixture[str]) -> tuple[list[str], str | None]:
    return ["rerun", "--asset", RAW, "--partition", KEY], None


def _replay(project: Project, capsys: pytest.CaptureFixture[str]) -> tuple[list[str], str | None]:
    return ["replay", "--manifest", MANIFEST_ID, "--partition", KEY], None


def _restore(project: Project, capsys: pytest.CaptureFixture[str]) -> tuple[list[str], str | None]:
    before = run_ids(project)
    code, _, err = run(capsys, project.root, "rerun", "--asset", RAW, "--partition", KEY)
    assert code == 0, err
    rerun_id = new_run_id(project, before)
    return ["restore", "--asset", RAW, "--partition", KEY, "--before-run", rerun_id], None


def _resume(project: Project, capsys: pytest.CaptureFixture[str]) -> tuple[list[str], str | None]:
    with project.ledger() as ledger, interrupted_at("before_settle"):
        run_steps(project, ledger, [(RAW, GAP_DAY), (SILVER, GAP_DAY)])
    with project.ledger() as ledger:  # the template's runs began at the same (frozen) moment
        (run_id,) = [r.run_id for r in ledger.runs.all() if r.state is RunState.RUNNING]
    return ["resume", run_id], run_id


ACTIONS: dict[str, tuple[Callable[..., tuple[list[str], str | None]], str]] = {
    "backfill": (_backfill, "backfill"),
    "apply": (_apply, "backfill"),
    "backfill-reissuing-a-report": (_reissue, "backfill"),
    "rerun": (_rerun, "rerun"),
    "replay": (_replay, "replay"),
    "restore": (_restore, "restore"),
    "resume": (_resume, "backfill"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(ACTIONS))
def test_each_action_sends_lineage_that_the_openlineage_schemas_accept(
    april_project: Project,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    case: str,
) -> None:
    setup, action = ACTIONS[case]
    argv, run_id = setup(april_project, capsys)
    events_file = file_transport(monkeypatch, tmp_path)
    before = run_ids(april_project)

    code, out, err = run(capsys, april_project.root, *argv)

    assert code == 0, out + err
    assert "OpenLineage" not in err
    run_id = run_id or new_run_id(april_project, before)
    doc = assert_lineage_of_run(read_events(events_file), april_project, run_id, action)
    if case == "backfill-reissuing-a-report":
        (entry,) = doc.partitions
        assert entry.status is PartitionOutcome.REPORT_REISSUED
    else:  # the checks ran; a list-valued expectation arrived as a JSON list, not a repr
        assert any(isinstance(c.expected, list) for c in doc.checks)


@pytest.mark.slow
def test_retry_sends_the_lineage_of_the_run_it_finishes(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    project_environ: dict[str, str],
) -> None:
    lab = load_project(write_lab(tmp_path / "lab"), environ=project_environ)
    with lab.ledger() as ledger:
        first = run_steps(lab, ledger, [(STEADY, LAB_KEY), (FLAKY, LAB_KEY)])
    assert first.state.value == "failed"
    (lab.root / "flaky.ok").touch()
    events_file = file_transport(monkeypatch, tmp_path)

    code, out, err = run(capsys, lab.root, "retry", first.run_id)

    assert code == 0, out + err
    doc = assert_lineage_of_run(read_events(events_file), lab, first.run_id, "backfill")
    assert doc.chain.seq == 2  # the retried run's second evidence document
    flaky = next(p for p in doc.partitions if p.asset == FLAKY)
    assert (flaky.status, flaky.attempts) == (PartitionOutcome.PUBLISHED, 2)


def test_a_failed_run_sends_its_lineage_and_keeps_its_exit_code(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    project_environ: dict[str, str],
) -> None:
    root = write_lab(tmp_path / "lab")
    events_file = file_transport(monkeypatch, tmp_path)

    code, _, err = run(capsys, root, "rerun", "--asset", FLAKY, "--partition", LAB_KEY)

    assert code == 1, err
    lab = load_project(root, environ=project_environ)
    events = read_events(events_file)
    (run_id,) = run_ids(lab)
    assert_lineage_of_run(events, lab, run_id, "rerun")
    failed = [e for e in events if e["eventType"] == "FAIL"]
    assert len(failed) == 2  # the partition's run and the parent run
    assert (
        "object store temporarily unavailable"
        in failed[0]["run"]["facets"]["errorMessage"]["message"]
    )


# -- what turns it on: OPENLINEAGE_URL, [lineage] ---------------------------------------------


@pytest.mark.slow
def test_openlineage_url_posts_every_event_with_the_api_key(
    april_project: Project,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    collector: Collector,
) -> None:
    monkeypatch.setenv("OPENLINEAGE_URL", collector.url)
    monkeypatch.setenv("OPENLINEAGE_API_KEY", "s3cret")
    before = run_ids(april_project)

    code, out, err = run(capsys, april_project.root, "rerun", "--asset", RAW, "--partition", KEY)

    assert code == 0, out + err
    assert {path for path, _, _ in collector.requests} == {"/api/v1/lineage"}
    assert {h.get("Authorization") for _, h, _ in collector.requests} == {"Bearer s3cret"}
    events = collector.events
    assert_lineage_of_run(events, april_project, new_run_id(april_project, before), "rerun")
    assert {e["job"]["namespace"] for e in events} == {"backfiller"}


@pytest.mark.slow
def test_a_lineage_section_alone_turns_emission_on(
    april_project: Project, capsys: pytest.CaptureFixture[str], collector: Collector
) -> None:
    config = april_project.root / "backfiller.toml"
    config.write_text(
        config.read_text(encoding="utf-8")
        + f'\n[lineage]\nurl = "{collector.url}"\nendpoint = "ingest/v1"\n'
        + 'namespace = "omni-prod"\n',
        encoding="utf-8",
    )
    assert not [name for name in os.environ if name.startswith("OPENLINEAGE")]
    before = run_ids(april_project)

    code, out, err = run(capsys, april_project.root, "rerun", "--asset", RAW, "--partition", KEY)

    assert code == 0, out + err
    assert {path for path, _, _ in collector.requests} == {"/ingest/v1"}
    events = collector.events
    assert_lineage_of_run(events, april_project, new_run_id(april_project, before), "rerun")
    namespaces = {e["job"]["namespace"] for e in events}
    namespaces |= {d["namespace"] for e in events for d in e["inputs"] + e["outputs"]}
    assert namespaces == {"omni-prod"}


def test_nothing_is_sent_without_configuration_and_everything_with_it(
    april_project: Project,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    root = april_project.root
    client = importlib.import_module("openlineage.client")
    # a client that could not even be imported would say so: nothing tries to
    monkeypatch.setitem(sys.modules, "openlineage.client", None)

    code, out, err = run(capsys, root, "rerun", "--asset", RAW, "--partition", KEY)

    assert code == 0, out + err
    assert err == ""
    monkeypatch.setitem(sys.modules, "openlineage.client", client)
    events_file = file_transport(monkeypatch, tmp_path)
    before = run_ids(april_project)
    code, out, err = run(capsys, root, "rerun", "--asset", RAW, "--partition", KEY)
    assert code == 0, out + err
    run_id = new_run_id(april_project, before)
    assert_lineage_of_run(read_events(events_file), april_project, run_id, "rerun")


@pytest.mark.slow
def test_openlineage_disabled_wins_over_every_configuration(
    april_project: Project,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    collector: Collector,
) -> None:
    events_file = file_transport(monkeypatch, tmp_path)
    monkeypatch.setenv("OPENLINEAGE_URL", collector.url)
    monkeypatch.setenv("OPENLINEAGE_DISABLED", "true")

    code, out, err = run(capsys, april_project.root, "rerun", "--asset", RAW, "--partition", KEY)

    assert code == 0, out + err
    assert (read_events(events_file), collector.requests) == ([], [])
    monkeypatch.delenv("OPENLINEAGE_DISABLED")
    assert run(capsys, april_project.root, "rerun", "--asset", RAW, "--partition", KEY)[0] == 0
    assert read_events(events_file)  # the same configuration, enabled: sent


# -- a side channel: failures are warnings, never the run's outcome -------------------------


@pytest.mark.slow
def test_a_refusing_lineage_server_is_a_warning_and_the_exit_code_stays(
    april_project: Project,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    collector: Collector,
) -> None:
    collector.status = 400
    monkeypatch.setenv("OPENLINEAGE_URL", collector.url)
    root = april_project.root

    code, out, err = run(capsys, root, "plan", "--partition", GAP_DAY, "--mode", "apply", "--json")

    assert code == 0, err
    document = json.loads(out)  # stdout is the JSON document alone
    assert document["run"]["state"] == "succeeded"
    run_id = document["run"]["run_id"]
    text = one_line(err)
    assert (
        f"warning: OpenLineage: sending the events of run {run_id} to "
        f"{collector.url}/api/v1/lineage failed after 0 of 6 (HTTPError: 400 Client Error: "
        f"Bad Request for url: {collector.url}/api/v1/lineage); the run itself is not affected"
    ) in text
    assert err.count("warning:") == 1
    assert len(collector.requests) == 1  # stopped at the first refusal
    assert evidence_of(april_project, run_id).run.state == "succeeded"


@pytest.mark.slow
def test_an_unreachable_lineage_backend_keeps_a_check_failure_exit_code(
    april_project: Project,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """Nothing listens where the configuration points (retries off, so it fails at once); the
    run fails a blocking check: exit 3, as without lineage."""
    closed = Collector()
    closed.stop()
    config = tmp_path / "openlineage.yml"
    config.write_text(
        f"transport:\n  type: http\n  url: {closed.url}\n  retry:\n    total: 0\n", encoding="utf-8"
    )
    monkeypatch.setenv("OPENLINEAGE_CONFIG", str(config))
    root = april_project.root
    assert run(capsys, root, "simulate", "failing-check", "--asset", RAW, "--check",
               "idempotency_key_unique", "--partition", KEY)[0] == 0  # fmt: skip

    code, _, err = run(capsys, root, "rerun", "--asset", RAW, "--partition", KEY)

    assert code == 3, err
    text = one_line(err)
    assert "warning: OpenLineage: sending the events of run" in text
    assert "failed after 0 of" in text and "ConnectionError" in text
    assert "the run itself is not affected" in text
    assert "error:" in text  # the run's own error, as without lineage


def test_without_the_extra_the_install_line_is_said_once_and_the_run_succeeds(
    april_project: Project,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    file_transport(monkeypatch, tmp_path)
    monkeypatch.setitem(sys.modules, "openlineage.client", None)

    code, out, err = run(capsys, april_project.root, "rerun", "--asset", RAW, "--partition", KEY)

    assert code == 0, out + err
    assert "published" in out
    assert err.count(INSTALL_LINE) == 1
    assert (
        "OpenLineage is configured ($OPENLINEAGE_CONFIG) but openlineage-python is not installed"
        in one_line(err)
    )


# -- the [lineage] section is as strict as the others ---------------------------------------


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ('urll = "http://localhost:5000"', "unknown setting [lineage] urll (did you mean 'url'?)"),
        (
            'url = "localhost:5000"',
            "[lineage] url = 'localhost:5000' (in {file}) must be an http:// or https:// URL",
        ),
        ("namespace = 5", "[lineage] namespace = 5 (in {file}) must be a string"),
    ],
    ids=["unknown-key", "not-a-url", "namespace-int"],
)
def test_a_bad_lineage_section_exits_2_naming_the_setting(
    april_project: Project, capsys: pytest.CaptureFixture[str], body: str, said: str
) -> None:
    root = april_project.root
    config = root / "backfiller.toml"
    config.write_text(
        config.read_text(encoding="utf-8") + f"\n[lineage]\n{body}\n", encoding="utf-8"
    )
    before = tree_fingerprint(root)

    code, out, err = run(capsys, root, "rerun", "--asset", RAW, "--partition", KEY)

    assert code == 2, out + err
    assert said.format(file=config) in one_line(err)
    assert out == ""
    assert tree_fingerprint(root) == before
