"""Security headers on every response (pages, errors, static files, the 500 page), no docs pages,
no stack trace, no inline script in any template."""

# ruff: noqa: F811 - the support module's fixtures are imported, then named as parameters

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi import APIRouter
from test_finance_web_support import (
    console_client,
    console_db,  # noqa: F401 - fixture
)

broken = APIRouter()


@broken.get("/broken")
async def broken_page() -> None:
    name = " ".join(("Test", "Person", "42"))  # data, not source text: the log shows the frames' source
    raise RuntimeError(f"row of {name} could not be read")


TEMPLATES = Path(__file__).resolve().parents[1] / "finance" / "web" / "templates"


@pytest.fixture(scope="module")
def client(console_db, tmp_path_factory):
    with console_client(console_db, tmp_path_factory.mktemp("state"), routers=(broken,)) as client:
        yield client


def _assert_secure(headers) -> None:
    csp = headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("path, status", [("/login", 200), ("/healthz", 200), ("/no-such-page", 404),
                                          ("/", 303), ("/users", 303)])
def test_pages_carry_the_headers_and_are_never_cached(client, path, status) -> None:
    answer = client.get(path)
    assert answer.status_code == status
    _assert_secure(answer.headers)
    assert answer.headers["Cache-Control"] == "no-store"


def test_static_files_carry_them_too_and_revalidate(client) -> None:
    for path in ("/static/console.css", "/static/console.js", "/static/vendor/htmx.min.js",
                 "/static/vendor/chart.umd.min.js"):
        answer = client.get(path)
        assert answer.status_code == 200, path
        _assert_secure(answer.headers)
        assert answer.headers["Cache-Control"] == "no-cache"


def test_a_failure_is_the_500_page_without_details(client, caplog) -> None:
    answer = client.get("/broken")
    assert answer.status_code == 500
    _assert_secure(answer.headers)
    assert "Something went wrong" in answer.text
    assert "Traceback" not in answer.text and "Test Person" not in answer.text and "RuntimeError" not in answer.text
    assert "RuntimeError" in caplog.text and "Test Person" not in caplog.text  # the log: type and frames only
    api = client.get("/broken", headers={"Accept": "application/json"})
    assert api.status_code == 500 and api.json()["error"]["code"] == "internal_error"


def test_404_is_a_page_for_browsers_and_json_for_the_api(client) -> None:
    page = client.get("/nowhere")
    assert "Page not found" in page.text and page.headers["content-type"].startswith("text/html")
    api = client.get("/api/nowhere")
    assert api.status_code == 404 and api.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"])
def test_no_docs_pages(client, path) -> None:
    assert client.get(path).status_code == 404


def test_no_template_has_inline_script_or_style() -> None:
    for template in TEMPLATES.glob("*.html"):
        text = template.read_text(encoding="utf-8")
        scripts = re.findall(r"<script\b[^>]*>", text)
        assert all('src="' in tag or 'type="application/json"' in tag for tag in scripts), template.name
        assert not re.search(r"\son[a-z]+\s*=", text), f"inline event handler in {template.name}"
        assert "<style" not in text and not re.search(r'\sstyle="', text), template.name
        assert "hx-on" not in text, template.name
