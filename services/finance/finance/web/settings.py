"""The finance console's settings, from its own environment variables (pydantic-settings).

DATABASE_URL and REINTEGRA_STATE_DIR come from ``reintegra.settings.load_settings()``, like every
service's. The signing secret: REINTEGRA_CONSOLE_SECRET, or the file REINTEGRA_CONSOLE_SECRET_FILE
names, else one generated once under the state directory (``console_secret``).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from reintegra.settings import load_settings


def _database_url() -> str:
    return load_settings().database_url


def _state_dir() -> Path:
    return load_settings().state_dir


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ConsoleSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    host: str = Field("127.0.0.1", alias="REINTEGRA_FINANCE_CONSOLE_HOST")
    port: int = Field(8093, alias="REINTEGRA_FINANCE_CONSOLE_PORT")
    review_api_url: str = Field("http://127.0.0.1:8091", alias="REINTEGRA_REVIEW_API_URL")
    review_api_timeout_s: float = Field(10.0, alias="REINTEGRA_CONSOLE_REVIEW_API_TIMEOUT_S")

    secret: SecretStr | None = Field(None, alias="REINTEGRA_CONSOLE_SECRET")
    secret_file: Path | None = Field(None, alias="REINTEGRA_CONSOLE_SECRET_FILE")
    # None: Secure cookies unless the console listens on loopback only (plain http on one machine).
    secure_cookies: bool | None = Field(None, alias="REINTEGRA_CONSOLE_SECURE_COOKIES")
    # Origins besides the request's own that may post forms (a reverse proxy's public origin);
    # a JSON list in the environment: '["https://finance.example.org"]'.
    allowed_origins: list[str] = Field(default_factory=list, alias="REINTEGRA_CONSOLE_ALLOWED_ORIGINS")
    # Proxies whose X-Forwarded-For uvicorn believes (the client IP the login throttle counts).
    # None: nobody's; the socket's peer is the client.
    forwarded_allow_ips: str | None = Field(None, alias="REINTEGRA_CONSOLE_FORWARDED_ALLOW_IPS")

    session_idle_s: int = Field(30 * 60, alias="REINTEGRA_CONSOLE_SESSION_IDLE_S", gt=0)
    session_lifetime_s: int = Field(12 * 3600, alias="REINTEGRA_CONSOLE_SESSION_LIFETIME_S", gt=0)

    # Login throttling: this many failures within the window lock the username (or the client
    # IP) for the lockout time.
    login_window_s: int = Field(15 * 60, alias="REINTEGRA_CONSOLE_LOGIN_WINDOW_S", gt=0)
    login_lockout_s: int = Field(15 * 60, alias="REINTEGRA_CONSOLE_LOGIN_LOCKOUT_S", gt=0)
    login_max_failures_per_user: int = Field(5, alias="REINTEGRA_CONSOLE_LOGIN_MAX_FAILURES", gt=0)
    login_max_failures_per_ip: int = Field(20, alias="REINTEGRA_CONSOLE_LOGIN_MAX_FAILURES_PER_IP", gt=0)

    # The same variables and defaults as every service's (reintegra.settings).
    database_url: str = Field(default_factory=_database_url, alias="DATABASE_URL")
    state_dir: Path = Field(default_factory=_state_dir, alias="REINTEGRA_STATE_DIR")
    db_pool_max: int = Field(8, alias="REINTEGRA_CONSOLE_DB_POOL_MAX", gt=0)

    @property
    def cookies_secure(self) -> bool:
        return self.secure_cookies if self.secure_cookies is not None else not is_loopback(self.host)


def load_console_settings(**overrides) -> ConsoleSettings:
    """The environment's settings; ``overrides`` by field name (tests, flags)."""
    return ConsoleSettings(**overrides)
