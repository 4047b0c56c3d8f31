"""Disbursement's batch handler: inbox → case ledgers → tranches → outbox, one transaction per batch."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
from aiokafka import ConsumerRecord
from reintegra import outbox
from reintegra.errors import PermanentError
from reintegra.handling import fresh_events, span_attributes
from reintegra.outbox import OutboxMessage
from reintegra.telemetry import record_span

from disbursement import repository
from disbursement.domain.case import CaseLedger
from disbursement.publishing import drain

ACTIONS = {
    "reintegra.eligibility.grant.approved.v1": CaseLedger.approve,
    "reintegra.eligibility.plan.revised.v1": CaseLedger.revise,
    "reintegra.eligibility.beneficiary.updated.v1": CaseLedger.update_beneficiary,
    "reintegration.milestone.verified.v1": CaseLedger.verify_milestone,
    "reintegration.delivery.confirmed.v1": CaseLedger.confirm_delivery,
    "reintegration.case.withdrawn.v1": CaseLedger.withdraw,
}


async def handle_eligibility_batch(conn: asyncpg.Connection, records: Sequence[ConsumerRecord]) -> None:
    events = await fresh_events(conn, records)
    ledgers = await repository.load_ledgers(conn, {e.subject for _, e in events})
    messages: list[OutboxMessage] = []
    for record, event in events:
        with record_span("disbursement process", list(record.headers or ()), span_attributes(record, event)):
            action = ACTIONS.get(event.type)
            if action is None:
                raise PermanentError("unknown_event_type", f"disbursement does not handle {event.type}")
            ledger = ledgers[event.subject]
            action(ledger, event.data)
            messages += drain(ledger, event.event_id)
    await repository.save_ledgers(conn, ledgers.values())
    await outbox.add(conn, messages)
