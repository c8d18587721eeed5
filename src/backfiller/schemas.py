"""The published JSON Schemas (under ``contracts/``), generated from the models.

``make contracts`` rewrites the files; a test fails when a committed schema and
its model disagree. Validation uses JSON Schema 2020-12 with format checking on.

Importing jsonschema with its format checkers costs about a second (one of them compiles a
grammar), so a document is first given to its model in strict mode: one the model accepts,
whose ``date-time`` values are RFC 3339, is one the schema accepts (a property test holds
the two to that). Only a document the model refuses goes to jsonschema, which names every
problem the way the schema sees it.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["SCHEMAS", "schema_for", "validation_problems", "write_contracts"]

DIALECT = "https://json-schema.org/draft/2020-12/schema"


@dataclass(frozen=True)
class SchemaSpec:
    name: str
    model: str  # "module:Class"
    version: int
    path: str  # relative to the contracts folder

    @property
    def schema_id(self) -> str:
        return f"urn:backfiller:schema:{self.name}:v{self.version}"


SCHEMAS: dict[str, SchemaSpec] = {
    s.name: s
    for s in (
        SchemaSpec("manifest", "backfiller.manifests:Manifest", 1, "manifest/manifest.schema.json"),
        SchemaSpec(
            "backfill_plan",
            "backfiller.planning.compact:PlanFile",
            2,
            "backfill_plan/backfill_plan.schema.json",
        ),
        SchemaSpec(
            "run_evidence",
            "backfiller.evidence.model:RunEvidence",
            1,
            "run_evidence/run_evidence.schema.json",
        ),
        SchemaSpec(
            "partition_report",
            "backfiller.reports:PartitionReport",
            1,
            "partition_report/partition_report.schema.json",
        ),
        SchemaSpec(
            "lineage_run_facet",
            "backfiller.evidence.lineage_facet:BackfillerRunFacet",
            1,
            "lineage_run_facet/lineage_run_facet.schema.json",
        ),
    )
}


@cache
def schema_for(name: str) -> dict[str, Any]:
    """The JSON Schema of a document kind, generated from its model."""
    spec = SCHEMAS[name]
    body: dict[str, Any] = _model(name).model_json_schema(mode="serialization")
    return {"$schema": DIALECT, "$id": spec.schema_id, **body}


@cache
def _model(name: str) -> Any:
    module_name, _, class_name = SCHEMAS[name].model.partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def _walk_formats(node: Any, defs: dict[str, Any], names: set[str], seen: set[str]) -> None:
    if isinstance(node, list):
        for item in node:
            _walk_formats(item, defs, names, seen)
        return
    if not isinstance(node, dict):
        return
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/") and ref not in seen:
        seen.add(ref)
        _walk_formats(defs.get(ref[len("#/$defs/") :]), defs, names, seen)
    for key, value in node.items():
        if key == "properties" and isinstance(value, dict):
            for prop, sub in value.items():
                if _has_format(sub, "date-time"):
                    names.add(prop)
        _walk_formats(value, defs, names, seen)


def _has_format(node: Any, fmt: str) -> bool:
    if not isinstance(node, dict):
        return False
    if node.get("format") == fmt:
        return True
    return any(_has_format(n, fmt) for key in ("anyOf", "oneOf") for n in node.get(key, []))


@cache
def _date_time_names(name: str) -> frozenset[str]:
    """The property names that are a ``date-time`` somewhere in the schema."""
    schema = schema_for(name)
    names: set[str] = set()
    _walk_formats(schema, schema.get("$defs", {}), names, set())
    return frozenset(names)


def _date_times(document: Any, names: frozenset[str]) -> list[Any]:
    """Every value under one of ``names``, at any depth (more than the date-times: a value
    that is not one only sends the document to jsonschema)."""
    found: list[Any] = []
    stack = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key in names:
                    found.append(value)
                stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)
    return found


def _model_accepts(name: str, document: Any) -> bool:
    """The quick yes: the model accepts ``document`` in strict mode and every date-time in it
    is RFC 3339 (false also when the answer would need jsonschema to be sure)."""
    try:
        from pydantic import ValidationError
        from rfc3339_validator import validate_rfc3339
    except ImportError:  # pragma: no cover - installed with jsonschema's format extra
        return False
    try:
        text = json.dumps(document, allow_nan=False)
        _model(name).model_validate_json(text, strict=True)
    except (ValidationError, ValueError, TypeError, RecursionError):
        return False
    return all(
        value is None or (isinstance(value, str) and validate_rfc3339(value.upper()))
        for value in _date_times(document, _date_time_names(name))
    )


@cache
def _validator(name: str) -> Any:
    from jsonschema import Draft202012Validator

    schema = schema_for(name)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def validation_problems(name: str, document: Any) -> list[str]:
    """Every way ``document`` breaks the schema, one readable line each (empty: valid)."""
    if _model_accepts(name, document):
        return []
    try:
        errors = sorted(_validator(name).iter_errors(document), key=lambda e: list(e.absolute_path))
    except RecursionError:
        return ["<root>: nested too deeply to validate"]
    leaves = [leaf for e in errors for leaf in _leaves(e)]
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}" for e in leaves]


def _leaves(error: Any) -> list[Any]:
    """A document that fits none of several versions (``oneOf``) is told what is wrong with
    the version it comes closest to (the one with the fewest problems), not only that it fits
    none."""
    if error.validator not in ("oneOf", "anyOf") or not error.context:
        return [error]
    branches: dict[Any, list[Any]] = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    closest = min(branches.values(), key=len)
    return [leaf for sub in closest for leaf in _leaves(sub)]


def render(name: str) -> str:
    return json.dumps(schema_for(name), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_contracts(folder: Path) -> list[Path]:
    from backfiller.atomic import atomic_write_text

    written = []
    for spec in SCHEMAS.values():
        written.append(atomic_write_text(Path(folder) / spec.path, render(spec.name)))
    return written
