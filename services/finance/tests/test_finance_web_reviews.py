"""The review pages against a canned review API over real HTTP: the reviewer's own token is sent,
four-eyes refusals read as messages, an API that is down is a notice, not a 500."""

# ruff: noqa: F811 - the support module's fixtures are imported, then named as parameters

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from collections.abc import Iterator

import pytest
from test_finance_web_support import (
    console_client,
    console_db,  # noqa: F401 - fixture
    csrf_of,
    execute,
    make_user,
    rows,
    signed_in,
    unique,
)

REVIEW = {
    "case_id": "MA-<b>1</b>", "plan_id": "PL-1", "program_code": "MA-AVRR-2026", "programme_version": "v-abc",
    "status": "open", "kind": "grant",
    "reasons": [{"code": "vulnerability_review", "field": "vulnerabilities", "message": "unaccompanied_minor"}],
    "facts": {"age": 16, "vulnerabilities": ["unaccompanied_minor"]},
    "plan_total": {"amount": "1500.00", "currency": "EUR"},
    "programme_total": {"amount": "1500.00", "currency": "EUR"},
    "second_approval_needed": False,
    "opened_at": "2026-10-20T09:30:00+00:00", "updated_at": "2026-10-20T10:00:00+00:00",
    "actions": [], "other_approved_cases": [],
    "plan": {"plan_id": "PL-1", "approved_by": "caseworker:k.benali", "components": [
        {"component_id": "c1", "modality": "cash", "category": "immediate_needs",
         "amount": {"amount": "300.00", "currency": "EUR"},
         "tranches": [{"seq": 1, "share_percent": 100, "release": "on_approval"}]}]},
}


class _Canned(http.server.BaseHTTPRequestHandler):
    answers: dict[tuple[str, str], tuple[int, object]] = {}
    seen: list[tuple[str, str, str | None, bytes]] = []

    def _reply(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).seen.append((self.command, self.path, self.headers.get("Authorization"), body))
        status, payload = type(self).answers.get((self.command, self.path.split("?")[0]), (404, {
            "error": {"code": "no_such_review", "message": "no review exists for this case"}}))
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if not isinstance(payload, bytes) else "text/html")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _reply

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def review_api() -> Iterator[tuple[str, type[_Canned]]]:
    _Canned.answers, _Canned.seen = {}, []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Canned)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _Canned
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def reviewer(console_db) -> str:
    name = unique("reviewer")
    make_user(console_db, name, ["reviewer"])
    return name


CASE_PATH = "/v1/reviews/MA-%3Cb%3E1%3C%2Fb%3E"


def test_the_queue_and_a_case_with_the_reviewers_own_token(console_db, tmp_path, review_api, reviewer) -> None:
    url, api = review_api
    api.answers[("GET", "/v1/reviews")] = (200, {"reviews": [REVIEW]})
    api.answers[("GET", CASE_PATH)] = (200, REVIEW)
    with console_client(console_db, tmp_path, review_api_url=url) as client:
        signed_in(client, reviewer)
        queue = client.get("/reviews")
        assert queue.status_code == 200
        assert "MA-&lt;b&gt;1&lt;/b&gt;" in queue.text and "<b>1</b>" not in queue.text  # escaped, not markup
        assert "€1,500.00" in queue.text and "Open" in queue.text
        assert 'href="/reviews/MA-%3Cb%3E1%3C%2Fb%3E"' in queue.text
        page = client.get("/reviews/MA-<b>1</b>")
        assert page.status_code == 200 and "caseworker:k.benali" in page.text and "unaccompanied_minor" in page.text

    method, path, authorization, _ = api.seen[0]
    assert (method, path) == ("GET", "/v1/reviews?limit=200")
    token = authorization.removeprefix("Bearer ")
    [issued] = rows(console_db, """SELECT t.name, u.username FROM auth.api_tokens t
                                   JOIN auth.users u ON u.id = t.user_id WHERE t.token_hash = %s""",
                    hashlib.sha256(token.encode()).hexdigest())
    assert issued == {"name": "console session", "username": reviewer}


def test_approving_and_the_four_eyes_refusal(console_db, tmp_path, review_api, reviewer) -> None:
    url, api = review_api
    api.answers[("GET", CASE_PATH)] = (200, REVIEW)
    api.answers[("POST", CASE_PATH + "/approve")] = (200, {**REVIEW, "status": "awaiting_second_approval"})
    api.answers[("POST", CASE_PATH + "/reject")] = (403, {"error": {
        "code": "reviewer_is_plan_author", "message": "four eyes: the caseworker cannot review"}})
    with console_client(console_db, tmp_path, review_api_url=url) as client:
        token = signed_in(client, reviewer)
        answer = client.post("/reviews/MA-<b>1</b>/approve", data={"comment": " checked with guardian ",
                                                                  "csrf_token": token})
        assert answer.status_code == 303 and answer.headers["location"] == "/reviews/MA-%3Cb%3E1%3C%2Fb%3E"
        assert "a second, different reviewer must confirm" in client.get(answer.headers["location"]).text
        assert json.loads(api.seen[-2][3]) == {"comment": "checked with guardian"}

        refused = client.post("/reviews/MA-<b>1</b>/reject", data={"comment": "my own plan", "csrf_token": token})
        assert refused.status_code == 403
        assert "Four eyes: you approved this plan upstream" in refused.text and "my own plan" in refused.text

        empty = client.post("/reviews/MA-<b>1</b>/approve", data={"comment": "   ", "csrf_token": token})
        assert empty.status_code == 422 and "Give a reason" in empty.text
        assert sum(1 for m, p, *_ in api.seen if m == "POST") == 2  # the empty one never left the console


def test_an_api_that_is_down_is_a_notice(console_db, tmp_path, review_api, reviewer) -> None:
    with console_client(console_db, tmp_path, review_api_url="http://127.0.0.1:9") as client:
        token = signed_in(client, reviewer)
        for answer in (client.get("/reviews"), client.get("/reviews/C-1"),
                       client.post("/reviews/C-1/approve", data={"comment": "ok", "csrf_token": token})):
            assert answer.status_code == 503 and "cannot be reached right now" in answer.text
    url, api = review_api
    api.answers[("GET", "/v1/reviews")] = (502, b"<html>bad gateway</html>")
    with console_client(console_db, tmp_path, review_api_url=url) as client:
        signed_in(client, reviewer)
        assert client.get("/reviews").status_code == 503


def test_unknown_case_and_a_role_given_after_sign_in(console_db, tmp_path, review_api) -> None:
    url, api = review_api
    late = unique("viewer")
    make_user(console_db, late, ["finance_viewer"])
    with console_client(console_db, tmp_path, review_api_url=url) as client:
        signed_in(client, late)
        execute(console_db, "UPDATE auth.users SET roles = '{finance_viewer,reviewer}' WHERE username = %s", late)
        page = client.get("/reviews")
        assert page.status_code == 403 and "Sign out and sign in again" in page.text
        assert not api.seen
        token = csrf_of(page.text)
        client.post("/logout", data={"csrf_token": token})
        signed_in(client, late)
        missing = client.get("/reviews/NO-SUCH-CASE")
        assert missing.status_code == 404 and "There is no review for this case." in missing.text
