"""Browser fixtures: one headless Debian Chromium per session, a fresh context per visitor."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Gitignored; kept between runs so a failure's screenshots can be looked at afterwards.
OUTPUT_DIR = Path(__file__).resolve().parents[2] / "test-output" / "browser"
PAGE_TIMEOUT_MS = 10_000

Shot = Callable[[Page, str], Path]


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, launched once (Playwright's own browser download cannot work here)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install the Debian package chromium")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Keep each phase's report on the test item, so fixtures can tell that a test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def shot(request: pytest.FixtureRequest) -> Shot:
    """Save a full-page screenshot as test-output/browser/<test>-<step>.png and say where."""
    test = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)

    def save(page: Page, step: str) -> Path:
        path = OUTPUT_DIR / f"{test}-{step}.png"
        page.screenshot(path=str(path), full_page=True)
        print(f"screenshot: {path}")
        return path

    return save


@pytest.fixture
def new_visitor(
    browser: Browser, stack, shot: Shot, request: pytest.FixtureRequest
) -> Iterator[Callable[[], Page]]:
    """Pages for independent visitors (own cookies) of the stack's web front, closed after.

    When the test fails, each visitor's page is saved first (test-output/browser/).
    """
    contexts: list[BrowserContext] = []

    def make() -> Page:
        # Over HTTPS, like every visitor; the stack's certificate is self-signed.
        context = browser.new_context(base_url=stack.urls["web"], ignore_https_errors=True)
        context.set_default_timeout(PAGE_TIMEOUT_MS)
        contexts.append(context)
        return context.new_page()

    yield make
    report = getattr(request.node, "report_call", None)
    for number, context in enumerate(contexts, 1):
        if report is not None and report.failed:
            for page in context.pages:
                print(f"failed at {page.url}")
                shot(page, f"failed-visitor-{number}")
        context.close()


@pytest.fixture
def username() -> str:
    """A name no earlier run has registered."""
    return f"b{secrets.token_hex(6)}"
