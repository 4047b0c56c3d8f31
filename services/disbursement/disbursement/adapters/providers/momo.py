"""Dialect `momo`: the shape of MTN MoMo's Disbursement API (docs/providers.md).

A transfer is created under a reference id (a UUID derived from our reference, so every attempt
carries the same one) and read back by it; a 409 means it exists: look it up.
"""

from __future__ import annotations

import base64
import re
import time
import uuid
from typing import Any

from reintegra import jsonfast
from reintegra.money import Money

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

TRANSFER_PATH = "/disbursement/v1_0/transfer"
TOKEN_PATH = "/disbursement/token/"
TARGET_ENVIRONMENT = "sandbox"
_MSISDN = re.compile(r"^\+?[1-9][0-9]{6,14}$")
_STATUS = {"PENDING": Outcome.PENDING, "SUCCESSFUL": Outcome.SETTLED, "FAILED": Outcome.FAILED}


def reference_id(reference: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "reintegra:" + reference))


class MomoAdapter(ProviderAdapter):
    _token: str | None = None
    _token_until: float = 0.0

    def freeze(self, order: PaymentOrder) -> FrozenRequest:
        if order.currency != self.config.currency:
            raise InvalidPayee("currency_not_supported",
                               f"{self.config.name} pays in {self.config.currency}, not {order.currency}")
        msisdn = (order.payee.msisdn or "").replace(" ", "")
        if not _MSISDN.match(msisdn):
            raise InvalidPayee("payee_msisdn_invalid", "the payout has no valid mobile number to pay")
        body = {"amount": Money(order.amount_minor, order.currency).format_amount(), "currency": order.currency,
                "externalId": order.reference, "payee": {"partyIdType": "MSISDN", "partyId": msisdn.lstrip("+")},
                "payerMessage": order.note[:160], "payeeNote": order.note[:160]}
        return FrozenRequest(order.reference, TRANSFER_PATH,
                             {"X-Reference-Id": reference_id(order.reference),
                              "X-Target-Environment": TARGET_ENVIRONMENT}, jsonfast.dumps_text(body))

    async def send(self, frozen: FrozenRequest, callback_url: str | None) -> ProviderStatus:
        headers = dict(frozen.headers)
        if callback_url:
            headers["X-Callback-Url"] = callback_url
        try:
            answer = await self._authorised("POST", frozen.path, headers, frozen.body)
        except TransportError as exc:
            return self.unknown(frozen.reference, str(exc))
        if answer.status in (200, 201, 202):
            return ProviderStatus(self.config.name, frozen.reference, Outcome.PENDING)
        if answer.status == 409:  # it exists: what matters is its state
            return await self.lookup(frozen.reference)
        code, message = error_text(answer.body)
        if is_transient(answer.status) or answer.status == 401:
            return self.unknown(frozen.reference, f"HTTP {answer.status} {code or ''} {message}".strip())
        return ProviderStatus(self.config.name, frozen.reference, Outcome.REFUSED, reason=code or f"http_{answer.status}",
                              detail=message)

    async def lookup(self, reference: str) -> ProviderStatus:
        try:
            answer = await self._authorised("GET", f"{TRANSFER_PATH}/{reference_id(reference)}", {}, None)
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

    def status_from(self, body: Any) -> ProviderStatus:
        outcome = _STATUS[body["status"]]
        currency = body["currency"]
        reason = body.get("reason")
        if isinstance(reason, dict):
            reason = reason.get("code") or reason.get("message")
        return ProviderStatus(
            self.config.name, body["externalId"], outcome,
            transfer_id=body.get("financialTransactionId") or None,
            amount_minor=Money.parse(str(body["amount"]), currency).minor, currency=currency,
            reason=(str(reason) if reason else None) if outcome == Outcome.FAILED else None)

    async def _authorised(self, method: str, path: str, headers: dict[str, str], body: str | None):
        for attempt in (1, 2):
            token = await self._access_token(refresh=attempt == 2)
            answer = await self.request(method, path, body=body, headers={
                **headers, "Authorization": f"Bearer {token}",
                "Ocp-Apim-Subscription-Key": self.config.subscription_key or ""})
            if answer.status != 401:
                return answer
        return answer

    async def _access_token(self, *, refresh: bool = False) -> str:
        if self._token and not refresh and time.monotonic() < self._token_until:
            return self._token
        basic = base64.b64encode(f"{self.config.api_user or ''}:{self.config.api_key or ''}".encode()).decode()
        answer = await self.request("POST", TOKEN_PATH, headers={
            "Authorization": f"Basic {basic}", "Ocp-Apim-Subscription-Key": self.config.subscription_key or ""})
        if answer.status != 200 or not isinstance(answer.body, dict) or "access_token" not in answer.body:
            raise TransportError(f"no access token from {self.config.name} (HTTP {answer.status})")
        self._token = answer.body["access_token"]
        self._token_until = time.monotonic() + max(float(answer.body.get("expires_in", 3600)) - 60, 30)
        return self._token
