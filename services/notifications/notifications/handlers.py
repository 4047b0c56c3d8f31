"""Notifications' batch handler: inbox → render the SMS → store it to send; one transaction per batch."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
from aiokafka import ConsumerRecord
from reintegra.errors import PermanentError
from reintegra.handling import fresh_events, span_attributes
from reintegra.telemetry import current_trace_carrier, record_span

from notifications import repository
from notifications.domain.messages import Templates, UnknownNoticeKind, render
from notifications.repository import Notice


def make_handler(templates: Templates):
    async def handle_notice_batch(conn: asyncpg.Connection, records: Sequence[ConsumerRecord]) -> None:
        notices = []
        for record, event in await fresh_events(conn, records):
            with record_span("notifications process", list(record.headers or ()), span_attributes(record, event)):
                data = event.data
                try:
                    language, body = render(templates, data["kind"], data.get("language"), data["case_id"],
                                            data.get("params") or {})
                except (UnknownNoticeKind, KeyError) as exc:
                    raise PermanentError("unrenderable_notice", str(exc)) from exc
                carrier = current_trace_carrier()
                notices.append(Notice(data["notice_id"], data["case_id"], data["kind"], language, data.get("phone"),
                                      body, carrier.get("traceparent"), carrier.get("tracestate")))
        await repository.insert_notices(conn, notices)

    return handle_notice_batch
