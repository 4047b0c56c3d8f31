"""Intake service: `faststream run intake.app:create_app --factory`."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from faststream import FastStream
from reintegra.service import ServiceBuilder, ServiceRuntime
from reintegra.topics import UPSTREAM_CASE_EVENTS

from intake import repository
from intake.adapters.identity_key import IdentityKeyError, load_identity_key
from intake.handlers import make_handler

log = logging.getLogger("intake")


async def report_stale_parked_events(runtime: ServiceRuntime) -> None:
    """Parked events that never found their case are surfaced to operators in the log."""
    threshold = runtime.settings.parked_alert_after_s
    while True:
        async with runtime.db.acquire() as conn:
            stale = await repository.parked_older_than(conn, threshold)
        if stale:
            log.warning(
                "%d parked event(s) waited more than %d s for their case (oldest: case %s, %s); "
                "see `reintegra parked`", len(stale), threshold, stale[0]["case_id"], stale[0]["type"],
            )
        await asyncio.sleep(max(10, min(threshold, 300)))


def create_app() -> FastStream:
    builder = ServiceBuilder("intake", schema="intake", migrations=Path(__file__).parent / "migrations")
    try:
        identity_key = load_identity_key(builder.settings)
    except IdentityKeyError as exc:
        raise SystemExit(f"intake cannot start: {exc}") from None
    builder.consume(
        UPSTREAM_CASE_EVENTS,
        make_handler(identity_key),
        title="upstream-case-events",
        description="Upstream case events (contract v1): validated, deduplicated on (source, id), "
        "parked until their case exists, then forwarded to eligibility.",
    )
    builder.background(report_stale_parked_events)
    return builder.build()
