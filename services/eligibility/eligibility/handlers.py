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
from eligibility.domain.identities import IdentityBook, identity_hashes
from eligibility.domain.process import CASE_ACCEPTED, Context, Emitted, apply_event
from eligibility.domain.programmes import Programme

SOURCE = "urn:reintegra:eligibility"


def outbox_messages(case_id: str, emitted: Emitted, seed: str) -> list[OutboxMessage]:
    """Statuses, onward events and SMS requests, with ids derived from what caused them."""
    messages = []
    for n, (type_, data) in enumerate(emitted.statuses):
        status = new_event(type_, SOURCE, case_id, data, event_id=derived_id(seed, "status", str(n)))
        messages.append(cloud_event_message(CASE_STATUS, status))
    for n, (type_, data) in enumerate(emitted.downstream):
        onward = new_event(type_, SOURCE, case_id, data, event_id=derived_id(seed, "down", str(n)))
        messages.append(cloud_event_message(ELIGIBILITY_CASE_EVENTS, onward))
    for n, notice in enumerate(emitted.notices):
        messages.append(notice_request(SOURCE, derived_id(seed, "notice", str(n)), notice))
    return messages


async def save_effects(conn: asyncpg.Connection, files: Sequence[CaseFile], effects: Sequence[Emitted],
                       identities: IdentityBook, messages: Sequence[OutboxMessage]) -> None:
    await repository.save_case_files(conn, files)
    await repository.log_decisions(conn, [d for e in effects for d in e.decisions])
    await repository.save_reviews(conn, [r for e in effects for r in e.reviews])
    await repository.add_review_actions(conn, [a for e in effects for a in e.review_actions])
    await repository.save_approved_identities(conn, identities.new_approvals)
    await outbox.add(conn, messages)


async def lock_identities_of(conn: asyncpg.Connection, hashes: set[str]) -> IdentityBook:
    """Lock the identities a decision may touch, then read who already holds an approved grant."""
    await repository.lock_identities(conn, hashes)
    return IdentityBook(await repository.approved_cases(conn, hashes))


def make_handler(programmes: Mapping[str, Programme]):
    async def handle_intake_batch(conn: asyncpg.Connection, records: Sequence[ConsumerRecord]) -> None:
        events = await fresh_events(conn, records)
        files = await repository.lock_case_files(conn, {e.subject for _, e in events})
        # Every identity a decision in this batch may need: undecided cases and newly accepted ones.
        hashes = {h for f in files.values() if f.grant is None for h in identity_hashes(f.accepted)}
        hashes |= {h for _, e in events if e.type == CASE_ACCEPTED for h in identity_hashes(e.data)}
        ctx = Context(programmes, await lock_identities_of(conn, hashes))
        touched: dict[str, CaseFile] = {}
        effects: list[Emitted] = []
        messages: list[OutboxMessage] = []
        for record, event in events:
            with record_span("eligibility process", list(record.headers or ()), span_attributes(record, event)):
                case = files.setdefault(event.subject, CaseFile(case_id=event.subject))
                emitted = apply_event(case, event.type, event.data, ctx)
                touched[case.case_id] = case
                effects.append(emitted)
                messages += outbox_messages(case.case_id, emitted, event.event_id)
        await save_effects(conn, list(touched.values()), effects, ctx.identities, messages)

    return handle_intake_batch
