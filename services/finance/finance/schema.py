"""Finance's schema, for what runs outside the service (the console, the CLI, the demo)."""

from __future__ import annotations

from pathlib import Path

SCHEMA = "finance"
MIGRATIONS = Path(__file__).parent / "migrations"


async def bring_up_to_date(database_url: str) -> None:
    """Finance's schema and the users and audit trail (auth) it reads and writes, created or migrated."""
    from reintegra.auth import apply_auth_migrations
    from reintegra.db import apply_migrations_async

    await apply_migrations_async(database_url, SCHEMA, MIGRATIONS)
    await apply_auth_migrations(database_url)
