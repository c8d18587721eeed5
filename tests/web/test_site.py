"""``backfiller site --out DIR``: the same pages as static files, each folder's index.html with
its JSON beside it, linked relatively so that every link of every page names a file of the
site; writing it changes nothing in the project. A missing ``web`` extra is exit 2 with the
install line."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from conftest import ledger_fingerprint, tree_fingerprint
from fastapi.testclient import TestClient
from web_project import BAD_CHANNEL, BAD_DAY, RAW, build_web_project

from backfiller.cli.main import main
from backfiller.web.app import create_app
from backfiller.web.site import write_site

pytestmark = pytest.mark.slow


def test_site_writes_every_page_linked_relatively(tmp_path: Path) -> None:
    web = build_web_project(tmp_path / "omni")
    project = web.load()
    ledger, files = ledger_fingerprint(project), tree_fingerprint(web.root)
    out = tmp_path / "site"
    written = write_site(project, out)  # the project's frozen clock: the server's window
    assert (out / "index.html") in written
    # the command writes the site too (on the system clock: a longer window)
    assert main(["--project", str(web.root), "site", "--out", str(tmp_path / "cli")]) == 0
    assert (tmp_path / "cli" / "assets" / RAW / "index.html").is_file()
    assert ledger_fingerprint(project) == ledger and tree_fingerprint(web.root) == files

    partition = out / "assets" / RAW / "partitions" / BAD_DAY
    assert BAD_CHANNEL in (partition / "index.html").read_text(encoding="utf-8")
    for page in (
        out,
        out / "runs" / web.failed_run,
        out / "runs" / web.failed_run / "evidence",
        out / "plans" / web.plan_id,
        out / "evidence" / "verify",
    ):
        assert (page / "index.html").is_file() and (page / "index.json").is_file(), page
    assert (out / "runs" / web.failed_run / "evidence" / "report.html").is_file()

    # every link of every page is a file of the site; nothing points outside it
    pages = sorted(out.rglob("*.html"))
    assert len(pages) > 500
    for page in pages:
        for href in re.findall(r'(?:href|src)="([^"]*)"', page.read_text(encoding="utf-8")):
            assert not urlsplit(href).scheme and not href.startswith("/"), (page, href)
            target = (page.parent / unquote(href.split("?")[0])).resolve()
            assert target.is_file() and out.resolve() in target.parents, (page, href)

    # the JSON beside each page is the server's JSON of that page
    with TestClient(create_app(project)) as client:
        for path in ("", f"assets/{RAW}/", f"runs/{web.failed_run}/", f"plans/{web.plan_id}/"):
            written = json.loads((out / path / "index.json").read_text(encoding="utf-8"))
            assert written == client.get(f"/api/{path}").json(), path


def test_a_missing_web_extra_names_the_install_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    web = build_web_project(tmp_path / "omni")
    monkeypatch.setitem(sys.modules, "jinja2", None)  # import jinja2 raises ImportError
    code = main(["--project", str(web.root), "site", "--out", str(tmp_path / "site")])
    assert code == 2
    assert "pip install 'backfiller[web]'" in capsys.readouterr().err
    assert not (tmp_path / "site").exists()
