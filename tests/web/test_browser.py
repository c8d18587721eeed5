"""The web view in a real browser: headless Chromium from Debian's packages (``chromium``),
driven by Playwright with ``executable_path`` (never ``playwright install``, which downloads),
against ``backfiller ui`` serving the demo project in its own process. From the overview, a
click on the failed partition's segment, then on its cell, reaches the partition's page with
the failing check's rows. Screenshots are kept under ``test-artifacts/browser/`` (printed).

Required under ``BACKFILLER_REQUIRE_BROWSER=1`` (CI sets it): a missing Chromium or Playwright
fails there and only skips on a developer machine without them."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import run_steps
from rich.console import Console
from web_project import BAD_CHANNEL, BAD_DAY, RAW, SILVER, redeliver_with_a_bad_row

from backfiller import load_project
from backfiller.evidence import write_run_evidence
from backfiller.lab.demo import run_demo

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"


def _required() -> bool:
    return os.environ.get("BACKFILLER_REQUIRE_BROWSER", "") not in ("", "0")


def _missing() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing (pip install playwright)"
    return None


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo project, then a redelivered day whose rerun fails a blocking check."""
    missing = _missing()
    if missing:
        if _required():
            pytest.fail(f"BACKFILLER_REQUIRE_BROWSER is set but {missing}")
        pytest.skip(missing)
    root = tmp_path_factory.mktemp("browser") / "demo"
    with open(os.devnull, "w") as sink:  # noqa: PTH123
        run_demo(root, Console(file=sink))
    redeliver_with_a_bad_row(root, BAD_DAY)
    project = load_project(root, environ={})
    with project.ledger() as ledger:
        steps = [(RAW, BAD_DAY), (SILVER, BAD_DAY)]
        result = run_steps(project, ledger, steps, action="rerun", reason="redelivery")
        assert result.state.value == "checks_failed"
        write_run_evidence(project, ledger, result.run_id)
    return root


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(demo: Path) -> Iterator[str]:
    """``backfiller ui`` on the demo project, in its own process, on the default address."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WEEK06_", "BACKFILLER_"))}
    command = [sys.executable, "-m", "backfiller.cli.main", "--project", str(demo), "ui"]
    proc = subprocess.Popen(
        [*command, "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in first, first
        base = f"http://127.0.0.1:{port}"
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy
        # uvicorn prints its banner line before it listens: wait until it answers (bounded)
        for _ in range(300):
            assert proc.poll() is None, proc.stdout.read()
            try:
                with direct.open(base + "/api/runs/") as response:
                    assert response.status == 200
                    break
            except OSError:
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture(scope="module")
def artifacts() -> Path:
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    print(f"\nbrowser screenshots: {ARTIFACTS}")
    return ARTIFACTS


def test_click_from_the_overview_to_the_failing_rows(server: str, artifacts: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(server + "/")
            assert page.title().startswith("omnisupport")
            row = page.locator("tr.asset", has=page.get_by_role("link", name=RAW, exact=True))
            segment = row.locator(".bar a.s-check_failed")
            assert segment.count() == 1
            page.screenshot(path=artifacts / "1-overview.png", full_page=True)

            segment.click()
            page.wait_for_url(f"**/assets/{RAW}/?start={BAD_DAY}&end={BAD_DAY}")
            cell = page.locator(f'.grid a[data-key="{BAD_DAY}"]')
            assert cell.get_attribute("data-state") == "check_failed"
            page.screenshot(path=artifacts / "2-asset.png", full_page=True)

            cell.click()
            page.wait_for_url(f"**/assets/{RAW}/partitions/{BAD_DAY}/")
            failing = page.locator("tr.check-failed")
            assert failing.count() == 1
            assert "accepted_values(channel)" in failing.inner_text()
            sample = failing.locator("td.sample table.rows")
            assert BAD_CHANNEL in sample.inner_text()
            assert "TCK-20260415-0001" in sample.inner_text()
            failing.scroll_into_view_if_needed()
            page.screenshot(path=artifacts / "3-partition-failing-rows.png", full_page=True)

            # on to the run that failed it, and its evidence report embedded
            failing.locator("td").last.get_by_role("link").click()
            page.wait_for_url("**/runs/run-*/")
            page.locator("a.evidence").click()
            report = page.frame_locator("iframe").locator("body").inner_text()
            assert "accepted_values(channel)" in report and "checks_failed" in report
            page.screenshot(path=artifacts / "4-evidence.png", full_page=True)
        finally:
            browser.close()
    for name in ("1-overview", "2-asset", "3-partition-failing-rows", "4-evidence"):
        assert (artifacts / f"{name}.png").stat().st_size > 1000
