"""Paying through providers without ever paying twice: one loop per provider.

1. Claim (one transaction): released tranches routed to the provider become instructions with a
   frozen request, committed before any call; instructions whose next step is due are leased.
2. Call (no transaction open): a fresh instruction is sent; one whose outcome is unknown is first
   looked up by reference and resent (the same frozen bytes) only if the provider has none and the
   deadline has not passed; an accepted one is polled for its settlement. Calls run in parallel,
   bounded per provider by its adapter, so a slow provider holds up only itself.
3. Record (one transaction): what the provider said is stored as a report (deduplicated like a
   callback) and applied; the instruction's bookkeeping is written only under its lease.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
from reintegra import jsonfast
from reintegra.crash import crash_point
from reintegra.telemetry import record_finished_span

from disbursement import payment_store, provider_reports
from disbursement.adapters.providers.base import (
    FrozenRequest,
    InvalidPayee,
    Outcome,
    Payee,
    PaymentOrder,
    ProviderAdapter,
    ProviderStatus,
)
from disbursement.domain.three_way_match import purchase_order_number
from disbursement.domain.tranche import attempt_reference
from disbursement.domain.vendors import VendorDirectory
from disbursement.payment_store import Work

log = logging.getLogger(__name__)

NEW_PER_ROUND = 8  # × the provider's concurrency: new instructions claimed per round
POLL_AFTER_S = 30.0  # first poll of an accepted payment (callbacks usually come long before)
MAX_POLL_INTERVAL_S = 3600.0
MAX_CHECK_INTERVAL_S = 60.0
ACTOR = "disbursement"


@dataclass(frozen=True)
class DispatchSettings:
    lease_s: float = 60.0  # longer than any call: until then nobody else takes the instruction
    deadline_s: float = 6 * 3600.0  # after this, an unknown outcome is an exception, never resent
    callback_url: str | None = None  # where providers report (…/callbacks/<provider>)
    poll_after_s: float = POLL_AFTER_S
    vendors: VendorDirectory | None = None  # vendors' bank accounts, for in-kind payables


@dataclass(frozen=True)
class Result:
    work: Work
    status: ProviderStatus
    sends: int
    lookups: int
    started_ns: int
    finished_ns: int


def payment_order(row: Any, vendors: VendorDirectory | None = None) -> PaymentOrder:
    """What a claimed tranche is paid: its payout amount to the payout it is frozen with (a vendor:
    its bank account, from the vendor registry)."""
    reference = attempt_reference(row["reference"], row["attempt"])
    amount, currency = row["payout_minor"], row["payout_currency"].strip()
    if row["modality"] == "in_kind":
        vendor = vendors.get(row["vendor_id"]) if vendors is not None else None
        bank = vendor.bank if vendor is not None else None
        payee = Payee(name=bank.account_holder if bank else None, msisdn=None, iban=bank.iban if bank else None,
                      account_number=bank.account_number if bank else None,
                      bank_code=bank.bank_code if bank else None, bic=bank.bic if bank else None)
        return PaymentOrder(reference=reference, amount_minor=amount, currency=currency, payee=payee,
                            note=f"Purchase order {purchase_order_number(row['case_id'], row['plan_id'], row['component_id'], row['seq'])}")
    payout = _json(row["payout"]) or {}
    contact = _json(row["contact"]) or {}
    method = payout.get("method")
    account = payout.get("account_number") or payout.get("iban")
    payee = Payee(
        name=contact.get("payee_name"),
        msisdn=payout.get("msisdn") if method == "mobile_money" else (payout.get("msisdn") or contact.get("phone")),
        iban=account if account and _looks_like_iban(account) else None,
        account_number=account if account and not _looks_like_iban(account) else None,
        bank_code=payout.get("bank_code"), bic=payout.get("bic"),
    )
    return PaymentOrder(reference=reference, amount_minor=amount, currency=currency, payee=payee,
                        note=f"Reintegration grant {row['case_id']} {row['component_id']}/{row['seq']}")


def _looks_like_iban(value: str) -> bool:
    compact = value.replace(" ", "")
    return len(compact) >= 15 and compact[:2].isalpha() and compact[2:4].isdigit()


def _json(value: Any) -> Any:
    return jsonfast.loads(value) if isinstance(value, str | bytes) else value


async def claim(conn: asyncpg.Connection, adapter: ProviderAdapter, settings: DispatchSettings) -> list[Work]:
    """New instructions (frozen and committed here) and due ones, for one provider."""
    name, limit = adapter.config.name, adapter.config.concurrency * NEW_PER_ROUND
    async with conn.transaction():
        due = await payment_store.claim_due_instructions(conn, name, limit, settings.lease_s)
        fresh = await payment_store.claim_new_tranches(conn, name, max(limit - len(due), 0))
        rows, work = [], []
        for row in fresh:
            order = payment_order(row, settings.vendors)
            token = uuid.uuid4()
            refusal, request = None, None
            try:
                request = adapter.freeze(order).to_json()
            except InvalidPayee as exc:
                refusal = (exc.reason_code, str(exc))
            previous = attempt_reference(row["reference"], row["attempt"] - 1) if row["attempt"] > 1 else None
            rows.append({
                "reference": order.reference, "tranche_reference": row["reference"], "attempt": row["attempt"],
                "previous_reference": previous, "case_id": row["case_id"], "plan_id": row["plan_id"],
                "component_id": row["component_id"], "seq": row["seq"], "provider": name,
                "payee_kind": "vendor" if row["modality"] == "in_kind" else "beneficiary",
                "from_status": row["status"],
                "amount_minor": order.amount_minor, "currency": order.currency, "request": request,
                "lease_token": token, "traceparent": row["traceparent"], "tracestate": row["tracestate"],
                "payout": _json(row["payout"]),
            })
            work.append(Work("send", order.reference, name, row["case_id"], (row["plan_id"], row["component_id"], row["seq"]),
                             request, token, False, row["traceparent"], row["tracestate"], refusal))
        await payment_store.add_instructions(conn, rows, settings.deadline_s, settings.lease_s)
    return due + work


async def call(adapter: ProviderAdapter, work: Work, settings: DispatchSettings) -> Result:
    started = time.time_ns()
    sends = lookups = 0
    if work.refusal is not None:
        status = ProviderStatus(work.provider, work.reference, Outcome.REFUSED, reason=work.refusal[0],
                                detail=work.refusal[1])
    else:
        frozen = FrozenRequest.from_json(work.request) if work.request else None
        if work.action == "send":
            sends += 1
            status = await adapter.send(frozen, settings.callback_url)
        else:
            lookups += 1
            status = await adapter.lookup(work.reference)
            if (work.action == "check" and status.outcome == Outcome.NOT_FOUND and not work.past_deadline
                    and frozen is not None):
                # The provider has nothing under this reference: sending the frozen request again is safe.
                sends += 1
                status = await adapter.send(frozen, settings.callback_url)
    return Result(work, status, sends, lookups, started, time.time_ns())


REPORTED = {Outcome.PENDING: "pending", Outcome.SETTLED: "settled", Outcome.FAILED: "failed"}


def _report(result: Result) -> dict[str, Any] | None:
    status = result.status
    if status.outcome not in REPORTED:
        return None
    return {"provider": result.work.provider, "transfer_id": status.transfer_id or f"ref:{result.work.reference}",
            "status": REPORTED[status.outcome], "reference": result.work.reference,
            "amount_minor": status.amount_minor, "currency": status.currency, "reason": status.reason,
            "pickup_code": status.pickup_code, "via": "send" if result.sends else "lookup"}


def _retry_in(attempts: int, cap: float) -> float:
    return min(2.0 ** max(attempts, 1), cap)


async def record(conn: asyncpg.Connection, results: list[Result], settings: DispatchSettings) -> None:
    if not results:
        return
    async with conn.transaction():
        failing = any(r.status.outcome in (Outcome.FAILED, Outcome.REFUSED) for r in results)
        batch = await provider_reports.open_batch(conn, [r.work.reference for r in results], money_may_move=failing)
        reports = [report for r in results if (report := _report(r)) is not None]
        new_ids = set(await payment_store.add_provider_events(conn, reports))
        outcomes: dict[int, str] = {}
        if new_ids:
            for row in await payment_store.claim_unapplied_events(conn, len(new_ids), ids=sorted(new_ids)):
                outcomes[row["id"]] = provider_reports.apply_report(batch, dict(row))
        for result in results:
            _bookkeeping(batch, result, settings)
            if result.status.raw is not None:  # an answer that could not be read: kept for a person
                await payment_store.set_aside(conn, result.work.provider, "lookup",
                                              f"{result.work.reference}: {result.status.detail}", result.status.raw)
        await provider_reports.close_batch(conn, batch)
        await payment_store.mark_events_applied(conn, outcomes)


def _bookkeeping(batch: provider_reports.Batch, result: Result, settings: DispatchSettings) -> None:
    """The instruction's own state after a call, written only under the lease the call was made with."""
    work, status = result.work, result.status
    instruction = batch.instructions.get(work.reference)
    if instruction is None or instruction["lease_token"] != work.lease_token:
        return  # someone else holds it now; what the provider said was still recorded as a report
    counts = {"sends": result.sends, "lookups": result.lookups, "last_outcome": status.outcome.value,
              "lease_token": None}
    state = batch.state[work.reference]
    attempts = instruction["sends"] + instruction["lookups"] + result.sends + result.lookups
    if status.outcome == Outcome.REFUSED:
        if state in ("sending", "unknown"):
            batch.change(work.reference, state="refused", last_error=f"{status.reason}: {status.detail}", **counts)
            ledger, key = batch.ledger_of(instruction, f"refused:{work.reference}", f"provider:{work.provider}")
            ledger.payment_failed(key, status.reason or "refused_by_provider")
            batch.drain(ledger, f"refused:{work.reference}")
        else:
            batch.change(work.reference, **counts)
        return
    if status.outcome in REPORTED:
        # Accepted (or final): the next look is a poll, later and later while it stays pending.
        polls = instruction["lookups"] + result.lookups
        retry = min(settings.poll_after_s * 2.0 ** max(polls - 1, 0), MAX_POLL_INTERVAL_S)
        batch.change(work.reference, retry_in_s=retry, **counts)
        return
    # UNKNOWN, or NOT_FOUND where something should exist: ask again later; never resend after the deadline.
    detail = status.detail or status.outcome.value
    if work.past_deadline and state in ("sending", "unknown"):
        message = (f"no outcome known from {work.provider} for {work.reference} by the deadline "
                   f"after {attempts} call(s) (last: {detail}): it is not sent again; finance decides")
        batch.change(work.reference, state="unresolved", last_error=detail, **counts)
        batch.exceptions.append(provider_reports.exception("outcome_unresolved", instruction, None, message=message))
        ledger, key = batch.ledger_of(instruction, f"unresolved:{work.reference}", ACTOR)
        ledger.payment_unresolved(key, message)
        batch.drain(ledger, f"unresolved:{work.reference}")
        return
    if work.past_deadline and state == "pending":
        batch.exceptions.append(provider_reports.exception(
            "settlement_overdue", instruction, None,
            message=f"{work.provider} accepted {work.reference} but has not settled it by the deadline"))
    next_state = "unknown" if state == "sending" else state
    cap = MAX_CHECK_INTERVAL_S if next_state == "unknown" else MAX_POLL_INTERVAL_S
    batch.change(work.reference, state=next_state, last_error=detail, retry_in_s=_retry_in(attempts, cap), **counts)


async def dispatch_round(pool: asyncpg.Pool, adapter: ProviderAdapter, settings: DispatchSettings) -> int:
    async with pool.acquire() as conn:
        work = await claim(conn, adapter, settings)
    if not work:
        return 0
    results = await asyncio.gather(*(call(adapter, w, settings) for w in work))
    for result in results:  # one span per payment call, in each payment's own trace
        record_finished_span(f"disbursement {result.work.action} payment", result.work.traceparent,
                             result.work.tracestate, result.started_ns, result.finished_ns,
                             {"reintegra.case_id": result.work.case_id, "reintegra.reference": result.work.reference,
                              "reintegra.provider": result.work.provider,
                              "reintegra.provider_outcome": result.status.outcome.value})
    for result in results:
        crash_point("payment.after_provider_call", result.work.case_id)  # answered, not yet recorded
    async with pool.acquire() as conn:
        await record(conn, list(results), settings)
    return len(work)
