"""Login throttling kept in Postgres: per username and per client IP, shared by two console
instances, the same answer for an unknown user as for a wrong password, audited without the
password (nor in the log)."""

# ruff: noqa: F811 - the support module's fixtures are imported, then named as parameters

from __future__ import annotations

import logging
import re

import pytest
from test_finance_web_support import (
    PASSWORD,
    audit_rows,
    console_client,
    console_db,  # noqa: F401 - fixture
    execute,
    make_user,
    rows,
    sign_in,
    unique,
)

WRONG = "not the password at all"


def _message(html: str) -> str:
    start = html.index('role="alert">') + len('role="alert">')
    return html[start:html.index("</p>", start)]


def test_five_failures_lock_the_username_even_for_the_right_password(console_db, tmp_path, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    user = unique("viewer")
    make_user(console_db, user, ["finance_viewer"])
    with console_client(console_db, tmp_path) as client:
        for _ in range(5):
            answer = sign_in(client, user, WRONG)
            assert answer.status_code == 401 and _message(answer.text) == "Wrong username or password."
        answer = sign_in(client, user, PASSWORD)
        assert answer.status_code == 429 and "Too many failed attempts. Try again in 15 min." in answer.text
        assert "reintegra_console_session" not in client.cookies
        # Another spelling of the same username is the same username.
        assert sign_in(client, user.upper(), PASSWORD).status_code == 429

    audited = audit_rows(console_db, action="POST /login", actor=user.lower())
    assert [r["outcome"] for r in audited] == ["refused"] * 5 + ["throttled"] * 2
    assert all(r["remote"] == "testclient" for r in audited)
    every_row = rows(console_db, "SELECT actor, detail::text AS detail FROM auth.audit")
    assert not any(WRONG in str(r) or PASSWORD in str(r) for r in every_row)
    assert WRONG not in caplog.text and PASSWORD not in caplog.text

    # The lock ends lockout_s after the failure that completed the five.
    execute(console_db, "UPDATE finance.login_attempts SET at = at - interval '16 minutes' WHERE username_key = %s",
            user.lower())
    with console_client(console_db, tmp_path) as client:
        assert sign_in(client, user, PASSWORD).status_code == 303


def test_an_unknown_user_gets_the_same_answer_and_the_same_lock(console_db, tmp_path) -> None:
    known, unknown = unique("viewer"), unique("nobody")
    make_user(console_db, known, ["finance_viewer"])
    with console_client(console_db, tmp_path) as client:
        wrong_password = sign_in(client, known, WRONG)
        no_such_user = sign_in(client, unknown, WRONG)
        assert wrong_password.status_code == no_such_user.status_code == 401
        assert _message(wrong_password.text) == _message(no_such_user.text) == "Wrong username or password."
        assert _without(wrong_password.text, known) == _without(no_such_user.text, unknown)
        for _ in range(4):
            sign_in(client, unknown, WRONG)
        assert sign_in(client, unknown, WRONG).status_code == 429


def _without(html: str, username: str) -> str:
    """The page minus what differs by design: the username typed and the CSRF token."""
    return re.sub(r'value="[^"]{40,}"', "", html.replace(username, "U"))


def test_two_console_instances_share_the_count(console_db, tmp_path) -> None:
    user = unique("viewer")
    make_user(console_db, user, ["finance_viewer"])
    with console_client(console_db, tmp_path) as first, console_client(console_db, tmp_path) as second:
        for client in (first, second, first, second, first):
            assert sign_in(client, user, WRONG).status_code == 401
        assert sign_in(second, user, PASSWORD).status_code == 429
        assert sign_in(first, user, PASSWORD).status_code == 429


def test_a_success_clears_the_username_count_but_not_the_ip_count(console_db, tmp_path) -> None:
    user = unique("viewer")
    make_user(console_db, user, ["finance_viewer"])
    with console_client(console_db, tmp_path, login_max_failures_per_ip=6) as client:
        for _ in range(4):
            sign_in(client, user, WRONG)
        assert sign_in(client, user, PASSWORD).status_code == 303
        client.cookies.clear()
        for _ in range(2):  # 4 + 2 failures from this IP since the window began
            assert sign_in(client, user, WRONG).status_code == 401
        answer = sign_in(client, unique("other"), WRONG)
        assert answer.status_code == 429
    [last] = audit_rows(console_db, action="POST /login", outcome="throttled")[-1:]
    assert '"locked_by": "ip"' in last["detail"]


@pytest.fixture(autouse=True)
def _fresh_ip_counts(console_db) -> None:
    """Every test here signs in from TestClient's one address: each starts with a clean count."""
    execute(console_db, "DELETE FROM finance.login_attempts")
