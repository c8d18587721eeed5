"""Run evidence on real runs (Delta store, SQLite or PostgreSQL ledger): what it records, its
schema, its chain and how tampering is caught, its reports, and its OpenLineage events. Every
test runs on both ledgers: the documents are made from what the ledger holds."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import GAP_DAY, NOW, both_backends, ledger_environ, run_steps
from openlineage.client import OpenLineageClient
from openlineage.client.transport.file import FileConfig, FileTransport
from openlineage.client.transport.transport import Config, Transport
from openlineage_spec import event_problems

from backfiller import FixedClock, Project, load_project
from backfiller.actions.apply import apply_plan
from backfiller.canonical import sha256_hex, stable_id
from backfiller.errors import BadInputError, PreconditionError
from backfiller.evidence import (
    ProblemKind,
    RunEvidence,
    TamperedEvidenceError,
    emit_lineage,
    report_html,
    report_markdown,
    verify_chain,
    write_run_evidence,
)
from backfiller.evidence.lineage import child_run_id, parent_run_id
from backfiller.lab.example import lay_out_example
from backfiller.ledger import PartitionRecord
from backfiller.planning import Mode, make_plan, read_plan, write_plan
from backfiller.planning.planner import request_for

RAW = "week06/ingestion/raw_ticket_events_partitioned"
SILVER = "week06/silver/ticket_fact_partitioned"
CONTRACT = Path(__file__).resolve().parents[2] / "contracts/run_evidence/run_evidence.schema.json"
DAYS = ("2026-04-14", "2026-04-15")
FORCED = frozenset({(SILVER, "idempotency_key_unique", "2026-04-15")})  # a blocking failure


pytestmark = both_backends


@dataclass(frozen=True)
class Chain:
    root: Path
    run_ids: tuple[str, ...]  # in evidence order
    paths: tuple[Path, ...]
    #: the environment naming the ledger (a PostgreSQL database's URL; nothing for SQLite)
    environ: dict[str, str]


def _load(chain: Chain) -> Project:
    return load_project(chain.root, environ=chain.environ, clock=FixedClock(NOW))


def _three_runs(root: Path, environ: dict[str, str]) -> Chain:
    """Run 1 publishes 2026-04-14; run 2 publishes raw 2026-04-15 and fails a blocking check
    on silver; run 3 applies a saved plan for the gap day. Each run gets its evidence."""
    project = load_project(root, environ=environ, clock=FixedClock(NOW))
    assert project.config.ledger_url == environ.get("BACKFILLER_LEDGER_URL", "")
    run_ids, paths = [], []
    with project.ledger() as ledger:
        for day, forced in ((DAYS[0], frozenset()), (DAYS[1], FORCED)):
            result = run_steps(
                project,
                ledger,
                [(RAW, day), (SILVER, day)],
                action="backfill",
                operator="tests",
                reason=f"fill {day}",
                forced_failures=forced,
            )
            run_ids.append(result.run_id)
            paths.append(write_run_evidence(project, ledger, result.run_id))
    request = request_for([GAP_DAY], Mode.DRY_RUN, "alice", reason="late delivery")
    document = read_plan(write_plan(project, make_plan(project, project.reader(), request)))
    result = apply_plan(project, document, operator="alice")
    with project.ledger() as ledger:
        run_ids.append(result.run_id)
        paths.append(write_run_evidence(project, ledger, result.run_id))
    return Chain(root, tuple(run_ids), tuple(paths), environ)


#: the three-run project of each ledger backend, built once per module
_built: dict[str, Chain] = {}


@pytest.fixture
def built(
    ledger_backend: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Chain:
    if ledger_backend not in _built:
        environ: dict[str, str] = {}
        if ledger_backend == "postgres":
            server = request.getfixturevalue("postgres_server")
            empty = request.getfixturevalue("postgres_template")
            environ = ledger_environ(server.create_database(template=empty, name="evidence"))
        root = lay_out_example(tmp_path_factory.mktemp(f"evidence-{ledger_backend}") / "omni")
        _built[ledger_backend] = _three_runs(root, environ)
    return _built[ledger_backend]


@pytest.fixture
def chain(built: Chain, tmp_path: Path, request: pytest.FixtureRequest) -> Chain:
    """A private copy of the three-run project, and of its PostgreSQL database (tests may
    tamper with it)."""
    root = shutil.copytree(built.root, tmp_path / "omni")
    environ = built.environ
    if environ:
        server = request.getfixturevalue("postgres_server")
        environ = ledger_environ(server.create_database(template="evidence"))
    paths = tuple(root / p.relative_to(built.root) for p in built.paths)
    return Chain(root, built.run_ids, paths, environ)


def _doc(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _problems(chain: Chain) -> list[tuple[str, ProblemKind]]:
    project = _load(chain)
    with project.ledger() as ledger:
        return [(p.path, p.kind) for p in verify_chain(project, ledger)]


def _rel(chain: Chain, index: int) -> str:
    return chain.paths[index].relative_to(chain.root).as_posix()


# -- what the document records ----------------------------------------------------------------


@pytest.mark.slow
def test_written_documents_validate_against_the_committed_schema(chain: Chain) -> None:
    from jsonschema import Draft202012Validator  # a second to import: where used

    validator = Draft202012Validator(
        json.loads(CONTRACT.read_text(encoding="utf-8")),
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )
    for path in chain.paths:
        assert [e.message for e in validator.iter_errors(_doc(path))] == [], path
        RunEvidence.from_bytes(path.read_bytes())


def test_files_are_named_by_seq_and_run_and_written_canonically(chain: Chain) -> None:
    names = [p.name for p in chain.paths]
    assert names == [f"{i:06d}_{run}.json" for i, run in enumerate(chain.run_ids, start=1)]
    for path in chain.paths:
        text = path.read_text(encoding="utf-8")
        assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"


def test_the_chain_links_each_document_to_the_previous_files_bytes(chain: Chain) -> None:
    project = _load(chain)
    with project.ledger() as ledger:
        index = ledger.evidence.index()
    previous = None
    for seq, (path, record) in enumerate(zip(chain.paths, index, strict=True), start=1):
        doc = _doc(path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert (record.seq, record.sha256, record.prev_sha256) == (seq, digest, previous)
        assert record.path == path.relative_to(chain.root).as_posix()
        assert doc["chain"] == {"seq": seq, "prev_sha256": previous}
        assert doc["evidence_id"] == stable_id("evidence", {"run_id": doc["run"]["id"], "seq": seq})
        previous = digest


def test_partitions_record_before_and_after_from_the_ledger(chain: Chain) -> None:
    first, second = _doc(chain.paths[0]), _doc(chain.paths[1])
    assert first["run"] | {"started_at": None, "ended_at": None, "arguments": None} == {
        "id": chain.run_ids[0],
        "parent_run_id": None,
        "action": "backfill",
        "mode": "apply",
        "attempt": 1,
        "state": "succeeded",
        "started_at": None,
        "ended_at": None,
        "arguments": None,
        "backfiller_version": "0.1.0",
        "error": None,
        "operator": "tests",
        "reason": "fill 2026-04-14",
    }
    assert first["producer"] == "backfiller/0.1.0" and first["plan"] is None
    raw = next(p for p in first["partitions"] if p["asset"] == RAW)
    assert raw["partition_key"] == DAYS[0] and raw["status"] == "published"
    assert (raw["rows_before"], raw["rows_after"]) == (None, _record(chain, RAW, DAYS[0]).row_count)
    assert (raw["previous_data_version"], raw["new_data_version"]) == (None, 1)
    assert raw["fingerprint_before"] is None and len(raw["fingerprint_after"]) == 64
    assert raw["idempotency_guard"] == "ticket_id + partition_key"
    assert raw["window"] == {"start": "2026-04-14T00:00:00Z", "end": "2026-04-15T00:00:00Z"}
    silver = next(p for p in first["partitions"] if p["asset"] == SILVER)
    assert silver["upstream"] == [{"asset": RAW, "partition_key": DAYS[0], "data_version": 1}]
    held = next(p for p in second["partitions"] if p["asset"] == SILVER)
    assert held["status"] == "check_failed" and "simulated failure" in held["error"]
    assert (held["rows_after"], held["new_data_version"], held["upstream"]) == (None, None, [])
    assert second["run"]["state"] == "checks_failed"
    assert first["inputs"] == [
        {
            "manifest_id": "week06-seed-manifest-001",
            "partition_key": DAYS[0],
            "manifest_checksum": _record(chain, RAW, DAYS[0]).manifest_checksum,
        }
    ]


def _record(chain: Chain, asset: str, key: str) -> PartitionRecord:
    project = _load(chain)
    with project.ledger() as ledger:
        record = ledger.partitions.get(asset, key)
    assert record is not None
    return record


def test_checks_and_holds_come_from_the_ledger(chain: Chain) -> None:
    project = _load(chain)
    second = _doc(chain.paths[1])
    with project.ledger() as ledger:
        checks = ledger.checks.results(run_id=chain.run_ids[1])
        holds = [h for h in ledger.holds.all(open_only=False) if h.cause_run_id == chain.run_ids[1]]
    assert len(second["checks"]) == len(checks) > 5
    failed = [c for c in second["checks"] if c["status"] == "failed"]
    assert [(c["asset"], c["name"], c["severity"], c["blocking"]) for c in failed] == [
        (SILVER, "idempotency_key_unique", "error", True)
    ]
    assert second["summary"]["checks"] == {
        "total": len(checks),
        "passed": len(checks) - 1,
        "failed": 1,
        "warned": 0,
    }
    partitions = second["summary"]["partitions"]
    assert (partitions["published"], partitions["check_failed"]) == (1, 1)
    placed = {
        (h["target"], h["partition_key"], h["cause_asset"]) for h in second["holds"]["placed"]
    }
    assert placed == {(h.target, h.partition_key, h.cause_asset) for h in holds}
    assert second["summary"]["holds"]["placed"] == len(holds)


def test_an_applied_plan_is_referenced_by_its_hash(chain: Chain) -> None:
    third = _doc(chain.paths[2])
    project = _load(chain)
    with project.ledger() as ledger:
        plan = ledger.runs.plan(third["plan"]["plan_id"])
    assert plan is not None
    assert third["plan"]["plan_sha256"] == sha256_hex(plan.document)
    assert third["run"]["operator"] == "alice" and third["run"]["reason"] == "late delivery"
    assert {p["partition_key"] for p in third["partitions"]} == {GAP_DAY}
    assert third["inputs"][0]["partition_key"] == GAP_DAY


def test_writing_twice_returns_the_same_file(chain: Chain) -> None:
    project = _load(chain)
    before = chain.paths[1].read_bytes()
    with project.ledger() as ledger:
        assert write_run_evidence(project, ledger, chain.run_ids[1]) == chain.paths[1]
        assert len(ledger.evidence.index()) == 3
    assert chain.paths[1].read_bytes() == before


def test_writing_again_over_an_edited_file_is_refused(chain: Chain) -> None:
    chain.paths[0].write_text(chain.paths[0].read_text().replace('"tests"', '"nobody"'))
    project = _load(chain)
    with project.ledger() as ledger, pytest.raises(TamperedEvidenceError, match="no longer"):
        write_run_evidence(project, ledger, chain.run_ids[0])
    chain.paths[0].unlink()
    with project.ledger() as ledger, pytest.raises(TamperedEvidenceError, match="gone"):
        write_run_evidence(project, ledger, chain.run_ids[0])


def test_unknown_and_unfinished_runs_get_no_evidence(chain: Chain) -> None:
    project = _load(chain)
    with project.ledger() as ledger:
        with pytest.raises(BadInputError, match="No run"):
            write_run_evidence(project, ledger, "run-nope")
        ledger.runs.begin(
            run_id="run-open", plan_id=None, action="backfill", operator="t", reason=None,
            arguments={},
        )  # fmt: skip
        with pytest.raises(PreconditionError, match="not finished"):
            write_run_evidence(project, ledger, "run-open")
        assert len(ledger.evidence.index()) == 3


# -- the chain -------------------------------------------------------------------------------


def test_an_intact_chain_has_no_problems(chain: Chain) -> None:
    assert _problems(chain) == []


def test_an_edited_byte_is_named(chain: Chain) -> None:
    data = bytearray(chain.paths[1].read_bytes())
    at = data.index(b'"operator": "tests"') + len(b'"operator": "t')
    data[at] = ord("E")
    chain.paths[1].write_bytes(bytes(data))
    assert _problems(chain) == [(_rel(chain, 1), ProblemKind.EDITED)]


def test_a_removed_document_is_named(chain: Chain) -> None:
    chain.paths[0].unlink()
    assert _problems(chain) == [(_rel(chain, 0), ProblemKind.REMOVED)]


def test_swapped_documents_are_named_as_edited_and_reordered(chain: Chain) -> None:
    second, third = chain.paths[1].read_bytes(), chain.paths[2].read_bytes()
    chain.paths[1].write_bytes(third)
    chain.paths[2].write_bytes(second)
    problems = _problems(chain)
    for index in (1, 2):
        kinds = {kind for path, kind in problems if path == _rel(chain, index)}
        assert kinds == {ProblemKind.EDITED, ProblemKind.REORDERED}, problems
    assert {path for path, _ in problems} == {_rel(chain, 1), _rel(chain, 2)}


def test_unknown_and_invalid_documents_are_named(chain: Chain) -> None:
    stray = chain.paths[0].with_name("000004_run-forged.json")
    stray.write_bytes(chain.paths[0].read_bytes())
    chain.paths[2].write_text('{"run": {"id": "x"}, "chain": {"seq": 3}}\n')
    problems = _problems(chain)
    assert (stray.relative_to(chain.root).as_posix(), ProblemKind.UNKNOWN) in problems
    assert {kind for path, kind in problems if path == _rel(chain, 2)} == {
        ProblemKind.EDITED,
        ProblemKind.INVALID,
        ProblemKind.REORDERED,
    }


# -- reports ---------------------------------------------------------------------------------


def test_reports_show_partitions_counts_and_operator(chain: Chain) -> None:
    doc = RunEvidence.from_bytes(chain.paths[1].read_bytes())
    rows = _record(chain, RAW, DAYS[1]).row_count
    md, page = report_markdown(doc), report_html(doc)
    for text in (md, page):
        assert DAYS[1] in text and "tests" in text and "fill 2026-04-15" in text
        assert f"— → {rows}" in text  # rows before → after
        assert "idempotency_key_unique" in text and "simulated failure" in text
    assert f"| {RAW} | {DAYS[1]} | published | — → {rows} | — → 2 |" in md
    assert "http" not in page and "<script" not in page and "<a " not in page


# -- OpenLineage -----------------------------------------------------------------------------


def _file_client(path: Path) -> OpenLineageClient:
    return OpenLineageClient(transport=FileTransport(FileConfig(str(path), append=True)))


def test_lineage_events_have_the_parent_child_structure(chain: Chain, tmp_path: Path) -> None:
    doc = RunEvidence.from_bytes(chain.paths[0].read_bytes())
    out = tmp_path / "lineage.jsonl"
    assert emit_lineage(doc, _file_client(out)) == 6
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert [p for e in events for p in event_problems(e)] == []
    parent = parent_run_id(doc.run.id)
    assert [e["eventType"] for e in events] == [
        "START",
        *["START", "COMPLETE"] * 2,
        "COMPLETE",
    ]
    assert events[0]["run"]["runId"] == events[-1]["run"]["runId"] == parent
    assert events[0]["job"]["name"] == "omnisupport.backfill"
    children = [e for e in events if e["run"]["runId"] != parent]
    assert {e["run"]["runId"] for e in children} == {
        child_run_id(doc.run.id, RAW, DAYS[0]),
        child_run_id(doc.run.id, SILVER, DAYS[0]),
    }
    for event in children:
        facets = event["run"]["facets"]
        assert facets["parent"]["run"]["runId"] == parent
        assert facets["parent"]["job"]["name"] == "omnisupport.backfill"
        assert facets["nominalTime"]["nominalStartTime"].startswith("2026-04-14T00:00:00")
        assert facets["nominalTime"]["nominalEndTime"].startswith("2026-04-15T00:00:00")
        assert facets["processing_engine"]["name"] == "backfiller"
    silver_done = next(
        e for e in children if e["eventType"] == "COMPLETE" and e["job"]["name"].endswith(SILVER)
    )
    (output,) = silver_done["outputs"]
    assert output["name"] == SILVER
    assert output["facets"]["version"]["datasetVersion"] == "1"  # 0: the empty creation
    rows = _record(chain, SILVER, DAYS[0]).row_count
    assert output["outputFacets"]["outputStatistics"]["rowCount"] == rows
    assert [i["name"] for i in silver_done["inputs"]] == [RAW]
    tests = silver_done["run"]["facets"]["test"]["tests"]
    assert tests and {t["status"] for t in tests} == {"pass"}


def test_lineage_of_a_failed_check_is_a_failed_child_run(chain: Chain, tmp_path: Path) -> None:
    doc = RunEvidence.from_bytes(chain.paths[1].read_bytes())
    out = tmp_path / "lineage.jsonl"
    emit_lineage(doc, _file_client(out))
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert [p for e in events for p in event_problems(e)] == []
    assert [e["eventType"] for e in events] == [
        "START",
        "START",
        "COMPLETE",
        "START",
        "FAIL",
        "FAIL",
    ]
    failed = events[4]
    assert failed["run"]["runId"] == child_run_id(doc.run.id, SILVER, DAYS[1])
    assert failed["outputs"] == []
    assert "simulated failure" in failed["run"]["facets"]["errorMessage"]["message"]
    tests = {t["name"]: t for t in failed["run"]["facets"]["test"]["tests"]}
    unique = tests["idempotency_key_unique"]
    assert (unique["status"], unique["severity"]) == ("fail", "error")


def test_lineage_uses_the_clients_own_configuration(
    chain: Chain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "from-config.jsonl"
    config = tmp_path / "openlineage.yml"
    config.write_text(f"transport:\n  type: file\n  log_file_path: {out}\n  append: true\n")
    monkeypatch.setenv("OPENLINEAGE_CONFIG", str(config))
    doc = RunEvidence.from_bytes(chain.paths[2].read_bytes())
    assert emit_lineage(doc) == len(out.read_text().splitlines()) == 6


class _Broken(Transport):
    kind = "broken"
    config_class = Config

    def emit(self, event: Any) -> None:
        raise ConnectionError("lineage backend is down")


def test_an_emission_failure_is_logged_not_raised(
    chain: Chain, caplog: pytest.LogCaptureFixture
) -> None:
    doc = RunEvidence.from_bytes(chain.paths[0].read_bytes())
    with caplog.at_level(logging.ERROR, logger="backfiller.evidence.lineage"):
        assert emit_lineage(doc, OpenLineageClient(transport=_Broken())) == 0
    (record,) = [r for r in caplog.records if r.name == "backfiller.evidence.lineage"]
    assert "failed after 0 of 6" in record.getMessage()
    assert record.exc_info is not None and "backend is down" in str(record.exc_info[1])
