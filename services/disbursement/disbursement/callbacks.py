"""The endpoint providers report to: `POST /callbacks/{provider}`.

A callback is verified (the provider's signature), stored as a report (deduplicated on provider,
transfer id and status) and answered at once; the payments loop applies it. A callback that
cannot be read is set aside with why, never dropped, and answered 202 so the provider does not
retry it for ever; one with a bad signature is refused (401) and stored nowhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import asyncpg
from aiohttp import web

from disbursement import payment_store
from disbursement.adapters.providers.base import CallbackRejected, MalformedCallback, Outcome
from disbursement.adapters.providers.registry import ProviderRegistry

log = logging.getLogger(__name__)

REPORTED = {Outcome.PENDING: "pending", Outcome.SETTLED: "settled", Outcome.FAILED: "failed"}
MAX_BODY = 256 * 1024


class ReportWriter:
    """Group commit: callbacks arriving together are stored in one statement, and each is answered
    only once its report is committed (so a provider never hears "received" for a lost report)."""

    MAX_BATCH = 500

    def __init__(self, pool: Callable[[], asyncpg.Pool]) -> None:
        self._pool = pool
        self._waiting: list[tuple[dict, asyncio.Future]] = []
        self._wakeup = asyncio.Event()

    async def store(self, report: dict) -> bool:
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((report, future))
        self._wakeup.set()
        return await future

    async def run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._waiting:
                batch, self._waiting = self._waiting[:self.MAX_BATCH], self._waiting[self.MAX_BATCH:]
                try:
                    async with self._pool().acquire() as conn:
                        new = await payment_store.add_provider_events_keyed(conn, [r for r, _ in batch])
                except Exception as exc:  # the provider gets a 5xx and retries
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for report, future in batch:
                    if not future.done():
                        future.set_result((report["provider"], report["transfer_id"], report["status"]) in new)


def callback_app(pool: Callable[[], asyncpg.Pool], registry: ProviderRegistry) -> web.Application:
    writer = ReportWriter(pool)
    async def receive(request: web.Request) -> web.Response:
        name = request.match_info["provider"]
        if name not in registry.configs:
            return web.json_response({"error": "unknown_provider"}, status=404)
        body = await request.read()
        adapter = registry.adapter(name)
        try:
            status = adapter.parse_callback(request.headers, body)
        except CallbackRejected:
            log.warning("callback from %s refused: bad or missing signature", name)
            return web.json_response({"error": "invalid_signature"}, status=401)
        except MalformedCallback as exc:
            async with pool().acquire() as conn:
                await payment_store.set_aside(conn, name, "callback", str(exc), body.decode(errors="replace"))
            return web.json_response({"status": "set_aside", "error": str(exc)}, status=202)
        if status.outcome not in REPORTED or not status.reference:
            async with pool().acquire() as conn:
                await payment_store.set_aside(conn, name, "callback", f"no usable status ({status.outcome})",
                                              body.decode(errors="replace"))
            return web.json_response({"status": "set_aside"}, status=202)
        report = {"provider": name, "transfer_id": status.transfer_id or f"ref:{status.reference}",
                  "status": REPORTED[status.outcome], "reference": status.reference,
                  "amount_minor": status.amount_minor, "currency": status.currency, "reason": status.reason,
                  "pickup_code": status.pickup_code, "via": "callback"}
        new = await writer.store(report)
        return web.json_response({"status": "received" if new else "duplicate"})

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def run_writer(app: web.Application):
        task = asyncio.create_task(writer.run())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app = web.Application(client_max_size=MAX_BODY)
    app.cleanup_ctx.append(run_writer)
    app.add_routes([web.post("/callbacks/{provider}", receive), web.get("/healthz", healthz)])
    return app
