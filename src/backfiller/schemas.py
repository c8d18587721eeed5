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
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

__all__ = ["SCHEMAS", "schema_for", "validated", "validation_problems", "write_contracts"]

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


@cache
def _date_time_names(name: str) -> frozenset[str]:
    """The property names that are a date-time somewhere in the model (read from its fields'
    types: generating the JSON Schema for this costs some 6 ms of every command that reads a
    manifest; a test holds the two to the same names)."""
    names: set[str] = set()
    _walk_fields(_model(name), names, set())
    return frozenset(names)


@cache
def _carriers(name: str) -> frozenset[str]:
    """The root model's properties whose values hold a model with a date-time (the only ones
    :func:`_date_times` looks into: a manifest's 100,000 partitions hold none)."""
    found: set[str] = set()
    for field_name, info in _model(name).model_fields.items():
        names: set[str] = set()
        for kind in _kinds(info.annotation):
            if isinstance(kind, type) and hasattr(kind, "model_fields"):
                _walk_fields(kind, names, set())
        if names:
            found.add(info.serialization_alias or info.alias or field_name)
    return frozenset(found)


@cache
def _int_literals(name: str) -> frozenset[str]:
    """The root properties whose value is a literal integer (``schema_version``), in the
    model or, for a document of several versions, in any of them."""
    model = _model(name)
    models = [model]
    if getattr(model, "__pydantic_root_model__", False):
        models = [
            kind
            for kind in _kinds(model.model_fields["root"].annotation)
            if isinstance(kind, type) and hasattr(kind, "model_fields")
        ]
    return frozenset(
        info.serialization_alias or info.alias or field_name
        for m in models
        for field_name, info in m.model_fields.items()
        if get_origin(info.annotation) is Literal
        and any(type(a) is int for a in get_args(info.annotation))
    )


def _walk_fields(model: Any, names: set[str], seen: set[Any]) -> None:
    if model in seen:
        return
    seen.add(model)
    for field_name, info in model.model_fields.items():
        if any(_is_date_time(kind) for kind in _alternatives(info.annotation)):
            names.add(info.serialization_alias or info.alias or field_name)
        for kind in _kinds(info.annotation):
            if isinstance(kind, type) and hasattr(kind, "model_fields"):
                _walk_fields(kind, names, seen)


def _is_date_time(kind: Any) -> bool:
    from pydantic import AwareDatetime, FutureDatetime, NaiveDatetime, PastDatetime

    return kind in (AwareDatetime, NaiveDatetime, PastDatetime, FutureDatetime) or (
        isinstance(kind, type) and issubclass(kind, datetime)
    )


def _alternatives(annotation: Any) -> Iterator[Any]:
    """The types a value of ``annotation`` itself may have (through ``X | None`` and
    ``Annotated[X, …]``, not into a list's items: the schema's ``format`` is the property's)."""
    yield annotation
    if get_origin(annotation) in (Union, UnionType, Annotated):
        for argument in get_args(annotation):
            yield from _alternatives(argument)


def _kinds(annotation: Any) -> Iterator[Any]:
    """Every type an annotation names, at any depth (``list[X]``, ``dict[str, X]``...)."""
    yield annotation
    for argument in get_args(annotation):
        yield from _kinds(argument)


def _date_times(document: Any, name: str) -> list[Any]:
    """The values of the date-time properties of ``document``, a document the model of
    ``name`` accepted: the root's own, and every value under a date-time property's name
    inside the properties that may hold one (:func:`_carriers`) — more than the date-times
    there: a value that is not one only sends the document to jsonschema."""
    names = _date_time_names(name)
    carriers = _carriers(name)
    found: list[Any] = []
    stack: list[Any] = []
    if getattr(_model(name), "__pydantic_root_model__", False):  # one of several versions
        stack.append(document)
        carriers = frozenset()
    for key, value in document.items() if isinstance(document, dict) else ():
        if key in names:
            found.append(value)
        if key in carriers:
            stack.append(value)
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
    return _quick_model(name, document) is not None


def _quick_model(name: str, document: Any) -> Any | None:
    """The model made from ``document`` when the quick yes holds; None when it does not."""
    try:
        from pydantic import ValidationError
        from rfc3339_validator import validate_rfc3339
    except ImportError:  # pragma: no cover - installed with jsonschema's format extra
        return None
    if isinstance(document, dict) and any(
        isinstance(document.get(key), bool) for key in _int_literals(name)
    ):
        return None  # the model takes true for 1 (they are equal in Python); the schema not
    try:
        text = json.dumps(document, allow_nan=False)
        model = _model(name).model_validate_json(text, strict=True)
    except (ValidationError, ValueError, TypeError, RecursionError):
        return None
    if all(
        value is None or (isinstance(value, str) and validate_rfc3339(value.upper()))
        for value in _date_times(document, name)
    ):
        return model
    return None


@cache
def _validator(name: str) -> Any:
    from jsonschema import Draft202012Validator

    schema = schema_for(name)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def validation_problems(name: str, document: Any) -> list[str]:
    """Every way ``document`` breaks the schema, one readable line each (empty: valid)."""
    return validated(name, document)[1]


def validated(name: str, document: Any) -> tuple[Any | None, list[str]]:
    """``document`` checked against the schema of ``name``: its model and no problems when the
    quick path accepts it (the document is parsed once, not once more by the caller), else
    None and every problem (none: the schema accepts what the strict model refused — the
    caller's lax model decides)."""
    model = _quick_model(name, document)
    if model is not None:
        return model, []
    try:
        errors = sorted(_validator(name).iter_errors(document), key=lambda e: list(e.absolute_path))
    except RecursionError:
        return None, ["<root>: nested too deeply to validate"]
    leaves = [leaf for e in errors for leaf in _leaves(e)]
    problems = [
        f"{'/'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}" for e in leaves
    ]
    return None, problems


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
