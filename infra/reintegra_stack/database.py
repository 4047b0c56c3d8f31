"""Which Postgres an operator command talks to: ``DATABASE_URL`` when set, else the embedded
Postgres of the local stack (``reintegra up``) under ``REINTEGRA_STATE_DIR`` (default
``.reintegra``), found through the port it saved in ``<state_dir>/postgres/ports.json``.
DATABASE_URL may be any connection string libpq takes (``reintegra.db``); it is returned as a URL.

    from reintegra_stack.database import DatabaseNotFound, resolve_database_url

    try:
        url = resolve_database_url()
    except DatabaseNotFound as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from . import _proc
from .postgres_server import DATABASE, DB_USER

DEFAULT_STATE_DIR = Path(".reintegra")


class DatabaseNotFound(Exception):
    """Neither DATABASE_URL (or not one libpq would take) nor a running local stack; the message says what to do."""


def state_dir_from_env(environ: Mapping[str, str] = os.environ) -> Path:
    return Path(environ.get("REINTEGRA_STATE_DIR", "").strip() or DEFAULT_STATE_DIR)


def embedded_postgres_port(state_dir: Path) -> int | None:
    """The port the local stack's Postgres uses (or last used), None when it never ran there."""
    try:
        return int(json.loads((Path(state_dir) / "postgres" / "ports.json").read_text())["postgres"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def embedded_database_url(port: int) -> str:
    return f"postgresql://{DB_USER}@127.0.0.1:{port}/{DATABASE}"


def resolve_database_url(state_dir: Path | None = None, environ: Mapping[str, str] = os.environ) -> str:
    """DATABASE_URL, else the running local stack's Postgres; DatabaseNotFound when neither.
    ``state_dir`` overrides REINTEGRA_STATE_DIR (for commands with a --state-dir option)."""
    url = environ.get("DATABASE_URL", "").strip()
    if url:
        from reintegra.db import InvalidDatabaseUrl, asyncpg_url

        try:
            return asyncpg_url(url)  # a key=value string as a URL: the commands connect with asyncpg
        except InvalidDatabaseUrl as exc:
            raise DatabaseNotFound(f"DATABASE_URL is {exc}") from None
    state_dir = Path(state_dir) if state_dir is not None else state_dir_from_env(environ)
    port = embedded_postgres_port(state_dir)
    if port is None:
        raise DatabaseNotFound(
            f"DATABASE_URL is not set and there is no local stack under {state_dir}/ "
            "(start one with `reintegra up`, or set DATABASE_URL=postgresql://user@host:5432/reintegra)"
        )
    # ports.json outlives the stack: only a listening port means the database is there now.
    if not _proc.tcp_connectable("127.0.0.1", port, timeout=1.0):
        raise DatabaseNotFound(
            f"DATABASE_URL is not set and the local stack's Postgres (under {state_dir}/, port {port}) "
            "is not running (start it with `reintegra up`, or set DATABASE_URL)"
        )
    return embedded_database_url(port)
