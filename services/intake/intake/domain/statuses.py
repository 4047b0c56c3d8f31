"""Status events intake publishes to upstream on reintegration.case-status.v1."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from reintegra.contract.status import CASE_ACCEPTED, CASE_REJECTED, event_refused

__all__ = ["CASE_ACCEPTED", "CASE_REJECTED", "accepted", "rejected"]


def accepted(case_id: str, program_code: str) -> dict[str, Any]:
    return {"case_id": case_id, "status": "accepted", "program_code": program_code}


def rejected(case_id: str, reasons: Iterable[dict[str, Any]], event_id: str | None, event_type: str | None,
             source: str | None) -> dict[str, Any]:
    """One refused upstream event; `source` lets each upstream system pick out answers to its own events."""
    return event_refused(case_id, list(reasons), {"id": event_id, "type": event_type, "source": source})
