"""Intake's batch handler: validate, dedupe on (source, id), park, forward; one transaction per batch."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg
from aiokafka import ConsumerRecord
from opentelemetry.trace import SpanKind
from reintegra import inbox, outbox
from reintegra.contract.envelope import RejectedEvent, UpstreamEvent, parse_upstream_record
from reintegra.contract.reasons import Reason
from reintegra.events import new_event, utc_now_iso
from reintegra.handling import derived_id
from reintegra.outbox import OutboxMessage, cloud_event_message
from reintegra.telemetry import current_trace_carrier, record_span, span_from_traceparent
from reintegra.topics import CASE_STATUS, INTAKE_CASE_EVENTS, UPSTREAM_INVALID

from intake import repository
from intake.domain import statuses
from intake.domain.minimise import accepted_case
from intake.domain.routing import CaseStatus, Route, route, status_after
from intake.repository import ParkedEvent

SOURCE = "urn:reintegra:intake"
CASE_ACCEPTED_INTERNAL = "reintegra.intake.case.accepted.v1"
def inbox_key(record: ConsumerRecord, parsed: UpstreamEvent | RejectedEvent) -> tuple[str, str, str | None]:
    if isinstance(parsed, UpstreamEvent):
        return parsed.source, parsed.event_id, parsed.content_hash
    # A rejected delivery is deduplicated on its exact bytes, without claiming its (source, id):
    # a corrected event sent again under the same id must still be applied.
    raw_hash = _delivery_hash(record)
    if parsed.source and parsed.event_id:
        return f"rejected:{parsed.source}", f"{parsed.event_id}:{raw_hash}", None
    return f"rejected:kafka:{record.topic}:{record.partition}", str(record.offset), None


def _delivery_hash(record: ConsumerRecord) -> str:
    """What makes two deliveries the same delivery: the value and the headers (in binary mode the
    envelope lives in the headers), leaving out the trace context, which a re-send may change."""
    digest = hashlib.sha256(record.value or b"")
    for name, value in sorted(h for h in record.headers or () if h[0] not in ("traceparent", "tracestate")):
        digest.update(b"\x00" + name.encode(errors="replace") + b"\x00" + (value or b""))
    return digest.hexdigest()


def invalid_record(record: ConsumerRecord, reasons: Sequence[Reason]) -> OutboxMessage:
    """The original bytes and headers, with the reasons in headers, on the .invalid topic."""
    reason_list = [r.model_dump() for r in reasons]
    headers = list(record.headers or ()) + [
        ("reintegra-reasons", json.dumps(reason_list, ensure_ascii=False).encode()),
        ("reintegra-reason-codes", ",".join(r.code for r in reasons).encode()),
        ("reintegra-original-partition", str(record.partition).encode()),
        ("reintegra-original-offset", str(record.offset).encode()),
        ("reintegra-rejected-at", utc_now_iso().encode()),
    ]
    return OutboxMessage(UPSTREAM_INVALID, record.key, record.value or b"", headers)


@dataclass
class _BatchEffects:
    """What a batch changes, gathered so that each table gets one statement."""

    known: dict[str, CaseStatus]
    parked_in_db: dict[str, list[ParkedEvent]]
    new_cases: list[tuple[str, str, str, CaseStatus]] = field(default_factory=list)
    status_changes: dict[str, CaseStatus] = field(default_factory=dict)
    to_park: dict[str, list[ParkedEvent]] = field(default_factory=dict)
    messages: list[OutboxMessage] = field(default_factory=list)

    def forward(self, case_id: str, source: str, event_id: str, type_: str, data: dict) -> None:
        event = new_event(type_, SOURCE, case_id, data, event_id=derived_id(source, event_id))
        self.messages.append(cloud_event_message(INTAKE_CASE_EVENTS, event))
        current = self.known[case_id]
        new_status = status_after(type_, current)
        if new_status is not current:
            self.known[case_id] = new_status
            self.status_changes[case_id] = new_status

    def status(self, type_: str, case_id: str, data: dict, *id_parts: str) -> None:
        event = new_event(type_, SOURCE, case_id, data, event_id=derived_id(type_, *id_parts))
        self.messages.append(cloud_event_message(CASE_STATUS, event))

    def register(self, event: UpstreamEvent) -> None:
        case = accepted_case(event.raw_data)
        self.known[event.case_id] = CaseStatus.ACTIVE
        self.new_cases.append((event.case_id, event.source, case["program_code"], CaseStatus.ACTIVE))
        self.status(statuses.CASE_ACCEPTED, event.case_id, statuses.accepted(event.case_id, case["program_code"]),
                    event.source, event.event_id)
        self.forward(event.case_id, event.source, event.event_id, CASE_ACCEPTED_INTERNAL, case)
        for parked in self.parked_in_db.pop(event.case_id, []) + self.to_park.pop(event.case_id, []):
            # Each parked event continues its own trace, not the registration's.
            with span_from_traceparent("intake release parked", parked.traceparent, parked.tracestate,
                                       {"reintegra.case_id": parked.case_id, "cloudevents.type": parked.type}):
                self.forward(parked.case_id, parked.source, parked.event_id, parked.type, parked.data)

    def park(self, event: UpstreamEvent) -> None:
        carrier = current_trace_carrier()
        self.to_park.setdefault(event.case_id, []).append(
            ParkedEvent(event.case_id, event.source, event.event_id, event.type, event.raw_data,
                        carrier.get("traceparent"), carrier.get("tracestate"))
        )

    def reject(self, record: ConsumerRecord, reasons: Sequence[Reason], case_id: str | None,
               event_id: str | None, event_type: str | None, *, publish_status: bool = True) -> None:
        self.messages.append(invalid_record(record, reasons))
        if case_id and publish_status:
            data = statuses.rejected(case_id, [r.model_dump() for r in reasons], event_id, event_type)
            self.status(statuses.CASE_REJECTED, case_id, data, record.topic, str(record.partition), str(record.offset))


def _span_attributes(record: ConsumerRecord, parsed: UpstreamEvent | RejectedEvent) -> dict[str, str | int]:
    attrs: dict[str, str | int] = {
        "messaging.system": "kafka",
        "messaging.destination.name": record.topic,
        "messaging.kafka.partition": record.partition,
        "messaging.kafka.offset": record.offset,
    }
    if parsed.case_id:
        attrs["reintegra.case_id"] = parsed.case_id
    if parsed.type:
        attrs["cloudevents.type"] = parsed.type
    return attrs


def _record_span(record: ConsumerRecord, event: UpstreamEvent | RejectedEvent):
    """Continue the producer's trace: the record header, or else the CloudEvents traceparent attribute."""
    if isinstance(event, UpstreamEvent) and event.traceparent:
        return span_from_traceparent("intake process", event.traceparent, event.tracestate,
                                     _span_attributes(record, event), kind=SpanKind.CONSUMER)
    return record_span("intake process", list(record.headers or ()), _span_attributes(record, event))


async def handle_upstream_batch(conn: asyncpg.Connection, records: Sequence[ConsumerRecord]) -> None:
    parsed = [parse_upstream_record(r.value, list(r.headers or ()), r.key) for r in records]
    verdicts = await inbox.claim(conn, [inbox_key(r, p) for r, p in zip(records, parsed, strict=False)])

    valid = [p for p, v in zip(parsed, verdicts, strict=False) if isinstance(p, UpstreamEvent) and v is inbox.Verdict.APPLY]
    known = await repository.load_case_statuses(conn, {p.case_id for p in valid})
    registering = {p.case_id for p in valid if route(p.type, known.get(p.case_id)) is Route.REGISTER}
    effects = _BatchEffects(known=known, parked_in_db=await repository.take_parked(conn, registering))

    for record, event, verdict in zip(records, parsed, verdicts, strict=False):
        if verdict is inbox.Verdict.DUPLICATE:
            continue
        with _record_span(record, event):
            if isinstance(event, RejectedEvent):
                effects.reject(record, event.reasons, event.case_id, event.event_id, event.type)
            elif verdict is inbox.Verdict.CONFLICT:
                reason = Reason(code="id_conflict", field="id",
                                message="this (source, id) was already applied with different content")
                effects.reject(record, [reason], event.case_id, event.event_id, event.type, publish_status=False)
            else:
                _apply(effects, record, event)

    await repository.insert_cases(conn, effects.new_cases)
    await repository.update_statuses(conn, effects.status_changes)
    await repository.park(conn, [e for events in effects.to_park.values() for e in events])
    # Parked events of cases registered in this batch that were taken but not released stay parked.
    await repository.park(conn, [e for events in effects.parked_in_db.values() for e in events])
    await outbox.add(conn, effects.messages)


def _apply(effects: _BatchEffects, record: ConsumerRecord, event: UpstreamEvent) -> None:
    decision = route(event.type, effects.known.get(event.case_id))
    if decision is Route.REGISTER:
        effects.register(event)
    elif decision is Route.PARK:
        effects.park(event)
    elif decision is Route.FORWARD:
        effects.forward(event.case_id, event.source, event.event_id, event.type, event.raw_data)
    else:
        reason = Reason(code="case_already_registered", field="subject",
                        message=f"case {event.case_id} is already registered by another event")
        effects.reject(record, [reason], event.case_id, event.event_id, event.type, publish_status=False)
