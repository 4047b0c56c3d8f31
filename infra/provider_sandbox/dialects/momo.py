"""Dialect `momo`: the shape of MTN MoMo's Disbursement API (token, transfer, lookup, callback)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import (
    BaseModel,
    ConfigDict,
    StrictStr,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from .. import auth
from ..catalogue import Provider
from ..faults import Subject
from ..money import format_major, parse_major
from ..store import Transfer
from ..transfers import Draft, Outcome
from .common import (
    BadRequest,
    Reference,
    callback_url,
    error_details,
    json_response,
    lose_response,
    provider_for,
    random_digits,
    read_json,
    sandbox,
)

BASE = "/providers/{name}/disbursement"
STATUS = {"pending": "PENDING", "settled": "SUCCESSFUL", "failed": "FAILED"}
Note = Annotated[str, StringConstraints(max_length=160)]


class Payee(BaseModel):
    model_config = ConfigDict(extra="forbid")

    partyIdType: Literal["MSISDN"]  # noqa: N815 - the wire's spelling
    partyId: Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]{6,14}$")]  # noqa: N815


class TransferBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: StrictStr
    currency: StrictStr
    externalId: Reference  # noqa: N815
    payee: Payee
    payerMessage: Note | None = None  # noqa: N815
    payeeNote: Note | None = None  # noqa: N815

    @field_validator("currency")
    @classmethod
    def _provider_currency(cls, value: str, info: ValidationInfo) -> str:
        expected = info.context["currency"]
        if value != expected:
            raise ValueError(f"this provider pays in {expected} only")
        return value

    @field_validator("amount")
    @classmethod
    def _major_units(cls, value: str, info: ValidationInfo) -> str:
        parse_major(value, info.context["currency"])
        return value


def _error(status: int, code: str, message: str) -> web.Response:
    return json_response({"code": code, "message": message}, status)


def _unauthorized(request: web.Request, provider: Provider, message: str) -> web.Response:
    sandbox(request).transfers.unauthorized(provider)
    return _error(401, "UNAUTHORIZED", message)


def _refused(request: web.Request, provider: Provider, code: str, message: str) -> web.Response:
    sandbox(request).transfers.rejected(provider)
    return _error(400, code, message)


def _refusal_code(error: ValidationError) -> str:
    first = {str(item["loc"][0]) for item in error.errors() if item["loc"]}
    if "currency" in first:
        return "INVALID_CURRENCY"
    return "INVALID_PAYEE" if "payee" in first else "BAD_REQUEST"


async def token(request: web.Request) -> web.Response:
    provider = provider_for(request, "momo")
    if not auth.basic_ok(request, provider):
        return _unauthorized(request, provider, "Invalid credentials or subscription key.")
    ttl = sandbox(request).config.token_ttl_s
    return json_response({"access_token": auth.issue_token(provider, ttl), "token_type": "access_token",
                          "expires_in": ttl})


def _authorized(request: web.Request, provider: Provider) -> bool:
    """Lookups: the token, and the subscription key when one is sent (the doc does not require it there)."""
    key = request.headers.get("Ocp-Apim-Subscription-Key")
    return auth.bearer_token_ok(request, provider) and (key is None or auth.subscription_ok(request, provider))


async def create(request: web.Request) -> web.Response:
    provider = provider_for(request, "momo")
    if not auth.bearer_token_ok(request, provider) or not auth.subscription_ok(request, provider):
        return _unauthorized(request, provider, "Access token or subscription key missing, invalid or expired.")
    try:
        reference_id = str(uuid.UUID(request.headers.get("X-Reference-Id", "")))
    except ValueError:
        return _refused(request, provider, "BAD_REQUEST", "X-Reference-Id must be a UUID.")
    if request.headers.get("X-Target-Environment") != "sandbox":
        return _refused(request, provider, "BAD_REQUEST", "X-Target-Environment must be 'sandbox'.")
    try:
        url = callback_url(request)
        body, body_hash = await read_json(request)
    except BadRequest as exc:
        return _refused(request, provider, "BAD_REQUEST", str(exc))
    try:
        parsed = TransferBody.model_validate(body, context={"currency": provider.currency})
    except ValidationError as exc:
        detail = error_details(exc)[0]
        return _refused(request, provider, _refusal_code(exc), f"{detail['loc']}: {detail['msg']}")
    msisdn = parsed.payee.partyId
    draft = Draft(
        reference=parsed.externalId, provider_reference=reference_id,
        amount_minor=parse_major(parsed.amount, provider.currency), currency=parsed.currency,
        counterparty=msisdn, counterparty_name=None, request=body, body_hash=body_hash, callback_url=url,
        subject=Subject(reference=parsed.externalId, provider_reference=reference_id, msisdn=msisdn),
    )
    result = sandbox(request).transfers.create(provider, draft, lambda: random_digits(12))
    if result.outcome is Outcome.ERROR_BEFORE:
        return _error(503, "SERVICE_UNAVAILABLE", "Service temporarily unavailable, try again later.")
    if result.after_fault == "lose_response":
        return lose_response(request)
    if result.after_fault == "error_after":
        return _error(500, "INTERNAL_PROCESSING_ERROR", "An internal error occurred.")
    if result.outcome is Outcome.CREATED:
        return web.Response(status=202)
    return _error(409, "RESOURCE_ALREADY_EXIST", "Duplicated reference id. Creation of resource failed.")


async def lookup(request: web.Request) -> web.Response:
    provider = provider_for(request, "momo")
    if not _authorized(request, provider):
        return _unauthorized(request, provider, "Access token missing, invalid or expired.")
    reference_id = request.match_info["reference_id"]
    try:  # stored in canonical form: an upper-case UUID names the same transfer
        reference_id = str(uuid.UUID(reference_id))
    except ValueError:
        pass
    ctx = sandbox(request)
    found = ctx.store.transfers_by_provider_reference(provider.name, reference_id)
    latest = found[-1] if found else None
    subject = Subject(reference=latest.reference if latest else None, provider_reference=reference_id,
                      msisdn=latest.counterparty if latest else None)
    fault = ctx.transfers.lookup(provider, subject)
    if fault == "error_before":
        return _error(503, "SERVICE_UNAVAILABLE", "Service temporarily unavailable, try again later.")
    if fault == "lose_response":
        return lose_response(request)
    if fault == "error_after":
        return _error(500, "INTERNAL_PROCESSING_ERROR", "An internal error occurred.")
    if latest is None:
        return _error(404, "RESOURCE_NOT_FOUND", "Requested resource was not found.")
    return json_response(render(latest))


def render(transfer: Transfer, *, stale: bool = False) -> dict[str, Any]:
    """The GET body; `stale`: as it was while pending (callback_reorder)."""
    status = "PENDING" if stale else STATUS[transfer.status]
    paid = transfer.settled_amount_minor if status == "SUCCESSFUL" else None
    body: dict[str, Any] = {
        "amount": format_major(paid if paid is not None else transfer.amount_minor, transfer.currency),
        "currency": transfer.currency,
        "financialTransactionId": transfer.transfer_id,
        "externalId": transfer.reference,
        "payee": transfer.request["payee"],
    }
    for field in ("payerMessage", "payeeNote"):
        if transfer.request.get(field) is not None:
            body[field] = transfer.request[field]
    body["status"] = status
    if status == "FAILED":
        body["reason"] = transfer.failure_reason
    return body


def callback_body(transfer: Transfer, *, stale: bool = False) -> dict[str, Any]:
    return render(transfer, stale=stale)


ROUTES = [
    web.post(BASE + "/token/", token),
    web.post(BASE + "/v1_0/transfer", create),
    web.get(BASE + "/v1_0/transfer/{reference_id}", lookup),
]
