"""Fixtures and helpers of the finance console's tests (imported by the test_finance_web_* modules).

Each test module gets a database of its own on the session's Postgres (``infra``), so that the
audit trail (append-only) and the login counters of one module never meet another's. The console
runs in-process (FastAPI's TestClient runs its lifespan: migrations, pool).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import psycopg
import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient

PASSWORD = "correct horse battery staple"
SECRET = "test-console-secret-0123456789abcdef0123456789"
BASE_URL = "http://127.0.0.1:8093"  # the console's own origin, as a browser would name it
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(scope="module")
def console_db(infra) -> Iterator[str]:
    name = f"console_{uuid.uuid4().hex[:12]}"
    from finance.schema import bring_up_to_date

    with psycopg.connect(infra.database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    database_url = urlunsplit(urlsplit(infra.database_url)._replace(path=f"/{name}"))
    run(bring_up_to_date(database_url))  # users can be made before any console starts
    yield database_url
    with psycopg.connect(infra.database_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def console_settings(database_url: str, state_dir: Path, **overrides):
    from finance.web.settings import ConsoleSettings

    values = {"database_url": database_url, "state_dir": state_dir, "secret": SECRET,
              "review_api_url": "http://127.0.0.1:9", **overrides}
    return ConsoleSettings(**values)


@contextlib.contextmanager
def console_client(database_url: str, state_dir: Path, *, routers: tuple[APIRouter, ...] = (),
                   **overrides) -> Iterator[TestClient]:
    from finance.web.app import create_app

    app = create_app(console_settings(database_url, state_dir, **overrides), routers=routers)
    with TestClient(app, base_url=BASE_URL, follow_redirects=False) as client:
        yield client


def run(coro):
    """An async helper run to completion from a synchronous test."""
    return asyncio.run(coro)


async def _with_conn(database_url: str, work):
    conn = await asyncpg.connect(database_url)
    try:
        return await work(conn)
    finally:
        await conn.close()


def make_user(database_url: str, username: str, roles: list[str], *, password: str | None = PASSWORD,
              upstream_ids: tuple[str, ...] = ()) -> None:
    from reintegra.auth import create_user

    run(_with_conn(database_url, lambda conn: create_user(conn, username, roles, password=password,
                                                          upstream_ids=upstream_ids)))


def issue_token(database_url: str, username: str) -> str:
    from reintegra.auth import issue_token as issue

    return run(_with_conn(database_url, lambda conn: issue(conn, username, "test")))


def rows(database_url: str, sql: str, *args) -> list[dict]:
    with psycopg.connect(database_url) as conn:
        cursor = conn.execute(sql, args or None)
        names = [c.name for c in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def execute(database_url: str, sql: str, *args) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql, args or None)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no CSRF field on the page"
    return match.group(1)


def login_form(client: TestClient) -> str:
    page = client.get("/login")
    assert page.status_code == 200, page.text
    return csrf_of(page.text)


def sign_in(client: TestClient, username: str, password: str = PASSWORD, next_path: str = "/"):
    token = login_form(client)
    return client.post("/login", data={"username": username, "password": password, "next": next_path,
                                       "csrf_token": token})


def signed_in(client: TestClient, username: str, password: str = PASSWORD) -> str:
    """Signs in and returns the CSRF token of the session."""
    answer = sign_in(client, username, password)
    assert answer.status_code == 303, answer.text
    home = client.get("/")
    assert home.status_code == 200, home.text
    return csrf_of(home.text)


def audit_rows(database_url: str, **where) -> list[dict]:
    clauses = " AND ".join(f"{column} = %s" for column in where) or "true"
    return rows(database_url, f"SELECT actor, action, outcome, detail::text AS detail, remote FROM auth.audit "
                              f"WHERE {clauses} ORDER BY id", *where.values())
