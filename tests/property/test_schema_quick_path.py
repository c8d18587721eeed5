"""The quick path of schema validation never says yes where the JSON Schema says no.

``validation_problems`` first gives a document to its model in strict mode (jsonschema with
its format checkers costs about a second to import); a document the model accepts must be
one the published schema accepts. Valid documents, mutated at random places (values
replaced, keys removed or added, date-times reshaped), hold the two to that.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

from fast_loop import examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from json_paths import json_paths

from backfiller import schemas

EXAMPLE_MANIFEST = (
    Path(__file__).resolve().parents[2]
    / "examples/omnisupport/data/manifests/week06-seed-manifest-001.json"
)


@cache
def _valid(name: str) -> dict[str, Any]:
    if name == "manifest":
        doc: dict[str, Any] = json.loads(EXAMPLE_MANIFEST.read_text(encoding="utf-8"))
        return doc
    return _example_plan()


@cache
def _example_plan() -> dict[str, Any]:
    import tempfile

    from backfiller import load_project, make_plan
    from backfiller.lab.example import lay_out_example
    from backfiller.planning import Mode
    from backfiller.planning.planner import request_for

    root = lay_out_example(Path(tempfile.mkdtemp(prefix="quick-path-")) / "omni")
    project = load_project(root, environ={})
    request = request_for(["2026-04-17"], Mode.DRY_RUN, "tests")
    return make_plan(project, project.reader(), request).to_dict()


DATE_TIMES = st.sampled_from(
    [
        "2026-04-17T00:00:00+00:00",
        "2026-04-17T00:00:00Z",
        "2026-04-17t00:00:00z",
        "2026-04-17 00:00:00+00:00",
        "2026-04-17T00:00Z",
        "2026-04-17T00:00:00",
        "2026-04-17",
        "2026-04-17T24:00:00+00:00",
        "2026-02-30T00:00:00+00:00",
        "2026-04-17T00:00:00.1234567+00:00",
        "2026-04-17T00:00:00+0000",
        "20260417T000000Z",
    ]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 2**65),
    st.sampled_from([0.0, 1.0, 3.0, 2.5, -1.0]),
    st.text(max_size=12),
    DATE_TIMES,
    st.sampled_from(["a" * 64, "A" * 64, "dry-run", "apply", "backfill_partition", "x\n"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def mutated(draw: st.DrawFn, name: str) -> dict[str, Any]:
    doc = copy.deepcopy(_valid(name))
    for _ in range(draw(st.integers(1, 3))):
        paths = json_paths(doc)[1:]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent: Any = doc
        for step in path[:-1]:
            parent = parent[step]
        last = path[-1]
        how = draw(st.sampled_from(["replace", "remove", "add", "date"]))
        if how == "remove":
            del parent[last]
        elif how == "add" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=8))] = draw(VALUES)
        elif how == "date":
            parent[last] = draw(DATE_TIMES)
        else:
            parent[last] = draw(VALUES)
    return doc


def _schema_errors(name: str, doc: Any) -> list[str]:
    return [e.message for e in schemas._validator(name).iter_errors(doc)]


def test_valid_documents_take_the_quick_path() -> None:
    for name in ("manifest", "backfill_plan"):
        assert schemas._model_accepts(name, _valid(name)), name
        assert _schema_errors(name, _valid(name)) == []


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=mutated("manifest"))
def test_the_model_accepts_a_manifest_only_if_the_schema_does(doc: dict[str, Any]) -> None:
    if schemas._model_accepts("manifest", doc):
        assert _schema_errors("manifest", doc) == []


@settings(max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=mutated("backfill_plan"))
def test_the_model_accepts_a_plan_only_if_the_schema_does(doc: dict[str, Any]) -> None:
    if schemas._model_accepts("backfill_plan", doc):
        assert _schema_errors("backfill_plan", doc) == []


def test_a_refused_document_still_gets_the_schemas_words() -> None:
    doc = copy.deepcopy(_valid("manifest"))
    doc["created_at"] = "2026-04-17T00:00Z"  # the model would take it; RFC 3339 does not
    assert not schemas._model_accepts("manifest", doc)
    assert any("date-time" in p for p in schemas.validation_problems("manifest", doc))
