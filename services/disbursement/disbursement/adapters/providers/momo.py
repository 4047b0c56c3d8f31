"""Dialect `momo`: the shape of MTN MoMo's Disbursement API (docs/providers.md).

A transfer is created under a reference id (a UUID derived from our reference, so every attempt
carries the same one) and read back by it; a 409 means it exists: look it up. Calls carry a
bearer token from the token endpoint, kept until shortly before it expires.
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
import uuid
from typing import Any

from reintegra import jsonfast
from reintegra.money import Money

from disbursement.adapters.providers.base import (
    Answer,
    FrozenRequest,
    InvalidPayee,
    Outcome,
    PaymentOrder,
    ProviderAdapter,
    ProviderConfig,
    ProviderStatus,
    TransportError,
)

TRANSFER_PATH = "/disbursement/v1_0/transfer"
TOKEN_PATH = "/disbursement/token/"
TARGET_ENVIRONMENT = "sandbox"
REFERENCE_HEADER = "X-Reference-Id"
_E164 = re.compile(r"^\+?[1-9][0-9]{6,14}$")
_STATUS = {"PENDING": Outcome.PENDING, "SUCCESSFUL": Outcome.SETTLED, "FAILED": Outcome.FAILED}
_TOKEN_MARGIN_S = 60.0  # renew a token this long before it expires (a call in flight must not carry a dead one)


def reference_id(reference: str) -> str:
    """The X-Reference-Id of a reference: the same for every attempt, different per reference."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "reintegra:" + reference))


class MomoAdapter(ProviderAdapter):
    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self._token: str | None = None
        self._token_until = 0.0
        self._token_lock = asyncio.Lock()  # one token request at a time, whatever the calls in flight

    def freeze(self, order: PaymentOrder) -> FrozenRequest:
        amount = self.check_order(order)
        msisdn = (order.payee.msisdn or "").replace(" ", "")
        if not _E164.match(msisdn):
            raise InvalidPayee("payee_msisdn_invalid", "the payout has no valid mobile number (E.164) to pay")
        body = {"amount": amount, "currency": order.currency, "externalId": order.reference,
                "payee": {"partyIdType": "MSISDN", "partyId": msisdn.lstrip("+")},
                "payerMessage": order.note[:160], "payeeNote": order.note[:160]}
        return FrozenRequest(order.reference, TRANSFER_PATH,
                             {REFERENCE_HEADER: reference_id(order.reference),
                              "X-Target-Environment": TARGET_ENVIRONMENT}, jsonfast.dumps_text(body))

    async def create(self, frozen: FrozenRequest, callback_url: str | None) -> ProviderStatus:
        answer = await self._authorised("POST", frozen.path, self.create_headers(frozen, callback_url, {}), frozen.body)

        def accepted(answer: Answer) -> ProviderStatus:
            if answer.body is None:  # 202 and nothing else: accepted, not final
                return ProviderStatus(self.config.name, frozen.reference, Outcome.PENDING,
                                      transfer_id=frozen.headers.get(REFERENCE_HEADER) or reference_id(frozen.reference))
            return self.status_from(answer.body)

        return await self.after_create(frozen, answer, accepted)

    async def find(self, reference: str) -> ProviderStatus:
        answer = await self._authorised("GET", f"{TRANSFER_PATH}/{reference_id(reference)}", {}, None)
        return self.after_lookup(reference, answer, self.status_from)

    def status_from(self, body: Any) -> ProviderStatus:
        outcome = _STATUS[body["status"]]
        currency = body["currency"]
        reason = body.get("reason")
        if isinstance(reason, dict):  # MTN sends {"code", "message"} in some versions
            reason = reason.get("code") or reason.get("message")
        reference = body["externalId"]
        return ProviderStatus(
            self.config.name, reference, outcome,
            transfer_id=body.get("financialTransactionId") or reference_id(reference),
            amount_minor=Money.parse(str(body["amount"]), currency).minor, currency=currency,
            reason=(str(reason) if reason else None) if outcome == Outcome.FAILED else None)

    async def _authorised(self, method: str, path: str, headers: dict[str, str], body: str | None) -> Answer:
        """The call with a bearer token; a 401 renews the token and tries once more (a 401 means
        the provider did not take the request)."""
        token = await self._access_token()
        answer = await self._call(method, path, headers, body, token)
        if answer.status == 401:
            answer = await self._call(method, path, headers, body, await self._access_token(stale=token))
        return answer

    async def _call(self, method: str, path: str, headers: dict[str, str], body: str | None, token: str) -> Answer:
        return await self.request(method, path, body=body, headers={
            **headers, "Authorization": f"Bearer {token}",
            "Ocp-Apim-Subscription-Key": self.config.subscription_key or ""})

    async def _access_token(self, *, stale: str | None = None) -> str:
        async with self._token_lock:
            fresh = self._token is not None and time.monotonic() < self._token_until
            if fresh and self._token != stale:  # `stale` was refused: another call may have renewed it
                return self._token
            basic = base64.b64encode(f"{self.config.api_user or ''}:{self.config.api_key or ''}".encode()).decode()
            answer = await self.request("POST", TOKEN_PATH, headers={
                "Authorization": f"Basic {basic}", "Ocp-Apim-Subscription-Key": self.config.subscription_key or ""})
            if answer.status != 200 or not isinstance(answer.body, dict) or not answer.body.get("access_token"):
                raise TransportError(f"no access token from {self.config.name} (token endpoint answered "
                                     f"HTTP {answer.status})")
            try:
                lifetime = float(answer.body.get("expires_in", 3600))
            except (TypeError, ValueError):
                lifetime = 3600.0
            self._token = str(answer.body["access_token"])
            self._token_until = time.monotonic() + max(lifetime - min(_TOKEN_MARGIN_S, lifetime / 10), 0.0)
            return self._token
