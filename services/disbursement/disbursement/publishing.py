"""Turning what a ledger emitted into outbox messages: status events (tranche changes, and the
`case.rejected` answer to an event the ledger refused) and SMS requests."""

from __future__ import annotations

from reintegra.events import new_event
from reintegra.handling import derived_id
from reintegra.notices import notice_request
from reintegra.outbox import OutboxMessage, cloud_event_message
from reintegra.telemetry import current_trace_carrier
from reintegra.topics import CASE_STATUS

from disbursement.domain.case import CaseLedger

SOURCE = "urn:reintegra:disbursement"


def drain(ledger: CaseLedger, cause_id: str) -> list[OutboxMessage]:
    """Outbox messages for what the ledger emitted; ids derive from the cause so replays repeat them."""
    carrier = current_trace_carrier()
    for key in ledger.changed:
        tranche = ledger.tranches[key]
        if tranche.traceparent is None and carrier.get("traceparent"):
            # Later steps of this tranche (payment sent, settled) continue the trace that released it.
            tranche.traceparent, tranche.tracestate = carrier["traceparent"], carrier.get("tracestate")
    messages = []
    for n, (type_, data, _tranche) in enumerate(ledger.statuses):
        event = new_event(type_, SOURCE, ledger.case_id, data, event_id=derived_id(cause_id, type_, str(n)))
        messages.append(cloud_event_message(CASE_STATUS, event))
    for n, notice in enumerate(ledger.notices):
        messages.append(notice_request(SOURCE, derived_id(cause_id, "notice", str(n)), notice))
    ledger.statuses.clear()
    ledger.notices.clear()
    return messages
