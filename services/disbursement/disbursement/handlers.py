"""Disbursement's batch handler: inbox → case ledgers → tranches and ledger transfers → outbox, one
transaction per batch."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
from aiokafka import ConsumerRecord
from reintegra import outbox
from reintegra.errors import PermanentError
from reintegra.handling import fresh_events, span_attributes
from reintegra.outbox import OutboxMessage
from reintegra.telemetry import record_span

from disbursement import ledger_repository, repository
from disbursement.domain.case import CaseLedger, programme_currency_of
from disbursement.money_context import money_context
from disbursement.publishing import drain

GRANT_APPROVED = "reintegra.eligibility.grant.approved.v1"
DELIVERY_CONFIRMED = "reintegration.delivery.confirmed.v1"
ACTIONS = {
    GRANT_APPROVED: CaseLedger.approve,
    "reintegra.eligibility.plan.revised.v1": CaseLedger.revise,
    "reintegra.eligibility.beneficiary.updated.v1": CaseLedger.update_beneficiary,
    "reintegration.milestone.verified.v1": CaseLedger.verify_milestone,
    DELIVERY_CONFIRMED: CaseLedger.confirm_delivery,
    "reintegration.case.withdrawn.v1": CaseLedger.withdraw,
}


async def handle_eligibility_batch(conn: asyncpg.Connection, records: Sequence[ConsumerRecord]) -> None:
    events = await fresh_events(conn, records)
    if not events:
        return
    ledgers = await repository.load_ledgers(conn, {e.subject for _, e in events})
    approved = {(e.data["program_code"], programme_currency_of(e.data)) for _, e in events
                if e.type == GRANT_APPROVED and e.data.get("program_code")}
    invoices = {(e.data.get("vendor_id") or "", str((e.data.get("invoice") or {}).get("number")))
                for _, e in events if e.type == DELIVERY_CONFIRMED and isinstance(e.data.get("invoice"), dict)
                and (e.data.get("invoice") or {}).get("number")}
    ctx = await money_context(conn, ledgers.values(), approved, invoices=invoices)
    messages: list[OutboxMessage] = []
    for record, event in events:
        with record_span("disbursement process", list(record.headers or ()), span_attributes(record, event)):
            action = ACTIONS.get(event.type)
            if action is None:
                raise PermanentError("unknown_event_type", f"disbursement does not handle {event.type}")
            ledger = ledgers[event.subject]
            ledger.act(event.event_id, actor_of(event.data))
            action(ledger, event.data)
            messages += drain(ledger, event.event_id)
    messages += await repository.save_ledgers(conn, ledgers.values())
    messages += await ledger_repository.apply(conn, ctx.books)
    await outbox.add(conn, messages)


def actor_of(data: dict) -> str:
    """Who caused an event, as upstream or eligibility named them."""
    upstream = data.get("upstream_event") or {}
    for name in ("verified_by", "approved_by", "decided_by"):
        if data.get(name):
            return str(data[name])
    plan = data.get("plan") or {}
    if plan.get("approved_by"):
        return str(plan["approved_by"])
    return str(upstream.get("source") or "urn:reintegra:eligibility")
