"""The review queue with four eyes, end to end: real Postgres, broker, services and review API
process, driven over HTTP and through the ``reintegra review`` CLI as a subprocess.

A held case comes from upstream events (an unaccompanied minor is always held for review in
MA-AVRR-2026); users and tokens are created with the auth package's Python API. The first
tests need no stack: they check the CLI's output and error handling against a canned server.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from rich.console import Console
from support import held_case_records, inkind_completion_records, publish, watch

PLAN_AUTHOR = "caseworker:k.benali"  # approved_by of every sample plan
REVIEW_TIMEOUT_S = 60
PAID_TIMEOUT_S = 90


# =========================================================================== CLI, no stack
SAMPLE_REVIEW = {
    "case_id": "MA-[bold]1", "plan_id": "PL-1", "program_code": "MA-AVRR-2026", "programme_version": "v-abc",
    "status": "awaiting_second_approval", "kind": "grant",
    "reasons": [{"code": "vulnerability_review", "field": "vulnerabilities", "message": "needs a [red]person[/red]"}],
    "facts": {"age": 16, "vulnerabilities": ["unaccompanied_minor"]},
    "plan_total": {"amount": "1800.00", "currency": "EUR"},
    "programme_total": {"amount": "1800.00", "currency": "EUR"},
    "second_approval_needed": True,
    "opened_at": "2026-10-20T09:30:00.123456+00:00", "updated_at": "2026-10-20T10:00:00+00:00",
    "actions": [{"actor": "rev.a", "action": "approve", "outcome": "awaiting_second_approval",
                 "comment": "checked [with] guardian", "programme_version": "v-abc", "at": "2026-10-20T10:00:00+00:00"}],
    "plan": {"plan_id": "PL-1", "approved_by": PLAN_AUTHOR, "components": [
        {"component_id": "c1", "modality": "cash", "category": "immediate_needs",
         "amount": {"amount": "400.00", "currency": "EUR"},
         "tranches": [{"seq": 1, "share_percent": 100, "release": "on_approval"}]}]},
    "other_approved_cases": [],
}


def _rendered(render) -> str:
    console = Console(record=True, width=200, color_system=None)
    render(console)
    return console.export_text()


def test_cli_tables_show_upstream_values_literally() -> None:
    from reintegra_stack.commands_review import print_review, reviews_table

    listed = _rendered(lambda c: c.print(reviews_table([SAMPLE_REVIEW], "Reviews")))
    assert "MA-[bold]1" in listed and "awaiting_second_approval" in listed
    assert "1800.00 EUR" in listed and "vulnerability_review" in listed and "2026-10-20 09:30:00" in listed

    shown = _rendered(lambda c: print_review(c, SAMPLE_REVIEW))
    for text in ("MA-[bold]1", "needs a [red]person[/red]", "checked [with] guardian", PLAN_AUTHOR,
                 "1: 100% on_approval", "MA-AVRR-2026 (v-abc)", "rev.a"):
        assert text in shown, text


def test_cli_finds_the_api_and_the_token(tmp_path: Path) -> None:
    from reintegra_stack.commands_review import UsageProblem, api_token, review_api_url

    assert review_api_url({"REINTEGRA_REVIEW_API_URL": "http://h:8091/"}) == "http://h:8091"
    (tmp_path / "review-api").mkdir()
    (tmp_path / "review-api" / "ports.json").write_text('{"review-api": 4321}')
    assert review_api_url({"REINTEGRA_STATE_DIR": str(tmp_path)}) == "http://127.0.0.1:4321"
    with pytest.raises(UsageProblem, match="REINTEGRA_REVIEW_API_URL"):
        review_api_url({"REINTEGRA_STATE_DIR": str(tmp_path / "none")})

    assert api_token(None, {"REINTEGRA_API_TOKEN": " rgt_x \n"}) == "rgt_x"
    token_file = tmp_path / "token"
    token_file.write_text("rgt_from_file\n")
    assert api_token(token_file, {"REINTEGRA_API_TOKEN": "rgt_env"}) == "rgt_from_file"
    with pytest.raises(UsageProblem, match="REINTEGRA_API_TOKEN"):
        api_token(None, {})
    with pytest.raises(UsageProblem, match="cannot read"):
        api_token(tmp_path / "missing", {})


class _Canned(http.server.BaseHTTPRequestHandler):
    """Answers every request with the status and body the test set; records what it got."""

    answer: tuple[int, bytes, str] = (200, b"{}", "application/json")
    seen: list[tuple[str, str, str | None, bytes]] = []

    def _reply(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).seen.append((self.command, self.path, self.headers.get("Authorization"), body))
        status, payload, content_type = type(self).answer
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _reply

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def canned() -> Iterator[tuple[str, type[_Canned]]]:
    _Canned.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Canned)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _Canned
    finally:
        server.shutdown()
        server.server_close()


def _invoke(args: list[str], env: dict[str, str]):
    from reintegra_stack.cli import app
    from typer.testing import CliRunner

    return CliRunner().invoke(app, args, env={"COLUMNS": "200", **env})


def test_cli_reports_the_servers_error_without_traceback(canned) -> None:
    url, handler = canned
    handler.answer = (403, json.dumps({"error": {"code": "reviewer_is_plan_author",
                                                 "message": "four eyes: the caseworker cannot review"}}).encode(),
                      "application/json")
    result = _invoke(["review", "approve", "CASE/1", "--comment", "ok"],
                     {"REINTEGRA_REVIEW_API_URL": url, "REINTEGRA_API_TOKEN": "rgt_abc"})
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: reviewer_is_plan_author: four eyes: the caseworker cannot review"
    assert "Traceback" not in result.output
    method, path, authorization, body = handler.seen[-1]
    assert (method, path, authorization) == ("POST", "/v1/reviews/CASE%2F1/approve", "Bearer rgt_abc")
    assert json.loads(body) == {"comment": "ok"}

    handler.answer = (502, b"<html>bad gateway</html>", "text/html")
    result = _invoke(["review", "list"], {"REINTEGRA_REVIEW_API_URL": url, "REINTEGRA_API_TOKEN": "rgt_abc"})
    assert result.exit_code == 1 and result.stderr.strip() == "error: http_502: the review API answered HTTP 502"


def test_cli_usage_errors_exit_2(canned, tmp_path: Path) -> None:
    url, handler = canned
    result = _invoke(["review", "list"], {"REINTEGRA_REVIEW_API_URL": url, "REINTEGRA_API_TOKEN": ""})
    assert result.exit_code == 2 and "REINTEGRA_API_TOKEN" in result.stderr and not handler.seen
    result = _invoke(["review", "approve", "C-1"], {"REINTEGRA_REVIEW_API_URL": url, "REINTEGRA_API_TOKEN": "t"})
    assert result.exit_code == 2 and "--comment" in result.output + result.stderr
    result = _invoke(["review", "list"], {"REINTEGRA_REVIEW_API_URL": "", "REINTEGRA_STATE_DIR": str(tmp_path),
                                          "REINTEGRA_API_TOKEN": "t"})
    assert result.exit_code == 2 and "reintegra up" in result.stderr


def test_cli_lists_and_acts(canned) -> None:
    url, handler = canned
    env = {"REINTEGRA_REVIEW_API_URL": url, "REINTEGRA_API_TOKEN": "rgt_abc"}
    handler.answer = (200, json.dumps({"reviews": [SAMPLE_REVIEW]}).encode(), "application/json")
    result = _invoke(["review", "list", "--status", "awaiting_second_approval"], env)
    assert result.exit_code == 0, result.output
    assert "MA-[bold]1" in result.stdout and "1 review(s)." in result.stdout
    assert handler.seen[-1][1] == "/v1/reviews?limit=100&status=awaiting_second_approval"

    handler.answer = (200, json.dumps(SAMPLE_REVIEW).encode(), "application/json")
    result = _invoke(["review", "approve", "MA-[bold]1", "-m", "fine"], env)
    assert result.exit_code == 0, result.output
    assert "a second, different reviewer must confirm" in result.stdout

    handler.answer = (200, json.dumps({"reviews": []}).encode(), "application/json")
    result = _invoke(["review", "list"], env)
    assert result.exit_code == 0 and "No reviews open or awaiting a second approval." in result.stdout


# =========================================================================== end to end
async def make_user(database_url: str, username: str, roles: list[str], upstream_ids: tuple[str, ...] = ()) -> str:
    """A user with these roles and an API token (returned); the review API created the auth schema."""
    from reintegra.auth import create_user, issue_api_token

    conn = await asyncpg.connect(database_url)
    try:
        await create_user(conn, username, roles, upstream_ids=upstream_ids)
        return (await issue_api_token(conn, username, "e2e")).token
    finally:
        await conn.close()


async def call(base_url: str, method: str, path: str, token: str | None = None, body: object = None,
               raw: bytes | None = None) -> tuple[int, dict, dict]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as http_session:
        kwargs = {"json": body} if body is not None else {"data": raw} if raw is not None else {}
        async with http_session.request(method, base_url + path, headers=headers, **kwargs) as response:
            return response.status, await response.json(content_type=None), dict(response.headers)


async def wait_for_review(base_url: str, token: str, case_id: str, timeout_s: float = REVIEW_TIMEOUT_S) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        status, review, _ = await call(base_url, "GET", f"/v1/reviews/{case_id}", token)
        if status == 200:
            return review
        assert status == 404, (status, review)
        assert time.monotonic() < deadline, f"no review for {case_id} after {timeout_s} s"
        await asyncio.sleep(0.3)


@pytest.fixture(scope="module")
async def people(stack) -> dict[str, str]:
    """Tokens of: two reviewers, the plan's author as a reviewer, a finance viewer, an admin only."""
    suffix = os.urandom(3).hex()
    spec = {
        "reviewer_a": (["reviewer"], ()),
        "reviewer_b": (["reviewer"], ()),
        "author": (["reviewer"], (PLAN_AUTHOR,)),
        "finance": (["finance_viewer"], ()),
        "admin": (["admin"], ()),
    }
    tokens = {}
    for who, (roles, upstream_ids) in spec.items():
        tokens[who] = await make_user(stack.database_url, f"{who.replace('_', '-')}-{suffix}", roles, upstream_ids)
    return tokens


async def test_every_route_needs_the_reviewer_role(stack, people) -> None:
    url = stack.review_api_url
    assert url and (await call(url, "GET", "/healthz"))[0] == 200
    for method, path in (("GET", "/v1/reviews"), ("GET", "/v1/reviews/C-1"), ("POST", "/v1/reviews/C-1/approve"),
                         ("POST", "/v1/reviews/C-1/reject")):
        comment = {"comment": "x"} if method == "POST" else None
        status, body, headers = await call(url, method, path, body=comment)
        assert (status, body["error"]["code"]) == (401, "unauthenticated"), (method, path)
        assert headers.get("WWW-Authenticate") == "Bearer"
        status, body, _ = await call(url, method, path, "rgt_not-a-real-token", comment)
        assert status == 401, (method, path)
        for who in ("finance", "admin"):
            status, body, _ = await call(url, method, path, people[who], comment)
            assert (status, body["error"]["code"]) == (403, "forbidden"), (who, method, path)
    status, body, _ = await call(url, "GET", "/v1/reviews", people["reviewer_a"])
    assert status == 200 and isinstance(body["reviews"], list)
    status, body, _ = await call(url, "GET", "/v1/reviews/NO-SUCH-CASE", people["reviewer_a"])
    assert (status, body["error"]["code"]) == (404, "no_such_review")
    status, body, _ = await call(url, "POST", "/v1/reviews/NO-SUCH-CASE/approve", people["reviewer_a"],
                                 {"comment": "x"})
    assert (status, body["error"]["code"]) == (404, "no_such_review")
    status, body, _ = await call(url, "GET", "/v1/reviews?status=bogus", people["reviewer_a"])
    assert status == 422 and "bogus" not in json.dumps(body)


async def test_one_reviewer_approves_below_the_threshold_and_the_grant_is_paid(stack, people, run_id) -> None:
    url, case_id = stack.review_api_url, f"REV1-{run_id}"
    watcher = await watch(stack.bootstrap_servers, case_id, {case_id: "grant.completed"})
    try:
        await publish(stack.bootstrap_servers, held_case_records(case_id))  # 300 + 1,200 = 1,500 EUR
        review = await wait_for_review(url, people["reviewer_a"], case_id)
        assert review["status"] == "open" and review["second_approval_needed"] is False
        assert [(r["code"], r["field"]) for r in review["reasons"]] == [("vulnerability_review", "vulnerabilities")]
        assert "unaccompanied_minor" in review["reasons"][0]["message"]
        assert review["plan_total"] == {"amount": "1500.00", "currency": "EUR"}
        assert "Test Person" not in json.dumps(review) and "+2250701020304" not in json.dumps(review)
        listed = (await call(url, "GET", "/v1/reviews?status=open", people["reviewer_b"]))[1]["reviews"]
        assert case_id in {r["case_id"] for r in listed}

        # the caseworker who approved the plan upstream may hold the reviewer role: still refused
        status, body, _ = await call(url, "POST", f"/v1/reviews/{case_id}/approve", people["author"],
                                     {"comment": "my own plan"})
        assert (status, body["error"]["code"]) == (403, "reviewer_is_plan_author")

        comment = "Best-interests check done with Mme Koné, guardian"
        status, review, _ = await call(url, "POST", f"/v1/reviews/{case_id}/approve", people["reviewer_a"],
                                       {"comment": f"  {comment}  "})
        assert status == 200, review
        assert review["status"] == "approved"
        assert [(a["action"], a["outcome"], a["comment"]) for a in review["actions"]] == [
            ("approve", "approved", comment)]

        assert await watcher.wait_until(lambda: watcher.observed.status_counts[case_id]["eligibility.approved"], 30), (
            dict(watcher.observed.status_counts[case_id]))
        await publish(stack.bootstrap_servers, inkind_completion_records(case_id))
        assert await watcher.wait_until(lambda: watcher.settled_count() == 1, PAID_TIMEOUT_S), (
            watcher.observed.last_status)
    finally:
        await watcher.stop()
    assert watcher.observed.paid() == {"XOF": "196787"}  # 300 EUR to a wallet in Côte d'Ivoire
    assert watcher.observed.status_counts[case_id]["eligibility.review_required"] == 1

    status, body, _ = await call(url, "POST", f"/v1/reviews/{case_id}/reject", people["reviewer_b"],
                                 {"comment": "too late"})
    assert (status, body["error"]["code"]) == (409, "review_closed")
    log = stack.review_api.log_file.read_text(encoding="utf-8")
    assert f"case_id={case_id} action=approve outcome=approved" in log
    assert f"case_id={case_id} action=approve outcome=reviewer_is_plan_author" in log
    assert "Koné" not in log, "a reviewer's comment must not reach the log"


async def test_above_the_threshold_a_second_different_reviewer_confirms(stack, people, run_id) -> None:
    url, case_id = stack.review_api_url, f"REV2-{run_id}"
    watcher = await watch(stack.bootstrap_servers, case_id, {case_id: "grant.completed"})
    try:
        await publish(stack.bootstrap_servers, held_case_records(case_id, cash_amount="400.00",
                                                                 inkind_amount="1400.00"))  # 1,800 EUR
        review = await wait_for_review(url, people["reviewer_a"], case_id)
        assert review["second_approval_needed"] is True

        status, review, _ = await call(url, "POST", f"/v1/reviews/{case_id}/approve", people["reviewer_a"],
                                       {"comment": "checked"})
        assert (status, review["status"]) == (200, "awaiting_second_approval"), review
        awaiting = (await call(url, "GET", "/v1/reviews", people["reviewer_b"]))[1]["reviews"]
        assert {r["case_id"]: r["status"] for r in awaiting}.get(case_id) == "awaiting_second_approval"

        status, body, _ = await call(url, "POST", f"/v1/reviews/{case_id}/approve", people["reviewer_a"],
                                     {"comment": "again"})
        assert (status, body["error"]["code"]) == (403, "same_reviewer_twice")
        status, body, _ = await call(url, "POST", f"/v1/reviews/{case_id}/approve", people["author"],
                                     {"comment": "mine"})
        assert (status, body["error"]["code"]) == (403, "reviewer_is_plan_author")
        await watcher.wait_until(lambda: False, 1.5)  # nothing may flow on after one approval
        assert watcher.observed.status_counts[case_id]["eligibility.approved"] == 0

        status, review, _ = await call(url, "POST", f"/v1/reviews/{case_id}/approve", people["reviewer_b"],
                                       {"comment": "confirmed"})
        assert (status, review["status"]) == (200, "approved"), review
        assert [a["outcome"] for a in review["actions"]] == ["awaiting_second_approval", "approved"]
        assert len({a["actor"] for a in review["actions"]}) == 2

        assert await watcher.wait_until(lambda: watcher.observed.status_counts[case_id]["eligibility.approved"], 30)
        await publish(stack.bootstrap_servers, inkind_completion_records(case_id, "1400.00"))
        assert await watcher.wait_until(lambda: watcher.settled_count() == 1, PAID_TIMEOUT_S), (
            watcher.observed.last_status)
    finally:
        await watcher.stop()
    assert watcher.observed.paid() == {"XOF": "262383"}  # 400 EUR × 655.957 = 262,382.8
    assert watcher.observed.status_counts[case_id]["eligibility.approved"] == 1


async def test_reject_needs_a_comment_and_rejects(stack, people, run_id) -> None:
    url, case_id = stack.review_api_url, f"REV3-{run_id}"
    watcher = await watch(stack.bootstrap_servers, case_id, {case_id: "eligibility.rejected"})
    try:
        await publish(stack.bootstrap_servers, held_case_records(case_id))
        await wait_for_review(url, people["reviewer_a"], case_id)
        path = f"/v1/reviews/{case_id}/reject"
        for body, raw in (({"comment": "   "}, None), ({}, None), ({"comment": "x", "amount": "9"}, None),
                          ({"comment": "x" * 2001}, None), (None, b"{not json"), (None, b"")):
            status, answer, _ = await call(url, "POST", path, people["reviewer_a"], body, raw)
            assert (status, answer["error"]["code"]) == (422, "invalid_request"), (body, raw, answer)
            assert "x" * 50 not in json.dumps(answer), "an error must not echo the body"

        status, review, _ = await call(url, "POST", path, people["reviewer_a"],
                                       {"comment": "the plan does not match the family's needs"})
        assert (status, review["status"]) == (200, "rejected"), review
        assert await watcher.wait_until(lambda: watcher.settled_count() == 1, 30), watcher.observed.last_status
        status, body, _ = await call(url, "POST", f"/v1/reviews/{case_id}/approve", people["reviewer_b"],
                                     {"comment": "overrule"})
        assert (status, body["error"]["code"]) == (409, "review_closed")
        rejected = (await call(url, "GET", "/v1/reviews?status=rejected", people["reviewer_b"]))[1]["reviews"]
        assert case_id in {r["case_id"] for r in rejected}
    finally:
        await watcher.stop()
    assert watcher.observed.status_counts[case_id]["eligibility.approved"] == 0


def _cli(stack, token: str | None, *args: str) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("reintegra")
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "reintegra_stack.cli"]
    env = {k: v for k, v in os.environ.items() if k != "REINTEGRA_API_TOKEN"}
    env.update(REINTEGRA_REVIEW_API_URL=stack.review_api_url, COLUMNS="200")
    if token is not None:
        env["REINTEGRA_API_TOKEN"] = token
    return subprocess.run([*argv, "review", *args], env=env, capture_output=True, text=True, timeout=60)


async def test_the_cli_cannot_bypass_four_eyes(stack, people, run_id) -> None:
    url, case_id = stack.review_api_url, f"REV4-{run_id}"
    await publish(stack.bootstrap_servers, held_case_records(case_id, cash_amount="400.00", inkind_amount="1400.00"))
    await wait_for_review(url, people["reviewer_a"], case_id)

    def cli(token, *args):
        return asyncio.to_thread(_cli, stack, token, *args)

    listed = await cli(people["reviewer_a"], "list", "--status", "open")
    assert listed.returncode == 0 and case_id in listed.stdout, listed.stderr
    shown = await cli(people["reviewer_a"], "show", case_id)
    assert shown.returncode == 0 and "vulnerability_review" in shown.stdout and PLAN_AUTHOR in shown.stdout

    no_token = await cli(None, "list")
    assert no_token.returncode == 2 and "REINTEGRA_API_TOKEN" in no_token.stderr
    viewer = await cli(people["finance"], "list")
    assert viewer.returncode == 1 and viewer.stderr.startswith("error: forbidden:"), viewer.stderr

    author = await cli(people["author"], "approve", case_id, "--comment", "my plan")
    assert author.returncode == 1 and author.stderr.startswith("error: reviewer_is_plan_author:"), author.stderr
    assert "Traceback" not in author.stderr
    first = await cli(people["reviewer_a"], "approve", case_id, "--comment", "checked")
    assert first.returncode == 0 and "second, different reviewer" in first.stdout, first.stderr
    again = await cli(people["reviewer_a"], "approve", case_id, "--comment", "checked again")
    assert again.returncode == 1 and again.stderr.startswith("error: same_reviewer_twice:"), again.stderr
    second = await cli(people["reviewer_b"], "approve", case_id, "--comment", "confirmed")
    assert second.returncode == 0 and "approved: the grant goes on" in second.stdout, second.stderr
    closed = await cli(people["reviewer_b"], "reject", case_id, "--comment", "changed my mind")
    assert closed.returncode == 1 and closed.stderr.startswith("error: review_closed:"), closed.stderr


async def test_the_review_api_restarts_on_its_port(stack, people) -> None:
    url, first_pid = stack.review_api_url, stack.review_api.pid
    await asyncio.to_thread(stack.restart_service, "review-api")
    assert stack.review_api.alive() and stack.review_api.pid != first_pid
    assert stack.review_api_url == url
    status, body, _ = await call(url, "GET", "/v1/reviews", people["reviewer_a"])
    assert status == 200, body


async def test_the_review_api_waits_for_the_eligibility_schema(infra, tmp_path: Path) -> None:
    """Started before the eligibility service migrated its database, it waits instead of crashing."""
    from urllib.parse import urlsplit, urlunsplit

    from reintegra.db import apply_migrations
    from reintegra_stack._proc import free_port

    database = f"review_wait_{os.urandom(4).hex()}"
    admin = await asyncpg.connect(infra.database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{database}"')
    finally:
        await admin.close()
    database_url = urlunsplit(urlsplit(infra.database_url)._replace(path=f"/{database}"))
    port = free_port()
    log_file = tmp_path / "review-api.log"
    env = {**os.environ, "DATABASE_URL": database_url, "PYTHONUNBUFFERED": "1"}
    with open(log_file, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "eligibility.review_api", "--port", str(port)],
                                   env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        async def healthy() -> bool:
            try:
                return (await call(f"http://127.0.0.1:{port}", "GET", "/healthz"))[0] == 200
            except aiohttp.ClientError:
                return False

        deadline = time.monotonic() + 30
        while "waiting for eligibility.reviews" not in log_file.read_text():
            assert process.poll() is None, log_file.read_text()
            assert time.monotonic() < deadline, log_file.read_text()
            await asyncio.sleep(0.2)
        assert not await healthy()

        migrations = Path(__file__).resolve().parents[2] / "services" / "eligibility" / "eligibility" / "migrations"
        await asyncio.to_thread(apply_migrations, database_url, "eligibility", migrations)
        deadline = time.monotonic() + 30
        while not await healthy():
            assert process.poll() is None, log_file.read_text()
            assert time.monotonic() < deadline, log_file.read_text()
            await asyncio.sleep(0.2)
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    # uvicorn shuts down gracefully, then re-raises SIGTERM to exit with it
    assert process.returncode in (0, -15) and "Application shutdown complete" in log_file.read_text()
