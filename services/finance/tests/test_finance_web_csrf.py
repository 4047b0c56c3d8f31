"""CSRF: every non-GET request needs the page's token (form field or X-CSRF-Token header) and must
not come from another site; refusals are 403 and audited. Bearer-token API calls are exempt."""

# ruff: noqa: F811 - the support module's fixtures are imported, then named as parameters

from __future__ import annotations

import json

import pytest
from fastapi import APIRouter, Depends
from test_finance_web_support import (
    BASE_URL,
    audit_rows,
    console_client,
    console_db,  # noqa: F401 - fixture
    csrf_of,
    issue_token,
    make_user,
    signed_in,
    unique,
)

echo = APIRouter()


def _principal():
    from finance.web.auth_deps import api_principal

    return api_principal("finance_viewer")


@echo.post("/api/test/echo")
async def posted(principal=Depends(_principal())) -> dict:
    return {"username": principal.username, "via": principal.via}


@pytest.fixture(scope="module")
def viewer(console_db) -> str:
    username = unique("viewer")
    make_user(console_db, username, ["finance_viewer"])
    return username


@pytest.fixture
def client(console_db, tmp_path):
    with console_client(console_db, tmp_path, routers=(echo,)) as client:
        yield client


def _refusals(database_url: str, action: str) -> list[dict]:
    return audit_rows(database_url, action=action, outcome="csrf_refused")


def test_a_form_without_or_with_a_wrong_token_is_refused_and_audited(client, console_db, viewer) -> None:
    signed_in(client, viewer)
    before = len(_refusals(console_db, "POST /language"))
    for data in ({"lang": "fr"}, {"lang": "fr", "csrf_token": "forged"}):
        answer = client.post("/language", data=data)
        assert answer.status_code == 403 and "Form expired" in answer.text, data
    refused = _refusals(console_db, "POST /language")[before:]
    assert [r["actor"] for r in refused] == [viewer, viewer]
    assert [json.loads(r["detail"])["reason"] for r in refused] == ["no CSRF token", "wrong CSRF token"]


def test_the_right_token_in_the_form_or_the_header_passes(client, viewer) -> None:
    token = signed_in(client, viewer)
    assert client.post("/language", data={"lang": "fr", "csrf_token": token}).status_code == 303
    answer = client.post("/language", data={"lang": "en"}, headers={"X-CSRF-Token": token, "HX-Request": "true"})
    assert answer.status_code == 303


def test_another_sites_request_is_refused_even_with_the_token(client, console_db, viewer) -> None:
    token = signed_in(client, viewer)
    for headers in ({"Origin": "https://evil.example"}, {"Referer": "https://evil.example/page"},
                    {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
                    {"Origin": "null", "Sec-Fetch-Site": "cross-site"}):
        answer = client.post("/language", data={"lang": "fr", "csrf_token": token}, headers=headers)
        assert answer.status_code == 403, headers
    same = {"Origin": BASE_URL, "Referer": BASE_URL + "/users", "Sec-Fetch-Site": "same-origin"}
    assert client.post("/language", data={"lang": "fr", "csrf_token": token}, headers=same).status_code == 303
    # What a browser sends for its own form under Referrer-Policy: no-referrer.
    browser = {"Origin": "null", "Sec-Fetch-Site": "same-origin"}
    assert client.post("/language", data={"lang": "fr", "csrf_token": token}, headers=browser).status_code == 303
    reasons = [json.loads(r["detail"])["reason"] for r in _refusals(console_db, "POST /language")]
    assert {"foreign Origin", "foreign Referer", "Sec-Fetch-Site cross-site"} <= set(reasons)


def test_the_sign_in_form_is_protected_too(client, console_db, viewer) -> None:
    page = client.get("/login")
    token = csrf_of(page.text)
    assert "reintegra_console_csrf" in client.cookies  # the anonymous secret the token is bound to
    answer = client.post("/login", data={"username": viewer, "password": "x" * 12})
    assert answer.status_code == 403
    client.cookies.clear()  # the token without its cookie is worthless
    answer = client.post("/login", data={"username": viewer, "password": "x" * 12, "csrf_token": token})
    assert answer.status_code == 403
    refused = _refusals(console_db, "POST /login")
    assert refused and all(r["actor"] is None for r in refused)


def test_a_json_post_with_the_session_needs_the_header(client, viewer) -> None:
    token = signed_in(client, viewer)
    assert client.post("/api/test/echo", json={}).status_code == 403
    answer = client.post("/api/test/echo", json={}, headers={"X-CSRF-Token": token})
    assert answer.status_code == 200 and answer.json() == {"username": viewer, "via": "session"}


def test_a_bearer_token_call_needs_no_csrf_token_and_ignores_the_cookie(client, console_db, viewer) -> None:
    signed_in(client, viewer)
    api_token = issue_token(console_db, viewer)
    answer = client.post("/api/test/echo", json={}, headers={"Authorization": f"Bearer {api_token}"})
    assert answer.status_code == 200 and answer.json()["via"] == "token"
    # A bad bearer token does not fall back to the browser's session.
    answer = client.post("/api/test/echo", json={}, headers={"Authorization": "Bearer rgt_nope-nope-nope-nope"})
    assert answer.status_code == 401
