"""Sending the SMS without ever sending one twice or losing one: the background loop.

1. Claim (one short transaction, `repository.claim_due`): due notices are leased to this sender
   (`sending`, a fresh lease token, the lease's end, one more attempt) and committed.
2. Send (no transaction open, no row locked): one gateway call for the batch. The gateway knows
   each notice by its id, so a notice sent again after a crash, or by another instance, goes out once.
3. Record (one short transaction, `repository.record_results`), under each notice's lease only:
   taken → `sent`; refused for good (the gateway says so, e.g. an invalid number) → `rejected`
   with the reason, and the rest of the batch goes on; not taken (the gateway down, no answer) →
   `pending` again after a backoff, or `failed` with the last error after `max_attempts`.

A sender that dies between 2 and 3 leaves its leases to expire: any sender then takes those
notices again (the gateway answers `sent` without sending twice). A lease that changed hands
meanwhile records nothing.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from reintegra.crash import crash_point
from reintegra.service import ServiceRuntime
from reintegra.telemetry import record_finished_span

from notifications import repository
from notifications.adapters.sms_gateway import Outcome, SendResult, Sms, SmsGateway
from notifications.repository import Recorded

NO_ANSWER = "no answer from the gateway for this message"


class SenderSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    batch_size: int = Field(500, alias="NOTIFICATIONS_SMS_BATCH_SIZE")
    # Longer than any gateway call: until then no other sender takes the notice.
    lease_s: float = Field(30.0, alias="NOTIFICATIONS_SMS_LEASE_S")
    # Attempts (claims) before a notice the gateway never took is `failed`.
    max_attempts: int = Field(20, alias="NOTIFICATIONS_SMS_MAX_ATTEMPTS")
    # Backoff after a transient failure: retry_base_s × 2^(attempts - 1), at most retry_max_s.
    retry_base_s: float = Field(2.0, alias="NOTIFICATIONS_SMS_RETRY_BASE_S")
    retry_max_s: float = Field(600.0, alias="NOTIFICATIONS_SMS_RETRY_MAX_S")
    idle_sleep_s: float = Field(0.05, alias="NOTIFICATIONS_SMS_IDLE_SLEEP_S")


def retry_in_s(attempts: int, settings: SenderSettings) -> float:
    return min(settings.retry_base_s * 2.0 ** max(attempts - 1, 0), settings.retry_max_s)


def error_of(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def outcome_of(row: asyncpg.Record, result: SendResult | None, settings: SenderSettings) -> Recorded:
    token, attempts = row["lease_token"], row["attempts"]
    if result is not None and result.outcome == Outcome.SENT:
        return Recorded(row["notice_id"], token, "sent")
    if result is not None and result.outcome == Outcome.REJECTED:
        return Recorded(row["notice_id"], token, "rejected", result.reason or "rejected by the gateway")
    error = (result.reason if result is not None else None) or NO_ANSWER
    if attempts >= settings.max_attempts:
        return Recorded(row["notice_id"], token, "failed", f"{error} (after {attempts} attempts)")
    return Recorded(row["notice_id"], token, "pending", error, retry_in_s(attempts, settings))


async def send_due(pool: asyncpg.Pool, gateway: SmsGateway, settings: SenderSettings) -> int:
    """One round: claim, send, record. Returns how many notices were claimed."""
    async with pool.acquire() as conn:
        claimed = await repository.claim_due(conn, settings.batch_size, settings.lease_s, settings.max_attempts)
    if not claimed:
        return 0
    started = time.time_ns()
    try:
        answers = dict(await gateway.send(
            [Sms(r["notice_id"], r["phone"], r["language"], r["case_id"], r["body"]) for r in claimed]))
    except Exception as exc:  # the call as a whole failed: every notice of it is tried again later
        failure = SendResult.retry(error_of(exc))
        answers = {r["notice_id"]: failure for r in claimed}
    finished = time.time_ns()
    outcomes = [outcome_of(row, answers.get(row["notice_id"]), settings) for row in claimed]
    for row, outcome in zip(claimed, outcomes, strict=True):
        record_finished_span("notifications send sms", row["traceparent"], row["tracestate"], started, finished,
                             {"reintegra.case_id": row["case_id"], "reintegra.notice_id": row["notice_id"],
                              "reintegra.sms_status": outcome.status, "reintegra.sms_attempt": row["attempts"]})
    crash_point("sms.after_send", claimed[0]["case_id"])  # the gateway took them, not yet recorded
    async with pool.acquire() as conn, conn.transaction():
        await repository.record_results(conn, outcomes)
    return len(claimed)


async def run_sender(runtime: ServiceRuntime, gateway: SmsGateway, settings: SenderSettings | None = None) -> None:
    settings = settings or SenderSettings()
    while True:
        if await send_due(runtime.db, gateway, settings) == 0:
            await asyncio.sleep(settings.idle_sleep_s)
