"""The web view served: FastAPI over :mod:`~backfiller.web.pages`, GET and HEAD only.

Every page is at its path as HTML (or as JSON when the request accepts JSON rather than
HTML) and under ``/api`` as JSON; the OpenAPI document is ``/api/openapi.json``. Each request
opens the read-only ledger reader and closes it; a method other than GET or HEAD is refused
with 405 before any route is looked at.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from backfiller import __version__
from backfiller.errors import BackfillerError
from backfiller.ledger.reader import close_reader
from backfiller.web import pages
from backfiller.web.cache import ServerStopping, StateCache
from backfiller.web.html import Links, render

if TYPE_CHECKING:
    from pathlib import Path

    from backfiller.ledger import LedgerReader
    from backfiller.project import Project

__all__ = ["READ_METHODS", "create_app"]

READ_METHODS = frozenset({"GET", "HEAD"})
_METHODS = ["GET", "HEAD"]
_ERROR: dict[str, Any] = {
    "content": {"application/json": {}}
}  # {"kind": "error", "status", "detail"}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The page's data: a JSON object whose 'kind' names the page"},
    404: {**_ERROR, "description": "No such asset, partition, run, plan or evidence"},
    409: {
        **_ERROR,
        "description": "The ledger needs 'backfiller migrate', or the evidence no longer "
        "matches what the ledger recorded",
    },
}
#: the overview classifies: a server stopping meanwhile cuts that short (503)
_OVERVIEW_RESPONSES: dict[int | str, dict[str, Any]] = {
    **_RESPONSES,
    503: {**_ERROR, "description": "The server is stopping: the page was not finished"},
}


class ReadOnly:
    """Refuse every HTTP method but GET and HEAD (405), whatever the path."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in READ_METHODS:
            response = PlainTextResponse(
                "This view is read-only: GET and HEAD only.",
                status_code=405,
                headers={"Allow": "GET, HEAD"},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def wants_json(request: Request) -> bool:
    """``/api/…``, or an ``Accept`` header that names JSON and not HTML."""
    if request.url.path.startswith("/api/"):
        return True
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def create_app(
    project: Project, *, warm_up: bool = False, kept_path: Path | None = None
) -> FastAPI:
    """The read-only web view of ``project``. ``warm_up``: as the server starts, classify
    the overview's default window in the background (``backfiller ui``), so that the first
    visitor does not wait for it. ``kept_path``: a file where the overview's states are also
    kept for the next server (:mod:`backfiller.web.kept`; ``None``: memory only)."""
    #: the overview's states, kept while their sources are unchanged
    states = StateCache(project, kept_path)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        states.open()  # classifications go on (after a stop, the app served again)
        if warm_up:
            states.warm_up()
        try:
            yield
        finally:
            states.close()  # its background work: the warm-up, restores, the sweep

    app = FastAPI(
        lifespan=lifespan,
        title=f"backfiller: {project.config.name}",
        version=__version__,
        description="The read-only view of a backfiller project: every page as HTML at its "
        "path and as JSON under /api (or with Accept: application/json).",
        openapi_url="/api/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    links = Links("/")
    app.state.states = states

    def respond(
        request: Request,
        template: str,
        build: Callable[[LedgerReader], dict[str, Any]],
        **extra: Any,
    ) -> Response:
        reader: LedgerReader | None = None
        try:
            states.refresh_manifests()  # as they are now, on every page
            reader = project.reader()
            project.refresh_dynamic_values(reader)  # values added or removed meanwhile
            data = build(reader)
        except pages.NotFound as exc:
            return _error(request, 404, str(exc), links)
        except BackfillerError as exc:  # e.g. a ledger to migrate, tampered evidence
            return _error(request, 409, str(exc), links)
        except ServerStopping:  # its classification stopped before the next asset
            detail = (
                "The server is stopping: this page was not finished. Ask for it again once "
                "the server is started again."
            )
            return _error(request, 503, detail, links)
        finally:
            close_reader(reader)
        if wants_json(request):
            return JSONResponse(data)
        return HTMLResponse(render(template, data, links, **extra))

    def both(
        path: str, name: str, responses: dict[int | str, dict[str, Any]] = _RESPONSES
    ) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
        def register(endpoint: Callable[..., Response]) -> Callable[..., Response]:
            app.api_route(path, methods=_METHODS, name=name, include_in_schema=False)(endpoint)
            api = f"/api{path}"
            app.api_route(
                api,
                methods=["GET"],
                name=f"api_{name}",
                operation_id=name,
                summary=f"The {name} page as JSON",
                tags=["pages"],
                responses=responses,
            )(endpoint)
            app.api_route(api, methods=["HEAD"], include_in_schema=False)(endpoint)
            return endpoint

        return register

    @both("/", "overview", _OVERVIEW_RESPONSES)
    def overview(request: Request, start: str | None = None, end: str | None = None) -> Response:
        """Per asset: the partition bar by state, gaps by reason, holds; the last runs."""
        return respond(
            request, "overview.html", lambda r: pages.overview(project, r, start, end, states)
        )

    @both("/assets/{asset:path}/partitions/{key}/", "partition")
    def partition(request: Request, asset: str, key: str) -> Response:
        """One partition: versions, runs, operators, reasons, checks, report."""
        return respond(
            request, "partition.html", lambda r: pages.partition_page(project, r, asset, key)
        )

    @both("/assets/{asset:path}/", "asset")
    def asset(
        request: Request, asset: str, start: str | None = None, end: str | None = None
    ) -> Response:
        """One asset: its per-partition grid, failed checks, holds, table history."""
        return respond(
            request, "asset.html", lambda r: pages.asset_page(project, r, asset, start, end)
        )

    @both("/runs/", "runs")
    def runs(request: Request) -> Response:
        """Every run, newest first."""
        return respond(request, "runs.html", lambda r: pages.runs_page(project, r))

    @both("/runs/{run_id}/", "run")
    def run(request: Request, run_id: str) -> Response:
        """One run: steps, checks (expected, actual, sample), holds placed, evidence."""
        return respond(request, "run.html", lambda r: pages.run_page(project, r, run_id))

    @both("/runs/{run_id}/evidence/", "evidence")
    def evidence(request: Request, run_id: str) -> Response:
        """The run's evidence: its document as JSON, its report embedded as HTML."""
        return respond(
            request,
            "evidence.html",
            lambda r: pages.evidence_document(project, r, run_id),
            run_id=run_id,
            report=links(f"runs/{run_id}/evidence/report.html"),
        )

    @app.api_route("/runs/{run_id}/evidence/report.html", methods=["HEAD"], include_in_schema=False)
    @app.api_route("/runs/{run_id}/evidence/report.html", methods=["GET"], name="report")
    def report(request: Request, run_id: str) -> Response:
        """The run's evidence report, the self-contained HTML page as written."""
        reader: LedgerReader | None = None
        try:
            reader = project.reader()
            return HTMLResponse(pages.evidence_report(project, reader, run_id))
        except pages.NotFound as exc:
            return _error(request, 404, str(exc), links)
        except BackfillerError as exc:
            return _error(request, 409, str(exc), links)
        finally:
            close_reader(reader)

    @both("/plans/", "plans")
    def plans(request: Request) -> Response:
        """Every plan: the saved files and the plans runs applied."""
        return respond(request, "plans.html", lambda r: pages.plans_page(project, r))

    @both("/plans/{plan_id}/", "plan")
    def plan(request: Request, plan_id: str) -> Response:
        """One plan as a reviewer reads it."""
        return respond(request, "plan.html", lambda r: pages.plan_page(project, r, plan_id))

    @both("/evidence/", "chain")
    def chain(request: Request) -> Response:
        """The evidence chain as the ledger indexes it."""
        return respond(request, "chain.html", lambda r: pages.chain_page(project, r))

    @both("/evidence/verify/", "verify")
    def verify(request: Request) -> Response:
        """The evidence chain verified now, with the first broken link named."""
        return respond(request, "verify.html", lambda r: pages.verify_page(project, r))

    _ = (overview, partition, asset, runs, run, evidence, report, plans, plan, chain, verify)
    app.add_middleware(ReadOnly)
    return app


def _error(request: Request, status: int, detail: str, links: Links) -> Response:
    data = {"kind": "error", "version": pages.VERSION, "status": status, "detail": detail}
    if wants_json(request):
        return JSONResponse(data, status_code=status)
    return HTMLResponse(render("error.html", data, links), status_code=status)
