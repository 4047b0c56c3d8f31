"""Postgres access: a pool whose connections live in one service's schema, and migrations.

DATABASE_URL may be anything libpq takes, and so is every ``database_url`` here:

    postgresql://user:secret@db.internal:5432/reintegra?sslmode=require
    postgresql:///reintegra?host=/var/run/postgresql          (Unix socket directory)
    postgresql://user@/reintegra?host=/tmp&port=5433
    postgresql://%2Fvar%2Frun%2Fpostgresql/reintegra          (percent-encoded socket directory)
    postgresql://h1:5432,h2:5432/reintegra?target_session_attrs=read-write   (several hosts)
    host=/tmp port=5433 dbname=reintegra user=postgres        (key=value)

libpq (psycopg) reads each of them itself; asyncpg takes URLs only, so ``asyncpg_url`` turns a
key=value string into a URL; yoyo would mangle most of them (it takes host and port from the URL's
netloc only), so ``yoyo_url`` hands it libpq's own reading of the string as query parameters.
``with_database`` derives the URL of another database on the same server (host, port, socket
directory and TLS settings kept).
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from urllib.parse import quote, unquote, urlencode, urlsplit

import asyncpg
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from yoyo import get_backend, read_migrations

SHARED_MIGRATIONS = Path(__file__).parent / "migrations"
URL_SCHEMES = ("postgresql://", "postgres://")


class InvalidDatabaseUrl(ValueError):
    """Not a connection string libpq would take."""


def is_url(database_url: str) -> bool:
    return database_url.strip().lower().startswith(URL_SCHEMES)


def connection_params(database_url: str) -> dict[str, str]:
    """libpq's own reading of a connection string (URL or key=value): host, port, dbname, user, ...
    Several hosts stay one comma-separated value, as libpq takes them (``host=h1,h2 port=5432,5433``)."""
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(database_url.strip())
    except ProgrammingError as exc:
        # libpq's message names the offending part; the string itself may carry a password
        raise InvalidDatabaseUrl(f"not a PostgreSQL connection string (URL or key=value): {exc}".strip()) from None
    return {key: str(value) for key, value in params.items() if value is not None}


def _query(params: dict[str, str]) -> str:
    # %XX only (no "+" for a space): libpq decodes nothing else, asyncpg and yoyo decode both
    return urlencode(params, quote_via=quote, safe="/,:[]")


_FIRST_PARAMS = ("host", "hostaddr", "port", "user", "password")


def url_from_params(params: dict[str, str]) -> str:
    """A ``postgresql://`` URL with ``params`` (libpq keywords): dbname in the path, the rest,
    host included (a socket directory, several hosts), in the query string: host, port, user and
    password first, then the others as given."""
    rest = {key: params[key] for key in _FIRST_PARAMS if key in params}
    rest.update((key, value) for key, value in params.items() if key not in rest)
    dbname = rest.pop("dbname", None)
    url = "postgresql://" + ("/" + quote(dbname, safe="") if dbname else "")
    return url + ("?" + _query(rest) if rest else "")


def asyncpg_url(database_url: str) -> str:
    """The connection string as a URL asyncpg takes: a URL unchanged (asyncpg reads ``?host=``, several
    hosts and percent-encoded socket directories itself), a key=value string converted."""
    database_url = database_url.strip()
    if is_url(database_url):
        return database_url
    return url_from_params(connection_params(database_url))


def with_database(database_url: str, dbname: str) -> str:
    """The URL of database ``dbname`` on the same server, as the same user: everything else in the
    connection string (host, port, socket directory, TLS, several hosts) is kept as it was written."""
    parts = urlsplit(asyncpg_url(database_url))
    kept = [item for item in parts.query.split("&")
            if item and unquote(item.split("=", 1)[0]) not in ("dbname", "database")]
    url = f"{parts.scheme}://{parts.netloc}/{quote(dbname, safe='')}"
    return url + ("?" + "&".join(kept) if kept else "")


def yoyo_url(database_url: str, schema: str) -> str:
    """yoyo's ``postgresql+psycopg`` URL for the same connection, its bookkeeping in ``schema``.
    Every libpq parameter goes to the query string, which yoyo passes to psycopg.connect as keywords;
    the netloc stays empty (yoyo would lower-case a socket directory and choke on several ports)."""
    params = connection_params(database_url)
    params["schema"] = schema
    return "postgresql+psycopg:///?" + _query(params)


def apply_migrations(database_url: str, schema: str, service_migrations: Path) -> None:
    """Create the schema and bring it up to date: shared plumbing tables first, then the service's own."""
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        # Concurrent starts of several replicas race on CREATE SCHEMA; an advisory lock serialises them.
        conn.execute("SELECT pg_advisory_lock(hashtext('reintegra-migrate-' || %s))", (schema,))
        try:
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            backend = get_backend(yoyo_url(database_url, schema), migration_table="_yoyo_migration")
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


class PoolHealth(BaseSettings):
    """How a pool notices a server it can no longer reach, instead of waiting for ever.

    A silent partition (no FIN, no RST) leaves a query waiting on a socket nobody answers; the kernel
    gives up only after ~15 minutes of retransmissions, or never for an idle connection. So: every
    statement has a deadline (asyncpg then cancels it, or drops the connection), connecting has one,
    and the sockets carry TCP keepalives and a user timeout. The server side gets the same, plus
    idle timeouts, so that the session of a client that vanished ends and releases its locks (the
    relay's leadership, a batch's row and per-case locks) instead of holding them until a restart.
    Environment: REINTEGRA_DB_COMMAND_TIMEOUT_S and the like."""

    model_config = SettingsConfigDict(env_prefix="REINTEGRA_DB_", extra="ignore")

    command_timeout_s: float = Field(30.0, gt=0)
    connect_timeout_s: float = Field(10.0, gt=0)
    # A transaction of ours never waits on anything but Postgres: idle in one this long, its client is gone.
    idle_in_transaction_timeout_s: float = Field(60.0, gt=0)
    # Idle pool connections are closed well before this (max_inactive_connection_lifetime, half of it).
    idle_session_timeout_s: float = Field(60.0, gt=0)
    keepalive_idle_s: int = Field(10, gt=0)
    keepalive_interval_s: int = Field(5, gt=0)
    keepalive_count: int = Field(3, gt=0)
    tcp_user_timeout_s: float = Field(30.0, gt=0)

    def server_settings(self) -> dict[str, str]:
        return {
            "idle_in_transaction_session_timeout": f"{int(self.idle_in_transaction_timeout_s * 1000)}",
            "idle_session_timeout": f"{int(self.idle_session_timeout_s * 1000)}",
            "tcp_keepalives_idle": str(self.keepalive_idle_s),
            "tcp_keepalives_interval": str(self.keepalive_interval_s),
            "tcp_keepalives_count": str(self.keepalive_count),
            "tcp_user_timeout": f"{int(self.tcp_user_timeout_s * 1000)}",
        }

    def configure_socket(self, sock: socket.socket | None) -> None:
        """Keepalives and a user timeout on a TCP connection (a Unix socket needs none)."""
        if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
            return
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in (("TCP_KEEPIDLE", self.keepalive_idle_s), ("TCP_KEEPINTVL", self.keepalive_interval_s),
                            ("TCP_KEEPCNT", self.keepalive_count),
                            ("TCP_USER_TIMEOUT", int(self.tcp_user_timeout_s * 1000))):
            option = getattr(socket, name, None)  # Linux names; other kernels lack some
            if option is not None:
                sock.setsockopt(socket.IPPROTO_TCP, option, value)


def _socket_of(conn: asyncpg.Connection) -> socket.socket | None:
    transport = getattr(conn, "_transport", None)  # asyncpg keeps its transport private
    return transport.get_extra_info("socket") if transport is not None else None


async def create_pool(database_url: str, schema: str, max_size: int = 8,
                      health: PoolHealth | None = None) -> asyncpg.Pool:
    health = health or PoolHealth()

    async def init(conn: asyncpg.Connection) -> None:
        health.configure_socket(_socket_of(conn))

    return await asyncpg.create_pool(
        asyncpg_url(database_url),
        min_size=1,
        max_size=max_size,
        command_timeout=health.command_timeout_s,
        timeout=health.connect_timeout_s,
        max_inactive_connection_lifetime=health.idle_session_timeout_s / 2,
        server_settings={"search_path": schema, "application_name": f"reintegra-{schema}",
                         **health.server_settings()},
        reset=_no_session_state_to_reset,
        init=init,
    )
