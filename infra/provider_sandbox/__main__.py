"""`python -m provider_sandbox --host 127.0.0.1 --port 8085 [--state-dir DIR] ...`; flags override SANDBOX_* env."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

from aiohttp import web

from .app import create_app
from .config import SandboxConfig


def parse_config(argv: list[str] | None = None) -> tuple[argparse.Namespace, SandboxConfig]:
    defaults = SandboxConfig.from_env()
    parser = argparse.ArgumentParser(prog="provider_sandbox", description="Payment provider sandbox")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8085)
    parser.add_argument("--state-dir", type=Path, default=defaults.state_dir,
                        help="keep state in DIR/sandbox.sqlite3 (default: in memory)")
    parser.add_argument("--settle-delay-ms", type=int, default=defaults.settle_delay_ms)
    parser.add_argument("--idempotency-ttl-s", type=float, default=defaults.idempotency_ttl_s)
    parser.add_argument("--providers", type=Path, default=defaults.providers_path, help="provider catalogue (YAML)")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    args = parser.parse_args(argv)
    config = SandboxConfig(
        state_dir=args.state_dir, settle_delay_ms=args.settle_delay_ms, idempotency_ttl_s=args.idempotency_ttl_s,
        providers_path=args.providers, seed=args.seed, callback_backoff_ms=defaults.callback_backoff_ms,
    )
    return args, config


def main(argv: list[str] | None = None) -> None:
    args, config = parse_config(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:  # uvloop when installed: cheaper sockets, more requests per second on one core
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    # run_app turns SIGTERM/SIGINT into a graceful exit: cleanup stops the worker, closes the database.
    web.run_app(create_app(config), host=args.host, port=args.port, access_log=None,
                print=lambda text: print(f"provider_sandbox: {text}", flush=True))


if __name__ == "__main__":
    main()
