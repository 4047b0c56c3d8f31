"""Sandbox start-up configuration, from arguments or SANDBOX_* environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .schemas import FaultSettings


@dataclass(frozen=True)
class SandboxConfig:
    settle_delay_ms: int = 200
    faults: FaultSettings = field(default_factory=FaultSettings)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> SandboxConfig:
        env = os.environ if env is None else env
        return cls(
            settle_delay_ms=int(env.get("SANDBOX_SETTLE_DELAY_MS", 200)),
            faults=FaultSettings(
                latency_ms=int(env.get("SANDBOX_LATENCY_MS", 0)),
                transient_error_rate=float(env.get("SANDBOX_TRANSIENT_ERROR_RATE", 0)),
                reject_rate=float(env.get("SANDBOX_REJECT_RATE", 0)),
                seed=int(env["SANDBOX_SEED"]) if env.get("SANDBOX_SEED") else None,
            ),
        )
