"""A real browser for the page tests: Debian's chromium driven by Playwright for Python.

Never a browser download: Playwright launches `/usr/bin/chromium` (FERRY_TEST_CHROMIUM
to point elsewhere). When Playwright or chromium is missing the tests fail with CI=true
and skip otherwise, like the tests that need PostgreSQL or Redis.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CI, ROOT

CHROMIUM = os.environ.get("FERRY_TEST_CHROMIUM", "/usr/bin/chromium")
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
DOCS = ROOT / "docs"
# axe-core's rule tags for WCAG 2.0 and 2.1, levels A and AA (SPEC 14's bar).
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def _missing(message: str) -> None:
    if CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """One headless chromium for the session's page tests."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        _missing(f"playwright is not installed ({exc}); `make install` installs the dev extras")
    if not os.access(CHROMIUM, os.X_OK):
        _missing(f"{CHROMIUM} is missing; install Debian's chromium (`make browser`)")
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    """A fresh browser context (its own cookies) and page."""
    context = chromium.new_context(viewport={"width": 1100, "height": 900}, accept_downloads=True)
    context.set_default_timeout(20_000)
    opened = context.new_page()
    try:
        yield opened
    finally:
        context.close()


def axe_violations(page: Any) -> list[str]:
    """What axe-core finds against WCAG 2.1 A and AA on the page as it is now."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(content=AXE.read_text())
    found = page.evaluate(
        "async (tags) => (await axe.run(document, {runOnly: {type: 'tag', values: tags}}))"
        ".violations.map(v => v.id + ': ' + v.help + ' @ ' +"
        " v.nodes.map(n => n.target.join(' ')).join(', '))",
        WCAG_TAGS,
    )
    return list(found)


def assert_accessible(page: Any) -> None:
    """No axe-core violation of WCAG 2.1 A/AA, and nothing wider than a 390 px phone."""
    violations = axe_violations(page)
    assert violations == [], f"{page.url}: " + "\n".join(violations)
    size = page.viewport_size
    page.set_viewport_size({"width": 390, "height": 844})
    try:
        overflow = page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        wide = page.evaluate(
            "() => [...document.querySelectorAll('body *')].filter(e => "
            "e.getBoundingClientRect().right > document.documentElement.clientWidth + 1"
            " && !(e.parentElement && e.parentElement.closest('.scroll')))"
            ".slice(0, 5).map(e => e.outerHTML.slice(0, 120))"
        )
        assert overflow <= 0, f"{page.url}: {overflow} px wider than a 390 px screen: {wide}"
    finally:
        page.set_viewport_size(size)


def sign_in_by_keyboard(page: Any, base_url: str, token: str) -> None:
    """Sign in as a keyboard user would: Tab to the token field, type, Enter."""
    page.goto(base_url + "/")
    for _ in range(6):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement && document.activeElement.id") == "token":
            break
    else:
        raise AssertionError("the token field cannot be reached with Tab")
    page.keyboard.type(token)
    with page.expect_navigation():
        page.keyboard.press("Enter")
