"""The published JSON Schemas (under ``contracts/``), generated from the models.

``make contracts`` rewrites the files; a test fails when a committed schema and
its model disagree. Validation uses JSON Schema 2020-12 with format checking on.
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
            "backfiller.planning.plan:PlanDocument",
            1,
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
    )
}


@cache
def schema_for(name: str) -> dict[str, Any]:
    """The JSON Schema of a document kind, generated from its model."""
    spec = SCHEMAS[name]
    module_name, _, class_name = spec.model.partition(":")
    model = getattr(importlib.import_module(module_name), class_name)
    body: dict[str, Any] = model.model_json_schema(mode="serialization")
    return {"$schema": DIALECT, "$id": spec.schema_id, **body}


@cache
def _validator(name: str) -> Any:
    from jsonschema import Draft202012Validator

    schema = schema_for(name)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def validation_problems(name: str, document: Any) -> list[str]:
    """Every way ``document`` breaks the schema, one readable line each (empty: valid)."""
    errors = sorted(_validator(name).iter_errors(document), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}" for e in errors]


def render(name: str) -> str:
    return json.dumps(schema_for(name), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_contracts(folder: Path) -> list[Path]:
    from backfiller.atomic import atomic_write_text

    written = []
    for spec in SCHEMAS.values():
        written.append(atomic_write_text(Path(folder) / spec.path, render(spec.name)))
    return written
