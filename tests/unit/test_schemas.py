"""The published JSON Schemas under contracts/: drift guard, dialect, closed objects, formats."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from backfiller import schemas
from backfiller.schemas import DIALECT, SCHEMAS, render, schema_for, validation_problems

CONTRACTS = Path(__file__).resolve().parents[2] / "contracts"
NAMES = sorted(SCHEMAS)


def _valid_manifest() -> dict[str, Any]:
    return {
        "schema_version": 1,
        "manifest_id": "m-1",
        "source": "omnisupport/ticket_events",
        "batch_id": "b-1",
        "created_at": "2026-05-01T00:00:00+00:00",
        "partitions": [
            {
                "partition_key": "2026-04-17",
                "expected_record_count": 3,
                "input_files": [{"path": "data/a.jsonl", "sha256": "a" * 64}],
            }
        ],
    }


def test_the_expected_schemas_are_published() -> None:
    assert NAMES == [
        "backfill_plan",
        "lineage_run_facet",
        "manifest",
        "partition_report",
        "run_evidence",
    ]
    assert SCHEMAS["lineage_run_facet"].path == "lineage_run_facet/lineage_run_facet.schema.json"
    assert SCHEMAS["partition_report"].path == "partition_report/partition_report.schema.json"
    assert SCHEMAS["manifest"].path == "manifest/manifest.schema.json"
    assert SCHEMAS["backfill_plan"].path == "backfill_plan/backfill_plan.schema.json"


@pytest.mark.parametrize("name", NAMES)
def test_committed_schema_matches_the_model(name: str) -> None:
    path = CONTRACTS / SCHEMAS[name].path
    assert path.is_file(), f"{path} is missing: run `make contracts`"
    committed = path.read_text(encoding="utf-8")
    assert committed == render(name), (
        f"{path.relative_to(CONTRACTS.parent)} drifted from its model "
        f"({SCHEMAS[name].model}): run `make contracts` and commit the result"
    )


@pytest.mark.parametrize("name", NAMES)
def test_schema_dialect_and_versioned_id(name: str) -> None:
    from jsonschema import Draft202012Validator  # a second to import: where used

    schema = json.loads((CONTRACTS / SCHEMAS[name].path).read_text(encoding="utf-8"))
    assert schema["$schema"] == DIALECT == "https://json-schema.org/draft/2020-12/schema"
    version = SCHEMAS[name].version
    assert schema["$id"] == f"urn:backfiller:schema:{name}:v{version}"
    assert schema["$id"].endswith(f":v{version}")
    Draft202012Validator.check_schema(schema)
    assert schema_for(name) == schema


@pytest.mark.parametrize("name", NAMES)
def test_every_object_is_closed(name: str) -> None:
    schema = schema_for(name)
    # a document of several versions (the plan) is one of its closed models
    models = [] if "oneOf" in schema else [("<root>", schema)]
    models += [(k, v) for k, v in schema.get("$defs", {}).items() if v.get("type") == "object"]
    assert models
    for member in schema.get("oneOf", []):
        assert member["$ref"].startswith("#/$defs/"), member
    for where, model in models:
        assert model["type"] == "object", where
        assert model.get("additionalProperties") is False, f"{name}: {where} is open"


def test_manifest_defs_are_the_models() -> None:
    assert set(schema_for("manifest")["$defs"]) == {"InputFile", "ManifestPartition"}
    assert {"AssetGap", "PlanEntry"} <= set(schema_for("backfill_plan")["$defs"])


def test_valid_manifest_has_no_problems() -> None:
    assert validation_problems("manifest", _valid_manifest()) == []


def test_format_checking_is_on() -> None:
    doc = _valid_manifest()
    doc["created_at"] = "not-a-date"
    assert validation_problems("manifest", doc) == ["created_at: 'not-a-date' is not a 'date-time'"]


def test_extra_property_is_a_problem() -> None:
    doc = _valid_manifest()
    doc["partitions"][0]["input_files"][0]["mode"] = "0644"
    (problem,) = validation_problems("manifest", doc)
    assert problem.startswith("partitions/0/input_files/0: Additional properties")
    assert "'mode' was unexpected" in problem


def test_problems_are_sorted_by_location() -> None:
    doc = _valid_manifest()
    doc["partitions"][0]["expected_record_count"] = -5
    doc["created_at"] = "nope"
    del doc["source"]
    problems = validation_problems("manifest", doc)
    assert [p.split(":")[0] for p in problems] == [
        "<root>",
        "created_at",
        "partitions/0/expected_record_count",
    ]


def test_write_contracts_writes_what_render_gives(tmp_path: Path) -> None:
    written = schemas.write_contracts(tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == sorted(
        s.path for s in SCHEMAS.values()
    )
    for spec in SCHEMAS.values():
        assert (tmp_path / spec.path).read_text(encoding="utf-8") == render(spec.name)
    assert render("manifest").endswith("}\n")


def _schema_date_times(node: Any, defs: dict[str, Any], found: set[str], seen: set[str]) -> None:
    """Every property that is a ``date-time`` (itself, or one of its ``anyOf``/``oneOf``) in
    the generated schema, through its ``$ref``s: what the quick path must check as RFC 3339."""
    if isinstance(node, list):
        for item in node:
            _schema_date_times(item, defs, found, seen)
        return
    if not isinstance(node, dict):
        return
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/") and ref not in seen:
        seen.add(ref)
        _schema_date_times(defs.get(ref[len("#/$defs/") :]), defs, found, seen)
    for key, value in node.items():
        if key == "properties" and isinstance(value, dict):
            for prop, sub in value.items():
                choices = [sub, *sub.get("anyOf", []), *sub.get("oneOf", [])]
                if any(c.get("format") == "date-time" for c in choices if isinstance(c, dict)):
                    found.add(prop)
        _schema_date_times(value, defs, found, seen)


@pytest.mark.parametrize("name", NAMES)
def test_the_date_times_read_from_the_model_are_the_schemas(name: str) -> None:
    schema = schema_for(name)
    found: set[str] = set()
    _schema_date_times(schema, schema.get("$defs", {}), found, set())
    assert schemas._date_time_names(name) == frozenset(found)
    if name in ("manifest", "run_evidence"):
        assert found  # the comparison is not between two empty sets


def test_true_is_not_schema_version_1() -> None:
    """The model takes ``true`` for the literal 1 (they are equal in Python); the schema does
    not, and the quick path defers to it."""
    doc = _valid_manifest()
    doc["schema_version"] = True
    assert not schemas._model_accepts("manifest", doc)
    assert any(p.startswith("schema_version: True") for p in validation_problems("manifest", doc))
    assert schemas._int_literals("backfill_plan") == frozenset({"schema_version"})
