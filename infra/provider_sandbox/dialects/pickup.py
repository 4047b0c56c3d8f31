"""Dialect `pickup`: cash collected at an agent with a code sent by SMS; amounts in minor units."""

from __future__ import annotations

from typing import Annotated, Any

from aiohttp import web
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from .. import auth
from ..catalogue import Provider
from ..faults import Subject
from ..money import MAX_MINOR
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
    random_digits,
    random_hex,
    read_json,
    required_header,
    sandbox,
)

BASE = "/providers/{name}/v1/cash-pickups"
# The sandbox never lets a code expire; a payee it does not know is CANCELLED.
STATUS = {"pending": "AVAILABLE", "settled": "COLLECTED", "failed": "CANCELLED"}


class Recipient(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text
    msisdn: Annotated[str, StringConstraints(pattern=r"^\+[1-9][0-9]{6,14}$")]


class PickupBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reference: Reference
    amount_minor: StrictInt = Field(gt=0, lt=MAX_MINOR)
    currency: StrictStr
    recipient: Recipient
    expires_in_days: StrictInt = Field(default=30, ge=1, le=365)

    @field_validator("currency")
    @classmethod
    def _provider_currency(cls, value: str, info: ValidationInfo) -> str:
        if value != info.context["currency"]:
            raise ValueError(f"this provider pays in {info.context['currency']} only")
        return value


def _error(status: int, error: str, message: str) -> web.Response:
    return json_response({"error": error, "message": message}, status)


def _refused(request: web.Request, provider: Provider, details: list[dict[str, str]]) -> web.Response:
    sandbox(request).transfers.rejected(provider)
    return json_response({"error": "invalid_request", "details": details}, 422)


def _unauthorized(request: web.Request, provider: Provider) -> web.Response | None:
    if auth.api_key_ok(request, provider):
        return None
    sandbox(request).transfers.unauthorized(provider)
    return _error(401, "unauthorized", "missing or invalid X-Api-Key")


async def create(request: web.Request) -> web.Response:
    provider = provider_for(request, "pickup")
    if (refusal := _unauthorized(request, provider)) is not None:
        return refusal
    try:
        key = required_header(request, "Idempotency-Key")
        url = callback_url(request)
        body, body_hash = await read_json(request)
        parsed = PickupBody.model_validate(body, context={"currency": provider.currency})
    except BadRequest as exc:
        return _refused(request, provider, exc.details)
    except ValidationError as exc:
        return _refused(request, provider, error_details(exc))
    msisdn = parsed.recipient.msisdn
    draft = Draft(
        reference=parsed.reference, provider_reference=key, amount_minor=parsed.amount_minor,
        currency=provider.currency, counterparty=msisdn, counterparty_name=parsed.recipient.name, request=body,
        body_hash=body_hash, callback_url=url, pickup_code=random_digits(8),
        subject=Subject(reference=parsed.reference, provider_reference=key, msisdn=msisdn),
    )
    result = sandbox(request).transfers.create(provider, draft, lambda: "pk_" + random_hex(13))
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
    return _error(409, "duplicate_reference", "this reference was used with another request body")


async def lookup(request: web.Request) -> web.Response:
    provider = provider_for(request, "pickup")
    if (refusal := _unauthorized(request, provider)) is not None:
        return refusal
    reference = request.match_info["reference"]
    ctx = sandbox(request)
    found = ctx.store.transfers_by_reference(provider.name, reference)
    latest = found[-1] if found else None
    subject = Subject(reference=reference, provider_reference=latest.provider_reference if latest else None,
                      msisdn=latest.counterparty if latest else None)
    fault = ctx.transfers.lookup(provider, subject)
    if fault == "error_before":
        return _error(503, "service_unavailable", "temporarily unavailable, retry later")
    if fault == "lose_response":
        return lose_response(request)
    if fault == "error_after":
        return _error(500, "internal_error", "an internal error occurred")
    if latest is None:
        return json_response({"error": "not_found", "message": f"no cash pickup {reference!r}"}, 404)
    return json_response(render(latest))


def render(transfer: Transfer | None, *, stale: bool = False) -> dict[str, Any]:
    """A pickup; `stale`: as it was while available (callback_reorder)."""
    assert transfer is not None
    status = "AVAILABLE" if stale else STATUS[transfer.status]
    return {
        "pickup_id": transfer.transfer_id,
        "reference": transfer.reference,
        "amount_minor": transfer.amount_minor,
        "currency": transfer.currency,
        "recipient": transfer.request["recipient"],
        "pickup_code": transfer.pickup_code,
        "status": status,
        "collected_amount_minor": transfer.settled_amount_minor if status == "COLLECTED" else None,
        "failure_reason": transfer.failure_reason if status == "CANCELLED" else None,
        "created_at": iso(transfer.created_at),
        "updated_at": iso(transfer.created_at if stale else transfer.updated_at),
    }


def callback_body(transfer: Transfer, *, stale: bool = False) -> dict[str, Any]:
    return {"event": "cash_pickup.updated", "pickup": render(transfer, stale=stale)}


ROUTES = [web.post(BASE, create), web.get(BASE + "/{reference}", lookup)]
