"""Outbox: events to publish are rows written in the same transaction as the state change."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from reintegra import events, jsonfast, status_sequence
from reintegra.telemetry import current_trace_carrier


def encode_headers(headers: Sequence[tuple[str, bytes]]) -> str:
    return jsonfast.dumps_text([[name, base64.b64encode(value or b"").decode()] for name, value in headers])


def decode_headers(stored: str | list) -> list[tuple[str, bytes]]:
    items = jsonfast.loads(stored) if isinstance(stored, str) else stored
    return [(name, base64.b64decode(value)) for name, value in items]


@dataclass
class OutboxMessage:
    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    # Captured when the message is created, i.e. inside the span of the record that caused it.
    trace_carrier: dict[str, str] = field(default_factory=current_trace_carrier)


def cloud_event_message(topic: str, event: dict[str, Any]) -> OutboxMessage:
    """An event in structured mode, keyed by its subject (the case_id)."""
    return OutboxMessage(
        topic=topic,
        key=event["subject"].encode(),
        value=events.encode(event),
        headers=[(events.CONTENT_TYPE_HEADER, events.STRUCTURED_CONTENT_TYPE)],
    )


async def add(conn: asyncpg.Connection, messages: Sequence[OutboxMessage]) -> None:
    if not messages:
        return
    await status_sequence.stamp(conn, messages)  # case statuses get their sequence number
    await conn.execute(
        """
        INSERT INTO outbox (topic, key, value, headers, traceparent, tracestate)
        SELECT topic, key, value, headers, traceparent, tracestate
        FROM unnest($1::text[], $2::bytea[], $3::bytea[], $4::jsonb[], $5::text[], $6::text[])
             WITH ORDINALITY AS m(topic, key, value, headers, traceparent, tracestate, ord)
        ORDER BY ord
        """,
        [m.topic for m in messages],
        [m.key for m in messages],
        [m.value for m in messages],
        [encode_headers(m.headers) for m in messages],
        [m.trace_carrier.get("traceparent") for m in messages],
        [m.trace_carrier.get("tracestate") for m in messages],
    )
