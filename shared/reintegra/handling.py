"""Helpers for handlers that consume other Reintegra services' events."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence

import asyncpg
from aiokafka import ConsumerRecord

from reintegra import inbox, status_sequence
from reintegra.errors import PermanentError
from reintegra.events import InternalEvent, MalformedInternalEvent, decode_internal

_ID_NAMESPACE = uuid.UUID("0b7d9a5e-2f3c-4c1e-9a77-3d2b8f6e4a10")
_NAMESPACE_BYTES = _ID_NAMESPACE.bytes


def derived_id(*parts: str) -> str:
    """Deterministic event ids: a replayed transaction publishes the very same ids.

    A name-based UUID (version 5), built directly: uuid.uuid5 costs several times more and this
    runs for every event published."""
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + "\x1f".join(parts).encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def decode_or_reject(record: ConsumerRecord) -> InternalEvent:
    try:
        return decode_internal(record.value)
    except MalformedInternalEvent as exc:
        raise PermanentError("malformed_event", str(exc)) from exc


async def fresh_events(
    conn: asyncpg.Connection, records: Sequence[ConsumerRecord]
) -> list[tuple[ConsumerRecord, InternalEvent]]:
    """Decode a batch and keep, in order, the events this service has not applied before."""
    decoded = [(record, decode_or_reject(record)) for record in records]
    status_sequence.remember_carried((e.subject, e.sequence) for _, e in decoded)
    verdicts = await inbox.claim(conn, [(e.source, e.event_id, None) for _, e in decoded])
    return [pair for pair, verdict in zip(decoded, verdicts, strict=False) if verdict is inbox.Verdict.APPLY]


def span_attributes(record: ConsumerRecord, event: InternalEvent) -> dict[str, str | int]:
    return {
        "messaging.system": "kafka",
        "messaging.destination.name": record.topic,
        "messaging.kafka.partition": record.partition,
        "messaging.kafka.offset": record.offset,
        "reintegra.case_id": event.subject,
        "cloudevents.type": event.type,
    }
