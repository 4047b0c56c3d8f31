"""Disbursement's payment loops: the callback endpoint, one dispatcher per provider, and the
applier of stored callbacks. Started together as one background task of the service."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os

from aiohttp import web
from reintegra.service import ServiceRuntime

from disbursement import provider_reports, provider_setup
from disbursement.callbacks import callback_app
from disbursement.dispatcher import DispatchSettings, dispatch_round

log = logging.getLogger(__name__)

IDLE_SLEEP_S = 0.05
DISPATCH_LANES = 2  # concurrent dispatch rounds per provider


async def run_payments(runtime: ServiceRuntime) -> None:
    registry = provider_setup.registry(runtime.settings)
    s = runtime.settings
    app = callback_app(lambda: runtime.db, registry)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, s.payment_callback_host, s.payment_callback_port)
    await site.start()
    port = runner.addresses[0][1]
    base = s.payment_callback_public_url or f"http://{s.payment_callback_host}:{port}"
    _write_callback_url(runtime, base)
    log.info("provider callbacks at %s/callbacks/<provider>", base)
    try:
        async with asyncio.TaskGroup() as group:
            for name in registry.configs:
                settings = DispatchSettings(lease_s=s.payment_lease_s, deadline_s=s.payment_deadline_s,
                                            callback_url=f"{base}/callbacks/{name}",
                                            poll_after_s=s.payment_poll_after_s, vendors=provider_setup.vendors())
                # Rounds overlap (claims skip what another round holds), so one provider's calls keep
                # flowing while the previous round is recorded.
                for lane in range(DISPATCH_LANES):
                    group.create_task(_dispatch_forever(runtime, registry.adapter(name), settings),
                                      name=f"pay:{name}:{lane}")
            for lane in range(DISPATCH_LANES):
                group.create_task(_apply_forever(runtime), name=f"apply-provider-reports:{lane}")
    finally:
        await runner.cleanup()
        await registry.close()


def _write_callback_url(runtime: ServiceRuntime, base: str) -> None:
    """Where this instance listens, for operators and tests (one file per process)."""
    directory = runtime.settings.state_dir / "callbacks"
    with contextlib.suppress(OSError):
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"{runtime.name}-{os.getpid()}.url").write_text(base + "\n", encoding="utf-8")


async def _dispatch_forever(runtime: ServiceRuntime, adapter, settings: DispatchSettings) -> None:
    while True:
        try:
            done = await dispatch_round(runtime.db, adapter, settings)
        except Exception:  # one provider's trouble (or a bug) must not stop the others
            log.exception("payments to %s: round failed; retrying in 1 s", adapter.config.name)
            done = 0
            await asyncio.sleep(1.0)
        if done == 0:
            await asyncio.sleep(IDLE_SLEEP_S)


async def _apply_forever(runtime: ServiceRuntime) -> None:
    while True:
        try:
            async with runtime.db.acquire() as conn:
                applied = await provider_reports.apply_stored_reports(conn)
        except Exception:
            log.exception("applying provider reports failed; retrying in 1 s")
            applied = 0
            await asyncio.sleep(1.0)
        if applied == 0:
            await asyncio.sleep(IDLE_SLEEP_S)
