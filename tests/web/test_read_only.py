"""The web view cannot write: no route takes a method but GET or HEAD, every other method is
refused before routing, and serving every page (HTML, JSON, HEAD, the OpenAPI document, the
chain verified) leaves the ledger and every file of the project — store, reports, plans,
evidence — exactly as they were, on SQLite and on PostgreSQL; a project with no ledger yet is
served and still has none."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import (
    NOW,
    both_backends,
    database_fingerprint,
    ledger_fingerprint,
    tree_fingerprint,
)
from fastapi.testclient import TestClient
from starlette.routing import Route
from web_project import BAD_DAY, RAW, SILVER, build_web_project

from backfiller import FixedClock, load_project
from backfiller.lab.example import lay_out_example
from backfiller.web.app import READ_METHODS, create_app

WRITES = ("POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT")


def _urls(good: str, failed: str, plan: str) -> list[str]:
    pages = [
        "/",
        "/?start=2026-04-01&end=2026-04-30",
        f"/assets/{RAW}/",
        f"/assets/{SILVER}/?start=2026-04-10&end=2026-04-20",
        f"/assets/{RAW}/partitions/{BAD_DAY}/",
        f"/assets/{SILVER}/partitions/{BAD_DAY}/",
        "/runs/",
        f"/runs/{good}/",
        f"/runs/{failed}/",
        f"/runs/{failed}/evidence/",
        "/plans/",
        f"/plans/{plan}/",
        "/evidence/",
        "/evidence/verify/",
    ]
    return [
        *pages,
        *(f"/api{p}" for p in pages),
        f"/runs/{good}/evidence/report.html",
        f"/runs/{failed}/evidence/report.html",
        "/api/openapi.json",
    ]


@pytest.mark.slow
def test_no_route_accepts_a_write_method(tmp_path: Path) -> None:
    web = build_web_project(tmp_path / "omni")
    app = create_app(web.load())
    routes = [r for r in app.routes if isinstance(r, Route)]
    assert len(routes) > 20
    for route in routes:
        assert route.methods is not None and route.methods <= READ_METHODS, route.path
    with TestClient(app) as client:
        for url in [*_urls(web.good_run, web.failed_run, web.plan_id), "/no/such/page"]:
            for method in WRITES:
                response = client.request(method, url)
                assert response.status_code == 405, (method, url)
                assert response.headers["allow"] == "GET, HEAD"


@pytest.mark.slow
@both_backends
def test_serving_every_page_writes_nothing(tmp_path: Path, project_environ: dict[str, str]) -> None:
    web = build_web_project(tmp_path / "omni", project_environ)
    project = web.load()
    before_ledger = ledger_fingerprint(project)
    before_files = tree_fingerprint(web.root)
    with TestClient(create_app(project)) as client:
        for url in _urls(web.good_run, web.failed_run, web.plan_id):
            assert client.get(url).status_code == 200, url
            assert client.get(url, headers={"Accept": "application/json"}).status_code == 200
            assert client.head(url).status_code == 200, url
    assert ledger_fingerprint(project) == before_ledger
    assert tree_fingerprint(web.root) == before_files


@both_backends
def test_a_project_with_no_ledger_yet_is_served_and_gets_none(
    tmp_path: Path, no_ledger_environ: dict[str, str], ledger_backend: str
) -> None:
    root = lay_out_example(tmp_path / "omni")
    project = load_project(root, environ=no_ledger_environ, clock=FixedClock(NOW))
    before = tree_fingerprint(root)
    database = no_ledger_environ.get("BACKFILLER_LEDGER_URL")
    assert (database is not None) == (ledger_backend == "postgres")
    assert database is None or database_fingerprint(database) == {}  # an empty database
    with TestClient(create_app(project)) as client:
        for url in ("/", f"/assets/{RAW}/", f"/assets/{RAW}/partitions/{BAD_DAY}/", "/runs/"):
            assert client.get(url).status_code == 200, url
        for url in ("/plans/", "/evidence/", "/evidence/verify/"):
            assert client.get(f"/api{url}").status_code == 200, url
        doc = client.get("/api/").json()
        assert doc["last_runs"] == [] and doc["open_holds"] == []
        assert all(a["counts"].get("materialized", 0) == 0 for a in doc["assets"])
        assert client.get("/runs/run-x/").status_code == 404
    assert tree_fingerprint(root) == before  # no ledger file, nothing else either
    assert database is None or database_fingerprint(database) == {}  # still no table
