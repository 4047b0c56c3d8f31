"""Settings every service reads from its environment (12-factor; pydantic-settings)."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_BOOTSTRAP_SERVERS = "127.0.0.1:9092"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/reintegra"
# Listeners whose clients must speak TLS or SASL, which Reintegra's Kafka clients are not set up for.
_SECURE_LISTENERS = ("SSL", "SASL_SSL", "SASL_PLAINTEXT")


def normalize_bootstrap_servers(value: str) -> str:
    """KAFKA_BOOTSTRAP_SERVERS as aiokafka takes it (``host:port,host:port``) from what people write:
    commas and/or spaces between brokers, a listener prefix (``PLAINTEXT://host:9092``, as in a
    broker's ``advertised.listeners``), a trailing slash; IPv6 as ``[::1]:9092``. A TLS or SASL
    listener (``SSL://``, ``SASL_SSL://``, ``SASL_PLAINTEXT://``) is refused: ValueError."""
    servers = []
    for item in re.split(r"[\s,]+", value.strip()):
        listener, sep, address = item.rpartition("://")
        if sep:
            if listener.upper() in _SECURE_LISTENERS:
                raise ValueError(f"KAFKA_BOOTSTRAP_SERVERS: {item!r} is a {listener.upper()} listener; "
                                 "Reintegra's Kafka clients speak PLAINTEXT only")
            item = address
        item = item.rstrip("/")
        if item:
            servers.append(item)
    if not servers:
        raise ValueError(f"KAFKA_BOOTSTRAP_SERVERS names no broker: {value!r}")
    return ",".join(servers)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    # Any form normalize_bootstrap_servers takes; stored as host:port,host:port.
    kafka_bootstrap_servers: str = Field(DEFAULT_BOOTSTRAP_SERVERS, alias="KAFKA_BOOTSTRAP_SERVERS")
    # Any connection string libpq takes (reintegra.db's docstring); a key=value string is stored as a URL.
    database_url: str = Field(DEFAULT_DATABASE_URL, alias="DATABASE_URL")

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _bootstrap_servers(cls, value: str) -> str:
        return normalize_bootstrap_servers(value) if value.strip() else DEFAULT_BOOTSTRAP_SERVERS

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        from reintegra.db import asyncpg_url, connection_params

        if not value.strip():
            return DEFAULT_DATABASE_URL
        connection_params(value)  # refuses what libpq would refuse, before anything connects
        return asyncpg_url(value)

    # Batches: one Postgres transaction per batch is what makes >1,000 cases/s possible.
    batch_max_records: int = Field(500, alias="REINTEGRA_BATCH_MAX_RECORDS")
    batch_timeout_ms: int = Field(20, alias="REINTEGRA_BATCH_TIMEOUT_MS")
    # Transient-error retries per batch stay far below max_poll_interval_ms (5 min).
    retry_attempts: int = Field(6, alias="REINTEGRA_RETRY_ATTEMPTS")
    retry_max_seconds: float = Field(30.0, alias="REINTEGRA_RETRY_MAX_SECONDS")
    # Under load a fetch waits for this many bytes (or fetch_max_wait_ms): fewer, fuller fetches
    # cost the broker and the consumer far less CPU than many near-empty ones.
    fetch_min_bytes: int = Field(1, alias="REINTEGRA_FETCH_MIN_BYTES")
    fetch_max_wait_ms: int = Field(500, alias="REINTEGRA_FETCH_MAX_WAIT_MS")
    session_timeout_ms: int = Field(10_000, alias="REINTEGRA_SESSION_TIMEOUT_MS")
    heartbeat_interval_ms: int = Field(3_000, alias="REINTEGRA_HEARTBEAT_INTERVAL_MS")

    stats_interval_s: float = Field(10.0, alias="REINTEGRA_STATS_INTERVAL_S")  # consumer throughput log line
    relay_batch_size: int = Field(1000, alias="REINTEGRA_RELAY_BATCH_SIZE")
    relay_idle_sleep_s: float = Field(0.02, alias="REINTEGRA_RELAY_IDLE_SLEEP_S")
    db_pool_max: int = Field(8, alias="REINTEGRA_DB_POOL_MAX")

    # Tracing: parent-based ratio sampling; context is always propagated.
    trace_sample_ratio: float = Field(1.0, alias="REINTEGRA_TRACE_SAMPLE_RATIO")
    state_dir: Path = Field(Path(".reintegra"), alias="REINTEGRA_STATE_DIR")

    # Service-specific knobs live here too so that one env file configures a deployment.
    programme_config: Path | None = Field(None, alias="REINTEGRA_PROGRAMME_CONFIG")
    provider_base_url: str = Field("http://127.0.0.1:8085", alias="PROVIDER_BASE_URL")
    # Disbursement's endpoint for provider callbacks (port 0: any free port; the public URL is what
    # providers are told, when they reach it through a proxy or another host name).
    payment_callback_host: str = Field("127.0.0.1", alias="DISBURSEMENT_CALLBACK_HOST")
    payment_callback_port: int = Field(0, alias="DISBURSEMENT_CALLBACK_PORT")
    payment_callback_public_url: str | None = Field(None, alias="DISBURSEMENT_CALLBACK_PUBLIC_URL")
    # Never twice: an instruction is leased to one call at a time; an outcome still unknown after
    # the deadline is raised to finance instead of being resent.
    payment_lease_s: float = Field(60.0, alias="DISBURSEMENT_PAYMENT_LEASE_S")
    payment_deadline_s: float = Field(6 * 3600.0, alias="DISBURSEMENT_PAYMENT_DEADLINE_S")
    payment_poll_after_s: float = Field(30.0, alias="DISBURSEMENT_PAYMENT_POLL_AFTER_S")
    sms_gateway: str = Field("file", alias="REINTEGRA_SMS_GATEWAY")
    sms_outbox_file: Path | None = Field(None, alias="REINTEGRA_SMS_OUTBOX_FILE")
    parked_alert_after_s: int = Field(3600, alias="REINTEGRA_PARKED_ALERT_AFTER_S")
    # Intake's key for the identity hashes (the key, or a file holding it); every intake instance
    # must use the same one. Neither set: a local key under state_dir/secrets (development only).
    identity_hash_key: SecretStr | None = Field(None, alias="REINTEGRA_IDENTITY_HASH_KEY")
    identity_hash_key_file: Path | None = Field(None, alias="REINTEGRA_IDENTITY_HASH_KEY_FILE")
    # The eligibility review API (`python -m eligibility.review_api`); flags override these.
    review_api_host: str = Field("127.0.0.1", alias="REINTEGRA_REVIEW_API_HOST")
    review_api_port: int = Field(8091, alias="REINTEGRA_REVIEW_API_PORT")

    @property
    def trace_dir(self) -> Path:
        return self.state_dir / "traces"


def load_settings() -> Settings:
    return Settings()
