"""Dialect `bank`: an ISO 20022-flavoured JSON payments API (docs/providers.md)."""

from __future__ import annotations

from typing import Any

from reintegra import jsonfast
from reintegra.money import Money
from schwifty import IBAN
from schwifty.exceptions import SchwiftyException

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

PAYMENTS_PATH = "/v1/payments"
_STATUS = {"ACSP": Outcome.PENDING, "ACSC": Outcome.SETTLED, "RJCT": Outcome.FAILED}


class BankAdapter(ProviderAdapter):
    def freeze(self, order: PaymentOrder) -> FrozenRequest:
        if order.currency != self.config.currency:
            raise InvalidPayee("currency_not_supported",
                               f"{self.config.name} pays in {self.config.currency}, not {order.currency}")
        payee = order.payee
        if not (payee.name or "").strip():
            raise InvalidPayee("account_holder_missing", "a bank transfer needs the account holder's name")
        creditor: dict[str, str] = {"name": payee.name.strip()}
        if payee.iban:
            try:
                creditor["iban"] = IBAN(payee.iban).compact
            except SchwiftyException as exc:
                raise InvalidPayee("iban_invalid", f"the account's IBAN is not valid: {exc}") from exc
        elif payee.account_number and payee.bank_code:
            creditor.update(account_number=payee.account_number, bank_code=payee.bank_code)
        else:
            raise InvalidPayee("account_missing", "a bank transfer needs an IBAN, or an account number and bank code")
        body = {"end_to_end_id": order.reference,
                "instructed_amount": {"amount": Money(order.amount_minor, order.currency).format_amount(),
                                      "currency": order.currency},
                "creditor": creditor, "remittance_information": order.note[:140]}
        return FrozenRequest(order.reference, PAYMENTS_PATH, {"Idempotency-Key": order.reference},
                             jsonfast.dumps_text(body))

    async def send(self, frozen: FrozenRequest, callback_url: str | None) -> ProviderStatus:
        headers = {**frozen.headers, "Authorization": f"Bearer {self.config.api_key or ''}"}
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
            answer = await self.request("GET", PAYMENTS_PATH, params={"end_to_end_id": reference},
                                        headers={"Authorization": f"Bearer {self.config.api_key or ''}"})
        except TransportError as exc:
            return self.unknown(reference, str(exc))
        if answer.status == 404:
            return ProviderStatus(self.config.name, reference, Outcome.NOT_FOUND)
        if answer.status != 200 or not isinstance(answer.body, dict):
            return self.unknown(reference, f"lookup answered HTTP {answer.status}")
        payments = answer.body.get("payments") or []
        if not payments:
            return ProviderStatus(self.config.name, reference, Outcome.NOT_FOUND)
        try:
            status = self.status_from(payments[0])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            return self.unknown(reference, f"unreadable lookup answer: {exc}")
        if len(payments) > 1:
            status = ProviderStatus(**{**status.__dict__, "detail": "several payments under this reference"})
        return status

    def callback_resource(self, body: Any) -> Any:
        return body["payment"]

    def status_from(self, body: Any) -> ProviderStatus:
        outcome = _STATUS[body["status"]]
        amount = body.get("settled_amount") or body["instructed_amount"]
        return ProviderStatus(
            self.config.name, body["end_to_end_id"], outcome, transfer_id=body["payment_id"],
            amount_minor=Money.parse(str(amount["amount"]), amount["currency"]).minor, currency=amount["currency"],
            reason=(body.get("status_reason") or "rejected") if outcome == Outcome.FAILED else None)
