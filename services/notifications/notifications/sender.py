"""Background loop: send pending notices through the SMS gateway, then mark them sent."""

from __future__ import annotations

import asyncio
import time

from reintegra.service import ServiceRuntime
from reintegra.telemetry import record_finished_span

from notifications import repository
from notifications.adapters.sms_gateway import Sms, SmsGateway

SEND_BATCH = 500
IDLE_SLEEP_S = 0.05


async def send_pending(runtime: ServiceRuntime, gateway: SmsGateway) -> int:
    async with runtime.db.acquire() as conn, conn.transaction():
        pending = await repository.claim_pending(conn, SEND_BATCH)
        if not pending:
            return 0
        # The rows stay locked while sending; if we crash before commit they are sent again,
        # and the gateway recognises their ids.
        started = time.time_ns()
        await gateway.send([Sms(r["notice_id"], r["phone"], r["language"], r["case_id"], r["body"]) for r in pending])
        finished = time.time_ns()
        for row in pending:
            record_finished_span("notifications send sms", row["traceparent"], row["tracestate"], started, finished,
                                 {"reintegra.case_id": row["case_id"], "reintegra.notice_id": row["notice_id"]})
        await repository.mark_sent(conn, [r["notice_id"] for r in pending])
    return len(pending)


async def run_sender(runtime: ServiceRuntime, gateway: SmsGateway) -> None:
    while True:
        if await send_pending(runtime, gateway) == 0:
            await asyncio.sleep(IDLE_SLEEP_S)
