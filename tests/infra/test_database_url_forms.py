"""DATABASE_URL in every form libpq takes, KAFKA_BOOTSTRAP_SERVERS in the forms people write.

Table-driven tests of the functions that read and derive them (reintegra.db, reintegra.settings,
reintegra_stack.embedded / database), then real connections to an embedded Postgres over its Unix
socket (``?host=<socket dir>``, a percent-encoded socket directory, key=value), migrations run
through that socket, and one real service (notifications) started and processing with such a URL.
"""

from __future__ import annotations

import asyncio
import os
import time
import types
import uuid
from pathlib import Path
from urllib.parse import quote

import asyncpg
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from pydantic import ValidationError
from reintegra.auth.migrate import apply_auth_migrations
from reintegra.db import (
    InvalidDatabaseUrl,
    apply_migrations,
    asyncpg_url,
    connection_params,
    create_pool,
    url_from_params,
    with_database,
    yoyo_url,
)
from reintegra.settings import Settings, normalize_bootstrap_servers
from reintegra_stack import embedded
from reintegra_stack.database import DatabaseNotFound, resolve_database_url
from support import send_notice
from yoyo.backends.core.postgresql import PostgresqlPsycopgBackend
from yoyo.connections import parse_uri

NOTIFICATIONS_MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "notifications" / "notifications" / "migrations"

# (connection string, libpq's reading of it)
FORMS = [
    ("postgresql://postgres@127.0.0.1:5432/reintegra",
     {"user": "postgres", "host": "127.0.0.1", "port": "5432", "dbname": "reintegra"}),
    ("postgresql:///reintegra?host=/var/run/postgresql",
     {"host": "/var/run/postgresql", "dbname": "reintegra"}),
    ("postgresql://user@/db?host=/tmp&port=5433",
     {"user": "user", "host": "/tmp", "port": "5433", "dbname": "db"}),
    ("postgresql://h1:5432,h2:5432/db",
     {"host": "h1,h2", "port": "5432,5432", "dbname": "db"}),
    ("postgresql://%2Fvar%2Frun%2Fpostgresql/db",
     {"host": "/var/run/postgresql", "dbname": "db"}),
    ("host=/tmp dbname=x",
     {"host": "/tmp", "dbname": "x"}),
    ("host=h1,h2 port=5432,5433 dbname='my db' user=u password='a b+c' sslmode=require",
     {"host": "h1,h2", "port": "5432,5433", "dbname": "my db", "user": "u", "password": "a b+c", "sslmode": "require"}),
    ("postgres://u:p%40ss@[::1]:5433/db?sslmode=disable",
     {"user": "u", "password": "p@ss", "host": "::1", "port": "5433", "dbname": "db", "sslmode": "disable"}),
    ("  postgresql://u@H.Example:5432/Db?application_name=x  ",
     {"user": "u", "host": "H.Example", "port": "5432", "dbname": "Db", "application_name": "x"}),
]
FORM_IDS = [f"form{i}" for i in range(len(FORMS))]


@pytest.mark.parametrize(("dsn", "expected"), FORMS, ids=FORM_IDS)
def test_connection_params_are_libpqs_reading(dsn: str, expected: dict[str, str]) -> None:
    assert connection_params(dsn) == expected


@pytest.mark.parametrize(("dsn", "expected"), FORMS, ids=FORM_IDS)
def test_asyncpg_url_is_a_url_for_the_same_connection(dsn: str, expected: dict[str, str]) -> None:
    url = asyncpg_url(dsn)
    assert url.startswith(("postgresql://", "postgres://"))
    if dsn.strip().startswith("postgres"):
        assert url == dsn.strip()  # a URL is left as written
    assert conninfo_to_dict(url) == expected


@pytest.mark.parametrize(("params", "url"), [
    ({"host": "/tmp", "dbname": "x"}, "postgresql:///x?host=/tmp"),
    ({"host": "/tmp"}, "postgresql://?host=/tmp"),
    ({"dbname": "my db", "password": "a b+c&d"}, "postgresql:///my%20db?password=a%20b%2Bc%26d"),
    ({"host": "h1,h2", "port": "5432,5433", "user": "u"}, "postgresql://?host=h1,h2&port=5432,5433&user=u"),
])
def test_url_from_params(params: dict[str, str], url: str) -> None:
    assert url_from_params(params) == url
    assert conninfo_to_dict(url) == params


@pytest.mark.parametrize(("dsn", "expected"), [
    ("postgresql://postgres@127.0.0.1:5432/reintegra", "postgresql://postgres@127.0.0.1:5432/other"),
    ("postgresql:///reintegra?host=/var/run/postgresql", "postgresql:///other?host=/var/run/postgresql"),
    ("postgresql://user@/db?host=/tmp&port=5433", "postgresql://user@/other?host=/tmp&port=5433"),
    ("postgresql://h1:5432,h2:5432/db?target_session_attrs=read-write",
     "postgresql://h1:5432,h2:5432/other?target_session_attrs=read-write"),
    ("postgresql://%2Fvar%2Frun%2Fpostgresql/db", "postgresql://%2Fvar%2Frun%2Fpostgresql/other"),
    ("postgresql://u@h?dbname=db&host=/tmp", "postgresql://u@h/other?host=/tmp"),
    ("postgresql://u@h/db?password=a+b", "postgresql://u@h/other?password=a+b"),  # "+" stays a "+" (libpq)
    ("host=/tmp dbname=x user=postgres", "postgresql:///other?host=/tmp&user=postgres"),
])
def test_with_database_keeps_everything_but_the_database(dsn: str, expected: str) -> None:
    derived = with_database(dsn, "other")
    assert derived == expected
    assert conninfo_to_dict(derived) == {**connection_params(dsn), "dbname": "other"}
    assert conninfo_to_dict(with_database(dsn, "we ird/db?"))["dbname"] == "we ird/db?"


@pytest.mark.parametrize(("dsn", "expected"), FORMS, ids=FORM_IDS)
def test_yoyo_connects_as_libpq_reads_the_string(dsn: str, expected: dict[str, str]) -> None:
    """What yoyo's psycopg backend hands psycopg.connect for our yoyo URL is the same connection."""
    captured: dict = {}

    def connect(**kwargs):
        captured.update(kwargs)
        return types.SimpleNamespace(autocommit=False)

    backend = types.SimpleNamespace(driver=types.SimpleNamespace(connect=connect), schema=None)
    PostgresqlPsycopgBackend.connect(backend, parse_uri(yoyo_url(dsn, "notifications")))
    assert backend.schema == "notifications"
    read_back = conninfo_to_dict(make_conninfo("", **captured))
    assert {k: v for k, v in read_back.items() if v != ""} == expected


@pytest.mark.parametrize("dsn", ["garbage", "host=/tmp dbname", "postgresql://h/db?nosuchparam=1"])
def test_invalid_connection_strings_are_refused_clearly(dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidDatabaseUrl, match="not a PostgreSQL connection string"):
        connection_params(dsn)
    monkeypatch.setenv("DATABASE_URL", dsn)
    with pytest.raises(ValidationError, match="not a PostgreSQL connection string"):
        Settings()
    with pytest.raises(InvalidDatabaseUrl):
        embedded.start_postgres(Path("/nonexistent"))
    if not dsn.startswith("postgresql://"):  # a URL is handed on as written; libpq refuses it on connect
        with pytest.raises(DatabaseNotFound, match="DATABASE_URL is not a PostgreSQL connection string"):
            resolve_database_url(environ={"DATABASE_URL": dsn})


@pytest.mark.parametrize(("dsn", "expected"), FORMS, ids=FORM_IDS)
def test_settings_embedded_and_cli_resolution_accept_every_form(dsn: str, expected: dict[str, str],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", dsn)
    for url in (Settings().database_url, embedded.start_postgres(Path("/nonexistent")).url,
                resolve_database_url(environ={"DATABASE_URL": dsn})):
        assert url == asyncpg_url(dsn)
        assert conninfo_to_dict(url) == expected


# --------------------------------------------------------------------------- KAFKA_BOOTSTRAP_SERVERS
@pytest.mark.parametrize(("value", "expected"), [
    ("127.0.0.1:9092", "127.0.0.1:9092"),
    (" kafka:9092 ", "kafka:9092"),
    ("a:9092,b:9092", "a:9092,b:9092"),
    ("a:9092, b:9092 ,c:9092", "a:9092,b:9092,c:9092"),
    ("a:9092 b:9092", "a:9092,b:9092"),
    ("a:9092,,b:9092,", "a:9092,b:9092"),
    ("PLAINTEXT://kafka:9092", "kafka:9092"),
    ("plaintext://kafka:9092/", "kafka:9092"),
    ("PLAINTEXT://a:9092, PLAINTEXT://b:9093", "a:9092,b:9093"),
    ("EXTERNAL://broker.example:29092", "broker.example:29092"),
    ("[::1]:9092, PLAINTEXT://[::1]:9093", "[::1]:9092,[::1]:9093"),
    ("kafka", "kafka"),
])
def test_bootstrap_servers_forms(value: str, expected: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert normalize_bootstrap_servers(value) == expected
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", value)
    assert Settings().kafka_bootstrap_servers == expected
    broker = embedded.start_broker(Path("/nonexistent"))
    assert (broker.kind, broker.bootstrap_servers) == ("external", expected)


@pytest.mark.parametrize(("value", "error"), [
    ("SSL://kafka:9093", "SSL listener"),
    ("a:9092,SASL_SSL://b:9094", "SASL_SSL listener"),
    ("sasl_plaintext://b:9094", "SASL_PLAINTEXT listener"),
    (" , ", "names no broker"),
    ("PLAINTEXT://", "names no broker"),
])
def test_bootstrap_servers_refused(value: str, error: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match=error):
        normalize_bootstrap_servers(value)
    if value.strip(" ,"):
        monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", value)
        with pytest.raises(ValidationError, match=error):
            Settings()


def test_empty_settings_fall_back_to_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", " ")
    monkeypatch.setenv("DATABASE_URL", "")
    settings = Settings()
    assert settings.kafka_bootstrap_servers == "127.0.0.1:9092"
    assert settings.database_url == "postgresql://postgres@127.0.0.1:5432/reintegra"


def test_reintegra_topics_reads_a_listener_url(monkeypatch: pytest.MonkeyPatch) -> None:
    from reintegra_stack.cli import app
    from typer.testing import CliRunner

    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "SSL://kafka:9093")
    result = CliRunner().invoke(app, ["topics", "--wait", "0"], env={"COLUMNS": "300"})
    assert result.exit_code == 2 and "'SSL://kafka:9093' is a SSL listener" in result.output, result.output


def test_the_intake_http_door_reads_a_listener_url(monkeypatch: pytest.MonkeyPatch) -> None:
    from intake import http_door

    class Seen(Exception):
        pass

    def new_producer(bootstrap: str):
        raise Seen(bootstrap)

    monkeypatch.setattr(http_door, "new_producer", new_producer)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "PLAINTEXT://a:9092, b:9092")
    app = http_door.create_app()

    async def start_producer() -> None:
        await anext(app.cleanup_ctx[0](app))

    with pytest.raises(Seen, match="^a:9092,b:9092$"):
        asyncio.run(start_producer())


# --------------------------------------------------------------------------- a real Postgres, over its socket
@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    """The embedded Postgres (whatever DATABASE_URL says: it is the socket of this one that is tested)."""
    from reintegra_stack.postgres_server import socket_dir, start_postgres_server

    state_dir = tmp_path_factory.mktemp("url-forms") / "state"
    process, tcp_url = start_postgres_server(state_dir)
    try:
        yield types.SimpleNamespace(state_dir=state_dir, tcp_url=tcp_url, socket_dir=socket_dir(state_dir),
                                    port=int(tcp_url.rsplit(":", 1)[1].split("/", 1)[0]))
    finally:
        process.stop()


def _socket_forms(socket: Path, port: int, db: str) -> list[str]:
    encoded = quote(str(socket), safe="")
    return [
        f"postgresql:///{db}?host={socket}&port={port}&user=postgres",
        f"postgresql://postgres@/{db}?host={socket}&port={port}",
        f"postgresql://postgres@{encoded}:{port}/{db}",
        f"host={socket} port={port} dbname={db} user=postgres",
        # several hosts: a socket that is not there first, then the real one
        f"postgresql://postgres@/{db}?host=/nonexistent-socket-dir,{socket}&port={port},{port}",
    ]


def test_the_embedded_postgres_listens_on_a_unix_socket(server) -> None:
    assert (server.socket_dir / f".s.PGSQL.{server.port}").is_socket()
    assert len(os.fsencode(server.socket_dir / f".s.PGSQL.{server.port}")) <= 107


def test_connect_over_the_socket_in_every_form(server) -> None:
    async def over_asyncpg(dsn: str) -> tuple:
        conn = await asyncpg.connect(asyncpg_url(dsn), timeout=10)
        try:
            return await conn.fetchval("SELECT inet_server_addr() IS NULL"), await conn.fetchval("SELECT current_database()")
        finally:
            await conn.close()

    for dsn in _socket_forms(server.socket_dir, server.port, "reintegra"):
        assert asyncio.run(over_asyncpg(dsn)) == (True, "reintegra"), dsn  # no server address: a Unix socket
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT inet_server_addr() IS NULL, current_database()").fetchone() == (True, "reintegra")


@pytest.fixture(scope="module")
def own_database(server) -> str:
    """A database of the module's own, made through the admin database `postgres` on the socket."""
    name = f"urlforms_{uuid.uuid4().hex[:8]}"
    admin = with_database(f"postgresql://postgres@/reintegra?host={server.socket_dir}&port={server.port}", "postgres")
    assert admin == f"postgresql://postgres@/postgres?host={server.socket_dir}&port={server.port}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def test_migrations_and_pool_over_the_socket(server, own_database: str) -> None:
    socket_url = with_database(f"host={server.socket_dir} port={server.port} user=postgres", own_database)
    assert socket_url == f"postgresql:///{own_database}?host={server.socket_dir}&port={server.port}&user=postgres"
    apply_migrations(socket_url, "notifications", NOTIFICATIONS_MIGRATIONS)  # yoyo over the socket as well
    asyncio.run(apply_auth_migrations(f"postgresql://postgres@{quote(str(server.socket_dir), safe='')}:{server.port}"
                                      f"/{own_database}"))

    async def check() -> tuple:
        pool = await create_pool(f"host={server.socket_dir} port={server.port} dbname={own_database} user=postgres",
                                 "notifications", max_size=2)
        try:
            async with pool.acquire() as conn:
                return (await conn.fetchval("SELECT to_regclass('notices') IS NOT NULL"),
                        await conn.fetchval("SELECT to_regclass('auth.users') IS NOT NULL"),
                        await conn.fetchval("SELECT inet_server_addr() IS NULL"))
        finally:
            await pool.close()

    assert asyncio.run(check()) == (True, True, True)


def test_a_service_starts_and_processes_with_socket_and_listener_urls(server, own_database: str, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from reintegra_stack.supervisor import Stack, StackConfig

    for var in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "PROVIDER_BASE_URL", "REINTEGRA_BROKER"):
        monkeypatch.delenv(var, raising=False)
    broker = embedded.start_broker(tmp_path / "broker", "tansu")
    try:
        raw_kafka = f" PLAINTEXT://{broker.bootstrap_servers} , "
        socket_url = f"postgresql://postgres@/{own_database}?host={server.socket_dir}&port={server.port}"
        # The supervisor reads the key=value form, the service the ?host= URL and the listener URL, as written.
        monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", raw_kafka)
        monkeypatch.setenv("DATABASE_URL", f"host={server.socket_dir} port={server.port} dbname={own_database} "
                                           "user=postgres")
        config = StackConfig(state_dir=tmp_path / "state", services=("notifications",), sandbox=False,
                             extra_env={"DATABASE_URL": socket_url, "KAFKA_BOOTSTRAP_SERVERS": raw_kafka},
                             ready_timeout_s=90)
        with Stack(config) as stack:
            assert stack.bootstrap_servers == broker.bootstrap_servers
            assert stack.database_url == f"postgresql:///{own_database}?host={server.socket_dir}&port={server.port}" \
                                         "&user=postgres"
            case_id = f"URL-{uuid.uuid4().hex[:6].upper()}"
            asyncio.run(send_notice("test-database-url-forms", broker.bootstrap_servers, case_id))
            deadline = time.monotonic() + 60
            with psycopg.connect(socket_url, autocommit=True) as conn:
                while conn.execute("SELECT count(*) FROM notifications.notices WHERE case_id = %s",
                                   (case_id,)).fetchone() != (1,):
                    log = stack.processes["notifications"].log_file.read_text()[-3000:]
                    assert time.monotonic() < deadline, f"notifications did not store {case_id}; its log:\n{log}"
                    time.sleep(0.2)
                # the service's own connections came in over the socket (no client address)
                rows = conn.execute("SELECT client_addr IS NULL FROM pg_stat_activity "
                                    "WHERE application_name = 'reintegra-notifications'").fetchall()
            assert rows and all(over_socket for (over_socket,) in rows)
    finally:
        broker.stop()


