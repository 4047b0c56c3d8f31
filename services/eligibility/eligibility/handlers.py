"""Eligibility's batch handler: inbox → case files → decisions → outbox, one transaction per batch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import asyncpg
from aiokafka import ConsumerRecord
from reintegra import outbox
from reintegra.events import new_event
from reintegra.handling import derived_id, fresh_events, span_attributes
from reintegra.notices import notice_request
from reintegra.outbox import OutboxMessage, cloud_event_message
from reintegra.telemetry import record_span
from reintegra.topics import CASE_STATUS, ELIGIBILITY_CASE_EVENTS

from eligibility import repository
from eligibility.domain.case_file import CaseFile
from eligibility.domain.process import apply_event
from eligibility.domain.programmes import Programme
from eligibility.domain.rules import Decision

SOURCE = "urn:reintegra:eligibility"


def make_handler(programmes: Mapping[str, Programme]):
    async def handle_intake_batch(conn: asyncpg.Connection, records: Sequence[ConsumerRecord]) -> None:
        events = await fresh_events(conn, records)
        files = await repository.load_case_files(conn, {e.subject for _, e in events})
        touched: dict[str, CaseFile] = {}
        messages: list[OutboxMessage] = []
        decisions: list[tuple[str, str | None, Decision]] = []
        for record, event in events:
            with record_span("eligibility process", list(record.headers or ()), span_attributes(record, event)):
                case = files.setdefault(event.subject, CaseFile(case_id=event.subject))
                emitted = apply_event(case, event.type, event.data, programmes)
                touched[case.case_id] = case
                for n, (type_, data) in enumerate(emitted.statuses):
                    status = new_event(type_, SOURCE, case.case_id, data, event_id=derived_id(event.event_id, "status", str(n)))
                    messages.append(cloud_event_message(CASE_STATUS, status))
                for n, (type_, data) in enumerate(emitted.downstream):
                    onward = new_event(type_, SOURCE, case.case_id, data, event_id=derived_id(event.event_id, "down", str(n)))
                    messages.append(cloud_event_message(ELIGIBILITY_CASE_EVENTS, onward))
                for n, notice in enumerate(emitted.notices):
                    messages.append(notice_request(SOURCE, derived_id(event.event_id, "notice", str(n)), notice))
                decisions += [(case.case_id, plan_id, decision) for plan_id, decision in emitted.decisions]
        await repository.save_case_files(conn, touched.values())
        await repository.log_decisions(conn, decisions)
        await outbox.add(conn, messages)

    return handle_intake_batch
