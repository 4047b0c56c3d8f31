"""Finance's batch handlers: inbox → its own views → (nothing to publish), one transaction per batch.

Three feeds: every ledger posting, the case statuses that concern a payment, and disbursement's
payment exceptions (plus its answers to finance's decisions)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg
from aiokafka import ConsumerRecord
from reintegra import inbox
from reintegra.contract import status as st
from reintegra.handling import decode_or_reject, fresh_events

from finance import repository
from finance.repository import PaymentUpdate

SYSTEM_ACTOR = "system:finance"
EXCEPTION_RAISED = "reintegra.payment.exception.raised.v1"
DECISION_APPLIED = "reintegra.payment.decision.applied.v1"
DECISION_REFUSED = "reintegra.payment.decision.refused.v1"

# The case statuses that move a payment, and the payment status each means.
PAYMENT_STATUS = {
    st.TRANCHE_RELEASED: "released",
    st.INKIND_ORDERED: "released",
    st.PAYMENT_SENT: "sent",
    st.PAYMENT_SETTLED: "settled",
    st.PAYMENT_FAILED: "failed",
    st.TRANCHE_CANCELLED: "cancelled",
    st.TRANCHE_HELD: "held",
}


def event_time(value: str | None, record: ConsumerRecord) -> datetime:
    if value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
    return datetime.fromtimestamp(record.timestamp / 1000, UTC)


async def handle_postings_batch(conn: asyncpg.Connection, records: Sequence[ConsumerRecord]) -> None:
    rows = []
    for record, event in await fresh_events(conn, records):
        rows += repository.posting_rows(event.data, event_time(event.time, record))
    await repository.insert_postings(conn, rows)


async def handle_status_batch(conn: asyncpg.Connection, records: Sequence[ConsumerRecord]) -> None:
    # Most case statuses (accepted, eligibility...) do not concern a payment: they are skipped before
    # the inbox, so they cost no write.
    decoded = [(r, decode_or_reject(r)) for r in records]
    relevant = [(r, e) for r, e in decoded if e.type in PAYMENT_STATUS and e.data.get("reference")]
    verdicts = await inbox.claim(conn, [(e.source, e.event_id, None) for _, e in relevant])
    updates = []
    for (record, event), verdict in zip(relevant, verdicts, strict=True):
        if verdict is not inbox.Verdict.APPLY:
            continue
        data = event.data
        updates.append(PaymentUpdate(data["reference"], data["case_id"], PAYMENT_STATUS[event.type],
                                     event_time(event.time, record), data, data.get("reason")))
    await repository.apply_payment_updates(conn, updates)


async def handle_exceptions_batch(conn: asyncpg.Connection, records: Sequence[ConsumerRecord]) -> None:
    raised = []
    for _record, event in await fresh_events(conn, records):
        if event.type == EXCEPTION_RAISED:
            raised.append(repository.disbursement_exception(event.data))
        elif event.type in (DECISION_APPLIED, DECISION_REFUSED):
            outcome = "applied" if event.type == DECISION_APPLIED else "refused"
            await repository.record_decision_outcome(conn, int(event.data["decision_id"]), outcome,
                                                     str(event.data.get("message") or ""), "system:disbursement")
    await repository.insert_exceptions(conn, raised, "system:disbursement")
