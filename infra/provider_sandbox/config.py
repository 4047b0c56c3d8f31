"""Sandbox start-up configuration, from arguments or SANDBOX_* environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SandboxConfig:
    # None: state in `:memory:`, lost on exit; a directory: `<state_dir>/sandbox.sqlite3` survives restarts.
    state_dir: Path | None = None
    settle_delay_ms: int = 200
    idempotency_ttl_s: float = 86_400
    providers_path: Path | None = None  # None: the catalogue shipped in the package
    seed: int | None = None  # seeds every provider's random faults (None: unpredictable)
    float_minor: int | None = None  # None: the catalogue's float (opening balance of the first statement)
    token_ttl_s: int = 3600
    callback_concurrency: int = 64
    callback_max_attempts: int = 8
    callback_backoff_ms: int = 500  # doubles after each failed attempt
    callback_backoff_max_ms: int = 60_000
    callback_timeout_s: float = 10.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SandboxConfig:
        env = os.environ if env is None else env
        return cls(
            state_dir=Path(env["SANDBOX_STATE_DIR"]) if env.get("SANDBOX_STATE_DIR") else None,
            settle_delay_ms=int(env.get("SANDBOX_SETTLE_DELAY_MS") or 200),
            idempotency_ttl_s=float(env.get("SANDBOX_IDEMPOTENCY_TTL_S") or 86_400),
            providers_path=Path(env["SANDBOX_PROVIDERS"]) if env.get("SANDBOX_PROVIDERS") else None,
            seed=int(env["SANDBOX_SEED"]) if env.get("SANDBOX_SEED") else None,
            callback_backoff_ms=int(env.get("SANDBOX_CALLBACK_BACKOFF_MS") or 500),
        )
