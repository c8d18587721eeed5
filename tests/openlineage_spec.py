"""Validate OpenLineage events against the official JSON Schemas, offline.

The schemas are the OpenLineage spec's own files (``OpenLineage.json`` and ``facets/*.json``),
vendored in ``tests/data/openlineage-spec`` (Apache-2.0; ``SOURCE.txt`` names the commit they
come from) so a fresh clone validates offline (``BACKFILLER_OPENLINEAGE_SPEC`` points at
another copy, e.g. a newer spec); with the custom ``backfiller`` facet's published
contract they form one :class:`referencing.Registry`, so every ``$ref`` resolves locally and
nothing is fetched. An event is checked against ``OpenLineage.json``; every facet in it against
the schema its ``_schemaURL`` names, and a standard facet's name against the names its schema
file defines.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from backfiller.evidence.lineage_facet import FACET_NAME, FACET_SCHEMA_URL
from backfiller.schemas import SCHEMAS

if TYPE_CHECKING:  # imported where used: its format checker takes a second to import, which
    # every test process would pay while collecting the tests
    from jsonschema import Draft202012Validator
    from referencing import Registry

REPO = Path(__file__).resolve().parents[1]
EVENT_SCHEMA = "https://openlineage.io/spec/2-0-2/OpenLineage.json"
FACET_CONTRACT = REPO / "contracts" / SCHEMAS["lineage_run_facet"].path
_STANDARD_FACETS = "https://openlineage.io/spec/facets/"
#: read once, at import: some test modules clear every BACKFILLER_* variable before their tests
SPEC_OVERRIDE = os.environ.get("BACKFILLER_OPENLINEAGE_SPEC", "")


def spec_dir() -> Path:
    """The folder of the official schemas; a test that needs them fails when it is missing."""
    folder = Path(SPEC_OVERRIDE or REPO / "tests" / "data" / "openlineage-spec")
    if not (folder / "OpenLineage.json").is_file():
        pytest.fail(
            f"the OpenLineage JSON Schemas are not in {folder} (OpenLineage.json and facets/): "
            "set BACKFILLER_OPENLINEAGE_SPEC to the spec folder"
        )
    return folder


@cache
def registry() -> Registry:
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    folder = spec_dir()
    paths = [
        folder / "OpenLineage.json",
        *sorted((folder / "facets").glob("*.json")),
        FACET_CONTRACT,
    ]
    resources = []
    for path in paths:
        schema = json.loads(path.read_text(encoding="utf-8"))
        Draft202012Validator.check_schema(schema)
        resources.append((schema["$id"], Resource.from_contents(schema)))
    return Registry().with_resources(resources)


@cache
def _validator(ref: str) -> Draft202012Validator:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(
        {"$ref": ref}, registry=registry(), format_checker=Draft202012Validator.FORMAT_CHECKER
    )


def _problems(ref: str, document: Any, where: str) -> list[str]:
    from referencing.exceptions import Unresolvable

    try:
        errors = list(_validator(ref).iter_errors(document))
    except Unresolvable as exc:
        return [f"{where}: its schema {ref} is not an official one ({exc})"]
    return [
        "/".join([where, *(str(p) for p in e.absolute_path)]) + f": {e.message}" for e in errors
    ]


def facets_of(event: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """Every facet of ``event``: (where it is, its name, the facet)."""
    found = []
    places: list[tuple[str, Any]] = [
        ("run.facets", event.get("run", {}).get("facets")),
        ("job.facets", event.get("job", {}).get("facets")),
    ]
    for side, facet_key in (("inputs", "inputFacets"), ("outputs", "outputFacets")):
        for i, dataset in enumerate(event.get(side) or []):
            places.append((f"{side}/{i}/facets", dataset.get("facets")))
            places.append((f"{side}/{i}/{facet_key}", dataset.get(facet_key)))
    for where, facets in places:
        for name, facet in (facets or {}).items():
            found.append((where, name, facet))
    return found


def event_problems(event: dict[str, Any]) -> list[str]:
    """Every way ``event`` or one of its facets breaks its official schema (empty: valid)."""
    # the run event's own definition names what is wrong; the whole document (one of the
    # event kinds, exactly) must accept it too
    problems = _problems(f"{EVENT_SCHEMA}#/$defs/RunEvent", event, "event")
    problems = problems or _problems(EVENT_SCHEMA, event, "event")
    for where, name, facet in facets_of(event):
        at = f"{where}/{name}"
        url = facet.get("_schemaURL")
        if not isinstance(url, str):
            problems.append(f"{at}: no _schemaURL")
            continue
        problems += _problems(url, facet, at)
        document = url.partition("#")[0]
        if url.startswith(_STANDARD_FACETS):
            names = registry().contents(document).get("properties", {})
            if name not in names:
                problems.append(f"{at}: {document} names this facet {sorted(names)}, not {name!r}")
        elif name != FACET_NAME or url != FACET_SCHEMA_URL:
            problems.append(f"{at}: a custom facet ({url}) other than {FACET_NAME!r}")
    return problems
