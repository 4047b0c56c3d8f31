"""Helpers for the provider sandbox tests: a running sandbox, a callback receiver, wire bodies."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from provider_sandbox import SandboxConfig, create_app

# Fast enough for tests, slow enough that a lookup right after a create still sees it pending.
FAST = {"settle_delay_ms": 60, "callback_backoff_ms": 20}
IBAN = "CI93CI0080111301134291200589"
MOMO, BANK, PICKUP = "wave_sn", "sgbci_ci", "express_union_cm"


@asynccontextmanager
async def running(**overrides: Any) -> AsyncIterator[TestClient]:
    config = SandboxConfig(**{**FAST, **overrides})
    async with TestClient(TestServer(create_app(config))) as client:
        yield client


@dataclass
class Callback:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        import json

        return json.loads(self.body)


@dataclass
class Receiver:
    """A tiny callback endpoint; answers `statuses` in order, then 200."""

    server: TestServer
    received: list[Callback] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)

    def url(self, path: str = "/callbacks") -> str:
        return str(self.server.make_url(path))

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[Callback]:
        await wait_until(lambda: len(self.received) >= count, timeout, f"{count} callbacks")
        return self.received


@asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    app = web.Application()
    holder: list[Receiver] = []

    async def receive(request: web.Request) -> web.Response:
        me = holder[0]
        me.received.append(Callback(request.path, dict(request.headers), await request.read(), time.time()))
        return web.Response(status=me.statuses.pop(0) if me.statuses else 200, text="ok")

    app.router.add_post("/{tail:.*}", receive)
    async with TestServer(app) as server:
        holder.append(Receiver(server))
        yield holder[0]


async def wait_until(condition: Callable[[], bool | Awaitable[bool]], timeout: float = 5.0,
                     what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def signed(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def assert_signed(callback: Callback, provider: str) -> None:
    assert callback.headers["X-Provider"] == provider
    assert callback.headers["Content-Type"].startswith("application/json")
    assert hmac.compare_digest(callback.headers["X-Signature"], signed(f"sandbox-callback-{provider}", callback.body))


# ---------------------------------------------------------------- admin
async def admin_json(client: TestClient, path: str, **params: str) -> Any:
    response = await client.get(path, params=params)
    assert response.status == 200, await response.text()
    return await response.json()


async def transfers(client: TestClient, provider: str | None = None, reference: str | None = None) -> list[dict]:
    params = {k: v for k, v in {"provider": provider, "reference": reference}.items() if v is not None}
    return (await admin_json(client, "/admin/transfers", **params))["transfers"]


async def stats(client: TestClient, provider: str) -> dict[str, int]:
    return (await admin_json(client, "/admin/stats"))[provider]


async def set_faults(client: TestClient, provider: str, **faults: Any) -> None:
    response = await client.put(f"/admin/faults/{provider}", json=faults)
    assert response.status == 200, await response.text()


async def wait_settled(client: TestClient, provider: str, count: int = 1, timeout: float = 5.0) -> list[dict]:
    async def done() -> bool:
        found = await transfers(client, provider)
        return len(found) >= count and all(t["status"] != "pending" for t in found)

    await wait_until(done, timeout, f"{count} settled transfers at {provider}")
    return await transfers(client, provider)


# ---------------------------------------------------------------- momo
def momo_body(external_id: str, amount: str = "15000", msisdn: str = "221771234567", **extra: Any) -> dict:
    return {"amount": amount, "currency": "XOF", "externalId": external_id,
            "payee": {"partyIdType": "MSISDN", "partyId": msisdn}, "payerMessage": "Reintegration grant",
            "payeeNote": "RG", **extra}


async def momo_token(client: TestClient, provider: str = MOMO) -> str:
    basic = base64.b64encode(f"sandbox-user-{provider}:sandbox-key-{provider}".encode()).decode()
    response = await client.post(f"/providers/{provider}/disbursement/token/", headers={
        "Authorization": f"Basic {basic}", "Ocp-Apim-Subscription-Key": f"sandbox-subscription-{provider}"})
    assert response.status == 200, await response.text()
    return (await response.json())["access_token"]


def momo_headers(token: str, provider: str = MOMO, reference_id: str | None = None,
                 callback: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}", "Ocp-Apim-Subscription-Key": f"sandbox-subscription-{provider}",
               "X-Target-Environment": "sandbox", "X-Reference-Id": reference_id or str(uuid.uuid4())}
    if callback:
        headers["X-Callback-Url"] = callback
    return headers


async def momo_create(client: TestClient, token: str, body: dict, reference_id: str, provider: str = MOMO,
                      callback: str | None = None):
    return await client.post(f"/providers/{provider}/disbursement/v1_0/transfer", json=body,
                             headers=momo_headers(token, provider, reference_id, callback))


async def momo_get(client: TestClient, token: str, reference_id: str, provider: str = MOMO):
    return await client.get(f"/providers/{provider}/disbursement/v1_0/transfer/{reference_id}",
                            headers=momo_headers(token, provider))


# ---------------------------------------------------------------- bank
def bank_body(end_to_end_id: str, amount: str = "15000", iban: str | None = IBAN, name: str | None = "Awa Traoré",
              **extra: Any) -> dict:
    creditor: dict[str, Any] = {}
    if name is not None:
        creditor["name"] = name
    if iban is not None:
        creditor["iban"] = iban
    return {"end_to_end_id": end_to_end_id, "instructed_amount": {"amount": amount, "currency": "XOF"},
            "creditor": creditor, "remittance_information": "Reintegration grant", **extra}


def bank_headers(key: str | None, provider: str = BANK, callback: str | None = None,
                 api_key: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {api_key or f'sandbox-key-{provider}'}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    if callback:
        headers["X-Callback-Url"] = callback
    return headers


async def bank_create(client: TestClient, body: dict, key: str | None = None, provider: str = BANK,
                      callback: str | None = None):
    key = body.get("end_to_end_id") if key is None else key
    return await client.post(f"/providers/{provider}/v1/payments", json=body,
                             headers=bank_headers(key, provider, callback))


async def bank_get(client: TestClient, end_to_end_id: str, provider: str = BANK):
    return await client.get(f"/providers/{provider}/v1/payments", params={"end_to_end_id": end_to_end_id},
                            headers=bank_headers(None, provider))


# ---------------------------------------------------------------- pickup
def pickup_body(reference: str, amount_minor: int = 50_000, msisdn: str = "+237670000001",
                name: str | None = "Jean Mbarga", **extra: Any) -> dict:
    recipient: dict[str, Any] = {"msisdn": msisdn}
    if name is not None:
        recipient["name"] = name
    return {"reference": reference, "amount_minor": amount_minor, "currency": "XAF", "recipient": recipient,
            "expires_in_days": 30, **extra}


def pickup_headers(key: str | None, provider: str = PICKUP, callback: str | None = None,
                   api_key: str | None = None) -> dict[str, str]:
    headers = {"X-Api-Key": api_key or f"sandbox-key-{provider}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    if callback:
        headers["X-Callback-Url"] = callback
    return headers


async def pickup_create(client: TestClient, body: dict, key: str | None = None, provider: str = PICKUP,
                        callback: str | None = None):
    key = body.get("reference") if key is None else key
    return await client.post(f"/providers/{provider}/v1/cash-pickups", json=body,
                             headers=pickup_headers(key, provider, callback))


async def pickup_get(client: TestClient, reference: str, provider: str = PICKUP):
    return await client.get(f"/providers/{provider}/v1/cash-pickups/{reference}", headers=pickup_headers(None, provider))
