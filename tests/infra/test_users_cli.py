"""``reintegra users`` as an operator runs it (a subprocess, DATABASE_URL set to the test database),
and ``reintegra_stack.database.resolve_database_url``."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import re
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest
from reintegra.auth import authenticate_token, verify_password
from reintegra_stack.database import DatabaseNotFound, resolve_database_url

TOKEN = re.compile(r"rgt_[A-Za-z0-9_-]{43}")
ACTOR = f"cli:{pwd.getpwuid(os.geteuid()).pw_name}"


def reintegra(*args: str, database_url: str | None, stdin: str | None = None,
              extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REINTEGRA_STATE_DIR")}
    env.update(COLUMNS="400", NO_COLOR="1", TERM="dumb", **(extra_env or {}))
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    return subprocess.run([sys.executable, "-m", "reintegra_stack.cli", *args], input=stdin,
                          capture_output=True, text=True, env=env, timeout=120)


def assert_refused(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("error: ")
    for word in words:
        assert word in result.stderr, result.stderr


async def fetch(database_url: str, sql: str, *args) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def with_conn(database_url: str, work):
    conn = await asyncpg.connect(database_url)
    try:
        return await work(conn)
    finally:
        await conn.close()


@pytest.fixture
def username() -> str:
    return f"cli-{uuid.uuid4().hex[:10]}"


async def test_add_with_a_token_prints_it_once_and_it_works(infra, username) -> None:
    db = infra.database_url
    added = reintegra("users", "add", username, "--role", "reviewer", "--role", "finance_viewer",
                      "--display-name", "Karima Benali", "--upstream-id", f"caseworker:{username}",
                      "--token", "laptop", database_url=db)
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip()
    assert TOKEN.fullmatch(token), added.stdout  # the token is the only thing on stdout
    assert "shown only this once" in added.stderr and "added user" in added.stderr

    principal = await with_conn(db, lambda conn: authenticate_token(conn, token))
    assert principal is not None and principal.username == username
    assert principal.roles == {"reviewer", "finance_viewer"} and principal.display_name == "Karima Benali"
    assert principal.is_same_person(f"caseworker:{username}")

    listed = reintegra("users", "list", database_url=db)
    assert listed.returncode == 0, listed.stderr
    [user_line] = [line for line in listed.stdout.splitlines() if username in line and "Karima" in line]
    assert "finance_viewer, reviewer" in user_line and f"caseworker:{username}" in user_line
    assert any(username in line and "laptop" in line and "active" in line for line in listed.stdout.splitlines())
    assert not TOKEN.search(listed.stdout)

    rows = await fetch(db, "SELECT actor, outcome, detail FROM auth.audit WHERE action = 'users.add' "
                           "AND detail->>'username' = $1", username)
    assert [(r["actor"], r["outcome"]) for r in rows] == [(ACTOR, "ok")]
    assert json.loads(rows[0]["detail"])["token_name"] == "laptop"
    leaked = await fetch(db, "SELECT 1 FROM auth.audit a WHERE strpos(row_to_json(a)::text, $1) > 0 UNION ALL "
                             "SELECT 1 FROM auth.api_tokens t WHERE strpos(row_to_json(t)::text, $1) > 0", token)
    assert leaked == []


async def test_duplicate_user_is_refused_with_exit_2_and_audited(infra, username) -> None:
    db = infra.database_url
    assert reintegra("users", "add", username, "--role", "reviewer", database_url=db).returncode == 0
    again = reintegra("users", "add", username.upper(), "--role", "admin", database_url=db)
    assert_refused(again, "already exists")
    rows = await fetch(db, "SELECT outcome FROM auth.audit WHERE action = 'users.add' "
                           "AND lower(detail->>'username') = $1 ORDER BY id", username)
    assert [r["outcome"] for r in rows] == ["ok", "refused"]


def test_bad_input_is_refused_with_one_line_and_exit_2(infra, username) -> None:
    db = infra.database_url
    assert_refused(reintegra("users", "add", username, "--role", "approver", database_url=db), "unknown role",
                   "reviewer, finance_viewer, finance_approver, admin")
    assert_refused(reintegra("users", "add", username, "--role", "reviewer", "--password-stdin",
                             stdin="too short\n", database_url=db), "at least 12")
    assert_refused(reintegra("users", "add", "caseworker:x", "--role", "reviewer", database_url=db), "username")
    assert_refused(reintegra("users", "token", f"nobody-{username}", "--name", "x", database_url=db), "no user")
    assert_refused(reintegra("users", "disable", f"nobody-{username}", database_url=db), "no user")
    assert_refused(reintegra("users", "revoke-token", str(2**62), database_url=db), "no API token")


async def test_password_from_stdin(infra, username) -> None:
    db = infra.database_url
    added = reintegra("users", "add", username, "--role", "finance_approver", "--password-stdin",
                      stdin="a long enough password \n", database_url=db)
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == f"added user {username} (roles: finance_approver)"
    assert await with_conn(db, lambda c: verify_password(c, username, "a long enough password ")) is not None
    assert await with_conn(db, lambda c: verify_password(c, username, "a long enough password")) is None


async def test_token_revoke_and_disable(infra, username) -> None:
    db = infra.database_url
    assert reintegra("users", "add", username, "--role", "reviewer", database_url=db).returncode == 0
    issued = reintegra("users", "token", username, "--name", "nightly export", database_url=db)
    assert issued.returncode == 0, issued.stderr
    token = issued.stdout.strip()
    assert TOKEN.fullmatch(token)
    token_id = re.search(r"API token (\d+) ", issued.stderr).group(1)
    assert await with_conn(db, lambda c: authenticate_token(c, token)) is not None

    revoked = reintegra("users", "revoke-token", token_id, database_url=db)
    assert revoked.returncode == 0, revoked.stderr
    assert f"revoked API token {token_id}" in revoked.stdout
    assert await with_conn(db, lambda c: authenticate_token(c, token)) is None

    second = reintegra("users", "token", username, "--name", "second", database_url=db).stdout.strip()
    assert await with_conn(db, lambda c: authenticate_token(c, second)) is not None
    disabled = reintegra("users", "disable", username, database_url=db)
    assert disabled.returncode == 0 and f"disabled user {username}" in disabled.stdout
    assert await with_conn(db, lambda c: authenticate_token(c, second)) is None
    assert_refused(reintegra("users", "token", username, "--name", "third", database_url=db), "disabled")

    rows = await fetch(db, "SELECT action, outcome, actor FROM auth.audit WHERE detail->>'username' = $1 "
                           "OR detail->>'token_id' = $2 ORDER BY id", username, token_id)
    assert [(r["action"], r["outcome"]) for r in rows] == [
        ("users.add", "ok"), ("users.token", "ok"), ("users.revoke_token", "ok"), ("users.token", "ok"),
        ("users.disable", "ok"), ("users.token", "refused")]
    assert {r["actor"] for r in rows} == {ACTOR}


def test_without_any_database_it_says_so(tmp_path) -> None:
    result = reintegra("users", "list", database_url=None, extra_env={"REINTEGRA_STATE_DIR": str(tmp_path)})
    assert_refused(result, "DATABASE_URL", "reintegra up")


# --------------------------------------------------------------------------- resolve_database_url


def write_ports(state_dir: Path, port: int) -> None:
    (state_dir / "postgres").mkdir(parents=True)
    (state_dir / "postgres" / "ports.json").write_text(json.dumps({"postgres": port}))


def test_database_url_wins() -> None:
    assert resolve_database_url(environ={"DATABASE_URL": " postgresql://u@h/db "}) == "postgresql://u@h/db"


def test_no_state_dir_is_explained(tmp_path) -> None:
    with pytest.raises(DatabaseNotFound, match="DATABASE_URL is not set and there is no local stack"):
        resolve_database_url(environ={"REINTEGRA_STATE_DIR": str(tmp_path / "none")})


def test_stopped_local_stack_is_explained(tmp_path) -> None:
    with socket.socket() as s:  # a port nothing listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    write_ports(tmp_path, port)
    with pytest.raises(DatabaseNotFound, match=f"port {port}.*not running"):
        resolve_database_url(environ={"REINTEGRA_STATE_DIR": str(tmp_path)})


def test_running_local_stack_is_found(tmp_path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        write_ports(tmp_path, port)
        expected = f"postgresql://postgres@127.0.0.1:{port}/reintegra"
        assert resolve_database_url(environ={"REINTEGRA_STATE_DIR": str(tmp_path)}) == expected
        assert resolve_database_url(tmp_path, environ={"REINTEGRA_STATE_DIR": "/elsewhere"}) == expected


async def test_the_embedded_postgres_of_a_state_dir_is_found(infra) -> None:
    """The session's embedded Postgres was started under infra.state_dir, as `reintegra up` does."""
    if not (infra.state_dir / "postgres" / "ports.json").exists():
        pytest.skip("DATABASE_URL was given: no embedded Postgres in this session")
    url = resolve_database_url(environ={"REINTEGRA_STATE_DIR": str(infra.state_dir)})
    assert await asyncio.wait_for(with_conn(url, lambda c: c.fetchval("SELECT 1")), 10) == 1
