"""The aiohttp application: routes, JSON errors, injected latency, and the sandbox's lifetime."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import orjson
from aiohttp import web

from . import admin, statements
from .catalogue import load_catalogue
from .config import SandboxConfig
from .context import SANDBOX, Sandbox
from .dialects import ROUTES as PROVIDER_ROUTES
from .faults import Faults
from .settler import Worker
from .store import Store
from .transfers import Transfers

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PROVIDERS_PREFIX = "/providers/"


STATEMENT_INTERVAL_S = 600.0


async def _write_statements_daily(ctx: Sandbox) -> None:
    """Like a provider's daily statement run: yesterday's statements once the day has closed, and
    today's so far, rewritten every few minutes (finance imports the closed days)."""
    written_closed: set[date] = set()
    while True:
        today = datetime.now(UTC).date()
        yesterday = today - timedelta(days=1)
        try:
            if yesterday not in written_closed:
                statements.write_all(ctx.store, ctx.providers, yesterday, ctx.statements_dir)
                written_closed.add(yesterday)
            statements.write_all(ctx.store, ctx.providers, today, ctx.statements_dir)
        except Exception:  # a statement run that fails must not stop the provider
            log.exception("writing the daily statements failed")
        await asyncio.sleep(STATEMENT_INTERVAL_S)


def create_app(config: SandboxConfig | None = None) -> web.Application:
    config = config or SandboxConfig()
    providers = load_catalogue(config.providers_path, config.float_minor)  # a bad catalogue fails here, at once
    app = web.Application(middlewares=[_json_errors, _latency], client_max_size=1024**2)
    app.add_routes([*admin.ROUTES, *PROVIDER_ROUTES])

    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        store = Store.open(config.state_dir)
        faults = Faults(store, list(providers), config.seed)
        worker = Worker(store, faults, providers, config)
        transfers = Transfers(store, faults, settle_delay_s=config.settle_delay_ms / 1000,
                              idempotency_ttl_s=config.idempotency_ttl_s, on_scheduled=worker.schedule_settlement)
        # Without a state dir nothing outlives the process, statements included.
        scratch = None if config.state_dir is not None else Path(tempfile.mkdtemp(prefix="provider-sandbox-"))
        statements_dir = config.state_dir / "statements" if config.state_dir is not None else scratch
        app[SANDBOX] = Sandbox(config, providers, store, faults, transfers, worker, statements_dir)
        await worker.start()
        daily = asyncio.create_task(_write_statements_daily(app[SANDBOX]))
        try:
            yield
        finally:
            daily.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await daily
            await worker.stop()
            store.close()
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)

    app.cleanup_ctx.append(lifetime)
    return app


@web.middleware
async def _json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """aiohttp's own 404/405/413 as JSON, like the rest of the API."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        error = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(exc.status, "error")
        if exc.status == 404 and request.path.startswith(PROVIDERS_PREFIX):
            name = request.path[len(PROVIDERS_PREFIX):].split("/", 1)[0]
            if name not in request.app[SANDBOX].providers:
                error = "unknown_provider"
        return web.Response(body=orjson.dumps({"error": error, "message": exc.reason}), status=exc.status,
                            content_type="application/json")


@web.middleware
async def _latency(request: web.Request, handler: Handler) -> web.StreamResponse:
    # Only provider routes: the admin API is never faulted.
    if request.path.startswith(PROVIDERS_PREFIX):
        name = request.match_info.get("name")
        sandbox = request.app[SANDBOX]
        if name in sandbox.providers:
            latency_ms = sandbox.faults.get(name).latency_ms
            if latency_ms:
                await asyncio.sleep(latency_ms / 1000)
    return await handler(request)
