"""The internal contract for asking notifications to tell a beneficiary something."""

from __future__ import annotations

from typing import Any

from reintegra.events import new_event
from reintegra.outbox import OutboxMessage, cloud_event_message
from reintegra.topics import NOTICE_REQUESTS

NOTICE_REQUESTED = "reintegra.notice.requested.v1"


def notice_request(source: str, notice_id: str, notice: dict[str, Any]) -> OutboxMessage:
    """`notice` carries kind, case_id, phone, language and params; notice_id makes it idempotent."""
    data = {"notice_id": notice_id, **notice}
    return cloud_event_message(NOTICE_REQUESTS, new_event(NOTICE_REQUESTED, source, notice["case_id"], data, event_id=notice_id))
