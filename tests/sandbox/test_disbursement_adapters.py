"""Disbursement's provider adapters against the sandbox, over real HTTP: each dialect's create,
lookup and callback, what an unknown outcome looks like, and the limits every call keeps."""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager

import pytest
from aiohttp.test_utils import TestServer
from disbursement.adapters.providers.base import (
    CallbackRejected,
    InvalidPayee,
    MalformedCallback,
    Outcome,
    Payee,
    PaymentOrder,
)
from disbursement.adapters.providers.registry import ProviderRegistry
from provider_sandbox import SandboxConfig, create_app
from sandbox_kit import FAST, IBAN, receiver, wait_until

WALLET = "+221771234567"


@asynccontextmanager
async def sandbox_and_registry(**overrides):
    server = TestServer(create_app(SandboxConfig(**{**FAST, **overrides})))
    await server.start_server()
    registry = ProviderRegistry.load(env={}, sandbox_url=str(server.make_url("")).rstrip("/"))
    try:
        yield server, registry
    finally:
        await registry.close()
        await server.close()


def order(reference: str, *, currency: str = "XOF", amount: int = 15_000, **payee) -> PaymentOrder:
    defaults = {"name": "Awa Diop", "msisdn": WALLET}
    return PaymentOrder(reference, amount, currency, Payee(**{**defaults, **payee}), "Reintegration grant T-1 c1/1")


ORDERS = {
    "wave_sn": order("RG-momo-1"),
    "sgbci_ci": order("RG-bank-1", msisdn=None, iban=IBAN),
    "express_union_cm": order("RG-pickup-1", currency="XAF", msisdn="+237671234567"),
}


async def admin(server: TestServer, method: str, path: str, body=None):
    import aiohttp

    async with aiohttp.ClientSession() as http, http.request(method, str(server.make_url(path)), json=body) as r:
        return await r.json() if r.content_length != 0 else None


@pytest.mark.parametrize("provider", sorted(ORDERS))
async def test_each_dialect_creates_looks_up_and_reads_its_signed_callback(provider):
    async with sandbox_and_registry() as (server, registry), receiver() as callbacks:
        adapter = registry.adapter(provider)
        frozen = adapter.freeze(ORDERS[provider])
        assert adapter.freeze(ORDERS[provider]) == frozen  # the same order always gives the same bytes

        sent = await adapter.send(frozen, callbacks.url("/callbacks/" + provider))
        assert sent.outcome == Outcome.PENDING and sent.reference == frozen.reference
        again = await adapter.send(frozen, None)  # a resend within the key's life: the same transfer
        assert again.outcome in (Outcome.PENDING, Outcome.SETTLED)
        [callback] = await callbacks.wait_for(1)
        settled = adapter.parse_callback(callback.headers, callback.body)
        assert (settled.outcome, settled.reference, settled.amount_minor) == (
            Outcome.SETTLED, frozen.reference, ORDERS[provider].amount_minor)
        looked_up = await adapter.lookup(frozen.reference)
        assert looked_up.outcome == Outcome.SETTLED and looked_up.transfer_id == settled.transfer_id
        if provider == "express_union_cm":
            assert sent.pickup_code and sent.pickup_code == looked_up.pickup_code
        executed = await admin(server, "GET", f"/admin/transfers?reference={frozen.reference}")
        assert len(executed["transfers"]) == 1

        with pytest.raises(CallbackRejected):
            adapter.parse_callback({**callback.headers, "X-Signature": "sha256=" + "0" * 64}, callback.body)
        with pytest.raises(CallbackRejected):
            adapter.parse_callback({}, callback.body)
        import hashlib
        import hmac

        junk = b'{"status": "WHATEVER"}'
        signature = "sha256=" + hmac.new(adapter.config.callback_secret.encode(), junk, hashlib.sha256).hexdigest()
        with pytest.raises(MalformedCallback):
            adapter.parse_callback({"x-signature": signature}, junk)


@pytest.mark.parametrize("provider", sorted(ORDERS))
async def test_nothing_under_a_reference_is_not_found(provider):
    async with sandbox_and_registry() as (_server, registry):
        assert (await registry.adapter(provider).lookup("RG-never-sent")).outcome == Outcome.NOT_FOUND


@pytest.mark.parametrize(("provider", "bad_order", "code"), [
    ("wave_sn", order("RG-x", msisdn=None), "payee_msisdn_invalid"),
    ("wave_sn", order("RG-x", currency="EUR", amount=1000), "currency_not_supported"),
    ("sgbci_ci", order("RG-x", iban="CI93CI0080111301134291200588"), "iban_invalid"),
    ("sgbci_ci", order("RG-x", name=" ", iban=IBAN), "account_holder_missing"),
    ("sgbci_ci", order("RG-x", msisdn=None), "account_missing"),
    ("express_union_cm", order("RG-x", currency="XAF", name=None), "recipient_name_missing"),
])
async def test_an_order_that_cannot_be_sent_is_refused_before_any_call(provider, bad_order, code):
    async with sandbox_and_registry() as (_server, registry):
        with pytest.raises(InvalidPayee) as refused:
            registry.adapter(provider).freeze(bad_order)
        assert refused.value.reason_code == code


async def test_a_refusal_at_creation_is_refused_and_nothing_is_executed():
    async with sandbox_and_registry() as (server, registry):
        adapter = registry.adapter("wave_sn")
        frozen = adapter.freeze(order("RG-refused"))
        tampered = type(frozen)(frozen.reference, frozen.path, frozen.headers, frozen.body.replace('"XOF"', '"XAF"'))
        status = await adapter.send(tampered, None)
        assert status.outcome == Outcome.REFUSED and status.reason
        assert (await admin(server, "GET", "/admin/transfers?reference=RG-refused"))["transfers"] == []


@pytest.mark.parametrize("fault", ["error_before", "error_after", "lose_response"])
async def test_an_unknown_outcome_is_unknown_and_the_lookup_tells_the_truth(fault):
    async with sandbox_and_registry() as (server, registry):
        adapter = registry.adapter("wave_sn")
        await admin(server, "PUT", "/admin/faults/wave_sn",
                    {"script": [{"match": {}, "operation": "create", "fault": fault}]})
        frozen = adapter.freeze(order("RG-unknown"))
        assert (await adapter.send(frozen, None)).outcome == Outcome.UNKNOWN
        looked_up = await adapter.lookup(frozen.reference)
        assert looked_up.outcome == (Outcome.NOT_FOUND if fault == "error_before" else Outcome.PENDING)


async def test_a_409_is_not_a_failure_but_the_existing_transfer():
    async with sandbox_and_registry() as (_server, registry):
        adapter = registry.adapter("wave_sn")
        frozen = adapter.freeze(order("RG-conflict"))
        await adapter.send(frozen, None)
        other = type(frozen)(frozen.reference, frozen.path, frozen.headers, frozen.body.replace("15000", "16000"))
        status = await adapter.send(other, None)  # momo answers 409 for any reuse of the reference id
        assert status.outcome in (Outcome.PENDING, Outcome.SETTLED) and status.amount_minor == 15_000


async def test_a_call_never_outlasts_its_timeout():
    async with sandbox_and_registry() as (server, _registry):
        registry = ProviderRegistry.load(env={"PROVIDER_WAVE_SN_TIMEOUT_S": "0.3"},
                                         sandbox_url=str(server.make_url("")).rstrip("/"))
        try:
            adapter = registry.adapter("wave_sn")
            await adapter.lookup("RG-warm")  # the token, before the provider turns slow
            await admin(server, "PUT", "/admin/faults/wave_sn", {"latency_ms": 3000})
            started = time.monotonic()
            status = await adapter.send(adapter.freeze(order("RG-slow")), None)
            assert status.outcome == Outcome.UNKNOWN and time.monotonic() - started < 1.5
        finally:
            await registry.close()


async def test_calls_to_one_provider_stay_within_its_concurrency_limit():
    async with sandbox_and_registry() as (server, _registry):
        registry = ProviderRegistry.load(env={"PROVIDER_SGBCI_CI_CONCURRENCY": "2"},
                                         sandbox_url=str(server.make_url("")).rstrip("/"))
        try:
            bank, other = registry.adapter("sgbci_ci"), registry.adapter("cbao_sn")
            await admin(server, "PUT", "/admin/faults/sgbci_ci", {"latency_ms": 200})
            started = time.monotonic()
            slow = asyncio.gather(*(bank.lookup(f"RG-{n}") for n in range(6)))
            fast = await other.lookup("RG-elsewhere")  # another provider is not held up by the slow one
            fast_done = time.monotonic() - started
            await slow
            assert time.monotonic() - started >= 0.6  # 6 calls, 2 at a time, 200 ms each
            assert fast.outcome == Outcome.NOT_FOUND and fast_done < 0.3
        finally:
            await registry.close()


async def test_a_restarted_sandbox_still_finds_what_it_executed(tmp_path):
    async with sandbox_and_registry(state_dir=tmp_path) as (_server, registry):
        adapter = registry.adapter("cbao_sn")
        frozen = adapter.freeze(order("RG-kept", msisdn=None, iban="SN08SN0100152000048500003035"))
        assert (await adapter.send(frozen, None)).outcome == Outcome.PENDING
    async with sandbox_and_registry(state_dir=tmp_path, idempotency_ttl_s=0.01) as (_server, registry):
        adapter = registry.adapter("cbao_sn")
        await wait_until(lambda: True, 0.1)
        assert (await adapter.lookup("RG-kept")).outcome in (Outcome.PENDING, Outcome.SETTLED)


async def test_an_unreadable_lookup_answer_is_unknown_and_kept_to_set_aside():
    from aiohttp import web
    from disbursement.adapters.providers.bank import BankAdapter
    from disbursement.adapters.providers.base import ProviderConfig

    async def garbled(request: web.Request) -> web.Response:
        return web.json_response({"payments": [{"status": "MAYBE", "end_to_end_id": "RG-g"}]})

    app = web.Application()
    app.router.add_get("/v1/payments", garbled)
    async with TestServer(app) as server:
        adapter = BankAdapter(ProviderConfig("odd_bank", "bank_transfer", "bank", "SN", "XOF",
                                             str(server.make_url("")).rstrip("/"), api_key="k"))
        try:
            status = await adapter.lookup("RG-g")
        finally:
            await adapter.close()
    assert status.outcome == Outcome.UNKNOWN and "MAYBE" in status.raw and status.detail.startswith("unreadable")
