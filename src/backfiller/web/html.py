"""Pages as HTML: Jinja2 templates (autoescaped) over a page's data, with links that work
served (``/assets/…/``) and as static files opened from a folder (``../../assets/…/index.html``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cache
from typing import Any
from urllib.parse import quote

import jinja2

__all__ = ["Links", "render"]


class Links:
    """Where a page's links point: ``root`` is the way from the page to the site's root; a
    static site links to each folder's ``index.html``."""

    def __init__(self, root: str = "/", *, static: bool = False) -> None:
        self.root = root
        self.static = static

    def __call__(self, path: str = "") -> str:
        """The link to site path ``path`` (no leading slash; a folder ends with ``/``)."""
        target = quote(path, safe="/:@")
        if self.static and (target == "" or target.endswith("/")):
            target += "index.html"
        return self.root + target

    def asset(self, name: str, start: str | None = None, end: str | None = None) -> str:
        link = self(f"assets/{name}/")
        if start is not None and end is not None and not self.static:
            link += f"?start={quote(start)}&end={quote(end)}"
        return link

    def partition(self, asset: str, key: str) -> str:
        return self(f"assets/{asset}/partitions/{key}/")

    def run(self, run_id: str) -> str:
        return self(f"runs/{run_id}/")

    def plan(self, plan_id: str) -> str:
        return self(f"plans/{plan_id}/")


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("backfiller.web", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["js"] = _pretty
    env.filters["when"] = _when
    return env


def _when(value: str | None) -> str:
    """An ISO timestamp to the second, as people read it (``2026-12-06 19:34:02 UTC``)."""
    if not value:
        return ""
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    shown = moment.strftime("%Y-%m-%d %H:%M:%S")
    if moment.tzinfo is None:
        return shown
    return f"{shown} {'UTC' if moment.utcoffset() == timedelta(0) else moment.strftime('%z')}"


def _pretty(value: Any) -> str:
    import json

    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def render(template: str, data: dict[str, Any], links: Links, **extra: Any) -> str:
    """``template`` over ``data`` (the page's JSON), linking with ``links``."""
    return _environment().get_template(template).render(page=data, url=links, **extra)
