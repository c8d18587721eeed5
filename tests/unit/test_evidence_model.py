"""The run evidence model: closed objects (one open ``extensions``), the committed schema, the
renderings for people, and the OpenLineage projection's pure parts."""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pydantic
import pytest
from openlineage.client.serde import Serde
from openlineage_spec import event_problems

from backfiller.errors import MissingDependencyError
from backfiller.evidence import RunEvidence, report_html, report_markdown, summary_text
from backfiller.evidence.lineage import (
    INSTALL_LINE,
    TEST_FACET_SCHEMA_URL,
    _checks_facet,
    child_run_id,
    emit_lineage,
    lineage_events,
    parent_run_id,
)
from backfiller.evidence.lineage_facet import FACET_NAME, FACET_SCHEMA_URL
from backfiller.evidence.model import SCHEMA_URL, canonical_document
from backfiller.schemas import SCHEMAS, schema_for, validation_problems

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator

CONTRACT = Path(__file__).resolve().parents[2] / "contracts" / SCHEMAS["run_evidence"].path
RAW = "week06/ingestion/raw_ticket_events_partitioned"
SHA = "a" * 64


def sample() -> dict[str, Any]:
    """A complete, valid evidence document with one published and one check-failed partition."""
    partition = {
        "asset": RAW,
        "partition_key": "2026-04-17",
        "window": {"start": "2026-04-17T00:00:00Z", "end": "2026-04-18T00:00:00Z"},
        "status": "published",
        "attempts": 1,
        "previous_data_version": 3,
        "new_data_version": 4,
        "rows_before": 2,
        "rows_after": 3,
        "fingerprint_before": "b" * 64,
        "fingerprint_after": "c" * 64,
        "idempotency_guard": "ticket_id + partition_key",
        "upstream": [],
        "error": None,
        "started_at": "2026-12-01T12:00:00Z",
        "ended_at": "2026-12-01T12:00:01.500000Z",
        "duration_ms": 1500,
    }
    failed = {
        **partition,
        "partition_key": "2026-04-18",
        "window": {"start": "2026-04-18T00:00:00Z", "end": "2026-04-19T00:00:00Z"},
        "status": "check_failed",
        "new_data_version": None,
        "rows_after": None,
        "fingerprint_after": None,
        "error": "unique_key: expected 0, got 2",
    }
    return {
        "schema_version": 1,
        "schema_url": SCHEMA_URL,
        "evidence_id": "evidence-0123456789abcdef",
        "producer": "backfiller/0.1.0",
        "generated_at": "2026-12-01T12:00:02Z",
        "project": "omnisupport",
        "run": {
            "id": "run-20261201T120000-0000abcd",
            "parent_run_id": None,
            "action": "backfill",
            "mode": "apply",
            "attempt": 1,
            "state": "checks_failed",
            "started_at": "2026-12-01T12:00:00Z",
            "ended_at": "2026-12-01T12:00:02Z",
            "arguments": [{"name": "steps", "value": [[RAW, "2026-04-17"]]}],
            "backfiller_version": "0.1.0",
            "error": None,
            "operator": "alice",
            "reason": "late delivery of 2026-04-17",
        },
        "plan": {"plan_id": "plan-0123456789abcdef", "path": "reports/p.json", "plan_sha256": SHA},
        "inputs": [{"manifest_id": "m-1", "partition_key": "2026-04-17", "manifest_checksum": SHA}],
        "partitions": [partition, failed],
        "checks": [
            {
                "name": "unique_key",
                "asset": RAW,
                "partition_key": "2026-04-18",
                "status": "failed",
                "severity": "error",
                "blocking": True,
                "expected": 0,
                "actual": 2,
            },
            {
                "name": "row_count",
                "asset": RAW,
                "partition_key": "2026-04-17",
                "status": "failed",
                "severity": "warn",
                "blocking": False,
                "expected": 3,
                "actual": {"rows": 2},
            },
        ],
        "holds": {
            "placed": [
                {
                    "target": "week07/retrieval_index",
                    "partition_key": "2026-04-18",
                    "external": True,
                    "reason": "checks failed upstream",
                    "cause_asset": RAW,
                    "cause_partition": "2026-04-18",
                    "placed_at": "2026-12-01T12:00:02Z",
                    "released_at": None,
                    "released_by": None,
                    "release_reason": None,
                    "forced": False,
                }
            ],
            "released": [],
        },
        "summary": {
            "partitions": {
                "total": 2,
                "published": 1,
                "failed": 0,
                "check_failed": 1,
                "interrupted": 0,
                "not_attempted": 0,
            },
            "checks": {"total": 2, "passed": 0, "failed": 1, "warned": 1},
            "holds": {"placed": 1, "released": 0},
        },
        "chain": {"seq": 2, "prev_sha256": SHA},
        "extensions": {},
    }


def committed_validator() -> Draft202012Validator:
    from jsonschema import Draft202012Validator  # a second to import: where used

    schema = json.loads(CONTRACT.read_text(encoding="utf-8"))
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


# -- the model and its schema ---------------------------------------------------------------


def test_sample_is_valid_for_model_and_committed_schema() -> None:
    doc = RunEvidence.model_validate(sample())
    assert doc.to_dict() == RunEvidence.model_validate(doc.to_dict()).to_dict()
    errors = list(committed_validator().iter_errors(doc.to_dict()))
    assert errors == []
    assert validation_problems("run_evidence", doc.to_dict()) == []


def test_schema_id_is_the_documents_schema_url() -> None:
    schema = json.loads(CONTRACT.read_text(encoding="utf-8"))
    assert schema["$id"] == SCHEMA_URL == SCHEMAS["run_evidence"].schema_id
    assert schema["properties"]["schema_url"]["const"] == SCHEMA_URL
    assert schema_for("run_evidence") == schema


@pytest.mark.parametrize(
    "where",
    [(), ("run",), ("partitions", 0), ("partitions", 0, "window"), ("checks", 0), ("chain",),
     ("holds",), ("holds", "placed", 0), ("summary", "checks"), ("plan",), ("inputs", 0),
     ("run", "arguments", 0)],
)  # fmt: skip
def test_closed_objects_reject_an_extra_field(where: tuple[str | int, ...]) -> None:
    data = sample()
    target: Any = data
    for step in where:
        target = target[step]
    target["surprise"] = 1
    with pytest.raises(pydantic.ValidationError, match="surprise"):
        RunEvidence.model_validate(data)
    assert any("surprise" in p for p in validation_problems("run_evidence", data))


def test_extensions_is_the_one_open_object() -> None:
    data = sample()
    data["extensions"] = {"ticket": "OPS-12", "nested": {"any": ["thing"]}}
    assert RunEvidence.model_validate(data).extensions["ticket"] == "OPS-12"
    assert validation_problems("run_evidence", data) == []

    open_objects: list[str] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object" and node.get("additionalProperties") is not False:
                open_objects.append(path)
            for key, value in node.items():
                walk(value, f"{path}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}/{i}")

    walk(json.loads(CONTRACT.read_text(encoding="utf-8")), "")
    assert open_objects == ["/properties/extensions"]


def test_documents_are_frozen() -> None:
    doc = RunEvidence.model_validate(sample())
    with pytest.raises(pydantic.ValidationError):
        doc.run.operator = "mallory"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("run", "mode"), "dry-run"),
        (("run", "state"), "running"),
        (("generated_at",), "2026-12-01T12:00:00"),  # naive
        (("chain", "seq"), 0),
        (("chain", "prev_sha256"), "not-a-hash"),
        (("evidence_id",), "evidence-XYZ"),
        (("schema_url",), "urn:backfiller:schema:run_evidence:v2"),
    ],
)
def test_schema_refuses_wrong_values(path: tuple[str, ...], value: Any) -> None:
    data = sample()
    target: Any = data
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    assert list(committed_validator().iter_errors(data))
    with pytest.raises(pydantic.ValidationError):
        RunEvidence.model_validate(data)


def test_canonical_document_is_sorted_indented_and_ends_with_a_newline() -> None:
    data = canonical_document({"b": 1, "a": "é"})
    assert data == '{\n  "a": "é",\n  "b": 1\n}\n'.encode()


# -- renderings -----------------------------------------------------------------------------


def test_summary_text_names_who_why_and_what_changed() -> None:
    text = summary_text(RunEvidence.model_validate(sample()))
    assert "run-20261201T120000-0000abcd" in text
    assert "by alice" in text and "late delivery of 2026-04-17" in text
    assert f"{RAW} 2026-04-17: published, rows 2 → 3, version 3 → 4" in text
    assert "2026-04-18: check_failed" in text
    assert "1 failed, 1 warned" in text


def test_markdown_report_has_partitions_counts_checks_holds_and_operator() -> None:
    md = report_markdown(RunEvidence.model_validate(sample()))
    assert md.startswith("# Run evidence: run-20261201T120000-0000abcd")
    assert "**operator:** alice" in md
    row = next(line for line in md.splitlines() if "| 2026-04-17 |" in line)
    assert "| published | 2 → 3 | 3 → 4 | bbbbbbbbbbbb → cccccccccccc |" in row
    assert "b" * 13 not in md  # fingerprints shortened
    assert "| unique_key | failed | error | 0 | 2 |" in md
    assert '| row_count | warned | warn | 3 | {"rows": 2} |' in md
    assert "| week07/retrieval_index | 2026-04-18 | external |" in md


def test_markdown_cells_cannot_break_the_table() -> None:
    data = sample()
    data["partitions"][1]["error"] = "a | b\nc"
    md = report_markdown(RunEvidence.model_validate(data))
    row = next(line for line in md.splitlines() if "| 2026-04-18 |" in line)
    assert row.endswith("| a \\| b c |")


def test_html_report_is_self_contained_and_escaped() -> None:
    data = sample()
    data["run"]["reason"] = '<script>alert("x")</script>'
    data["partitions"][1]["error"] = '<img src=x onerror="y">'
    page = report_html(RunEvidence.model_validate(data))
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=&quot;y&quot;&gt;" in page
    assert "http" not in page and "href" not in page
    assert "<style>" in page and "<link" not in page
    assert "2026-04-17" in page and "2 → 3" in page and "alice" in page


# -- OpenLineage (pure parts) ---------------------------------------------------------------


def test_lineage_run_ids_are_stable_uuids() -> None:
    parent = parent_run_id("run-1")
    assert parent == parent_run_id("run-1") != parent_run_id("run-2")
    child = child_run_id("run-1", RAW, "2026-04-17")
    assert child == child_run_id("run-1", RAW, "2026-04-17")
    assert len({parent, child, child_run_id("run-1", RAW, "2026-04-18")}) == 3
    assert all(len(x) == 36 for x in (parent, child))


def test_lineage_events_project_the_parent_and_child_runs() -> None:
    doc = RunEvidence.model_validate(sample())
    events = lineage_events(doc)
    kinds = [(e.run.runId, e.eventType.value if e.eventType else None) for e in events]
    parent = parent_run_id(doc.run.id)
    ok = child_run_id(doc.run.id, RAW, "2026-04-17")
    held = child_run_id(doc.run.id, RAW, "2026-04-18")
    assert kinds == [
        (parent, "START"),
        (ok, "START"),
        (ok, "COMPLETE"),
        (held, "START"),
        (held, "FAIL"),
        (parent, "FAIL"),
    ]


def test_missing_openlineage_names_the_install_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openlineage.client", None)
    doc = RunEvidence.model_validate(sample())
    with pytest.raises(MissingDependencyError) as caught:
        emit_lineage(doc)
    assert caught.value.hint == INSTALL_LINE == "pip install 'backfiller[lineage]'"
    assert "pip install 'backfiller[lineage]'" in str(caught.value)


def test_check_results_are_sent_as_json_text_not_python_reprs() -> None:
    body = sample()
    body["checks"][1]["expected"] = ["chat", "email"]  # a Python repr would be "['chat', 'email']"
    checks = RunEvidence.model_validate(body).checks
    key, facet = _checks_facet(list(checks), "urn:backfiller:test")
    assert key == "test"
    tests = {t.name: t for t in facet.tests}  # type: ignore[attr-defined]
    assert (tests["unique_key"].expected, tests["unique_key"].actual) == ("0", "2")
    assert tests["row_count"].expected == '["chat","email"]'
    assert tests["row_count"].actual == '{"rows":2}'
    for check in checks:
        sent = tests[check.name]
        assert (json.loads(sent.expected), json.loads(sent.actual)) == (
            check.expected,
            check.actual,
        )


def test_a_check_without_a_value_leaves_the_field_out() -> None:
    body = sample()
    body["checks"][0]["expected"] = None
    (event,) = [
        e for e in lineage_events(RunEvidence.model_validate(body)) if e.eventType.value == "FAIL"
    ][:1]
    tests = {t["name"]: t for t in Serde.to_dict(event)["run"]["facets"]["test"]["tests"]}
    assert "expected" not in tests["unique_key"]
    assert tests["unique_key"]["actual"] == "2"


def test_without_the_clients_test_facet_class_the_same_standard_facet_is_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    checks = list(RunEvidence.model_validate(sample()).checks)
    _, made = _checks_facet(checks, "urn:backfiller:test")
    monkeypatch.setitem(sys.modules, "openlineage.client.generated.test_run", None)
    key, by_hand = _checks_facet(checks, "urn:backfiller:test")
    assert key == "test"
    assert by_hand._schemaURL == made._schemaURL == TEST_FACET_SCHEMA_URL
    assert Serde.to_dict(by_hand) == {
        **Serde.to_dict(made),
        "tests": [
            {k: v for k, v in t.items() if k != "params"} for t in Serde.to_dict(made)["tests"]
        ],
    }


def test_the_backfiller_facet_matches_its_published_contract() -> None:
    from jsonschema import Draft202012Validator  # a second to import: where used

    doc = RunEvidence.model_validate(sample())
    facets = [Serde.to_dict(e)["run"]["facets"][FACET_NAME] for e in lineage_events(doc)]
    contract = json.loads((CONTRACT.parents[1] / SCHEMAS["lineage_run_facet"].path).read_text())
    assert contract["$id"] == FACET_SCHEMA_URL
    validator = Draft202012Validator(contract, format_checker=Draft202012Validator.FORMAT_CHECKER)
    for facet in facets:
        assert list(validator.iter_errors(facet)) == []
        assert facet["_schemaURL"] == FACET_SCHEMA_URL
        assert (facet["runId"], facet["evidenceId"], facet["action"]) == (
            doc.run.id,
            doc.evidence_id,
            "backfill",
        )
    assert facets[0].keys() == {
        "_producer", "_schemaURL", "runId", "action", "evidenceId", "planId", "operator", "reason"
    }  # fmt: skip
    assert (facets[1]["asset"], facets[1]["partitionKey"], facets[1]["attempts"]) == (
        RAW,
        "2026-04-17",
        1,
    )
    assert list(validator.iter_errors({**facets[0], "extra": 1}))  # the contract is closed


def test_the_official_schemas_accept_the_events_and_refuse_broken_ones() -> None:
    """The validation the lineage tests rely on can fail: each kind of break is named."""
    body = sample()
    body["checks"][1]["expected"] = ["chat", "email"]
    events = [Serde.to_dict(e) for e in lineage_events(RunEvidence.model_validate(body))]
    assert [p for e in events for p in event_problems(e)] == []
    child_end = copy.deepcopy(events[2])  # a published partition's COMPLETE, with checks
    assert "test" in child_end["run"]["facets"]

    def broken(change: Callable[[dict[str, Any]], None]) -> str:
        event = copy.deepcopy(child_end)
        change(event)
        return "\n".join(event_problems(event))

    assert "is not a 'uuid'" in broken(lambda e: e["run"].update(runId="run-1"))
    assert "'_producer' is a required property" in broken(
        lambda e: e["run"]["facets"]["processing_engine"].pop("_producer")
    )
    assert "'extra' was unexpected" in broken(
        lambda e: e["run"]["facets"][FACET_NAME].update(extra=1)
    )
    assert "3 is not of type 'string'" in broken(
        lambda e: e["run"]["facets"]["test"]["tests"][0].update(expected=3)
    )
    assert "names this facet ['test'], not 'tests'" in broken(
        lambda e: e["run"]["facets"].update(tests=e["run"]["facets"].pop("test"))
    )
    assert "a custom facet" in broken(
        lambda e: e["run"]["facets"][FACET_NAME].update(
            _schemaURL="https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunFacet"
        )
    )
