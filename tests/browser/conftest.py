"""Browser tests: Playwright's Python API driving headless Chromium against a live server.

Which Chromium: PLAYWRIGHT_CHROMIUM_EXECUTABLE if set, else the system's (`chromium` from the
package manager: `apt-get install chromium` on Debian/Ubuntu, as on CI), else the one
Playwright downloads itself (`python -m playwright install chromium`). With none of them the
tests are skipped, saying so. On a failure the page's screenshot (and its HTML) is kept under
BROWSER_ARTIFACTS_DIR (default `.local/browser-artifacts/`), named after the test."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from tests.intents.conftest import (  # noqa: F401  (the real simulator and two connectors)
    adyen_connector,
    connector_names,
    connectors,
    pay,
    platform_simulator,
    sim,
    simulator_url,
    stripe_connector,
    tokenize,
)

ARTIFACTS = Path(
    os.environ.get("BROWSER_ARTIFACTS_DIR")
    or Path(__file__).resolve().parents[2] / ".local" / "browser-artifacts"
)
# Django's live server thread and Playwright's sync API share the process: let Django's ORM
# run while Playwright's event loop exists (it never touches the database itself)
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def chromium_executable() -> str | None:
    configured = os.environ.get("PLAYWRIGHT_CHROMIUM_EXECUTABLE")
    if configured:
        return configured
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -r requirements-dev.txt)")
    executable = chromium_executable()
    with sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(
                executable_path=executable,
                headless=True,
                args=["--no-sandbox", "--disable-dev-shm-usage"],
            )
        except Error as exc:
            pytest.skip(
                "no Chromium to drive: install the system package (apt-get install chromium) "
                "or Playwright's own (python -m playwright install chromium); "
                f"launch said: {str(exc).splitlines()[0]}"
            )
        yield chromium
        chromium.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def page(browser, request, live_server):
    context = browser.new_context(viewport={"width": 1440, "height": 900}, base_url=live_server.url)
    # generous: a shared CI machine can be slow; a passing run takes a fraction of this
    context.set_default_timeout(30_000)
    context.set_default_navigation_timeout(30_000)
    page = context.new_page()
    page.console_errors = []
    page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
    page.external_requests = []
    page.on(
        "request",
        lambda r: (
            not r.url.startswith((live_server.url, "data:", "about:"))
            and page.external_requests.append(r.url)
        ),
    )
    yield page
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        (ARTIFACTS / f"{name}.html").write_text(page.content())
    context.close()
