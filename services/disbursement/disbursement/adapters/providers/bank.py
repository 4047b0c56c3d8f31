"""Dialect `bank`: an ISO 20022-flavoured JSON payments API (docs/providers.md).

A payment is created under an Idempotency-Key (our reference) and found by its end_to_end_id.
A 200 is the same payment replayed; a 409 is the key in use with another body: look it up.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from reintegra import jsonfast
from reintegra.money import Money
from schwifty import IBAN
from schwifty.exceptions import SchwiftyException

from disbursement.adapters.providers.base import (
    FrozenRequest,
    InvalidPayee,
    KeyedAdapter,
    Outcome,
    PaymentOrder,
    ProviderStatus,
)

PAYMENTS_PATH = "/v1/payments"
_STATUS = {"ACSP": Outcome.PENDING, "ACSC": Outcome.SETTLED, "RJCT": Outcome.FAILED}
SEVERAL = "several payments under this reference"


class BankAdapter(KeyedAdapter):
    def freeze(self, order: PaymentOrder) -> FrozenRequest:
        amount = self.check_order(order)
        payee = order.payee
        name = (payee.name or "").strip()
        if not name:
            raise InvalidPayee("account_holder_missing", "a bank transfer needs the account holder's name")
        creditor: dict[str, str] = {"name": name}
        if payee.iban:
            try:
                creditor["iban"] = IBAN(payee.iban).compact
            except (SchwiftyException, ValueError) as exc:
                raise InvalidPayee("iban_invalid", f"the account's IBAN is not valid: {exc}") from exc
        elif payee.account_number and payee.bank_code:
            creditor.update(account_number=payee.account_number.strip(), bank_code=payee.bank_code.strip())
        else:
            raise InvalidPayee("account_missing", "a bank transfer needs an IBAN, or an account number and bank code")
        body = {"end_to_end_id": order.reference,
                "instructed_amount": {"amount": amount, "currency": order.currency},
                "creditor": creditor, "remittance_information": order.note[:140]}
        return FrozenRequest(order.reference, PAYMENTS_PATH, {"Idempotency-Key": order.reference},
                             jsonfast.dumps_text(body))

    async def find(self, reference: str) -> ProviderStatus:
        answer = await self.request("GET", PAYMENTS_PATH, params={"end_to_end_id": reference}, headers=self.auth_headers())
        return self.after_lookup(reference, answer, lambda body: self._oldest(reference, body))

    def _oldest(self, reference: str, body: Any) -> ProviderStatus:
        payments = body["payments"]
        if not isinstance(payments, list):
            raise TypeError("payments is not a list")
        if not payments:
            return ProviderStatus(self.config.name, reference, Outcome.NOT_FOUND)
        # The provider lists them oldest first; the first is the one we instructed, any other a duplicate.
        status = self.status_from(payments[0])
        return replace(status, detail=SEVERAL) if len(payments) > 1 else status

    def callback_resource(self, body: Any) -> Any:
        return body["payment"]

    def status_from(self, body: Any) -> ProviderStatus:
        outcome = _STATUS[body["status"]]
        amount = body.get("settled_amount") or body["instructed_amount"]
        return ProviderStatus(
            self.config.name, body["end_to_end_id"], outcome, transfer_id=str(body["payment_id"]),
            amount_minor=Money.parse(str(amount["amount"]), amount["currency"]).minor, currency=amount["currency"],
            reason=(body.get("status_reason") or "rejected") if outcome == Outcome.FAILED else None)

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.config.api_key or ''}"}
