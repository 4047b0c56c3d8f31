"""Browser tests of the finance console: pytest-playwright driving Debian's chromium-headless-shell
against the real console (``python -m finance.web`` as a subprocess) on the session's Postgres.

``playwright install`` cannot download browsers here: the launch uses the system binary
(``executable_path``). Screenshots of the pages that matter go to
``.reintegra/test-artifacts/screenshots/<test>-<step>.png`` (full page; gitignored).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from browser_kit import SCREENSHOTS, RunningConsole, fresh_database, start_console, system_chromium


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    executable = system_chromium()
    if executable is None:
        pytest.skip("no chromium-headless-shell or chromium (apt-get install chromium-headless-shell)")
    return {**browser_type_launch_args, "executable_path": executable, "args": ["--no-sandbox"]}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict) -> dict:
    return {**browser_context_args, "locale": "en-GB", "viewport": {"width": 1280, "height": 860}}


@pytest.fixture
def shoot(request: pytest.FixtureRequest) -> Callable:
    """``shoot(page, "step")``: a full-page PNG named after the test."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    test_name = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name).strip("-")

    def take(page, step: str) -> Path:
        path = SCREENSHOTS / f"{test_name}-{step}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture
def csp_violations(page) -> Iterator[list[str]]:
    """Console messages about the Content-Security-Policy: a page with inline script or style."""
    seen: list[str] = []
    page.on("console", lambda message: seen.append(message.text)
            if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text else None)
    yield seen


# --------------------------------------------------------------------------- the console
@pytest.fixture(scope="session")
def console(infra, tmp_path_factory) -> Iterator[RunningConsole]:
    database_url = fresh_database(infra.database_url)
    running = start_console(database_url, tmp_path_factory.mktemp("console-state"), "http://127.0.0.1:9")
    try:
        yield running
    finally:
        running.process.stop()


