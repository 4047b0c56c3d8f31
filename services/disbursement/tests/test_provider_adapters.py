"""The provider adapters over real HTTP, against small fake providers written here (not the
sandbox): each dialect's wire format, what every answer means (a 409 is never a failure, a 5xx or
a hang is unknown), token renewal, signed callbacks, timeouts and the concurrency limit."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from disbursement.adapters.providers.bank import BankAdapter
from disbursement.adapters.providers.base import (
    CallbackRejected,
    FrozenRequest,
    InvalidPayee,
    MalformedCallback,
    Outcome,
    Payee,
    PaymentOrder,
    ProviderAdapter,
    ProviderConfig,
)
from disbursement.adapters.providers.momo import MomoAdapter, reference_id
from disbursement.adapters.providers.pickup import PickupAdapter
from multidict import CIMultiDict

IBAN = "CI93CI0080111301134291200589"
WALLET = "+2250701020304"
SECRET = "callback-secret"
DIALECT = {"momo": (MomoAdapter, "mobile_money"), "bank": (BankAdapter, "bank_transfer"),
           "pickup": (PickupAdapter, "cash_pickup")}


def config(dialect: str, base_url: str, **overrides: Any) -> ProviderConfig:
    kind = DIALECT[dialect][1]
    values = {"name": f"fake_{dialect}", "kind": kind, "dialect": dialect, "country": "CI", "currency": "XOF",
              "base_url": base_url, "api_user": "user", "api_key": "key", "subscription_key": "sub",
              "callback_secret": SECRET, "timeout_s": 1.0, "connect_timeout_s": 0.5, **overrides}
    return ProviderConfig(**values)


def adapter(dialect: str, base_url: str = "http://127.0.0.1:9", **overrides: Any) -> ProviderAdapter:
    return DIALECT[dialect][0](config(dialect, base_url, **overrides))


def order(reference: str = "RG-1", *, amount: int = 15_000, currency: str = "XOF", **payee: Any) -> PaymentOrder:
    defaults = {"name": "Awa Traoré", "msisdn": WALLET}
    return PaymentOrder(reference, amount, currency, Payee(**{**defaults, **payee}), "Reintegration grant C-1 c1/1")


BANK_ORDER = order(msisdn=None, iban=IBAN)


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# --- fake providers ----------------------------------------------------------------------------

Hook = Callable[[web.Request], Awaitable[web.StreamResponse | None]]


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Fake:
    """One provider's state. `on_create` / `on_lookup` / `on_token` may answer instead (a fault)."""

    requests: list[Seen] = field(default_factory=list)
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    on_create: Hook | None = None
    on_lookup: Hook | None = None
    on_token: Hook | None = None
    tokens: set[str] = field(default_factory=set)
    issued: int = 0
    expires_in: int = 3600
    in_flight: int = 0
    most_in_flight: int = 0
    delay_s: float = 0.0
    release: asyncio.Event = field(default_factory=asyncio.Event)  # ends every hang at teardown

    def seen(self, method: str, path_part: str) -> list[Seen]:
        return [s for s in self.requests if s.method == method and path_part in s.path]

    async def hang(self, request: web.Request) -> web.StreamResponse:
        await self.release.wait()
        return web.Response(status=503)


def counted(fake: Fake, hook_name: str | None, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
    async def wrapped(request: web.Request) -> web.StreamResponse:
        fake.requests.append(Seen(request.method, request.path_qs, dict(request.headers), await request.read()))
        fake.in_flight += 1
        fake.most_in_flight = max(fake.most_in_flight, fake.in_flight)
        try:
            if fake.delay_s:
                await asyncio.sleep(fake.delay_s)
            hook = getattr(fake, hook_name) if hook_name else None
            if hook is not None and (answer := await hook(request)) is not None:
                return answer
            return await handler(request)
        finally:
            fake.in_flight -= 1

    return wrapped


def momo_app(fake: Fake) -> web.Application:
    async def token(request: web.Request) -> web.Response:
        basic = "Basic " + base64.b64encode(b"user:key").decode()
        if request.headers.get("Authorization") != basic or request.headers.get("Ocp-Apim-Subscription-Key") != "sub":
            return web.json_response({"code": "UNAUTHORIZED", "message": "bad credentials"}, status=401)
        fake.issued += 1
        issued = f"tok-{fake.issued}"
        fake.tokens.add(issued)
        return web.json_response({"access_token": issued, "token_type": "access_token", "expires_in": fake.expires_in})

    def authorised(request: web.Request) -> bool:
        return request.headers.get("Authorization", "").removeprefix("Bearer ") in fake.tokens

    async def create(request: web.Request) -> web.Response:
        if not authorised(request):
            return web.json_response({"code": "UNAUTHORIZED", "message": "expired token"}, status=401)
        body = json.loads(await request.read())
        if body["currency"] != "XOF":
            return web.json_response({"code": "INVALID_CURRENCY", "message": "XOF only"}, status=400)
        ref_id = request.headers["X-Reference-Id"]
        if ref_id in fake.resources:
            return web.json_response({"code": "RESOURCE_ALREADY_EXIST", "message": "Duplicated reference id."},
                                     status=409)
        fake.resources[ref_id] = {**body, "financialTransactionId": f"FT-{len(fake.resources) + 1}",
                                  "status": "PENDING"}
        return web.Response(status=202)

    async def lookup(request: web.Request) -> web.Response:
        if not authorised(request):
            return web.json_response({"code": "UNAUTHORIZED", "message": "expired token"}, status=401)
        found = fake.resources.get(request.match_info["ref_id"])
        if found is None:
            return web.json_response({"code": "RESOURCE_NOT_FOUND", "message": "not found"}, status=404)
        return web.json_response(found)

    app = web.Application()
    app.add_routes([web.post("/disbursement/token/", counted(fake, "on_token", token)),
                    web.post("/disbursement/v1_0/transfer", counted(fake, "on_create", create)),
                    web.get("/disbursement/v1_0/transfer/{ref_id}", counted(fake, "on_lookup", lookup))])
    return app


def bank_payment(body: dict[str, Any], number: int, status: str = "ACSP", **extra: Any) -> dict[str, Any]:
    return {"payment_id": f"pay_{number}", "end_to_end_id": body["end_to_end_id"],
            "instructed_amount": body["instructed_amount"], "settled_amount": None, "creditor": body["creditor"],
            "status": status, "status_reason": None, "created_at": f"2026-12-02T10:00:0{number}Z",
            "updated_at": f"2026-12-02T10:00:0{number}Z", **extra}


def bank_app(fake: Fake) -> web.Application:
    """Resources: Idempotency-Key → (the body text, the payment)."""

    async def create(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "Bearer key":
            return web.json_response({"error": "unauthorized"}, status=401)
        raw = (await request.read()).decode()
        body = json.loads(raw)
        if "name" not in body["creditor"]:
            return web.json_response({"error": "invalid_request",
                                      "details": [{"loc": ["creditor", "name"], "msg": "field required"}]}, status=422)
        key = request.headers["Idempotency-Key"]
        if key in fake.resources:
            kept = fake.resources[key]
            if kept["raw"] != raw:
                return web.json_response({"error": "idempotency_key_in_use", "message": "other body"}, status=409)
            return web.json_response(kept["payment"], status=200)
        payment = bank_payment(body, len(fake.resources) + 1)
        fake.resources[key] = {"raw": raw, "payment": payment}
        return web.json_response(payment, status=201)

    async def lookup(request: web.Request) -> web.Response:
        wanted = request.query["end_to_end_id"]
        return web.json_response({"payments": [r["payment"] for r in fake.resources.values()
                                               if r["payment"]["end_to_end_id"] == wanted]})

    app = web.Application()
    app.add_routes([web.post("/v1/payments", counted(fake, "on_create", create)),
                    web.get("/v1/payments", counted(fake, "on_lookup", lookup))])
    return app


def pickup_resource(body: dict[str, Any], number: int, status: str = "AVAILABLE", **extra: Any) -> dict[str, Any]:
    return {"pickup_id": f"pk_{number}", "reference": body["reference"], "amount_minor": body["amount_minor"],
            "currency": body["currency"], "recipient": body["recipient"], "pickup_code": f"1234567{number}",
            "status": status, "collected_amount_minor": None, "failure_reason": None,
            "created_at": "2026-12-02T10:00:00Z", "updated_at": "2026-12-02T10:00:00Z", **extra}


def pickup_app(fake: Fake) -> web.Application:
    async def create(request: web.Request) -> web.Response:
        if request.headers.get("X-Api-Key") != "key":
            return web.json_response({"error": "unauthorized"}, status=401)
        raw = (await request.read()).decode()
        body = json.loads(raw)
        key = request.headers["Idempotency-Key"]
        if key in fake.resources:
            if fake.resources[key]["raw"] != raw:
                return web.json_response({"error": "duplicate_reference", "message": "other body"}, status=409)
            return web.json_response(fake.resources[key]["pickup"], status=200)
        pickup = pickup_resource(body, len(fake.resources) + 1)
        fake.resources[key] = {"raw": raw, "pickup": pickup}
        return web.json_response(pickup, status=201)

    async def lookup(request: web.Request) -> web.Response:
        found = [r["pickup"] for r in fake.resources.values() if r["pickup"]["reference"] == request.match_info["ref"]]
        if not found:
            return web.json_response({"error": "not_found"}, status=404)
        return web.json_response(found[-1])

    app = web.Application()
    app.add_routes([web.post("/v1/cash-pickups", counted(fake, "on_create", create)),
                    web.get("/v1/cash-pickups/{ref}", counted(fake, "on_lookup", lookup))])
    return app


APPS = {"momo": momo_app, "bank": bank_app, "pickup": pickup_app}


@asynccontextmanager
async def provider(dialect: str, **overrides: Any) -> AsyncIterator[tuple[Fake, ProviderAdapter]]:
    fake = Fake()
    server = TestServer(APPS[dialect](fake), host="127.0.0.1", port=0)
    await server.start_server()
    client = adapter(dialect, str(server.make_url("")).rstrip("/"), **overrides)
    try:
        yield fake, client
    finally:
        fake.release.set()
        await client.close()
        await server.close()


@asynccontextmanager
async def hanging_up(*, answer: bytes | None = None) -> AsyncIterator[tuple[str, list[bytes]]]:
    """A server that reads each request whole and closes the connection without a word (or with
    `answer` as the raw bytes of its reply)."""
    bodies: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        bodies.append(await reader.readexactly(length))
        if answer is not None:
            writer.write(answer)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", bodies
    finally:
        server.close()
        await server.wait_closed()


def status_answer(status: int, body: Any = None) -> Hook:
    async def answer(request: web.Request) -> web.StreamResponse:
        return web.json_response(body, status=status) if body is not None else web.Response(status=status)

    return answer


# --- freezing ------------------------------------------------------------------------------------

def test_a_momo_order_is_frozen_exactly_as_the_dialect_says():
    frozen = adapter("momo").freeze(order("RG-7"))
    assert frozen.path == "/disbursement/v1_0/transfer" and frozen.reference == "RG-7"
    assert frozen.headers == {"X-Reference-Id": str(uuid.uuid5(uuid.NAMESPACE_URL, "reintegra:RG-7")),
                              "X-Target-Environment": "sandbox"}
    assert json.loads(frozen.body) == {
        "amount": "15000", "currency": "XOF", "externalId": "RG-7",
        "payee": {"partyIdType": "MSISDN", "partyId": "2250701020304"},
        "payerMessage": "Reintegration grant C-1 c1/1", "payeeNote": "Reintegration grant C-1 c1/1"}


def test_amounts_are_major_unit_strings_for_momo_and_bank_and_minor_units_for_pickup():
    eur = order(amount=1250, currency="EUR", iban="DE89370400440532013000")
    assert json.loads(adapter("momo", currency="EUR").freeze(eur).body)["amount"] == "12.50"
    assert json.loads(adapter("bank", currency="EUR").freeze(eur).body)["instructed_amount"] == {
        "amount": "12.50", "currency": "EUR"}
    assert json.loads(adapter("momo", currency="GNF").freeze(order(amount=1_500_000, currency="GNF")).body)[
        "amount"] == "1500000"
    pickup = json.loads(adapter("pickup", currency="XAF").freeze(order(amount=50_000, currency="XAF")).body)
    assert pickup == {"reference": "RG-1", "amount_minor": 50_000, "currency": "XAF",
                      "recipient": {"name": "Awa Traoré", "msisdn": WALLET}, "expires_in_days": 30}


def test_a_bank_order_carries_the_compact_iban_or_the_account_number_and_bank_code():
    frozen = adapter("bank").freeze(order(msisdn=None, iban="ci93 ci00 8011 1301 1342 9120 0589"))
    body = json.loads(frozen.body)
    assert frozen.headers == {"Idempotency-Key": "RG-1"} and frozen.path == "/v1/payments"
    assert body == {"end_to_end_id": "RG-1", "instructed_amount": {"amount": "15000", "currency": "XOF"},
                    "creditor": {"name": "Awa Traoré", "iban": IBAN},
                    "remittance_information": "Reintegration grant C-1 c1/1"}
    local = json.loads(adapter("bank").freeze(order(msisdn=None, account_number="0011223344", bank_code="CI008")).body)
    assert local["creditor"] == {"name": "Awa Traoré", "account_number": "0011223344", "bank_code": "CI008"}


@pytest.mark.parametrize("dialect", ["momo", "bank", "pickup"])
def test_freezing_is_deterministic_and_survives_storage_as_json(dialect):
    client = adapter(dialect)
    frozen = client.freeze(BANK_ORDER if dialect == "bank" else order())
    assert client.freeze(BANK_ORDER if dialect == "bank" else order()) == frozen
    assert adapter(dialect).freeze(BANK_ORDER if dialect == "bank" else order()).body == frozen.body  # another instance
    stored = json.dumps(frozen.to_json())  # as the dispatcher keeps it in Postgres
    assert FrozenRequest.from_json(json.loads(stored)) == frozen
    assert FrozenRequest.from_json(stored) == frozen
    assert not any("key" in v.lower() or "bearer" in v.lower() for v in frozen.headers.values())  # no secret kept


@pytest.mark.parametrize(("dialect", "bad", "code"), [
    ("momo", order(msisdn=None), "payee_msisdn_invalid"),
    ("momo", order(msisdn="07 01 02"), "payee_msisdn_invalid"),
    ("momo", order(currency="XAF"), "currency_not_supported"),
    ("momo", order(amount=0), "amount_invalid"),
    ("momo", order(amount=-5), "amount_invalid"),
    ("momo", order(amount=150.5), "amount_invalid"),  # a fraction of a minor unit: too many decimals
    ("momo", order(amount=True), "amount_invalid"),
    ("bank", order(msisdn=None, iban="CI93CI0080111301134291200588"), "iban_invalid"),  # bad checksum
    ("bank", order(msisdn=None, iban="not an iban"), "iban_invalid"),
    ("bank", order(name=" ", iban=IBAN), "account_holder_missing"),
    ("bank", order(name=None, iban=IBAN), "account_holder_missing"),
    ("bank", order(msisdn=None), "account_missing"),
    ("bank", order(msisdn=None, account_number="0011223344"), "account_missing"),  # no bank code
    ("bank", order(currency="EUR", iban=IBAN), "currency_not_supported"),
    ("pickup", order(name=None), "recipient_name_missing"),
    ("pickup", order(msisdn=None), "recipient_phone_missing"),
    ("pickup", order(msisdn="2250701020304"), "recipient_phone_missing"),  # not E.164
])
def test_an_order_that_cannot_be_sent_is_refused_by_freeze(dialect, bad, code):
    with pytest.raises(InvalidPayee) as refused:
        adapter(dialect).freeze(bad)
    assert refused.value.reason_code == code and str(refused.value)


def test_momo_reference_ids_are_the_same_for_every_attempt_and_differ_per_reference():
    assert reference_id("RG-1") == reference_id("RG-1") != reference_id("RG-1-2")
    assert reference_id("RG-1") == str(uuid.uuid5(uuid.NAMESPACE_URL, "reintegra:RG-1"))


# --- momo over HTTP ---------------------------------------------------------------------------------

async def test_momo_sends_with_a_cached_token_and_looks_up_by_reference_id():
    async with provider("momo") as (fake, client):
        frozen = client.freeze(order("RG-m1"))
        sent = await client.send(frozen, "http://us/callbacks/fake_momo")
        assert (sent.outcome, sent.reference, sent.transfer_id) == (Outcome.PENDING, "RG-m1", reference_id("RG-m1"))
        [create] = fake.seen("POST", "/transfer")
        assert create.body == frozen.body.encode()
        assert create.headers["X-Reference-Id"] == reference_id("RG-m1")
        assert create.headers["X-Callback-Url"] == "http://us/callbacks/fake_momo"
        assert create.headers["Authorization"] == "Bearer tok-1"
        assert create.headers["Ocp-Apim-Subscription-Key"] == "sub"
        assert create.headers["X-Target-Environment"] == "sandbox"
        assert create.headers["Content-Type"] == "application/json"

        looked_up = await client.lookup("RG-m1")
        assert (looked_up.outcome, looked_up.transfer_id, looked_up.amount_minor, looked_up.currency) == (
            Outcome.PENDING, "FT-1", 15_000, "XOF")
        assert fake.seen("GET", "/transfer/")[0].path.endswith("/" + reference_id("RG-m1"))
        assert len(fake.seen("POST", "/token/")) == 1  # the token is reused until shortly before it expires


async def test_momo_statuses_amounts_reasons_and_the_transfer_id_fallback():
    async with provider("momo") as (fake, client):
        await client.send(client.freeze(order("RG-s")), None)
        resource = fake.resources[reference_id("RG-s")]
        resource.update(status="SUCCESSFUL", amount="14990")
        settled = await client.lookup("RG-s")
        assert (settled.outcome, settled.amount_minor, settled.reason) == (Outcome.SETTLED, 14_990, None)
        resource.update(status="FAILED", reason="PAYEE_NOT_FOUND")
        failed = await client.lookup("RG-s")
        assert (failed.outcome, failed.reason) == (Outcome.FAILED, "PAYEE_NOT_FOUND")
        del resource["financialTransactionId"]
        assert (await client.lookup("RG-s")).transfer_id == reference_id("RG-s")


async def test_a_momo_409_is_the_existing_transfer_whatever_the_body():
    async with provider("momo") as (fake, client):
        frozen = client.freeze(order("RG-dup"))
        await client.send(frozen, None)
        other = FrozenRequest(frozen.reference, frozen.path, frozen.headers, frozen.body.replace("15000", "16000"))
        again = await client.send(other, None)
        assert (again.outcome, again.amount_minor, again.transfer_id) == (Outcome.PENDING, 15_000, "FT-1")
        assert len(fake.resources) == 1


async def test_a_409_for_something_the_provider_cannot_find_is_not_found_and_says_so():
    async with provider("momo") as (fake, client):
        fake.on_create = status_answer(409, {"code": "RESOURCE_ALREADY_EXIST", "message": "dup"})
        status = await client.send(client.freeze(order("RG-ghost")), None)
        assert status.outcome == Outcome.NOT_FOUND and "409" in status.detail


async def test_a_momo_400_is_refused_with_the_providers_code_and_message():
    async with provider("momo") as (fake, client):
        frozen = client.freeze(order())
        tampered = FrozenRequest(frozen.reference, frozen.path, frozen.headers, frozen.body.replace("XOF", "XAF"))
        status = await client.send(tampered, None)
        assert (status.outcome, status.reason, status.detail) == (Outcome.REFUSED, "INVALID_CURRENCY", "XOF only")
        assert fake.resources == {}


async def test_an_expired_token_is_renewed_once_and_the_call_made_again():
    async with provider("momo") as (fake, client):
        await client.lookup("RG-warm")
        fake.tokens.clear()  # the provider forgets every token it issued
        status = await client.send(client.freeze(order("RG-renew")), None)
        assert status.outcome == Outcome.PENDING
        assert [s.headers["Authorization"] for s in fake.seen("POST", "/transfer")] == ["Bearer tok-1", "Bearer tok-2"]
        assert len(fake.resources) == 1


async def test_a_token_refused_twice_is_unknown_after_one_renewal():
    async with provider("momo") as (fake, client):
        fake.on_create = status_answer(401, {"code": "UNAUTHORIZED", "message": "no"})
        status = await client.send(client.freeze(order()), None)
        assert status.outcome == Outcome.UNKNOWN and "401" in status.detail
        assert len(fake.seen("POST", "/transfer")) == 2 and len(fake.seen("POST", "/token/")) == 2


async def test_wrong_credentials_give_no_token_and_send_nothing():
    async with provider("momo", api_key="wrong") as (fake, client):
        status = await client.send(client.freeze(order()), None)
        assert status.outcome == Outcome.UNKNOWN and "access token" in status.detail
        assert fake.seen("POST", "/transfer") == []


async def test_a_token_that_expires_is_fetched_again():
    async with provider("momo") as (fake, client):
        fake.expires_in = 0
        await client.lookup("RG-a")
        await client.lookup("RG-b")
        assert len(fake.seen("POST", "/token/")) == 2


# --- bank over HTTP ------------------------------------------------------------------------------------

async def test_a_bank_payment_is_created_replayed_and_looked_up():
    async with provider("bank") as (fake, client):
        frozen = client.freeze(BANK_ORDER)
        created = await client.send(frozen, "http://us/cb")
        assert (created.outcome, created.transfer_id, created.amount_minor) == (Outcome.PENDING, "pay_1", 15_000)
        replayed = await client.send(FrozenRequest.from_json(json.loads(json.dumps(frozen.to_json()))), None)
        assert (replayed.outcome, replayed.transfer_id) == (Outcome.PENDING, "pay_1")
        first, second = fake.seen("POST", "/v1/payments")
        assert first.body == second.body == frozen.body.encode()  # a resend is byte for byte the same
        assert first.headers["Idempotency-Key"] == "RG-1" and first.headers["Authorization"] == "Bearer key"
        assert first.headers["X-Callback-Url"] == "http://us/cb" and "X-Callback-Url" not in second.headers
        looked_up = await client.lookup("RG-1")
        assert (looked_up.outcome, looked_up.transfer_id, looked_up.detail) == (Outcome.PENDING, "pay_1", None)
        assert fake.seen("GET", "/v1/payments")[0].path == "/v1/payments?end_to_end_id=RG-1"


async def test_bank_statuses_the_settled_amount_and_the_rejection_reason():
    async with provider("bank") as (fake, client):
        await client.send(client.freeze(BANK_ORDER), None)
        payment = fake.resources["RG-1"]["payment"]
        payment.update(status="ACSC", settled_amount={"amount": "14000", "currency": "XOF"})
        settled = await client.lookup("RG-1")
        assert (settled.outcome, settled.amount_minor, settled.currency) == (Outcome.SETTLED, 14_000, "XOF")
        payment.update(status="RJCT", status_reason="AC04", settled_amount=None)
        rejected = await client.lookup("RG-1")
        assert (rejected.outcome, rejected.reason, rejected.amount_minor) == (Outcome.FAILED, "AC04", 15_000)


async def test_a_bank_409_is_looked_up_not_failed():
    async with provider("bank") as (fake, client):
        frozen = client.freeze(BANK_ORDER)
        await client.send(frozen, None)
        other = FrozenRequest(frozen.reference, frozen.path, frozen.headers, frozen.body.replace("15000", "15001"))
        status = await client.send(other, None)
        assert (status.outcome, status.transfer_id, status.amount_minor) == (Outcome.PENDING, "pay_1", 15_000)


async def test_a_bank_422_is_refused_with_its_details():
    async with provider("bank") as (fake, client):
        frozen = client.freeze(BANK_ORDER)
        body = json.loads(frozen.body)
        del body["creditor"]["name"]
        status = await client.send(FrozenRequest(frozen.reference, frozen.path, frozen.headers, json.dumps(body)), None)
        assert (status.outcome, status.reason) == (Outcome.REFUSED, "invalid_request")
        assert "creditor" in status.detail and "field required" in status.detail


async def test_several_bank_payments_under_one_reference_give_the_oldest_and_say_so():
    async with provider("bank") as (fake, client):
        body = json.loads(client.freeze(BANK_ORDER).body)
        fake.resources["k1"] = {"raw": "", "payment": bank_payment(body, 1, "ACSC")}
        fake.resources["k2"] = {"raw": "", "payment": bank_payment(body, 2, "ACSP")}
        status = await client.lookup("RG-1")
        assert (status.outcome, status.transfer_id) == (Outcome.SETTLED, "pay_1")
        assert status.detail == "several payments under this reference"


async def test_an_empty_bank_list_is_not_found():
    async with provider("bank") as (fake, client):
        assert (await client.lookup("RG-never")).outcome == Outcome.NOT_FOUND


async def test_an_unreadable_2xx_is_unknown_never_refused_and_kept_raw():
    async with provider("bank") as (fake, client):
        fake.on_create = status_answer(201, {"payment_id": "pay_9", "status": "MAYBE"})
        status = await client.send(client.freeze(BANK_ORDER), None)
        assert status.outcome == Outcome.UNKNOWN and "MAYBE" in status.raw
        fake.on_lookup = status_answer(200, {"payments": [{"status": "ACSC"}]})
        looked_up = await client.lookup("RG-1")
        assert looked_up.outcome == Outcome.UNKNOWN and looked_up.detail.startswith("unreadable")


# --- pickup over HTTP -------------------------------------------------------------------------------

async def test_a_pickup_is_created_with_its_code_and_every_status_carries_it():
    async with provider("pickup", currency="XAF") as (fake, client):
        frozen = client.freeze(order("RG-p", currency="XAF", amount=50_000))
        created = await client.send(frozen, None)
        assert (created.outcome, created.transfer_id, created.pickup_code) == (Outcome.PENDING, "pk_1", "12345671")
        assert fake.seen("POST", "/v1/cash-pickups")[0].headers["X-Api-Key"] == "key"
        pickup = fake.resources["RG-p"]["pickup"]
        expected = {"AVAILABLE": (Outcome.PENDING, None, 50_000), "COLLECTED": (Outcome.SETTLED, None, 49_000),
                    "EXPIRED": (Outcome.FAILED, "expired", 50_000), "CANCELLED": (Outcome.FAILED, "by agent", 50_000)}
        for wire, (outcome, reason, amount) in expected.items():
            pickup.update(status=wire, collected_amount_minor=49_000 if wire == "COLLECTED" else None,
                          failure_reason="by agent" if wire == "CANCELLED" else None)
            status = await client.lookup("RG-p")
            assert (status.outcome, status.reason, status.amount_minor, status.pickup_code) == (
                outcome, reason, amount, "12345671"), wire


async def test_a_pickup_409_and_a_404():
    async with provider("pickup", currency="XAF") as (fake, client):
        frozen = client.freeze(order("RG-p", currency="XAF"))
        await client.send(frozen, None)
        other = FrozenRequest(frozen.reference, frozen.path, frozen.headers, frozen.body.replace('"expires_in_days":30', '"expires_in_days":7'))
        assert (await client.send(other, None)).transfer_id == "pk_1"
        assert (await client.lookup("RG-nothing")).outcome == Outcome.NOT_FOUND
        assert fake.seen("GET", "/v1/cash-pickups/")[-1].path == "/v1/cash-pickups/RG-nothing"


# --- what an unknown outcome looks like --------------------------------------------------------------

@pytest.mark.parametrize(("dialect", "status"), [("momo", 500), ("momo", 503), ("bank", 500), ("bank", 429),
                                                 ("pickup", 502), ("bank", 401), ("bank", 403)])
async def test_a_5xx_429_or_other_answer_is_unknown_and_not_resent(dialect, status):
    overrides = {"currency": "XAF"} if dialect == "pickup" else {}
    async with provider(dialect, **overrides) as (fake, client):
        fake.on_create = status_answer(status, {"code": "INTERNAL_PROCESSING_ERROR", "message": "oops"})
        the_order = BANK_ORDER if dialect == "bank" else order(currency=overrides.get("currency", "XOF"))
        sent = await client.send(client.freeze(the_order), None)
        assert sent.outcome == Outcome.UNKNOWN and str(status) in sent.detail
        creates = [s for s in fake.requests if s.method == "POST" and "token" not in s.path]
        assert len(creates) == 1  # the dispatcher decides what happens next, after a lookup
        fake.on_lookup = status_answer(500, {"code": "oops"})
        assert (await client.lookup("RG-1")).outcome == Outcome.UNKNOWN


async def test_a_provider_that_hangs_is_unknown_within_the_timeout():
    async with provider("bank", timeout_s=0.3) as (fake, client):
        fake.on_create = fake.hang
        fake.on_lookup = fake.hang
        started = time.monotonic()
        assert (await client.send(client.freeze(BANK_ORDER), None)).outcome == Outcome.UNKNOWN
        assert (await client.lookup("RG-1")).outcome == Outcome.UNKNOWN
        assert time.monotonic() - started < 1.2
        assert len(fake.seen("POST", "/v1/payments")) == 1


async def test_a_whole_momo_call_token_and_renewal_included_ends_within_twice_the_timeout():
    async with provider("momo", timeout_s=0.3) as (fake, client):
        fake.delay_s = 0.2  # every request just under the timeout: token, 401, token, transfer...
        fake.on_create = status_answer(401, {"code": "UNAUTHORIZED", "message": "no"})
        started = time.monotonic()
        status = await client.send(client.freeze(order()), None)
        elapsed = time.monotonic() - started
        assert status.outcome == Outcome.UNKNOWN and 0.55 <= elapsed < 0.9, (elapsed, status)


async def test_a_connection_closed_without_an_answer_is_unknown_and_not_resent():
    async with hanging_up() as (url, bodies):
        client = adapter("bank", url)
        try:
            frozen = client.freeze(BANK_ORDER)
            status = await client.send(frozen, None)
        finally:
            await client.close()
        assert status.outcome == Outcome.UNKNOWN and status.detail
        assert bodies == [frozen.body.encode()]  # it reached the provider: never sent again from here


async def test_an_answer_that_is_not_http_is_unknown():
    async with hanging_up(answer=b"garbage\r\n\r\n") as (url, bodies):
        client = adapter("pickup", url, currency="XAF")
        try:
            status = await client.send(client.freeze(order(currency="XAF")), None)
        finally:
            await client.close()
        assert status.outcome == Outcome.UNKNOWN and len(bodies) == 1


async def test_a_provider_that_refuses_connections_is_unknown_quickly():
    async with hanging_up() as (url, _bodies):
        pass  # the port is free again: nothing listens
    client = adapter("pickup", url, currency="XAF")
    try:
        started = time.monotonic()
        status = await client.send(client.freeze(order(currency="XAF")), None)
        assert status.outcome == Outcome.UNKNOWN and time.monotonic() - started < 1.0
    finally:
        await client.close()


async def test_calls_never_exceed_the_concurrency_limit_but_do_run_in_parallel():
    async with provider("bank", concurrency=3) as (fake, client):
        fake.delay_s = 0.05
        frozen = [client.freeze(order(f"RG-{n}", msisdn=None, iban=IBAN)) for n in range(6)]
        results = await asyncio.gather(*(client.send(f, None) for f in frozen),
                                       *(client.lookup(f"RG-{n}") for n in range(6)))
        assert all(r.outcome in (Outcome.PENDING, Outcome.NOT_FOUND) for r in results)
        assert fake.most_in_flight == 3


async def test_a_momo_token_is_fetched_once_for_many_calls_at_once():
    async with provider("momo", concurrency=4) as (fake, client):
        fake.delay_s = 0.02
        await asyncio.gather(*(client.lookup(f"RG-{n}") for n in range(8)))
        assert len(fake.seen("POST", "/token/")) == 1 and fake.most_in_flight <= 4


# --- callbacks -------------------------------------------------------------------------------------

MOMO_CALLBACK = {"amount": "15000", "currency": "XOF", "financialTransactionId": "FT-9", "externalId": "RG-cb",
                 "payee": {"partyIdType": "MSISDN", "partyId": "2250701020304"}, "status": "SUCCESSFUL"}
BANK_CALLBACK = {"event": "payment.status_changed", "payment": {
    "payment_id": "pay_9", "end_to_end_id": "RG-cb", "instructed_amount": {"amount": "15000", "currency": "XOF"},
    "settled_amount": None, "creditor": {"name": "A", "iban": IBAN}, "status": "RJCT", "status_reason": "AC04"}}
PICKUP_CALLBACK = {"event": "cash_pickup.updated", "pickup": {
    "pickup_id": "pk_9", "reference": "RG-cb", "amount_minor": 50_000, "currency": "XAF", "recipient": {},
    "pickup_code": "87654321", "status": "COLLECTED", "collected_amount_minor": 50_000, "failure_reason": None}}


@pytest.mark.parametrize(("dialect", "payload", "expected"), [
    ("momo", MOMO_CALLBACK, (Outcome.SETTLED, "RG-cb", "FT-9", 15_000, None, None)),
    ("bank", BANK_CALLBACK, (Outcome.FAILED, "RG-cb", "pay_9", 15_000, "AC04", None)),
    ("pickup", PICKUP_CALLBACK, (Outcome.SETTLED, "RG-cb", "pk_9", 50_000, None, "87654321")),
])
def test_a_signed_callback_is_read_whatever_the_case_of_its_headers(dialect, payload, expected):
    client = adapter(dialect, currency="XAF" if dialect == "pickup" else "XOF")
    body = json.dumps(payload).encode()
    for headers in ({"X-Signature": sign(body)}, {"x-signature": sign(body)}, CIMultiDict({"X-SIGNATURE": sign(body)})):
        status = client.parse_callback(headers, body)
        assert (status.outcome, status.reference, status.transfer_id, status.amount_minor, status.reason,
                status.pickup_code) == expected
        assert status.provider == client.config.name


@pytest.mark.parametrize("headers", [
    {}, {"X-Signature": ""}, {"X-Signature": "sha256=" + "0" * 64}, {"X-Signature": sign(b"another body")},
    {"X-Signature": sign(json.dumps(MOMO_CALLBACK).encode(), "another secret")},
    {"X-Signature": sign(json.dumps(MOMO_CALLBACK).encode()).removeprefix("sha256=")},
])
def test_a_callback_without_a_valid_signature_is_rejected(headers):
    with pytest.raises(CallbackRejected):
        adapter("momo").parse_callback(headers, json.dumps(MOMO_CALLBACK).encode())


def test_without_a_callback_secret_no_callback_is_trusted():
    body = json.dumps(MOMO_CALLBACK).encode()
    with pytest.raises(CallbackRejected):
        adapter("momo", callback_secret=None).parse_callback({"X-Signature": sign(body, "")}, body)


@pytest.mark.parametrize(("dialect", "body"), [
    ("momo", b"not json"),
    ("momo", b"\xff\xfe"),
    ("momo", b'{"status": "WHATEVER"}'),
    ("momo", json.dumps({**MOMO_CALLBACK, "amount": "lots"}).encode()),
    ("momo", json.dumps({**MOMO_CALLBACK, "amount": "15000.5"}).encode()),  # XOF has no decimals
    ("momo", b"[]"),
    ("bank", json.dumps(MOMO_CALLBACK).encode()),  # no `payment`
    ("bank", json.dumps({"event": "payment.status_changed", "payment": {"status": "ACSC"}}).encode()),
    ("pickup", json.dumps({"pickup": {**PICKUP_CALLBACK["pickup"], "amount_minor": "50000",
                                      "status": "AVAILABLE"}}).encode()),
])
def test_a_signed_callback_that_is_not_a_status_is_malformed(dialect, body):
    with pytest.raises(MalformedCallback) as malformed:
        adapter(dialect).parse_callback({"X-Signature": sign(body)}, body)
    assert malformed.value.message


async def test_close_ends_the_session_and_the_adapter_can_open_another():
    async with provider("bank") as (fake, client):
        assert (await client.lookup("RG-1")).outcome == Outcome.NOT_FOUND
        await client.close()
        assert (await client.lookup("RG-1")).outcome == Outcome.NOT_FOUND
