"""Every page of the web view through the framework's test client, as HTML and as JSON, on a
project with a good run, a run that failed a blocking check, holds, evidence and a plan."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import NOW
from fastapi.testclient import TestClient
from web_project import (
    BAD_CHANNEL,
    BAD_DAY,
    RAW,
    SILVER,
    WebProject,
    build_web_project,
)

from backfiller import FixedClock, Project, load_project
from backfiller.asset_keys import select_keys
from backfiller.dynamic import add_partition_values
from backfiller.lab.example import lay_out_example, materialize_history
from backfiller.web.app import create_app

BY_LINE = "week06/silver/ticket_fact_by_product_line"  # of the example's product_lines project

#: the built project, shared by the module's tests (they only read it)
_built: dict[str, WebProject] = {}


@pytest.fixture
def web(tmp_path_factory: pytest.TempPathFactory) -> WebProject:
    if "sqlite" not in _built:
        _built["sqlite"] = build_web_project(tmp_path_factory.mktemp("web") / "omni")
    return _built["sqlite"]


@pytest.fixture
def client(web: WebProject) -> Iterator[TestClient]:
    with TestClient(create_app(web.load())) as c:
        yield c


def urls(web: WebProject) -> dict[str, str]:
    """One concrete URL per route of the app (by route name)."""
    return {
        "overview": "/",
        "asset": f"/assets/{RAW}/",
        "partition": f"/assets/{RAW}/partitions/{BAD_DAY}/",
        "runs": "/runs/",
        "run": f"/runs/{web.failed_run}/",
        "evidence": f"/runs/{web.failed_run}/evidence/",
        "report": f"/runs/{web.failed_run}/evidence/report.html",
        "plans": "/plans/",
        "plan": f"/plans/{web.plan_id}/",
        "chain": "/evidence/",
        "verify": "/evidence/verify/",
    }


def test_every_route_is_covered(client: TestClient, web: WebProject) -> None:
    named = {getattr(r, "name", None) for r in client.app.routes}  # type: ignore[attr-defined]
    pages = {n for n in named if n and not n.startswith("api_") and n != "openapi"}
    assert pages == set(urls(web))
    api = {n.removeprefix("api_") for n in named if n and n.startswith("api_")}
    assert api == set(urls(web)) - {"report"}


@pytest.mark.parametrize(
    "name",
    [
        "overview",
        "asset",
        "partition",
        "runs",
        "run",
        "evidence",
        "plans",
        "plan",
        "chain",
        "verify",
    ],
)
def test_each_page_is_html_and_the_same_json_two_ways(
    client: TestClient, web: WebProject, name: str
) -> None:
    url = urls(web)[name]
    html = client.get(url)
    assert html.status_code == 200, html.text
    assert html.headers["content-type"].startswith("text/html")
    assert "<!DOCTYPE html>" in html.text and "http://" not in _scripts(html.text)
    api = client.get(f"/api{url}")
    assert api.status_code == 200
    assert api.headers["content-type"] == "application/json"
    negotiated = client.get(url, headers={"Accept": "application/json"})
    assert negotiated.headers["content-type"] == "application/json"
    assert negotiated.json() == api.json()
    head = client.head(url)
    assert head.status_code == 200 and head.content == b""


def _scripts(html: str) -> str:
    """Every src/href that would fetch something: a page must fetch nothing from elsewhere."""
    return " ".join(re.findall(r'(?:src|href)="([^"]*)"', html))


def test_overview_bars_are_runs_of_state(client: TestClient, web: WebProject) -> None:
    doc = client.get("/api/").json()
    assert doc["kind"] == "overview" and doc["window"]["first"] == "2026-03-01"
    raw = next(a for a in doc["assets"] if a["asset"] == RAW)
    bar = raw["bar"]
    # the segments cover the window in order, each a run of one state
    assert sum(s["count"] for s in bar) == doc["window"]["count"]
    assert all(a["last"] < b["first"] for a, b in itertools.pairwise(bar))
    assert all(a["state"] != b["state"] for a, b in itertools.pairwise(bar))
    failed = [s for s in bar if s["state"] == "check_failed"]
    assert failed == [{"first": BAD_DAY, "last": BAD_DAY, "count": 1, "state": "check_failed"}]
    assert raw["counts"]["materialized"] == 2 and raw["counts"]["check_failed"] == 1
    assert raw["gaps"] == doc["window"]["count"] - 2
    silver = next(a for a in doc["assets"] if a["asset"] == SILVER)
    assert silver["held"] == [{"first": BAD_DAY, "last": BAD_DAY, "count": 1, "offset": 45}]
    holds = {(h["target"], h["partition_key"]) for h in doc["open_holds"]}
    assert (SILVER, BAD_DAY) in holds and ("week07/retrieval_index", BAD_DAY) in holds
    # newest first (both runs start at the frozen clock's moment here)
    assert {r["run_id"] for r in doc["last_runs"]} == {web.failed_run, web.good_run}
    html = client.get("/").text
    assert html.count('<a class="s-check_failed"') == 1
    assert f'href="/assets/{RAW}/?start={BAD_DAY}&amp;end={BAD_DAY}"' in html


def test_asset_page_grid_links_each_partition(client: TestClient, web: WebProject) -> None:
    doc = client.get(f"/api/assets/{RAW}/").json()
    cells = {c["key"]: c["state"] for c in doc["grid"]}
    assert cells[BAD_DAY] == "check_failed" and cells["2026-04-14"] == "materialized"
    assert cells["2026-04-17"] == "missing_partition"
    assert [c["name"] for c in doc["failed_checks"]] == ["accepted_values(channel)"]
    assert doc["history"][0]["run_id"] == web.good_run
    window = client.get(f"/api/assets/{RAW}/?start=2026-04-14&end=2026-04-16").json()
    assert [c["state"] for c in window["grid"]] == ["materialized", "check_failed", "materialized"]
    html = client.get(f"/assets/{RAW}/").text
    assert f'href="/assets/{RAW}/partitions/{BAD_DAY}/"' in html


@pytest.mark.slow
def test_asset_page_of_a_multi_dimensional_asset_draws_a_grid_per_product_line(
    tmp_path: Path,
) -> None:
    """The example's product_lines project, its lines added at run time, three days
    backfilled, then a fourth line added: the silver asset's page draws one grid per product
    line over the days (the JSON's ``grids``), each cell linking to its partition; an asset of
    one dimension keeps its one grid."""
    root = lay_out_example(tmp_path / "omni") / "product_lines"
    lines = ["billing", "voice", "chat"]

    def add(values: list[str]) -> Project:
        project = load_project(root, environ={}, clock=FixedClock(NOW))
        with project.ledger() as ledger:
            add_partition_values(project, ledger, values, operator="tests", reason="launch")
        return load_project(root, environ={}, clock=FixedClock(NOW))

    project = add(lines)
    days = ["2026-04-15", "2026-04-16", "2026-04-17"]
    keys = select_keys(
        project.graph, project.graph.keys, partition=None, start=days[0], end=days[-1], now=NOW
    )
    result = materialize_history(project, keys, reason="tests")
    assert result.state.value == "succeeded", [s.error for s in result.steps if s.error]
    project = add(["enterprise"])

    with TestClient(create_app(project)) as client:
        doc = client.get(f"/api/assets/{BY_LINE}/").json()
        html = client.get(f"/assets/{BY_LINE}/").text
        raw = client.get(f"/api/assets/{RAW}/").json()
        cell = client.get(f"/api/assets/{BY_LINE}/partitions/2026-04-16%7Cvoice/").json()
    assert (cell["partition_key"], cell["state"]) == ("2026-04-16|voice", "materialized")
    grids = doc["grids"]
    every = [*lines, "enterprise"]
    assert [g["label"] for g in grids] == [f"product_line={line}" for line in every]
    assert [g["values"] for g in grids] == [{"product_line": line} for line in every]
    window = [c["key"] for c in raw["grid"]]  # the days
    assert len(window) == 61
    for line, grid in zip(every, grids, strict=True):
        assert [c["value"] for c in grid["cells"]] == window
        assert [c["key"] for c in grid["cells"]] == [f"{day}|{line}" for day in window]
        done = [c["value"] for c in grid["cells"] if c["state"] == "materialized"]
        assert done == ([] if line == "enterprise" else days)
        assert grid["counts"] == {
            **({"materialized": 3} if done else {}),
            "missing_partition": 61 - len(done),
        }
    flat = {c["key"]: c["state"] for c in doc["grid"]}
    assert {c["key"]: c["state"] for g in grids for c in g["cells"]} == flat
    assert html.count('<div class="grid"') == 4
    for line in every:
        assert f'<div class="grid" data-grid="product_line={line}">' in html
    assert f'href="/assets/{BY_LINE}/partitions/2026-04-16%7Cvoice/"' in html
    assert raw["grids"] == []


def test_partition_page_has_its_history(client: TestClient, web: WebProject) -> None:
    doc = client.get(f"/api/assets/{RAW}/partitions/{BAD_DAY}/").json()
    assert doc["state"] == "check_failed"
    assert doc["record"]["status"] == "check_failed"
    assert [v["run_id"] for v in doc["versions"]] == [web.good_run]
    # in the order they started (here both at the frozen clock's moment)
    assert sorted((a["run_id"], a["status"], a["reason"] or "") for a in doc["attempts"]) == sorted(
        [(web.good_run, "succeeded", ""), (web.failed_run, "check_failed", "redelivery")]
    )
    assert {a["operator"] for a in doc["attempts"]} == {"tests"}
    failed = [c for c in doc["checks"] if c["status"] == "failed"]
    assert [c["sample"][0]["channel"] for c in failed] == [BAD_CHANNEL]
    assert doc["report"]["run_id"] == web.good_run
    html = client.get(f"/assets/{RAW}/partitions/{BAD_DAY}/").text
    assert BAD_CHANNEL in html and "redelivery" in html


def test_run_page_has_steps_checks_holds_and_evidence(client: TestClient, web: WebProject) -> None:
    doc = client.get(f"/api/runs/{web.failed_run}/").json()
    assert doc["run"]["state"] == "checks_failed" and doc["run"]["reason"] == "redelivery"
    assert [(s["asset"], s["status"]) for s in doc["steps"]] == [(RAW, "check_failed")]
    failed = [c for c in doc["checks"] if c["status"] == "failed"]
    assert failed[0]["expected"] and failed[0]["actual"] and failed[0]["sample"]
    assert {h["target"] for h in doc["holds_placed"]} >= {SILVER, "week07/retrieval_index"}
    assert doc["evidence"]["seq"] == 2
    html = client.get(f"/runs/{web.failed_run}/").text
    assert f'href="/runs/{web.failed_run}/evidence/"' in html
    assert BAD_CHANNEL in html


def test_evidence_is_embedded_and_its_document_is_the_json(
    client: TestClient, web: WebProject
) -> None:
    page = client.get(f"/runs/{web.failed_run}/evidence/").text
    assert f'<iframe src="/runs/{web.failed_run}/evidence/report.html"' in page
    report = client.get(f"/runs/{web.failed_run}/evidence/report.html")
    assert report.status_code == 200 and web.failed_run in report.text
    doc = client.get(f"/api/runs/{web.failed_run}/evidence/").json()
    assert doc["run"]["id"] == web.failed_run and doc["chain"]["seq"] == 2


def test_plan_page_reads_as_a_reviewer_reads_it(client: TestClient, web: WebProject) -> None:
    plans = client.get("/api/plans/").json()
    assert [p["plan_id"] for p in plans["plans"]] == [web.plan_id]
    doc = client.get(f"/api/plans/{web.plan_id}/").json()
    plan = doc["plan"]
    assert plan["reason"] == "late delivery" and plan["partition_key"] == "2026-04-17"
    html = client.get(f"/plans/{web.plan_id}/").text
    for text in (plan["state_fingerprint"], plan["downstream_impact"], plan["idempotency_guard"]):
        assert str(text) in html
    entry = plan["partitions"][0]
    assert entry["upstream_manifest_id"] in html and entry["proposed_action"] in html


def test_chain_verified_on_request_names_the_first_broken_link(
    web: WebProject, tmp_path: Path
) -> None:
    root = tmp_path / "copy"
    shutil.copytree(web.root, root)
    copy = WebProject(root, web.environ, web.good_run, web.failed_run, web.plan_id)
    with TestClient(create_app(copy.load())) as client:
        assert client.get("/api/evidence/verify/").json()["intact"] is True
        links = client.get("/api/evidence/").json()["links"]
        assert [link["run_id"] for link in links] == [web.good_run, web.failed_run]  # by seq
        first = root / links[0]["path"]
        first.write_bytes(first.read_bytes().replace(b"tests", b"mallory"))
        doc = client.get("/api/evidence/verify/").json()
        assert doc["intact"] is False
        assert doc["first_broken"]["seq"] == 1 and doc["first_broken"]["kind"] == "edited"
        assert "First broken link" in client.get("/evidence/verify/").text
        # the tampered document is refused, not shown
        assert client.get(f"/runs/{web.good_run}/evidence/report.html").status_code == 409


@pytest.mark.parametrize(
    "url",
    [
        "/assets/no/such/asset/",
        f"/assets/{RAW}/partitions/2099-01-01/",
        "/runs/run-nope/",
        "/runs/run-nope/evidence/",
        "/runs/run-nope/evidence/report.html",
        "/plans/plan-0000000000000000/",
    ],
)
def test_what_does_not_exist_is_404(client: TestClient, url: str) -> None:
    assert client.get(url).status_code == 404
    if not url.endswith(".html"):
        missing = client.get(f"/api{url}")
        assert missing.status_code == 404 and missing.json()["kind"] == "error"


def test_openapi_lists_every_json_route_read_only(client: TestClient, web: WebProject) -> None:
    doc = client.get("/api/openapi.json").json()
    paths = doc["paths"]
    api = {p for p in paths if p.startswith("/api/")}
    assert len(api) == len(urls(web)) - 1
    assert all(set(ops) == {"get"} for ops in paths.values())
    for path in api:
        operation = paths[path]["get"]
        assert operation["description"] and {"200", "404"} <= set(operation["responses"]), path


def test_a_ledger_to_migrate_is_named_not_a_crash(web: WebProject, tmp_path: Path) -> None:
    import sqlite3

    root = tmp_path / "copy"
    shutil.copytree(web.root, root)
    copy = WebProject(root, web.environ, web.good_run, web.failed_run, web.plan_id)
    project = copy.load()
    db = sqlite3.connect(project.config.ledger_path)  # as an older backfiller left it
    try:
        with db:
            db.execute(
                "DELETE FROM schema_migrations "
                "WHERE version = (SELECT max(version) FROM schema_migrations)"
            )
    finally:
        db.close()
    with TestClient(create_app(project)) as client:
        page = client.get("/")
        assert page.status_code == 409 and "backfiller migrate" in page.text
        doc = client.get(f"/api/runs/{web.good_run}/").json()
        assert doc["kind"] == "error" and "backfiller migrate" in doc["detail"]


DOCS = Path(__file__).resolve().parents[2] / "docs" / "web.md"


def _documented() -> dict[str, set[str]]:
    """``kind`` -> the top-level keys docs/web.md lists for it."""
    found: dict[str, set[str]] = {}
    kind = None
    for line in DOCS.read_text(encoding="utf-8").splitlines():
        heading = re.match(r'^## .*"kind": "(\w+)"', line)
        if heading:
            kind = heading.group(1)
            found[kind] = {"kind", "version"}
        elif kind and line.startswith("| `"):
            found[kind] |= set(re.findall(r"`(\w+)`", line.split("|")[1]))
    return found


def test_every_json_key_is_documented(client: TestClient, web: WebProject) -> None:
    documented = _documented()
    seen = set()
    for name, url in urls(web).items():
        if name in ("evidence", "report"):
            continue  # the evidence document has its own contract
        doc = client.get(f"/api{url}").json()
        assert doc["version"] == 1
        assert set(doc) == documented[doc["kind"]], doc["kind"]
        seen.add(doc["kind"])
    error = client.get("/api/runs/run-nope/").json()
    assert set(error) == documented["error"]
    assert seen | {"error"} == set(documented)


def test_a_plan_of_ranges_reads_as_its_ranges(web: WebProject, tmp_path: Path) -> None:
    from backfiller import FixedClock, load_project
    from backfiller.planning import Mode, RangePlan, make_plan, write_plan
    from backfiller.planning.planner import request_for

    root = tmp_path / "copy"
    shutil.copytree(web.root, root)
    project = load_project(root, environ=web.environ, clock=FixedClock(web.load().clock()))
    keys = list(project.scheme.key_range("2026-04-14", "2026-04-20"))
    document = make_plan(project, project.reader(), request_for(keys, Mode.DRY_RUN, "alice"))
    assert isinstance(document, RangePlan)
    write_plan(project, document)
    with TestClient(create_app(project)) as c:
        listed = {p["plan_id"]: p for p in c.get("/api/plans/").json()["plans"]}
        html = c.get(f"/plans/{document.plan_id}/").text
    assert listed[document.plan_id]["partitions"] == len(keys)
    assert f"Ranges ({len(document.ranges)}, over {len(keys)} partitions)" in html
    for entry in document.ranges:
        assert f"{entry.first} .. {entry.last} ({entry.count})" in html


#: a process that serves the overview (its cells classified on a worker thread's DuckDB
#: database) and ends, as a user's script or test suite would
_SERVE_AND_EXIT = """
import sys
from pathlib import Path
from fastapi.testclient import TestClient
from backfiller import load_project
from backfiller.web.app import create_app
app = create_app(load_project(Path(sys.argv[1])))
with TestClient(app) as client:
    assert client.get("/").status_code == 200
print("served")
"""


@pytest.mark.slow
def test_a_process_that_served_the_overview_exits_cleanly(web: WebProject) -> None:
    """Its DuckDB databases are closed before the interpreter's teardown, which aborted the
    process after its work was done (``terminate called ...``, status 134)."""
    result = subprocess.run(
        [sys.executable, "-c", _SERVE_AND_EXIT, str(web.root)],
        capture_output=True,
        text=True,
        env={**os.environ, **web.environ},
        check=False,
    )
    assert (result.returncode, result.stdout.strip()) == (0, "served"), result.stderr
