"""E2E fixtures: a `stack` of real processes per test, logs shown when a test fails."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.settings import Settings
from tests.e2e.browser import chromium, page  # noqa: F401  (fixtures of the page tests)
from tests.e2e.harness import Stack

pytestmark = pytest.mark.e2e


@pytest.fixture
def stack(settings: Settings, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Stack]:
    """Ferry's processes for this test (started by the test, stopped afterwards)."""
    running = Stack(settings, tmp_path / "logs")
    yield running
    running.stop()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(running.dump_logs())


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{report.when}", report)
