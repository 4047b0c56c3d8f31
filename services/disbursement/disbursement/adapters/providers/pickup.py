"""Dialect `pickup`: cash collected at an agent with a code the beneficiary receives by SMS.

A pickup is created under an Idempotency-Key (our reference) and found by that reference; amounts
travel as integer minor units. Every status carries the pickup code.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from reintegra import jsonfast

from disbursement.adapters.providers.base import (
    FrozenRequest,
    InvalidPayee,
    KeyedAdapter,
    Outcome,
    PaymentOrder,
    ProviderStatus,
)

PICKUPS_PATH = "/v1/cash-pickups"
EXPIRES_IN_DAYS = 30
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_STATUS = {"AVAILABLE": Outcome.PENDING, "COLLECTED": Outcome.SETTLED, "EXPIRED": Outcome.FAILED,
           "CANCELLED": Outcome.FAILED}


class PickupAdapter(KeyedAdapter):
    def freeze(self, order: PaymentOrder) -> FrozenRequest:
        self.check_order(order)
        name = (order.payee.name or "").strip()
        if not name:
            raise InvalidPayee("recipient_name_missing", "a cash pickup needs the recipient's name")
        msisdn = (order.payee.msisdn or "").replace(" ", "")
        if not _E164.match(msisdn):
            raise InvalidPayee("recipient_phone_missing", "a cash pickup needs a phone (E.164) to send its code to")
        body = {"reference": order.reference, "amount_minor": order.amount_minor, "currency": order.currency,
                "recipient": {"name": name, "msisdn": msisdn}, "expires_in_days": EXPIRES_IN_DAYS}
        return FrozenRequest(order.reference, PICKUPS_PATH, {"Idempotency-Key": order.reference},
                             jsonfast.dumps_text(body))

    async def find(self, reference: str) -> ProviderStatus:
        answer = await self.request("GET", f"{PICKUPS_PATH}/{quote(reference, safe='')}", headers=self.auth_headers())
        return self.after_lookup(reference, answer, self.status_from)

    def callback_resource(self, body: Any) -> Any:
        return body["pickup"]

    def status_from(self, body: Any) -> ProviderStatus:
        status = body["status"]
        outcome = _STATUS[status]
        amount = body.get("collected_amount_minor") if outcome == Outcome.SETTLED else None
        amount = body["amount_minor"] if amount is None else amount
        if type(amount) is not int:
            raise ValueError(f"amount {amount!r} is not integer minor units")
        return ProviderStatus(
            self.config.name, body["reference"], outcome, transfer_id=str(body["pickup_id"]), amount_minor=amount,
            currency=body["currency"], pickup_code=body.get("pickup_code"),
            reason=(body.get("failure_reason") or status.lower()) if outcome == Outcome.FAILED else None)

    def auth_headers(self) -> dict[str, str]:
        return {"X-Api-Key": self.config.api_key or ""}
