"""reintegra.auth against the real Postgres, and its FastAPI dependency over real HTTP (uvicorn)."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
import uvicorn
from argon2 import PasswordHasher
from fastapi import Depends, FastAPI
from reintegra.auth import (
    ADMIN,
    FINANCE_APPROVER,
    FINANCE_VIEWER,
    REVIEWER,
    DuplicateUserError,
    PasswordRuleError,
    Principal,
    UnknownRoleError,
    UnknownTokenError,
    UnknownUserError,
    UserDisabledError,
    apply_auth_migrations,
    apply_auth_migrations_blocking,
    authenticate_token,
    create_user,
    disable_user,
    issue_api_token,
    issue_token,
    list_users,
    record_audit,
    revoke_token,
    verify_password,
)
from reintegra.auth.http import add_auth_error_handler, require_roles
from reintegra.auth.passwords import HASHER
from reintegra.auth.tokens import token_hash
from reintegra.db import create_pool

PASSWORD = "correct horse battery staple"


def unique(prefix: str) -> str:
    """Usernames no other test of the session uses (audit rows are append-only, users stay)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
async def pool(infra) -> AsyncIterator[asyncpg.Pool]:
    await apply_auth_migrations(infra.database_url)
    # Another schema as search_path, as the callers' pools have: every name must be qualified.
    pool = await create_pool(infra.database_url, "eligibility", max_size=4)
    try:
        yield pool
    finally:
        await pool.close()


async def stored_anywhere(pool: asyncpg.Pool, secret: str) -> list[str]:
    """Names of the auth tables with a row whose text contains ``secret``."""
    found = []
    for table in ("auth.users", "auth.api_tokens", "auth.audit"):
        if await pool.fetchval(f"SELECT count(*) FROM {table} AS r WHERE strpos(row_to_json(r)::text, $1) > 0", secret):
            found.append(table)
    return found


# --------------------------------------------------------------------------- migrations


async def test_migrations_are_idempotent_and_create_the_auth_tables(pool, infra) -> None:
    await apply_auth_migrations(infra.database_url)
    tables = {r["table_name"] for r in await pool.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'auth'")}
    assert {"users", "api_tokens", "audit"} <= tables


async def test_concurrent_migrations_on_a_fresh_database(infra) -> None:
    """Several programs starting at once on an empty database: one creates, the others wait."""
    name = f"auth_migrate_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(infra.database_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = infra.database_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        start = threading.Barrier(5)

        def migrate() -> None:
            start.wait(timeout=30)
            apply_auth_migrations_blocking(url)

        await asyncio.gather(*(asyncio.to_thread(migrate) for _ in range(5)))
        conn = await asyncpg.connect(url)
        try:
            applied = await conn.fetchval("SELECT count(*) FROM auth._yoyo_migration")
            tables = {r["table_name"] for r in await conn.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'auth'")}
        finally:
            await conn.close()
        assert applied == 1
        assert {"users", "api_tokens", "audit"} <= tables
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


# --------------------------------------------------------------------------- users and passwords


async def test_create_and_verify_password(pool) -> None:
    username = unique("Anna")
    user = await create_user(pool, username, [REVIEWER], password=PASSWORD, display_name="Anna K.",
                             upstream_ids=[f"caseworker:{username}", "KB-1"])
    assert user.username == username and user.display_name == "Anna K." and user.has_password
    assert user.roles == {REVIEWER} and user.upstream_ids == (f"caseworker:{username}", "KB-1")

    principal = await verify_password(pool, username.upper(), PASSWORD)  # usernames ignore case
    assert principal == Principal(user.user_id, username, "Anna K.", frozenset({REVIEWER}),
                                  frozenset({f"caseworker:{username}", "KB-1"}), "password")
    assert principal.is_same_person(f"caseworker:{username.lower()}")
    assert await verify_password(pool, username, PASSWORD + "!") is None
    assert await verify_password(pool, unique("nobody"), PASSWORD) is None
    stored = await pool.fetchval("SELECT password_hash FROM auth.users WHERE id = $1", user.user_id)
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


async def test_token_only_user_cannot_log_in_with_a_password(pool) -> None:
    username = unique("bot")
    user = await create_user(pool, username, [FINANCE_VIEWER])
    assert not user.has_password and user.display_name == username
    assert await verify_password(pool, username, PASSWORD) is None


async def test_duplicate_username_is_refused_whatever_its_case(pool) -> None:
    username = unique("dup")
    await create_user(pool, username, [REVIEWER])
    with pytest.raises(DuplicateUserError, match="already exists"):
        await create_user(pool, username.upper(), [ADMIN])


async def test_unknown_role_and_short_password_are_refused_and_nothing_is_stored(pool) -> None:
    username = unique("refused")
    with pytest.raises(UnknownRoleError, match="'approver'"):
        await create_user(pool, username, [REVIEWER, "approver"])
    with pytest.raises(PasswordRuleError, match="at least 12"):
        await create_user(pool, username, [REVIEWER], password="short")
    assert await pool.fetchval("SELECT count(*) FROM auth.users WHERE username = $1", username) == 0


async def test_the_database_refuses_unknown_roles_too(pool) -> None:
    with pytest.raises(asyncpg.CheckViolationError):
        await pool.execute("INSERT INTO auth.users (username, display_name, roles) VALUES ($1, 'x', '{superuser}')",
                           unique("direct"))


async def test_password_hash_is_upgraded_when_the_parameters_change(pool) -> None:
    username = unique("old")
    user = await create_user(pool, username, [REVIEWER])
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    await pool.execute("UPDATE auth.users SET password_hash = $2 WHERE id = $1", user.user_id, weak)
    assert await verify_password(pool, username, PASSWORD) is not None
    upgraded = await pool.fetchval("SELECT password_hash FROM auth.users WHERE id = $1", user.user_id)
    assert upgraded != weak and not HASHER.check_needs_rehash(upgraded)
    assert await verify_password(pool, username, PASSWORD) is not None


async def test_disabled_user_can_neither_log_in_nor_use_tokens(pool) -> None:
    username = unique("leaver")
    await create_user(pool, username, [REVIEWER], password=PASSWORD)
    token = await issue_token(pool, username, "laptop")
    assert await authenticate_token(pool, token) is not None
    disabled = await disable_user(pool, username.upper())
    assert disabled.disabled
    assert (await disable_user(pool, username)).disabled  # idempotent
    assert await verify_password(pool, username, PASSWORD) is None
    assert await authenticate_token(pool, token) is None
    with pytest.raises(UserDisabledError):
        await issue_token(pool, username, "another")
    with pytest.raises(UnknownUserError):
        await disable_user(pool, unique("nobody"))


# --------------------------------------------------------------------------- tokens


async def test_token_lifecycle(pool) -> None:
    username = unique("script")
    user = await create_user(pool, username, [FINANCE_VIEWER, FINANCE_APPROVER], upstream_ids=["finance:ops"])
    issued = await issue_api_token(pool, username.upper(), " nightly export ")
    assert issued.username == username and issued.name == "nightly export"
    assert issued.token not in repr(issued)

    assert await pool.fetchval("SELECT last_used_at FROM auth.api_tokens WHERE id = $1", issued.token_id) is None
    principal = await authenticate_token(pool, issued.token)
    assert principal == Principal(user.user_id, username, username, frozenset({FINANCE_VIEWER, FINANCE_APPROVER}),
                                  frozenset({"finance:ops"}), "token")
    row = await pool.fetchrow("SELECT token_hash, last_used_at FROM auth.api_tokens WHERE id = $1", issued.token_id)
    assert row["token_hash"] == token_hash(issued.token) and row["last_used_at"] is not None

    assert await authenticate_token(pool, issued.token[:-1] + ("A" if issued.token[-1] != "A" else "B")) is None
    assert await authenticate_token(pool, "") is None

    revoked = await revoke_token(pool, issued.token_id)
    assert revoked.revoked_at is not None and revoked.username == username and not revoked.active
    assert await authenticate_token(pool, issued.token) is None
    assert (await revoke_token(pool, issued.token_id)).revoked_at == revoked.revoked_at  # idempotent
    with pytest.raises(UnknownTokenError):
        await revoke_token(pool, 2**62)
    with pytest.raises(UnknownUserError):
        await issue_token(pool, unique("nobody"), "x")

    assert await stored_anywhere(pool, issued.token) == []
    assert await stored_anywhere(pool, issued.token.removeprefix("rgt_")) == []


async def test_list_users_with_their_tokens(pool) -> None:
    username = unique("listed")
    await create_user(pool, username, [REVIEWER], upstream_ids=["caseworker:listed"])
    first = await issue_api_token(pool, username, "one")
    second = await issue_api_token(pool, username, "two")
    await revoke_token(pool, first.token_id)
    [listed] = [u for u in await list_users(pool) if u.username == username]
    assert listed.upstream_ids == ("caseworker:listed",) and not listed.disabled
    assert [(t.token_id, t.name, t.active) for t in listed.tokens] == [
        (first.token_id, "one", False), (second.token_id, "two", True)]


async def test_tokens_work_inside_the_callers_transaction(pool) -> None:
    username = unique("tx")
    async with pool.acquire() as conn:
        async with conn.transaction():
            await create_user(conn, username, [REVIEWER])
            token = await issue_token(conn, username, "t")
            assert await authenticate_token(conn, token) is not None
    assert await authenticate_token(pool, token) is not None
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        rolled_back = unique("rolled-back")
        await create_user(conn, rolled_back, [REVIEWER])
        await tx.rollback()
    assert await verify_password(pool, rolled_back, PASSWORD) is None
    assert await pool.fetchval("SELECT count(*) FROM auth.users WHERE username = $1", rolled_back) == 0


# --------------------------------------------------------------------------- audit


async def test_audit_is_append_only(pool) -> None:
    marker = unique("audit")
    await record_audit(pool, marker, "test.append", "ok", {"n": 1, "nested": {"ok": True}}, "198.51.100.7")
    row = await pool.fetchrow("SELECT * FROM auth.audit WHERE actor = $1", marker)
    assert row["action"] == "test.append" and row["outcome"] == "ok" and row["remote"] == "198.51.100.7"
    assert row["detail"] == '{"n": 1, "nested": {"ok": true}}'  # no jsonb codec on this pool: raw text
    assert row["at"] is not None
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await pool.execute("UPDATE auth.audit SET outcome = 'changed' WHERE actor = $1", marker)
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await pool.execute("DELETE FROM auth.audit WHERE actor = $1", marker)
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await pool.execute("TRUNCATE auth.audit")


# --------------------------------------------------------------------------- over HTTP


@pytest.fixture(scope="module")
async def api(pool) -> AsyncIterator[httpx.AsyncClient]:
    """A tiny FastAPI app on uvicorn (a free port the OS picks), and a client for it."""
    app = FastAPI()
    add_auth_error_handler(app)

    @app.get("/reviews/{case_id}")
    async def review(case_id: str, principal: Principal = Depends(require_roles(lambda: pool, REVIEWER))) -> dict:
        return {"case_id": case_id, "username": principal.username, "via": principal.via}

    @app.get("/ledger")
    async def ledger(principal: Principal = Depends(require_roles(lambda: pool, FINANCE_VIEWER, FINANCE_APPROVER))):
        return {"username": principal.username}

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="warning",
                                           access_log=False))
    serving = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started or serving.done():
            break
        await asyncio.sleep(0.01)
    assert server.started, serving.exception() if serving.done() else "uvicorn did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            yield client
    finally:
        server.should_exit = True
        await serving


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def audit_rows(pool: asyncpg.Pool, action: str) -> list[asyncpg.Record]:
    return await pool.fetch("SELECT actor, action, outcome, detail, remote FROM auth.audit WHERE action = $1", action)


async def test_valid_token_with_the_role_gets_200(pool, api) -> None:
    username = unique("rev")
    await create_user(pool, username, [REVIEWER])
    token = await issue_token(pool, username, "laptop")
    response = await api.get("/reviews/CASE-1", headers=bearer(token))
    assert response.status_code == 200, response.text
    assert response.json() == {"case_id": "CASE-1", "username": username, "via": "token"}
    response = await api.get("/reviews/CASE-1", headers={"Authorization": f"bearer {token}"})  # scheme ignores case
    assert response.status_code == 200


@pytest.mark.parametrize("authorization", [None, "Basic YWxpY2U6c2VjcmV0", "Bearer", "Bearer not-a-token",
                                           "Bearer rgt_" + "x" * 43])
async def test_no_or_unknown_token_gets_401_and_is_audited(pool, api, authorization: str | None) -> None:
    case_id = unique("CASE")
    headers = {"Authorization": authorization} if authorization else {}
    response = await api.get(f"/reviews/{case_id}", params={"secret": "in-the-query"}, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    body = response.json()
    assert body["error"]["code"] == "unauthenticated" and body["error"]["message"]
    [row] = await audit_rows(pool, f"GET /reviews/{case_id}")  # without the query string
    assert row["actor"] is None and row["outcome"] == "unauthenticated" and row["remote"] == "127.0.0.1"
    assert "in-the-query" not in row["detail"]


async def test_revoked_token_gets_401(pool, api) -> None:
    username = unique("revoked")
    await create_user(pool, username, [REVIEWER])
    issued = await issue_api_token(pool, username, "old laptop")
    await revoke_token(pool, issued.token_id)
    case_id = unique("CASE")
    response = await api.get(f"/reviews/{case_id}", headers=bearer(issued.token))
    assert response.status_code == 401 and response.json()["error"]["code"] == "unauthenticated"
    assert [r["outcome"] for r in await audit_rows(pool, f"GET /reviews/{case_id}")] == ["unauthenticated"]
    assert await stored_anywhere(pool, issued.token) == []


async def test_valid_token_without_the_role_gets_403_and_is_audited(pool, api) -> None:
    username = unique("admin")
    await create_user(pool, username, [ADMIN, FINANCE_VIEWER])  # admin is not a reviewer
    token = await issue_token(pool, username, "console")
    case_id = unique("CASE")
    response = await api.get(f"/reviews/{case_id}", headers=bearer(token))
    assert response.status_code == 403
    assert response.json() == {"error": {"code": "forbidden", "message": "needs role reviewer"}}
    assert "www-authenticate" not in response.headers
    [row] = await audit_rows(pool, f"GET /reviews/{case_id}")
    assert row["actor"] == username and row["outcome"] == "forbidden"
    assert await stored_anywhere(pool, token) == []

    assert (await api.get("/ledger", headers=bearer(token))).status_code == 200  # any one of the roles


async def test_403_names_every_accepted_role(pool, api) -> None:
    username = unique("rev-only")
    await create_user(pool, username, [REVIEWER])
    response = await api.get("/ledger", headers=bearer(await issue_token(pool, username, "t")))
    assert response.status_code == 403
    assert response.json()["error"]["message"] == "needs role finance_approver or finance_viewer"


async def test_disabled_user_gets_401(pool, api) -> None:
    username = unique("gone")
    await create_user(pool, username, [REVIEWER])
    token = await issue_token(pool, username, "t")
    await disable_user(pool, username)
    assert (await api.get("/reviews/C", headers=bearer(token))).status_code == 401


def test_require_roles_refuses_an_unknown_role_when_the_route_is_declared() -> None:
    with pytest.raises(UnknownRoleError):
        require_roles(lambda: None, "reviwer")
