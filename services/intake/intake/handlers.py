"""Intake's batch handler: validate, dedupe on (source, id), park, forward; one transaction per batch."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg
from aiokafka import ConsumerRecord
from opentelemetry.trace import SpanKind
from reintegra import inbox, outbox
from reintegra.consumer import BatchHandler
from reintegra.contract.envelope import RejectedEvent, UpstreamEvent, parse_upstream_record
from reintegra.contract.reasons import Reason
from reintegra.events import new_event, utc_now_iso
from reintegra.handling import derived_id
from reintegra.outbox import OutboxMessage, cloud_event_message
from reintegra.telemetry import current_trace_carrier, record_span, span_from_traceparent
from reintegra.topics import CASE_STATUS, INTAKE_CASE_EVENTS, UPSTREAM_INVALID

from intake import repository
from intake.domain import refusals, statuses
from intake.domain.identity import UnusableDocumentNumber, case_identity
from intake.domain.minimise import accepted_case, forwarded, upstream_reference
from intake.domain.routing import CASE_REGISTERED, REFUSING_ROUTES, CaseStatus, KnownCase, Route, route, status_after
from intake.repository import ParkedEvent, RegistrationRefusal

SOURCE = "urn:reintegra:intake"
CASE_ACCEPTED_INTERNAL = "reintegra.intake.case.accepted.v1"

log = logging.getLogger("intake")


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


Identity = dict[str, str]


@dataclass
class _BatchEffects:
    """What a batch changes, gathered so that each table gets one statement."""

    known: dict[str, KnownCase]
    # Cases not registered whose registration was refused, before or in this batch.
    refused: set[str]
    # Parked before this batch: taken out for the cases that register in it, only read for the
    # cases whose registration may be refused in it.
    taken: dict[str, list[ParkedEvent]]
    kept: dict[str, list[ParkedEvent]]
    new_cases: list[tuple[str, str, str, CaseStatus]] = field(default_factory=list)
    status_changes: dict[str, CaseStatus] = field(default_factory=dict)
    to_park: dict[str, list[ParkedEvent]] = field(default_factory=dict)
    refusals_to_save: dict[str, RegistrationRefusal] = field(default_factory=dict)
    refusals_to_clear: set[str] = field(default_factory=set)
    messages: list[OutboxMessage] = field(default_factory=list)

    def forward(self, case_id: str, source: str, event_id: str, type_: str, data: dict) -> None:
        event = new_event(type_, SOURCE, case_id, data, event_id=derived_id(source, event_id))
        self.messages.append(cloud_event_message(INTAKE_CASE_EVENTS, event))
        current = self.known[case_id]
        new_status = status_after(type_, current.status)
        if new_status is not current.status:
            self.known[case_id] = KnownCase(current.source, new_status)
            self.status_changes[case_id] = new_status

    def forward_upstream(self, case_id: str, source: str, event_id: str, type_: str, data: dict) -> None:
        self.forward(case_id, source, event_id, type_, forwarded(data, source, event_id, type_))

    def status(self, type_: str, case_id: str, data: dict, *id_parts: str) -> None:
        event = new_event(type_, SOURCE, case_id, data, event_id=derived_id(type_, *id_parts))
        self.messages.append(cloud_event_message(CASE_STATUS, event))

    def refuse_without_record(self, case_id: str, source: str, event_id: str, type_: str, reason: Reason) -> None:
        """A status for an event whose record is gone (it was parked): its id comes from the event's
        identity and the reason, so a replay, or the same answer given twice, has the same id."""
        data = statuses.rejected(case_id, [reason.model_dump()], event_id, type_, source)
        self.status(statuses.CASE_REJECTED, case_id, data, reason.code, source, event_id)

    def register(self, event: UpstreamEvent, identity: Identity) -> None:
        case_id, source = event.case_id, event.source
        case = accepted_case(event.raw_data, source, identity,
                             upstream_reference(source, event.event_id, event.type))
        owner = KnownCase(source, CaseStatus.ACTIVE)
        self.known[case_id] = owner
        self.new_cases.append((case_id, source, case["program_code"], CaseStatus.ACTIVE))
        if case_id in self.refused:
            self.refused.discard(case_id)
            self.refusals_to_save.pop(case_id, None)
            self.refusals_to_clear.add(case_id)
        self.status(statuses.CASE_ACCEPTED, case_id, statuses.accepted(case_id, case["program_code"]),
                    source, event.event_id)
        self.forward(case_id, source, event.event_id, CASE_ACCEPTED_INTERNAL, case)
        self.kept.pop(case_id, None)
        for parked in self.taken.pop(case_id, []) + self.to_park.pop(case_id, []):
            # Each parked event continues its own trace, not the registration's.
            with span_from_traceparent("intake release parked", parked.traceparent, parked.tracestate,
                                       {"reintegra.case_id": parked.case_id, "cloudevents.type": parked.type}):
                if route(parked.type, parked.source, owner) is Route.FORWARD:
                    self.forward_upstream(parked.case_id, parked.source, parked.event_id, parked.type, parked.data)
                else:
                    # Its bytes are gone: the status is the answer, and operators see it in the log.
                    log.warning("refused a parked %s event (id %s) of case %s: it came from %s, the case was "
                                "registered by %s", parked.type, parked.event_id, case_id, parked.source, source)
                    self.refuse_without_record(case_id, parked.source, parked.event_id, parked.type,
                                               refusals.not_case_owner(case_id))

    def park(self, event: UpstreamEvent, *, registration_refused: bool = False) -> None:
        carrier = current_trace_carrier()
        self.to_park.setdefault(event.case_id, []).append(
            ParkedEvent(event.case_id, event.source, event.event_id, event.type, event.raw_data,
                        carrier.get("traceparent"), carrier.get("tracestate"))
        )
        if registration_refused:
            self.refuse_without_record(event.case_id, event.source, event.event_id, event.type,
                                       refusals.registration_refused(event.case_id))

    def reject(self, record: ConsumerRecord, reasons: Sequence[Reason], case_id: str | None,
               event_id: str | None, event_type: str | None, source: str | None) -> None:
        self.messages.append(invalid_record(record, reasons))
        if not case_id:
            return
        data = statuses.rejected(case_id, [r.model_dump() for r in reasons], event_id, event_type, source)
        self.status(statuses.CASE_REJECTED, case_id, data, record.topic, str(record.partition), str(record.offset))
        if event_type == CASE_REGISTERED and source and case_id not in self.known:
            self.registration_refused(case_id, source, event_id)

    def registration_refused(self, case_id: str, source: str, event_id: str | None) -> None:
        self.refusals_to_save[case_id] = RegistrationRefusal(case_id, source, event_id)
        if case_id in self.refused:
            return  # what is parked was told when the first refusal came, or when it was parked
        self.refused.add(case_id)
        waiting = self.taken.get(case_id, []) + self.kept.get(case_id, []) + self.to_park.get(case_id, [])
        for parked in waiting:
            with span_from_traceparent("intake registration refused", parked.traceparent, parked.tracestate,
                                       {"reintegra.case_id": parked.case_id, "cloudevents.type": parked.type}):
                self.refuse_without_record(case_id, parked.source, parked.event_id, parked.type,
                                           refusals.registration_refused(case_id))


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


def _identity_of(key: bytes, event: UpstreamEvent) -> Identity | Reason:
    try:
        return case_identity(key, event.source, event.raw_data["beneficiary"])
    except UnusableDocumentNumber:
        return refusals.unusable_document_number()


def make_handler(identity_key: bytes) -> BatchHandler:
    """The batch handler of upstream.case-events.v1; `identity_key` keys the identity hashes."""

    async def handle_upstream_batch(conn: asyncpg.Connection, records: Sequence[ConsumerRecord]) -> None:
        parsed = [parse_upstream_record(r.value, list(r.headers or ()), r.key) for r in records]
        verdicts = await inbox.claim(conn, [inbox_key(r, p) for r, p in zip(records, parsed, strict=False)])

        fresh = [(p, v) for p, v in zip(parsed, verdicts, strict=False) if v is not inbox.Verdict.DUPLICATE]
        known, refused = await repository.load_cases(conn, {p.case_id for p, _ in fresh if p.case_id})
        # The identity of every registration to apply, by position in the batch.
        identities = {n: _identity_of(identity_key, p) for n, (p, v) in enumerate(zip(parsed, verdicts, strict=False))
                      if v is inbox.Verdict.APPLY and isinstance(p, UpstreamEvent) and p.type == CASE_REGISTERED}
        # Cases that surely register in this batch (their first usable registration does), and the
        # others that may see their registration refused: what is parked for them is needed.
        registering = {parsed[n].case_id for n, identity in identities.items()
                       if parsed[n].case_id not in known and not isinstance(identity, Reason)}
        may_be_refused = {p.case_id for p, _ in fresh if p.type == CASE_REGISTERED and p.case_id and p.source
                          and p.case_id not in known and p.case_id not in refused} - registering
        taken, kept = await repository.load_parked(conn, take=registering, read=may_be_refused)
        effects = _BatchEffects(known=known, refused=refused, taken=taken, kept=kept)

        for n, (record, event, verdict) in enumerate(zip(records, parsed, verdicts, strict=False)):
            if verdict is inbox.Verdict.DUPLICATE:
                continue
            with _record_span(record, event):
                if isinstance(event, RejectedEvent):
                    effects.reject(record, event.reasons, event.case_id, event.event_id, event.type, event.source)
                elif verdict is inbox.Verdict.CONFLICT:
                    effects.reject(record, [refusals.id_conflict()], event.case_id, event.event_id, event.type,
                                   event.source)
                else:
                    _apply(effects, record, event, identities.get(n))

        await repository.insert_cases(conn, effects.new_cases)
        await repository.update_statuses(conn, effects.status_changes)
        # Every registering case registered and released what it took; should one not have, its
        # events go back to be parked rather than be lost.
        leftover = [e for events in effects.taken.values() for e in events]
        await repository.park(conn, leftover + [e for events in effects.to_park.values() for e in events])
        await repository.save_registration_refusals(conn, effects.refusals_to_save.values())
        await repository.clear_registration_refusals(conn, effects.refusals_to_clear)
        await outbox.add(conn, effects.messages)

    return handle_upstream_batch


def _apply(effects: _BatchEffects, record: ConsumerRecord, event: UpstreamEvent, identity: Identity | Reason | None) -> None:
    case_id = event.case_id
    decision = route(event.type, event.source, effects.known.get(case_id),
                     registration_refused=case_id in effects.refused)
    if decision is Route.REGISTER:
        assert identity is not None, "every registration applied has its identity computed"
        if isinstance(identity, Reason):
            effects.reject(record, [identity], case_id, event.event_id, event.type, event.source)
        else:
            effects.register(event, identity)
    elif decision in (Route.PARK, Route.PARK_REGISTRATION_REFUSED):
        effects.park(event, registration_refused=decision is Route.PARK_REGISTRATION_REFUSED)
    elif decision is Route.FORWARD:
        effects.forward_upstream(case_id, event.source, event.event_id, event.type, event.raw_data)
    else:
        assert decision in REFUSING_ROUTES, decision
        effects.reject(record, [refusals.for_route(decision, case_id)], case_id, event.event_id, event.type,
                       event.source)
