"""Postgres access: a pool whose connections live in one service's schema, and migrations."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit

import asyncpg
from yoyo import get_backend, read_migrations

SHARED_MIGRATIONS = Path(__file__).parent / "migrations"


def _yoyo_url(database_url: str, schema: str) -> str:
    parts = urlsplit(database_url)
    scheme = "postgresql+psycopg"
    query = urlencode({"schema": schema})
    return urlunsplit((scheme, parts.netloc, parts.path, query, ""))


def apply_migrations(database_url: str, schema: str, service_migrations: Path) -> None:
    """Create the schema and bring it up to date: shared plumbing tables first, then the service's own."""
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        # Concurrent starts of several replicas race on CREATE SCHEMA; an advisory lock serialises them.
        conn.execute("SELECT pg_advisory_lock(hashtext('reintegra-migrate-' || %s))", (schema,))
        try:
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            backend = get_backend(_yoyo_url(database_url, schema), migration_table="_yoyo_migration")
            migrations = read_migrations(str(SHARED_MIGRATIONS), str(service_migrations))
            with backend.lock():
                backend.apply_migrations(backend.to_apply(migrations))
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext('reintegra-migrate-' || %s))", (schema,))


async def apply_migrations_async(database_url: str, schema: str, service_migrations: Path) -> None:
    await asyncio.to_thread(apply_migrations, database_url, schema, service_migrations)


async def _no_session_state_to_reset(conn: asyncpg.Connection) -> None:
    """Replaces asyncpg's default reset (RESET ALL, UNLISTEN, CLOSE ALL and unlocking every advisory
    lock: a round trip on every release). asyncpg still rolls back a transaction left open before
    calling this, and nothing here sets session state: search_path is a connection setting, and
    the relay's one session lock is released, or its connection closed, by the relay itself."""


async def create_pool(database_url: str, schema: str, max_size: int = 8) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        database_url,
        min_size=1,
        max_size=max_size,
        server_settings={"search_path": schema, "application_name": f"reintegra-{schema}"},
        reset=_no_session_state_to_reset,
    )
