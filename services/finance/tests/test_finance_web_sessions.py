"""Console sessions against a real Postgres: the cookie, rotation at sign-in, sign-out, idle and
absolute expiry, a disabled user shut out at once, and the reviewer's review API token."""

# ruff: noqa: F811 - the support module's fixtures are imported, then named as parameters

from __future__ import annotations

import pytest
from test_finance_web_support import (
    PASSWORD,
    console_client,
    console_db,  # noqa: F401 - fixture
    execute,
    make_user,
    rows,
    sign_in,
    signed_in,
    unique,
)

COOKIE = "reintegra_console_session"


def set_cookie(client, value: str) -> None:
    """Replaces the browser's session cookie (what a planted or replayed cookie looks like)."""
    client.cookies.clear()
    client.cookies.set(COOKIE, value, domain="127.0.0.1", path="/")


@pytest.fixture
def client(console_db, tmp_path):
    with console_client(console_db, tmp_path) as client:
        yield client


def _session_rows(database_url: str, username: str) -> list[dict]:
    return rows(database_url, """SELECT s.* FROM finance.console_sessions s JOIN auth.users u ON u.id = s.user_id
                                 WHERE u.username = %s""", username)


def test_sign_in_sets_a_signed_httponly_strict_cookie_and_keeps_only_a_hash(client, console_db) -> None:
    user = unique("viewer")
    make_user(console_db, user, ["finance_viewer"])
    answer = sign_in(client, user, next_path="/users?x=1")
    assert answer.status_code == 303 and answer.headers["location"] == "/users?x=1"
    header = next(v for k, v in answer.headers.multi_items() if k == "set-cookie" and v.startswith(COOKIE))
    attributes = {part.strip().split("=")[0].lower() for part in header.split(";")[1:]}
    assert {"httponly", "path", "samesite"} <= attributes and "samesite=strict" in header.lower()
    assert "max-age" not in attributes and "expires" not in attributes  # gone when the browser closes
    assert "secure" not in attributes  # loopback: plain http

    value = client.cookies[COOKIE]
    [row] = _session_rows(console_db, user)
    assert row["id_hash"] not in value and len(row["id_hash"]) == 64
    assert row["review_token_id"] is None  # not a reviewer
    assert (row["expires_at"] - row["created_at"]).total_seconds() == pytest.approx(12 * 3600, abs=5)

    set_cookie(client, value[:-2] + ("AA" if not value.endswith("AA") else "BB"))
    assert client.get("/").status_code == 303  # a tampered signature is no session


def test_signing_in_again_rotates_the_session(client, console_db) -> None:
    user = unique("viewer")
    make_user(console_db, user, ["finance_viewer"])
    token = signed_in(client, user)
    first_cookie, [first] = client.cookies[COOKIE], _session_rows(console_db, user)
    answer = client.post("/login", data={"username": user, "password": PASSWORD, "csrf_token": token})
    assert answer.status_code == 303
    [second] = _session_rows(console_db, user)  # the old row is gone, a new id took its place
    assert second["id_hash"] != first["id_hash"] and client.cookies[COOKIE] != first_cookie

    # A cookie planted or left over in the browser never becomes the signed-in session.
    set_cookie(client, first_cookie)
    assert sign_in(client, user).status_code == 303
    assert client.cookies[COOKIE] not in (first_cookie, second["id_hash"])
    assert len(_session_rows(console_db, user)) == 2  # this browser's and the previous one's


def test_sign_out_deletes_the_session(client, console_db) -> None:
    user = unique("viewer")
    make_user(console_db, user, ["finance_viewer"])
    token = signed_in(client, user)
    cookie = client.cookies[COOKIE]
    answer = client.post("/logout", data={"csrf_token": token})
    assert answer.status_code == 303 and answer.headers["location"] == "/login"
    assert COOKIE not in client.cookies
    assert _session_rows(console_db, user) == []
    assert "You are signed out." in client.get("/login").text
    set_cookie(client, cookie)  # replaying the old cookie
    assert client.get("/").status_code == 303


@pytest.mark.parametrize("column, age", [("last_seen_at", "31 minutes"), ("created_at", "13 hours")])
def test_idle_and_absolute_expiry(client, console_db, column, age) -> None:
    user = unique("viewer")
    make_user(console_db, user, ["finance_viewer"])
    signed_in(client, user)
    if column == "created_at":  # the absolute end, however active the session
        execute(console_db, """UPDATE finance.console_sessions SET expires_at = now() - interval '1 minute'
                               WHERE user_id = (SELECT id FROM auth.users WHERE username = %s)""", user)
    else:
        execute(console_db, f"""UPDATE finance.console_sessions SET last_seen_at = now() - interval '{age}'
                                WHERE user_id = (SELECT id FROM auth.users WHERE username = %s)""", user)
    answer = client.get("/users")
    assert answer.status_code == 303 and answer.headers["location"] == "/login?next=/users"
    assert _session_rows(console_db, user) == []


def test_activity_keeps_a_session_alive(client, console_db) -> None:
    user = unique("viewer")
    make_user(console_db, user, ["finance_viewer"])
    signed_in(client, user)
    execute(console_db, """UPDATE finance.console_sessions SET last_seen_at = now() - interval '29 minutes'
                           WHERE user_id = (SELECT id FROM auth.users WHERE username = %s)""", user)
    assert client.get("/").status_code == 200
    [row] = _session_rows(console_db, user)
    assert row["last_seen_at"] > row["created_at"]


def test_a_disabled_user_is_out_at_once(client, console_db) -> None:
    user = unique("viewer")
    make_user(console_db, user, ["finance_viewer"])
    signed_in(client, user)
    execute(console_db, "UPDATE auth.users SET disabled = true WHERE username = %s", user)
    assert client.get("/").status_code == 303
    assert _session_rows(console_db, user) == []


def test_a_reviewer_gets_a_sealed_review_token_revoked_at_sign_out(client, console_db) -> None:
    user = unique("reviewer")
    make_user(console_db, user, ["reviewer"])
    token = signed_in(client, user)
    [row] = _session_rows(console_db, user)
    [issued] = rows(console_db, "SELECT name, revoked_at, token_hash FROM auth.api_tokens WHERE id = %s",
                    row["review_token_id"])
    assert issued["name"] == "console session" and issued["revoked_at"] is None
    assert b"rgt_" not in bytes(row["review_token_sealed"])  # not readable from the table

    client.post("/logout", data={"csrf_token": token})
    [issued] = rows(console_db, "SELECT revoked_at FROM auth.api_tokens WHERE id = %s", row["review_token_id"])
    assert issued["revoked_at"] is not None


def test_the_sweep_ends_expired_sessions_and_revokes_their_tokens(client, console_db) -> None:
    user = unique("reviewer")
    make_user(console_db, user, ["reviewer"])
    signed_in(client, user)
    [row] = _session_rows(console_db, user)
    execute(console_db, "UPDATE finance.console_sessions SET last_seen_at = now() - interval '2 hours' "
                        "WHERE id_hash = %s", row["id_hash"])
    runtime = client.app.state.console
    ended = client.portal.call(runtime.sessions.sweep)
    assert ended >= 1 and _session_rows(console_db, user) == []
    [issued] = rows(console_db, "SELECT revoked_at FROM auth.api_tokens WHERE id = %s", row["review_token_id"])
    assert issued["revoked_at"] is not None


def test_sealing_round_trip_and_tampering() -> None:
    from finance.web.sealing import seal, unseal

    key, other = b"k" * 32, b"o" * 32
    sealed = seal(key, "rgt_secret-token")
    assert unseal(key, sealed) == "rgt_secret-token"
    assert unseal(other, sealed) is None
    assert unseal(key, sealed[:-1] + bytes([sealed[-1] ^ 1])) is None
    assert unseal(key, None) is None
