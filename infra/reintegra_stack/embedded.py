"""Public API: start the message broker and Postgres for tests, dev and the CLI supervisor.

    broker = start_broker(state_dir)      # KAFKA_BOOTSTRAP_SERVERS set -> external, no process
    pg = start_postgres(state_dir)        # DATABASE_URL set -> external, no process
    pg.url; pg.socket_dir                 # embedded: TCP on 127.0.0.1, and a Unix socket there
    ...
    broker.stop(); pg.stop()              # idempotent; also run at interpreter exit

Both calls block until the service answers. Children run in their own process group, get
PDEATHSIG on Linux (a SIGKILLed parent still takes them down) and are stopped at exit.
State (data dirs, ports.json, logs) lives under ``state_dir``; restarting on the same
``state_dir`` reuses ports and (for Kafka and Postgres) data.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from . import _proc

__all__ = ["RunningBroker", "RunningPostgres", "start_broker", "start_postgres"]

BROKER_KINDS = ("auto", "kafka", "tansu")


class _ManagedChild:
    """What a started component offers; an external one (env var given) has no process."""

    _process: _proc.ManagedProcess | None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def alive(self) -> bool:
        return self._process.alive() if self._process else True

    def stop(self) -> None:
        """Stop the process (each kind its own way: SIGTERM for brokers, fast shutdown for
        Postgres), SIGKILL after a timeout. No-op for an external component."""
        if self._process is not None:
            self._process.stop()


@dataclass
class RunningBroker(_ManagedChild):
    bootstrap_servers: str  # "127.0.0.1:P"; an external one as normalize_bootstrap_servers writes it
    kind: str  # "kafka" | "tansu" | "external"
    log_file: Path | None = None
    _process: _proc.ManagedProcess | None = field(default=None, repr=False, compare=False)


@dataclass
class RunningPostgres(_ManagedChild):
    url: str  # a postgresql:// URL (an external key=value DATABASE_URL is converted)
    kind: str  # "embedded" | "external"
    log_file: Path | None = None
    # embedded: the Unix socket's directory, for postgresql:///reintegra?host=<socket_dir>&port=<port>
    socket_dir: Path | None = None
    _process: _proc.ManagedProcess | None = field(default=None, repr=False, compare=False)


def _resolve_kind(prefer: str) -> str:
    prefer = (os.environ.get("REINTEGRA_BROKER") or prefer or "auto").strip().lower()
    if prefer not in BROKER_KINDS:
        raise ValueError(f"broker preference must be one of {BROKER_KINDS}, got {prefer!r}")
    if prefer == "auto":
        from .kafka_broker import java_and_mvn_available

        return "kafka" if java_and_mvn_available() else "tansu"
    return prefer


def start_broker(state_dir: Path, prefer: str = "auto") -> RunningBroker:
    """KAFKA_BOOTSTRAP_SERVERS env set -> external (no process). prefer: 'auto' (Apache Kafka if
    `java` and `mvn` on PATH, else Tansu), 'kafka', 'tansu'. Env REINTEGRA_BROKER can override
    prefer."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if external:
        from reintegra.settings import normalize_bootstrap_servers

        # "PLAINTEXT://kafka:9092", "a:9092, b:9092": as the services' settings read it
        return RunningBroker(bootstrap_servers=normalize_bootstrap_servers(external), kind="external")
    kind = _resolve_kind(prefer)
    state_dir = Path(state_dir)
    if kind == "kafka":
        from .kafka_broker import start_kafka

        proc, bootstrap = start_kafka(state_dir)
        return RunningBroker(bootstrap, "kafka", state_dir.resolve() / "kafka" / "kafka.log", proc)
    from .tansu_broker import start_tansu

    proc, bootstrap = start_tansu(state_dir)
    return RunningBroker(bootstrap, "tansu", state_dir.resolve() / "tansu" / "tansu.log", proc)


def start_postgres(state_dir: Path) -> RunningPostgres:
    """DATABASE_URL env set -> external (any connection string libpq takes). Else embedded."""
    external = os.environ.get("DATABASE_URL", "").strip()
    if external:
        from reintegra.db import asyncpg_url, connection_params

        connection_params(external)  # InvalidDatabaseUrl (a ValueError) now rather than in every service
        return RunningPostgres(url=asyncpg_url(external), kind="external")
    from .postgres_server import socket_dir, start_postgres_server

    state_dir = Path(state_dir)
    proc, url = start_postgres_server(state_dir)
    return RunningPostgres(url, "embedded", state_dir.resolve() / "postgres" / "postgres.log", socket_dir(state_dir),
                           proc)
