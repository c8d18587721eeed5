"""The web view cannot write: no route takes a method but GET or HEAD, every other method is
refused before routing, and serving every page (HTML, JSON, HEAD, the OpenAPI document, the
chain verified) leaves the ledger and every file of the project — store, reports, plans,
evidence — exactly as they were, on SQLite and on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from conftest import both_backends, ledger_fingerprint, tree_fingerprint
from fastapi.testclient import TestClient
from starlette.routing import Route
from web_project import BAD_DAY, RAW, SILVER, build_web_project

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
