"""Creating and looking up transfers, the same for every dialect: faults, idempotency, execution.

A dialect validates a request into a `Draft` and turns the result into its own wire answer.
Each call is one SQLite transaction and never awaits, so two requests never interleave.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .catalogue import Provider
from .faults import Fault, Faults, Subject
from .store import IdempotencyKey, Store, Transfer

AFTER_FAULTS = {"error_after": "errors_after", "lose_response": "responses_lost"}


class Outcome(enum.Enum):
    CREATED = "created"
    REPLAYED = "replayed"  # same key, same body, key not expired
    KEY_CONFLICT = "key_conflict"  # same key, another body, key not expired
    INJECTED_CONFLICT = "injected_conflict"  # the `conflict` fault: 409 though nothing exists
    ERROR_BEFORE = "error_before"  # the `error_before` fault: nothing executed


@dataclass(frozen=True)
class Draft:
    """A validated create request, in the dialect-neutral shape the store keeps."""

    reference: str
    provider_reference: str
    amount_minor: int
    currency: str
    counterparty: str
    counterparty_name: str | None
    request: dict[str, Any]
    body_hash: str
    callback_url: str | None
    subject: Subject
    pickup_code: str | None = None


@dataclass(frozen=True)
class CreateResult:
    outcome: Outcome
    transfer: Transfer | None = None
    after_fault: Fault | None = None  # error_after / lose_response: answer 500 or nothing at all


class Transfers:
    def __init__(self, store: Store, faults: Faults, *, settle_delay_s: float, idempotency_ttl_s: float,
                 on_scheduled: Callable[[float, str], None]) -> None:
        self._store = store
        self._faults = faults
        self._settle_delay_s = settle_delay_s
        self._ttl_s = idempotency_ttl_s
        self._on_scheduled = on_scheduled

    def create(self, provider: Provider, draft: Draft, new_id: Callable[[], str]) -> CreateResult:
        now = time.time()
        name = provider.name
        store = self._store
        with store.tx():
            fault = self._faults.decide(name, "create", draft.subject)
            if fault == "error_before":
                store.bump(name, "errors_before")
                return CreateResult(Outcome.ERROR_BEFORE)
            if fault == "conflict":
                store.bump(name, "conflicts")
                return CreateResult(Outcome.INJECTED_CONFLICT)
            key = store.idempotency_key(name, draft.provider_reference)
            if key is not None and key.expires_at > now:
                existing = store.transfer(key.transfer_id)
                if key.body_hash != draft.body_hash:
                    store.bump(name, "conflicts")
                    return CreateResult(Outcome.KEY_CONFLICT, existing)
                store.bump(name, "replays")
                return CreateResult(Outcome.REPLAYED, existing, self._after(name, fault))
            transfer = Transfer(
                transfer_id=new_id(), provider=name, reference=draft.reference,
                provider_reference=draft.provider_reference, amount_minor=draft.amount_minor,
                currency=draft.currency, counterparty=draft.counterparty, counterparty_name=draft.counterparty_name,
                request=draft.request, callback_url=draft.callback_url, status="pending", failure_reason=None,
                settled_amount_minor=None,
                planned_failure=self._faults.planned_failure(name, provider.dialect, draft.subject),
                planned_delta_minor=self._faults.get(name).settled_amount_delta_minor,
                pickup_code=draft.pickup_code, created_at=now, updated_at=now, settled_at=None,
            )
            due = now + self._settle_delay_s
            store.insert_transfer(transfer)
            store.put_idempotency_key(
                name, draft.provider_reference, IdempotencyKey(transfer.transfer_id, draft.body_hash, now + self._ttl_s)
            )
            store.add_settlement(transfer.transfer_id, due)
            store.bump(name, "transfers")
            after = self._after(name, fault)
        self._on_scheduled(due, transfer.transfer_id)
        return CreateResult(Outcome.CREATED, transfer, after)

    def lookup(self, provider: Provider, subject: Subject) -> Fault | None:
        """Count a lookup and say which fault, if any, it meets (error_before: do not answer it)."""
        with self._store.tx():
            fault = self._faults.decide(provider.name, "lookup", subject)
            if fault == "error_before":
                self._store.bump(provider.name, "errors_before")
                return fault
            self._store.bump(provider.name, "lookups")
            return self._after(provider.name, fault)

    def rejected(self, provider: Provider) -> None:
        self._store.bump(provider.name, "rejected")

    def unauthorized(self, provider: Provider) -> None:
        self._store.bump(provider.name, "unauthorized")

    def _after(self, name: str, fault: Fault | None) -> Fault | None:
        if fault in AFTER_FAULTS:
            self._store.bump(name, AFTER_FAULTS[fault])
            return fault
        return None
