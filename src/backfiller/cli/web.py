"""The web view's commands: ``ui`` serves it (read-only, on 127.0.0.1 by default) and ``site``
writes the same pages as static files. Both need the ``web`` extra; FastAPI, Starlette and
Jinja2 are imported only when one of them runs."""

from __future__ import annotations

import importlib
from pathlib import Path

import click

from backfiller.errors import MissingDependencyError

from .context import Context

__all__ = ["COMMANDS", "INSTALL_LINE", "require_web"]

INSTALL_LINE = "pip install 'backfiller[web]'"


def require_web(*modules: str) -> None:
    """Refuse with the install line (exit 2) when a package of the ``web`` extra is missing."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            raise MissingDependencyError(
                f"The web view needs the optional package {name}", hint=INSTALL_LINE
            ) from None


@click.command(name="ui")
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to bind.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--state-cache/--no-state-cache",
    default=True,
    show_default=True,
    help="Keep the overview's partition states in a file under $XDG_CACHE_HOME/backfiller/ui "
    "(else ~/.cache/backfiller/ui), so that the next start serves what did not change "
    "without classifying it again.",
)
@click.pass_obj
def ui_cmd(obj: Context, host: str, port: int, state_cache: bool) -> None:
    """Serve the read-only web view (GET and HEAD only; every page also as JSON under /api,
    the OpenAPI document at /api/openapi.json)."""
    require_web("fastapi", "jinja2", "uvicorn")
    import uvicorn

    from backfiller.web.app import create_app
    from backfiller.web.kept import default_path

    project = obj.project()
    kept = default_path(project.config.root) if state_cache else None
    app = create_app(project, warm_up=True, kept_path=kept)
    obj.console.print(
        f"Serving {project.config.name} read-only at http://{host}:{port}/ (Ctrl+C stops)",
        markup=False,
    )
    uvicorn.run(app, host=host, port=port, log_level="warning")


@click.command(name="site")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="The folder to write the pages to (index.html and index.json per page).",
)
@click.pass_obj
def site_cmd(obj: Context, out: Path) -> None:
    """Write the web view's pages as static files (for CI artifacts)."""
    require_web("jinja2")
    from backfiller.web.site import write_site

    written = write_site(obj.project(), out)
    obj.console.print(
        f"Wrote {len(written)} file(s); open {out / 'index.html'}",
        markup=False,
    )


COMMANDS = [ui_cmd, site_cmd]
