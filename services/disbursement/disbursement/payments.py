"""Background loops that move cash through the provider: send released payments, apply settlements.

The provider call happens outside any transaction: a tranche is first claimed ('sending'), then
sent with its idempotency reference, then its outcome is recorded. A crash in between only means
the same reference is sent again, which the provider answers with the same transfer.
"""

from __future__ import annotations

import asyncio
import logging
import time

from reintegra import jsonfast, outbox
from reintegra.service import ServiceRuntime
from reintegra.telemetry import record_finished_span, span_from_traceparent

from disbursement import ledger_repository, repository
from disbursement.adapters.provider_client import ProviderClient, ProviderUnavailable, TransferRequest
from disbursement.money_context import money_context
from disbursement.publishing import drain

log = logging.getLogger(__name__)

PROVIDER = "sandbox"
SEND_BATCH = 500
RESEND_AFTER_S = 30.0
IDLE_SLEEP_S = 0.05


def transfer_request(row) -> TransferRequest:
    payout = jsonfast.loads(row["payout"]) if isinstance(row["payout"], str) else (row["payout"] or {})
    return TransferRequest(
        reference=row["reference"], amount_minor=row["amount_minor"], currency=row["currency"].strip(),
        method=payout.get("method", "mobile_money"), provider=payout.get("provider"), msisdn=payout.get("msisdn"),
        bank_code=payout.get("bank_code"), account_number=payout.get("account_number"),
        # Cash pickup is identified at the counter by the case reference; the name stays in intake.
        beneficiary_name=payout.get("beneficiary_name") or f"case {row['case_id']}",
    )


async def send_payments(runtime: ServiceRuntime, client: ProviderClient) -> int:
    async with runtime.db.acquire() as conn, conn.transaction():
        claimed = await repository.claim_payments_to_send(conn, SEND_BATCH, RESEND_AFTER_S)
    if not claimed:
        return 0
    started = time.time_ns()
    try:
        outcomes = await client.send_transfers([transfer_request(r) for r in claimed])
    except ProviderUnavailable:
        log.warning("provider unavailable; %d payment(s) will be retried in %.0f s", len(claimed), RESEND_AFTER_S)
        return 0
    finished = time.time_ns()
    for row in claimed:  # one provider call for the whole batch: each payment's trace gets its span
        record_finished_span("disbursement send payment", row["traceparent"], row["tracestate"], started, finished,
                             {"reintegra.case_id": row["case_id"], "reintegra.reference": row["reference"]})
    by_reference = {o.reference: o for o in outcomes}
    async with runtime.db.acquire() as conn, conn.transaction():
        ledgers = await repository.load_ledgers(conn, {r["case_id"] for r in claimed})
        # Budgets are locked only when a payment failed (its money goes back to the budget).
        failing = any(not o.accepted and (o.permanent or o.error == "idempotency_conflict") for o in outcomes)
        ctx = await money_context(conn, ledgers.values(), budgets=failing, rates=False)
        messages = []
        for row in claimed:
            outcome = by_reference.get(row["reference"])
            ledger = ledgers[row["case_id"]]
            ledger.act(f"send:{row['reference']}", f"provider:{PROVIDER}")
            key = (row["plan_id"], row["component_id"], row["seq"])
            with span_from_traceparent("disbursement record payment", row["traceparent"], row["tracestate"],
                                       {"reintegra.case_id": row["case_id"], "reintegra.reference": row["reference"]}):
                if outcome is None:
                    continue
                if outcome.accepted:
                    ledger.payment_sent(key, outcome.transfer_id)
                elif outcome.permanent or outcome.error == "idempotency_conflict":
                    ledger.payment_failed(key, outcome.error or "rejected_by_provider")
                messages += drain(ledger, f"send:{row['reference']}")
        await repository.save_ledgers(conn, ledgers.values())
        messages += await ledger_repository.apply(conn, ctx.books)
        await outbox.add(conn, messages)
    return len(claimed)


_FEED_PROBE_EVERY_S = 5.0
_last_feed_probe = 0.0


async def _feed_restarted(client: ProviderClient, cursor: int) -> bool:
    """Whether the feed no longer has the entry at our cursor (checked at most every few seconds)."""
    global _last_feed_probe
    if time.monotonic() - _last_feed_probe < _FEED_PROBE_EVERY_S:
        return False
    _last_feed_probe = time.monotonic()
    entries, _ = await client.settlements_after(cursor - 1, limit=1)
    return not entries


async def apply_settlements(runtime: ServiceRuntime, client: ProviderClient) -> int:
    async with runtime.db.acquire() as conn:
        cursor = await repository.provider_cursor(conn, PROVIDER)
    settlements, next_cursor = await client.settlements_after(cursor, limit=1000)
    if not settlements:
        if cursor and await _feed_restarted(client, cursor):
            # The provider's feed starts again below our cursor (the sandbox keeps it in memory):
            # read it again from the start. Applying a settlement twice changes nothing (a tranche
            # settles or fails only from sent), so nothing is applied twice.
            log.warning("the provider's settlement feed restarted below cursor %d: reading it from the start", cursor)
            async with runtime.db.acquire() as conn:
                await repository.save_provider_cursor(conn, PROVIDER, 0)
        return 0
    async with runtime.db.acquire() as conn, conn.transaction():
        # Re-read under the transaction: only one poller's view of the cursor wins.
        if await repository.provider_cursor(conn, PROVIDER) != cursor:
            return 0
        keys = await repository.tranche_keys_by_reference(conn, [s.reference for s in settlements])
        ledgers = await repository.load_ledgers(conn, {case_id for case_id, _ in keys.values()})
        failing = any(s.status != "settled" for s in settlements)
        ctx = await money_context(conn, ledgers.values(), budgets=failing, rates=False)
        messages = []
        for settlement in settlements:
            found = keys.get(settlement.reference)
            if found is None:
                log.warning("settlement for unknown reference %s ignored", settlement.reference)
                continue
            case_id, key = found
            ledger = ledgers[case_id]
            ledger.act(f"settlement:{settlement.cursor}", f"provider:{PROVIDER}")
            tranche = ledger.tranches[key]
            with span_from_traceparent("disbursement apply settlement", tranche.traceparent, tranche.tracestate,
                                       {"reintegra.case_id": case_id, "reintegra.reference": settlement.reference}):
                if settlement.status == "settled":
                    ledger.payment_settled(key)
                else:
                    ledger.payment_failed(key, settlement.failure_reason or "failed_at_provider")
                messages += drain(ledger, f"settlement:{settlement.cursor}")
        await repository.save_ledgers(conn, ledgers.values())
        messages += await ledger_repository.apply(conn, ctx.books)
        await outbox.add(conn, messages)
        await repository.save_provider_cursor(conn, PROVIDER, next_cursor)
    return len(settlements)


async def run_payment_dispatcher(runtime: ServiceRuntime) -> None:
    async with ProviderClient(runtime.settings.provider_base_url) as client:
        while True:
            if await send_payments(runtime, client) == 0:
                await asyncio.sleep(IDLE_SLEEP_S)


async def run_settlement_poller(runtime: ServiceRuntime) -> None:
    async with ProviderClient(runtime.settings.provider_base_url) as client:
        while True:
            try:
                applied = await apply_settlements(runtime, client)
            except ProviderUnavailable:
                log.warning("provider unavailable; settlement feed retried in 1 s")
                applied = 0
                await asyncio.sleep(1.0)
            if applied == 0:
                await asyncio.sleep(IDLE_SLEEP_S)
