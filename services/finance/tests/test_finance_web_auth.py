"""Who may open what: page_principal (303 to sign-in, 403 page) and api_principal (401/403 JSON,
bearer token or session), every refusal in auth.audit without the query string; next-URL checks."""

# ruff: noqa: F811 - the support module's fixtures are imported, then named as parameters

from __future__ import annotations

import json

import pytest
from fastapi import APIRouter, Depends, Request
from test_finance_web_support import (
    audit_rows,
    console_client,
    console_db,  # noqa: F401 - fixture
    issue_token,
    make_user,
    sign_in,
    signed_in,
    unique,
)

probe = APIRouter()


def _deps():
    from finance.web.auth_deps import api_principal, page_principal

    return page_principal("finance_viewer", "finance_approver"), api_principal("finance_approver")


finance_page, approver_api = _deps()


@probe.get("/probe/page")
async def probe_page(request: Request, principal=Depends(finance_page)):
    from finance.web.rendering import render

    return render(request, "home.html", {"roles": sorted(principal.roles)})


@probe.get("/api/probe")
async def probe_api(principal=Depends(approver_api)) -> dict:
    return {"username": principal.username, "via": principal.via}


@pytest.fixture(scope="module")
def people(console_db) -> dict[str, str]:
    names = {}
    for who, roles in {"viewer": ["finance_viewer"], "approver": ["finance_approver"], "admin": ["admin"],
                       "reviewer": ["reviewer"]}.items():
        names[who] = unique(who)
        make_user(console_db, names[who], roles)
    return names


@pytest.fixture
def client(console_db, tmp_path):
    with console_client(console_db, tmp_path, routers=(probe,)) as client:
        yield client


def test_pages_send_strangers_to_sign_in_with_where_they_were_going(client, console_db) -> None:
    answer = client.get("/probe/page?period=2026-10&q=secret")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=/probe/page%3Fperiod%3D2026-10%26q%3Dsecret"
    [refusal] = audit_rows(console_db, action="GET /probe/page")[-1:]
    assert (refusal["actor"], refusal["outcome"]) == (None, "unauthenticated")
    assert "secret" not in str(audit_rows(console_db))

    htmx = client.get("/probe/page", headers={"HX-Request": "true"})
    assert htmx.status_code == 401 and htmx.headers["HX-Redirect"] == "/login?next=/probe/page"


def test_the_sign_in_page_then_goes_back_there(client, people) -> None:
    answer = sign_in(client, people["viewer"], next_path="/probe/page?period=2026-10")
    assert answer.status_code == 303 and answer.headers["location"] == "/probe/page?period=2026-10"
    assert client.get(answer.headers["location"]).status_code == 200


def test_a_wrong_role_gets_the_403_page_and_is_audited(client, console_db, people) -> None:
    signed_in(client, people["admin"])  # admin implies no finance role
    answer = client.get("/probe/page")
    assert answer.status_code == 403 and "Access refused" in answer.text and "Traceback" not in answer.text
    [refusal] = audit_rows(console_db, action="GET /probe/page", actor=people["admin"])
    detail = json.loads(refusal["detail"])
    assert refusal["outcome"] == "forbidden"
    assert detail == {"needs_roles": ["finance_approver", "finance_viewer"], "has_roles": ["admin"],
                      "via": "session"}


@pytest.mark.parametrize("path", ["/users", "/reviews"])
def test_the_shells_own_pages_check_roles(client, people, path) -> None:
    signed_in(client, people["viewer"])
    assert client.get(path).status_code == 403


def test_the_api_answers_401_json_without_credentials(client, console_db) -> None:
    answer = client.get("/api/probe?token=abc")
    assert answer.status_code == 401 and answer.headers["WWW-Authenticate"] == "Bearer"
    assert answer.json()["error"]["code"] == "unauthenticated"
    answer = client.get("/api/probe", headers={"Authorization": "Bearer rgt_not-a-real-token-at-all"})
    assert answer.status_code == 401
    answer = client.get("/api/probe", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert answer.status_code == 401
    actions = {r["action"] for r in audit_rows(console_db, outcome="unauthenticated")}
    assert "GET /api/probe" in actions and not any("token=" in a for a in actions)


def test_the_api_takes_a_bearer_token_or_the_session(client, console_db, people) -> None:
    approver_token = issue_token(console_db, people["approver"])
    answer = client.get("/api/probe", headers={"Authorization": f"Bearer {approver_token}"})
    assert answer.json() == {"username": people["approver"], "via": "token"}

    viewer_token = issue_token(console_db, people["viewer"])
    answer = client.get("/api/probe", headers={"Authorization": f"Bearer {viewer_token}"})
    assert answer.status_code == 403 and answer.json() == {
        "error": {"code": "forbidden", "message": "needs role finance_approver"}}
    [refusal] = audit_rows(console_db, action="GET /api/probe", actor=people["viewer"], outcome="forbidden")
    assert json.loads(refusal["detail"])["via"] == "token"
    assert viewer_token not in str(audit_rows(console_db))

    signed_in(client, people["approver"])
    assert client.get("/api/probe").json() == {"username": people["approver"], "via": "session"}


def test_roles_are_read_again_on_every_request(client, console_db, people) -> None:
    from test_finance_web_support import execute

    user = unique("viewer")
    make_user(console_db, user, ["finance_viewer"])
    signed_in(client, user)
    assert client.get("/probe/page").status_code == 200
    execute(console_db, "UPDATE auth.users SET roles = '{reviewer}' WHERE username = %s", user)
    assert client.get("/probe/page").status_code == 403


@pytest.mark.parametrize("value, expected", [
    ("/runs?period=2026-10", "/runs?period=2026-10"),
    ("/", "/"),
    ("//evil.example/x", "/"),
    ("/\\evil.example", "/"),
    ("https://evil.example/", "/"),
    ("javascript:alert(1)", "/"),
    ("runs", "/"),
    ("/runs\r\nSet-Cookie: x=1", "/"),
    ("/login?next=/runs", "/"),
    ("/logout", "/"),
    ("/" + "a" * 3000, "/"),
    ("", "/"),
    (None, "/"),
])
def test_next_must_be_a_local_path(value, expected) -> None:
    from finance.web.rendering import safe_next

    assert safe_next(value) == expected


def test_sign_in_never_redirects_off_site(client, people) -> None:
    answer = sign_in(client, people["viewer"], next_path="//evil.example/")
    assert answer.status_code == 303 and answer.headers["location"] == "/"
