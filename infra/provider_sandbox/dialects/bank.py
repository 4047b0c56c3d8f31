"""Dialect `bank`: an ISO 20022-flavoured JSON payments API (payments, lookup by end-to-end id)."""

from __future__ import annotations

from typing import Annotated, Any

from aiohttp import web
from pydantic import (
    BaseModel,
    ConfigDict,
    StrictStr,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from schwifty import IBAN
from schwifty.exceptions import SchwiftyException

from .. import auth
from ..catalogue import Provider
from ..faults import Subject
from ..money import format_major, parse_major
from ..store import Transfer
from ..transfers import Draft, Outcome
from .common import (
    BadRequest,
    Reference,
    Text,
    callback_url,
    error_details,
    iso,
    json_response,
    lose_response,
    provider_for,
    random_hex,
    read_json,
    required_header,
    sandbox,
)

BASE = "/providers/{name}/v1/payments"
STATUS = {"pending": "ACSP", "settled": "ACSC", "failed": "RJCT"}
AccountNumber = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9]{1,34}$")]


class Amount(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: StrictStr
    currency: StrictStr

    @field_validator("currency")
    @classmethod
    def _provider_currency(cls, value: str, info: ValidationInfo) -> str:
        if value != info.context["currency"]:
            raise ValueError(f"this provider pays in {info.context['currency']} only")
        return value

    @field_validator("amount")
    @classmethod
    def _major_units(cls, value: str, info: ValidationInfo) -> str:
        parse_major(value, info.context["currency"])
        return value


class Creditor(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text
    iban: StrictStr | None = None
    account_number: AccountNumber | None = None
    bank_code: AccountNumber | None = None

    @field_validator("iban")
    @classmethod
    def _valid_iban(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return IBAN(value).compact
        except SchwiftyException as exc:
            raise ValueError(f"invalid IBAN: {exc}") from exc

    @model_validator(mode="after")
    def _one_account(self) -> Creditor:
        if self.iban is None and not (self.account_number and self.bank_code):
            raise ValueError("creditor needs an iban, or an account_number and a bank_code")
        if self.iban is not None and (self.account_number or self.bank_code):
            raise ValueError("creditor has either an iban or an account_number and bank_code, not both")
        return self

    @property
    def account(self) -> str:
        return self.iban or self.account_number or ""


class PaymentBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    end_to_end_id: Reference
    instructed_amount: Amount
    creditor: Creditor
    remittance_information: Annotated[str, StringConstraints(max_length=140)] | None = None


def _error(status: int, error: str, message: str, **extra: Any) -> web.Response:
    return json_response({"error": error, "message": message, **extra}, status)


def _refused(request: web.Request, provider: Provider, details: list[dict[str, str]]) -> web.Response:
    sandbox(request).transfers.rejected(provider)
    return json_response({"error": "invalid_request", "details": details}, 422)


def _unauthorized(request: web.Request, provider: Provider) -> web.Response | None:
    if auth.bearer_key_ok(request, provider):
        return None
    sandbox(request).transfers.unauthorized(provider)
    return _error(401, "unauthorized", "missing or invalid API key (Authorization: Bearer <api_key>)")


async def create(request: web.Request) -> web.Response:
    provider = provider_for(request, "bank")
    if (refusal := _unauthorized(request, provider)) is not None:
        return refusal
    try:
        key = required_header(request, "Idempotency-Key")
        url = callback_url(request)
        body, body_hash = await read_json(request)
        parsed = PaymentBody.model_validate(body, context={"currency": provider.currency})
    except BadRequest as exc:
        return _refused(request, provider, exc.details)
    except ValidationError as exc:
        return _refused(request, provider, error_details(exc))
    account = parsed.creditor.account
    draft = Draft(
        reference=parsed.end_to_end_id, provider_reference=key,
        amount_minor=parse_major(parsed.instructed_amount.amount, provider.currency), currency=provider.currency,
        counterparty=account, counterparty_name=parsed.creditor.name, request=body, body_hash=body_hash,
        callback_url=url, subject=Subject(reference=parsed.end_to_end_id, provider_reference=key, account=account),
    )
    result = sandbox(request).transfers.create(provider, draft, lambda: "pay_" + random_hex(12))
    if result.outcome is Outcome.ERROR_BEFORE:
        return _error(503, "service_unavailable", "temporarily unavailable, retry later")
    if result.after_fault == "lose_response":
        return lose_response(request)
    if result.after_fault == "error_after":
        return _error(500, "internal_error", "an internal error occurred")
    if result.outcome is Outcome.CREATED:
        return json_response(render(result.transfer), 201)
    if result.outcome is Outcome.REPLAYED:
        return json_response(render(result.transfer), 200)
    return _error(409, "idempotency_key_in_use", "this Idempotency-Key was used with another request body")


async def lookup(request: web.Request) -> web.Response:
    provider = provider_for(request, "bank")
    if (refusal := _unauthorized(request, provider)) is not None:
        return refusal
    reference = request.query.get("end_to_end_id", "")
    if not reference:
        return _refused(request, provider, [{"loc": "query.end_to_end_id", "msg": "end_to_end_id is required",
                                             "type": "missing"}])
    ctx = sandbox(request)
    found = ctx.store.transfers_by_reference(provider.name, reference)
    subject = Subject(reference=reference, provider_reference=found[-1].provider_reference if found else None,
                      account=found[-1].counterparty if found else None)
    fault = ctx.transfers.lookup(provider, subject)
    if fault == "error_before":
        return _error(503, "service_unavailable", "temporarily unavailable, retry later")
    if fault == "lose_response":
        return lose_response(request)
    if fault == "error_after":
        return _error(500, "internal_error", "an internal error occurred")
    return json_response({"payments": [render(t) for t in found]})


def render(transfer: Transfer | None, *, stale: bool = False) -> dict[str, Any]:
    """A payment; `stale`: as it was while pending (callback_reorder)."""
    assert transfer is not None
    status = "ACSP" if stale else STATUS[transfer.status]
    settled = transfer.settled_amount_minor if status == "ACSC" else None
    return {
        "payment_id": transfer.transfer_id,
        "end_to_end_id": transfer.reference,
        "instructed_amount": {"amount": format_major(transfer.amount_minor, transfer.currency),
                              "currency": transfer.currency},
        "settled_amount": (None if settled is None else
                           {"amount": format_major(settled, transfer.currency), "currency": transfer.currency}),
        "creditor": transfer.request["creditor"],
        "status": status,
        "status_reason": transfer.failure_reason if status == "RJCT" else None,
        "created_at": iso(transfer.created_at),
        "updated_at": iso(transfer.created_at if stale else transfer.updated_at),
    }


def callback_body(transfer: Transfer, *, stale: bool = False) -> dict[str, Any]:
    return {"event": "payment.status_changed", "payment": render(transfer, stale=stale)}


ROUTES = [web.post(BASE, create), web.get(BASE, lookup)]
