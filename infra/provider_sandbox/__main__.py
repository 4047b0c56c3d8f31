"""`python -m provider_sandbox --host 127.0.0.1 --port 8085`; flags override SANDBOX_* env vars."""

from __future__ import annotations

import argparse

from aiohttp import web

from .app import create_app
from .config import SandboxConfig
from .schemas import FaultSettings


def main(argv: list[str] | None = None) -> None:
    defaults = SandboxConfig.from_env()
    parser = argparse.ArgumentParser(prog="provider_sandbox", description="Mobile-money provider sandbox")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8085)
    parser.add_argument("--settle-delay-ms", type=int, default=defaults.settle_delay_ms)
    parser.add_argument("--latency-ms", type=int, default=defaults.faults.latency_ms)
    parser.add_argument("--transient-error-rate", type=float, default=defaults.faults.transient_error_rate)
    parser.add_argument("--reject-rate", type=float, default=defaults.faults.reject_rate)
    parser.add_argument("--seed", type=int, default=defaults.faults.seed)
    args = parser.parse_args(argv)
    config = SandboxConfig(
        settle_delay_ms=args.settle_delay_ms,
        faults=FaultSettings(
            latency_ms=args.latency_ms,
            transient_error_rate=args.transient_error_rate,
            reject_rate=args.reject_rate,
            seed=args.seed,
        ),
    )
    web.run_app(create_app(config), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
