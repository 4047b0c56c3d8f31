"""Dialect `pickup`: cash collected at an agent with a code the beneficiary receives by SMS."""

from __future__ import annotations

import re
from typing import Any

from reintegra import jsonfast

from disbursement.adapters.providers.base import (
    FrozenRequest,
    InvalidPayee,
    Outcome,
    PaymentOrder,
    ProviderAdapter,
    ProviderStatus,
    TransportError,
    error_text,
    is_transient,
)

PICKUPS_PATH = "/v1/cash-pickups"
EXPIRES_IN_DAYS = 30
_MSISDN = re.compile(r"^\+[1-9][0-9]{6,14}$")
_STATUS = {"AVAILABLE": Outcome.PENDING, "COLLECTED": Outcome.SETTLED, "EXPIRED": Outcome.FAILED,
           "CANCELLED": Outcome.FAILED}


class PickupAdapter(ProviderAdapter):
    def freeze(self, order: PaymentOrder) -> FrozenRequest:
        if order.currency != self.config.currency:
            raise InvalidPayee("currency_not_supported",
                               f"{self.config.name} pays in {self.config.currency}, not {order.currency}")
        if not (order.payee.name or "").strip():
            raise InvalidPayee("recipient_name_missing", "a cash pickup needs the recipient's name")
        msisdn = (order.payee.msisdn or "").replace(" ", "")
        if not _MSISDN.match(msisdn):
            raise InvalidPayee("recipient_phone_missing", "a cash pickup needs a phone to send its code to")
        body = {"reference": order.reference, "amount_minor": order.amount_minor, "currency": order.currency,
                "recipient": {"name": order.payee.name.strip(), "msisdn": msisdn},
                "expires_in_days": EXPIRES_IN_DAYS}
        return FrozenRequest(order.reference, PICKUPS_PATH, {"Idempotency-Key": order.reference},
                             jsonfast.dumps_text(body))

    async def send(self, frozen: FrozenRequest, callback_url: str | None) -> ProviderStatus:
        headers = {**frozen.headers, "X-Api-Key": self.config.api_key or ""}
        if callback_url:
            headers["X-Callback-Url"] = callback_url
        try:
            answer = await self.request("POST", frozen.path, headers=headers, body=frozen.body)
        except TransportError as exc:
            return self.unknown(frozen.reference, str(exc))
        if answer.status in (200, 201):
            try:
                return self.status_from(answer.body)
            except (ValueError, KeyError, TypeError, AttributeError):
                return await self.lookup(frozen.reference)
        if answer.status == 409:
            return await self.lookup(frozen.reference)
        code, message = error_text(answer.body)
        if is_transient(answer.status) or answer.status == 401:
            return self.unknown(frozen.reference, f"HTTP {answer.status} {code or ''} {message}".strip())
        return ProviderStatus(self.config.name, frozen.reference, Outcome.REFUSED, reason=code or f"http_{answer.status}",
                              detail=message)

    async def lookup(self, reference: str) -> ProviderStatus:
        try:
            answer = await self.request("GET", f"{PICKUPS_PATH}/{reference}",
                                        headers={"X-Api-Key": self.config.api_key or ""})
        except TransportError as exc:
            return self.unknown(reference, str(exc))
        if answer.status == 404:
            return ProviderStatus(self.config.name, reference, Outcome.NOT_FOUND)
        if answer.status != 200:
            return self.unknown(reference, f"lookup answered HTTP {answer.status}")
        try:
            return self.status_from(answer.body)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            return self.unknown(reference, f"unreadable lookup answer: {exc}")

    def callback_resource(self, body: Any) -> Any:
        return body["pickup"]

    def status_from(self, body: Any) -> ProviderStatus:
        outcome = _STATUS[body["status"]]
        amount = body.get("collected_amount_minor") if outcome == Outcome.SETTLED else None
        amount = body["amount_minor"] if amount is None else amount
        if not isinstance(amount, int) or isinstance(amount, bool):
            raise ValueError("amount_minor is not an integer")
        return ProviderStatus(
            self.config.name, body["reference"], outcome, transfer_id=body["pickup_id"], amount_minor=amount,
            currency=body["currency"], pickup_code=body.get("pickup_code"),
            reason=(body.get("failure_reason") or body["status"].lower()) if outcome == Outcome.FAILED else None)
