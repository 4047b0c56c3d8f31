"""Applying what finance decided about a payment exception (four eyes were checked there).

`repay.approved`: finance confirmed with the provider that an attempt executed nothing; the
attempt ends `failed` and the tranche is paid again under the next attempt's reference.
`write_off.approved`: finance closed the doubt on a payment held for it (outcome never told, or
settled for another amount) by booking it paid as instructed; a write-off about a payment that
is already final (a loss at the provider, seen on a statement) changes nothing here.

Each decision is answered on the payment-exceptions topic (`decision.applied` or
`decision.refused`, with why), so finance's history shows what disbursement did with it. One
batch is one transaction: inbox, instructions and cases locked, ledger transfers, outbox.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
from aiokafka import ConsumerRecord
from reintegra.events import InternalEvent, new_event
from reintegra.handling import derived_id, fresh_events, span_attributes
from reintegra.outbox import OutboxMessage, cloud_event_message
from reintegra.telemetry import record_span
from reintegra.topics import PAYMENT_EXCEPTIONS

from disbursement import provider_reports

REPAY = "reintegra.finance.repay.approved.v1"
WRITE_OFF = "reintegra.finance.write_off.approved.v1"
APPLIED = "reintegra.payment.decision.applied.v1"
REFUSED = "reintegra.payment.decision.refused.v1"
SOURCE = "urn:reintegra:disbursement"


async def handle_finance_decisions_batch(conn: asyncpg.Connection, records: Sequence[ConsumerRecord]) -> None:
    events = await fresh_events(conn, records)
    if not events:
        return
    references = [str(e.data.get("reference")) for _, e in events if e.data.get("reference")]
    batch = await provider_reports.open_batch(conn, references, money_may_move=True)
    for record, event in events:
        with record_span("disbursement apply finance decision", list(record.headers or ()),
                         span_attributes(record, event)):
            outcome, message = apply_decision(batch, event)
            batch.messages.append(answer(event, outcome, message))
    await provider_reports.close_batch(conn, batch)


def apply_decision(batch: provider_reports.Batch, event: InternalEvent) -> tuple[str, str]:
    """Apply one decision to its instruction and tranche; returns (applied | refused, why)."""
    data = event.data
    if event.type not in (REPAY, WRITE_OFF):
        return "refused", f"disbursement does not apply {event.type}"
    reference = data.get("reference")
    instruction = batch.instructions.get(str(reference)) if reference else None
    tranche = None
    if instruction is not None:
        ledger, key = batch.ledger_of(instruction, event.event_id, str(data.get("approved_by") or "finance"))
        tranche = ledger.tranches.get(key)
    if tranche is None:
        if event.type == WRITE_OFF:
            return "applied", "recorded; no payment of ours to change (the loss is finance's)"
        return "refused", f"no payment instruction {reference} to pay again"
    if tranche.payment_ref != instruction["reference"]:
        return _settled_elsewhere(event, tranche.payment_ref)
    if data.get("case_id") and data["case_id"] != instruction["case_id"]:
        return "refused", f"{reference} is not a payment of case {data['case_id']}"
    reason = str(data.get("reason") or "")
    open_attempt = batch.state.get(instruction["reference"]) in ("sending", "unknown", "unresolved")
    if event.type == REPAY:
        refusal = ledger.finance_repay(key, reason)
        if open_attempt and tranche.status in ("failed", "released"):
            # The attempt ended, even when its re-issue must wait (for a rate, a payout).
            batch.change(instruction["reference"], state="failed",
                         last_error=f"confirmed not executed by finance: {reason}"[:2000])
    else:
        if tranche.status in ("settled", "failed", "cancelled"):
            batch.drain(ledger, event.event_id)
            return "applied", f"recorded; the payment is {tranche.status}, nothing changed here"
        refusal = ledger.finance_write_off(key, reason)
        if refusal is None and open_attempt:
            batch.change(instruction["reference"], state="settled")
    batch.drain(ledger, event.event_id)
    if refusal is not None:
        return "refused", refusal
    if event.type == REPAY:
        return "applied", f"attempt {instruction['reference']} ended failed; paid again as {tranche.payment_ref}"
    return "applied", f"{instruction['reference']} booked paid as instructed (written off)"


def _settled_elsewhere(event: InternalEvent, current: str | None) -> tuple[str, str]:
    if event.type == WRITE_OFF:
        return "applied", f"recorded; the tranche has moved on to {current}, nothing changed here"
    return "refused", f"the tranche is already paid under a later attempt ({current}): nothing to pay again"


def answer(event: InternalEvent, outcome: str, message: str) -> OutboxMessage:
    data: dict[str, Any] = {"decision_id": event.data.get("decision_id"), "reference": event.data.get("reference"),
                            "case_id": event.data.get("case_id"), "outcome": outcome, "message": message}
    type_ = APPLIED if outcome == "applied" else REFUSED
    reply = new_event(type_, SOURCE, event.subject, data,
                      event_id=derived_id("finance-decision-answer", str(event.data.get("decision_id"))))
    return cloud_event_message(PAYMENT_EXCEPTIONS, reply)
