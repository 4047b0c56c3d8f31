"""In-memory transfer ledger: idempotent creation, settlement, the settlement feed, stats.

State lives only in this process and is lost on restart; that is enough for a sandbox.
Methods never await, so each call is atomic on the event loop.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .schemas import TransferRequest


@dataclass
class Transfer:
    transfer_id: str
    request: TransferRequest
    created_at: str
    # Decided when accepted, revealed only once settled, like a provider that fails later.
    planned_failure_reason: str | None
    status: str = "pending"
    failure_reason: str | None = None
    settled_at: str | None = None

    def to_json(self) -> dict:
        return {
            "transfer_id": self.transfer_id,
            **self.request.model_dump(),
            "status": self.status,
            "failure_reason": self.failure_reason,
            "created_at": self.created_at,
            "settled_at": self.settled_at,
        }


@dataclass(frozen=True)
class SubmitResult:
    status_code: int
    transfer: Transfer | None = None
    error: dict | None = None

    @property
    def created(self) -> bool:
        return self.status_code == 201


@dataclass
class Stats:
    transfers: int = 0
    pending: int = 0
    settled: int = 0
    failed: int = 0
    duplicate_requests: int = 0
    idempotency_conflicts: int = 0
    transient_errors_injected: int = 0


@dataclass
class Ledger:
    transfers: dict[str, Transfer] = field(default_factory=dict)
    # events[i] has cursor i + 1, so a cursor page is a plain slice.
    events: list[dict] = field(default_factory=list)
    stats: Stats = field(default_factory=Stats)

    def submit(self, request: TransferRequest, planned_failure_reason: str | None) -> SubmitResult:
        existing = self.transfers.get(request.reference)
        if existing is None:
            transfer = Transfer(
                transfer_id=f"trf_{uuid.uuid4().hex}",
                request=request,
                created_at=_now(),
                planned_failure_reason=planned_failure_reason,
            )
            self.transfers[request.reference] = transfer
            self.stats.transfers += 1
            self.stats.pending += 1
            return SubmitResult(201, transfer)
        if existing.request == request:
            self.stats.duplicate_requests += 1
            return SubmitResult(200, existing)
        self.stats.idempotency_conflicts += 1
        return SubmitResult(
            409,
            error={
                "error": "idempotency_conflict",
                "message": "reference already used with a different request body",
                "transfer_id": existing.transfer_id,
            },
        )

    def settle(self, reference: str) -> None:
        transfer = self.transfers[reference]
        transfer.settled_at = _now()
        if transfer.planned_failure_reason:
            transfer.status = "failed"
            transfer.failure_reason = transfer.planned_failure_reason
            self.stats.failed += 1
        else:
            transfer.status = "settled"
            self.stats.settled += 1
        self.stats.pending -= 1
        self.events.append(
            {
                "cursor": len(self.events) + 1,
                "reference": reference,
                "transfer_id": transfer.transfer_id,
                "status": transfer.status,
                "failure_reason": transfer.failure_reason,
                "amount_minor": transfer.request.amount_minor,
                "currency": transfer.request.currency,
                "settled_at": transfer.settled_at,
            }
        )

    def events_after(self, cursor: int, limit: int) -> tuple[list[dict], int]:
        page = self.events[cursor : cursor + limit]
        return page, page[-1]["cursor"] if page else cursor


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
