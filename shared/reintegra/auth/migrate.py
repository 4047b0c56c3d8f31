"""Create schema ``auth`` and bring it up to date with its own yoyo migrations.

Separate from ``reintegra.db.apply_migrations``: auth is shared by several programs (the review
API, the finance console, the CLI) and has no inbox or outbox."""

from __future__ import annotations

import asyncio
from pathlib import Path

from reintegra.db import yoyo_url

AUTH_SCHEMA = "auth"
AUTH_MIGRATIONS = Path(__file__).parent / "migrations"


def _yoyo_url(database_url: str) -> str:
    # yoyo's own bookkeeping tables go to the "auth" schema, next to the tables they describe; any
    # connection string libpq takes (socket directory in ?host=, several hosts, key=value).
    return yoyo_url(database_url, AUTH_SCHEMA)


def apply_auth_migrations_blocking(database_url: str) -> None:
    import psycopg
    from yoyo import get_backend, read_migrations

    with psycopg.connect(database_url, autocommit=True) as conn:
        # Several programs may start at once and race on CREATE SCHEMA; the same lock key as
        # reintegra.db.apply_migrations uses for a schema serialises them.
        conn.execute("SELECT pg_advisory_lock(hashtext('reintegra-migrate-' || %s))", (AUTH_SCHEMA,))
        try:
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{AUTH_SCHEMA}"')
            backend = get_backend(_yoyo_url(database_url), migration_table="_yoyo_migration")
            try:
                with backend.lock():
                    backend.apply_migrations(backend.to_apply(read_migrations(str(AUTH_MIGRATIONS))))
            finally:
                backend.connection.close()
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext('reintegra-migrate-' || %s))", (AUTH_SCHEMA,))


async def apply_auth_migrations(database_url: str) -> None:
    """Idempotent; safe when several processes call it at the same time."""
    await asyncio.to_thread(apply_auth_migrations_blocking, database_url)
