"""CloudEvents 1.0 in structured mode: how every event Reintegra publishes is shaped."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from reintegra import jsonfast

STRUCTURED_CONTENT_TYPE = b"application/cloudevents+json"
CONTENT_TYPE_HEADER = "content-type"


def utc_now_iso() -> str:
    """RFC 3339 UTC with microseconds, e.g. 2026-11-28T16:07:56.123456Z. Called for every event,
    so the date and time part is formatted once per second."""
    seconds, nanos = divmod(time.time_ns(), 1_000_000_000)
    global _formatted_second
    if _formatted_second[0] != seconds:
        _formatted_second = (seconds, datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    return f"{_formatted_second[1]}.{nanos // 1000:06d}Z"


_formatted_second: tuple[int, str] = (-1, "")


def new_event(
    type_: str,
    source: str,
    subject: str,
    data: dict[str, Any],
    *,
    event_id: str | None = None,
    time: str | None = None,
) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id or str(uuid.uuid4()),
        "source": source,
        "type": type_,
        "subject": subject,
        "time": time or utc_now_iso(),
        "datacontenttype": "application/json",
        "data": data,
    }


def encode(event: dict[str, Any]) -> bytes:
    return jsonfast.dumps(event)


@dataclass(frozen=True)
class InternalEvent:
    """An event one Reintegra service published for another: trusted, already validated."""

    event_id: str
    source: str
    type: str
    subject: str
    data: dict[str, Any]
    time: str | None = None  # the CloudEvent's time (RFC 3339), when it has one
    sequence: int | None = None  # the case's status clock where it was sent (see status_sequence)


class MalformedInternalEvent(ValueError):
    pass


def decode_internal(value: bytes | None) -> InternalEvent:
    try:
        event = jsonfast.loads(value or b"")
        return InternalEvent(event["id"], event["source"], event["type"], event["subject"], event["data"],
                             event.get("time"), event.get("reintegraseq"))
    except (ValueError, KeyError, TypeError) as exc:
        raise MalformedInternalEvent(f"not a Reintegra CloudEvent: {exc}") from exc
