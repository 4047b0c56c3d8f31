"""Every fault mode, observed the way a test of disbursement would: /admin/stats and /admin/transfers."""

from __future__ import annotations

import time
import uuid

import aiohttp
import pytest
from sandbox_kit import (
    BANK,
    IBAN,
    MOMO,
    PICKUP,
    admin_json,
    assert_signed,
    bank_body,
    bank_create,
    bank_get,
    momo_body,
    momo_create,
    momo_get,
    momo_token,
    pickup_body,
    pickup_create,
    pickup_get,
    receiver,
    running,
    set_faults,
    stats,
    transfers,
    wait_settled,
    wait_until,
)


async def test_latency_delays_provider_calls_but_not_admin(client):
    await set_faults(client, BANK, latency_ms=150)
    started = time.monotonic()
    assert (await bank_create(client, bank_body("RG-slow"))).status == 201
    assert time.monotonic() - started >= 0.15
    started = time.monotonic()
    await admin_json(client, "/admin/transfers")
    assert time.monotonic() - started < 0.1


async def test_error_before_executes_nothing(client):
    await set_faults(client, BANK, error_before_rate=1.0)
    response = await bank_create(client, bank_body("RG-eb"))
    assert response.status == 503
    assert (await bank_get(client, "RG-eb")).status == 503  # lookups fail too
    assert await transfers(client, BANK) == []
    await set_faults(client, BANK)
    assert (await bank_create(client, bank_body("RG-eb"))).status == 201
    counted = await stats(client, BANK)
    assert (counted["errors_before"], counted["transfers"]) == (2, 1)


async def test_error_after_executes_then_answers_500(client):
    await set_faults(client, PICKUP, error_after_rate=1.0)
    response = await pickup_create(client, pickup_body("RG-ea"))
    assert response.status == 500
    [executed] = await wait_settled(client, PICKUP)
    assert executed["reference"] == "RG-ea" and executed["status"] == "settled"
    await set_faults(client, PICKUP)
    replay = await pickup_create(client, pickup_body("RG-ea"))
    assert replay.status == 200  # the retry finds what the lost answer had created
    assert (await replay.json())["pickup_id"] == executed["transfer_id"]
    counted = await stats(client, PICKUP)
    assert (counted["errors_after"], counted["transfers"], counted["replays"]) == (1, 1, 1)


async def test_lose_response_executes_then_closes_the_connection(client):
    token = await momo_token(client)
    await set_faults(client, MOMO, lose_response_rate=1.0)
    reference_id = str(uuid.uuid4())
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await momo_create(client, token, momo_body("RG-lost"), reference_id)
    [executed] = await wait_settled(client, MOMO)
    assert executed["provider_reference"] == reference_id
    assert (await stats(client, MOMO))["responses_lost"] == 1
    await set_faults(client, MOMO)
    assert (await (await momo_get(client, token, reference_id)).json())["status"] == "SUCCESSFUL"


async def test_rate_faults_repeat_with_a_seed(client):
    async def refused(seed: int) -> list[bool]:
        await set_faults(client, BANK, error_before_rate=0.5, seed=seed)
        return [(await bank_create(client, bank_body(f"RG-seed-{i}"))).status == 503 for i in range(20)]

    first, second = await refused(7), await refused(7)
    assert first == second
    assert set(first) == {True, False}


async def test_sandbox_seed_makes_rate_faults_repeatable():
    async def run() -> list[int]:
        async with running(seed=42) as client:
            await set_faults(client, BANK, error_after_rate=0.5)
            return [(await bank_create(client, bank_body(f"RG-{i}"))).status for i in range(16)]

    assert await run() == await run()


async def test_callback_loss(client, callbacks):
    await set_faults(client, BANK, callback_loss_rate=1.0)
    await bank_create(client, bank_body("RG-cl"), callback=callbacks.url())
    await wait_settled(client, BANK)
    await wait_until(lambda: _counter(client, BANK, "callbacks_lost", 1))
    assert callbacks.received == []
    [logged] = (await admin_json(client, "/admin/callbacks", provider=BANK))["callbacks"]
    assert logged["outcome"] == "lost"


async def test_callback_duplicates(client, callbacks):
    await set_faults(client, PICKUP, callback_duplicates=2)
    await pickup_create(client, pickup_body("RG-dup"), callback=callbacks.url())
    received = await callbacks.wait_for(3)
    assert len({c.body for c in received}) == 1
    for callback in received:
        assert_signed(callback, PICKUP)
    await wait_until(lambda: _counter(client, PICKUP, "callbacks_sent", 3))
    assert (await stats(client, PICKUP))["callbacks_duplicated"] == 2


async def test_callback_delay(client, callbacks):
    await set_faults(client, BANK, callback_delay_ms=300)
    await bank_create(client, bank_body("RG-late"), callback=callbacks.url())
    [settled] = await wait_settled(client, BANK)
    [callback] = await callbacks.wait_for(1)
    settled_at = _epoch(settled["settled_at"])
    assert callback.at - settled_at >= 0.29


@pytest.mark.parametrize(
    ("provider", "stale"),
    [(MOMO, "PENDING"), (BANK, "ACSP"), (PICKUP, "AVAILABLE")],
)
async def test_callback_reorder_sends_a_stale_status_after_the_final(client, callbacks, provider, stale):
    await set_faults(client, provider, callback_reorder=True)
    await _create(client, provider, "RG-reorder", callbacks.url())
    final, late = await callbacks.wait_for(2)
    assert _status(final.json()) != stale
    assert _status(late.json()) == stale
    assert_signed(late, provider)
    assert final.at <= late.at


async def test_settled_amount_delta(client, callbacks):
    await set_faults(client, BANK, settled_amount_delta_minor=-100)
    await bank_create(client, bank_body("RG-delta"), callback=callbacks.url())
    [callback] = await callbacks.wait_for(1)
    assert callback.json()["payment"]["settled_amount"] == {"amount": "14900", "currency": "XOF"}
    [executed] = await transfers(client, BANK)
    assert (executed["amount_minor"], executed["settled_amount_minor"]) == (15000, 14900)


async def test_unregistered_msisdns_fail_momo_and_pickup(client, callbacks):
    token = await momo_token(client)
    await set_faults(client, MOMO, unregistered_msisdns=["+221770000000"])
    await set_faults(client, PICKUP, unregistered_msisdns=["237670000009"])
    reference_id = str(uuid.uuid4())
    await momo_create(client, token, momo_body("RG-unreg", msisdn="221770000000"), reference_id,
                      callback=callbacks.url("/momo"))
    await momo_create(client, token, momo_body("RG-fine"), str(uuid.uuid4()))
    await pickup_create(client, pickup_body("RG-unreg-pk", msisdn="+237670000009"), callback=callbacks.url("/pk"))

    received = {c.path: c.json() for c in await callbacks.wait_for(2)}
    assert received["/momo"]["status"] == "FAILED" and received["/momo"]["reason"] == "PAYEE_NOT_FOUND"
    assert received["/pk"]["pickup"]["status"] == "CANCELLED"
    assert received["/pk"]["pickup"]["failure_reason"] == "PAYEE_NOT_FOUND"
    assert (await (await momo_get(client, token, reference_id)).json())["reason"] == "PAYEE_NOT_FOUND"
    outcome = {t["reference"]: (t["status"], t["failure_reason"]) for t in await transfers(client)}
    assert outcome == {"RG-unreg": ("failed", "PAYEE_NOT_FOUND"), "RG-fine": ("settled", None),
                       "RG-unreg-pk": ("failed", "PAYEE_NOT_FOUND")}


async def test_closed_accounts_are_rejected_ac04(client, callbacks):
    await set_faults(client, BANK, closed_accounts=["CI93 CI00 8011 1301 1342 9120 0589"])
    await bank_create(client, bank_body("RG-closed"), callback=callbacks.url())
    [callback] = await callbacks.wait_for(1)
    payment = callback.json()["payment"]
    assert (payment["status"], payment["status_reason"], payment["settled_amount"]) == ("RJCT", "AC04", None)
    [executed] = await transfers(client, BANK)
    assert (executed["status"], executed["failure_reason"]) == ("failed", "AC04")
    assert (await stats(client, BANK))["failed"] == 1


async def test_script_faults_fire_once_in_order(client):
    await set_faults(client, BANK, script=[
        {"match": {"reference": "RG-s1"}, "operation": "create", "fault": "error_before"},
        {"match": {"account": IBAN}, "operation": "create", "fault": "error_after", "times": 2},
        {"match": {}, "operation": "lookup", "fault": "lose_response"},
    ])
    assert (await bank_create(client, bank_body("RG-s1"))).status == 503  # first entry, consumed
    assert (await bank_create(client, bank_body("RG-s1"))).status == 500  # second entry, once
    assert (await bank_create(client, bank_body("RG-s1"))).status == 500  # and twice: the replay
    assert (await bank_create(client, bank_body("RG-s1"))).status == 200
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await bank_get(client, "RG-s1")
    assert (await bank_get(client, "RG-s1")).status == 200
    assert (await admin_json(client, "/admin/faults"))[BANK] == {}
    assert len(await transfers(client, BANK)) == 1


async def test_script_matches_msisdn_and_lookups(client):
    token = await momo_token(client)
    await set_faults(client, MOMO, script=[
        {"match": {"msisdn": "+221779999999"}, "fault": "error_before"},
        {"match": {"reference": "RG-look"}, "operation": "lookup", "fault": "error_after"},
    ])
    reference_id = str(uuid.uuid4())
    assert (await momo_create(client, token, momo_body("RG-other"), str(uuid.uuid4()))).status == 202
    assert (await momo_create(client, token, momo_body("RG-look", msisdn="221779999999"),
                              reference_id)).status == 503
    assert (await momo_create(client, token, momo_body("RG-look", msisdn="221779999999"),
                              reference_id)).status == 202
    assert (await momo_get(client, token, reference_id)).status == 500
    assert (await momo_get(client, token, reference_id)).status == 200
    counted = await stats(client, MOMO)
    assert (counted["errors_before"], counted["errors_after"], counted["lookups"]) == (1, 1, 2)


@pytest.mark.parametrize(
    ("provider", "answer"),
    [(MOMO, ("code", "RESOURCE_ALREADY_EXIST")), (BANK, ("error", "idempotency_key_in_use")),
     (PICKUP, ("error", "duplicate_reference"))],
)
async def test_script_conflict_answers_409_though_nothing_exists(client, provider, answer):
    await set_faults(client, provider, script=[{"match": {"reference": "RG-ghost"}, "fault": "conflict"}])
    response = await _create(client, provider, "RG-ghost")
    assert response.status == 409
    assert (await response.json())[answer[0]] == answer[1]
    assert await transfers(client, provider) == []
    assert (await stats(client, provider))["conflicts"] == 1


async def test_callback_retried_until_answered_2xx(client, callbacks):
    callbacks.statuses = [500, 503]
    await bank_create(client, bank_body("RG-retry"), callback=callbacks.url())
    received = await callbacks.wait_for(3)
    assert len({c.body for c in received}) == 1
    await wait_until(lambda: _counter(client, BANK, "callbacks_sent", 1))
    log = (await admin_json(client, "/admin/callbacks", provider=BANK))["callbacks"]
    assert [(e["attempt"], e["outcome"], e["http_status"]) for e in log] == [
        (1, "failed", 500), (2, "failed", 503), (3, "delivered", 200)]
    assert (await stats(client, BANK))["callbacks_failed"] == 2


async def test_callback_given_up_after_8_attempts(client):
    async with receiver() as gone:
        url = gone.url()  # a port nobody listens on once the receiver is closed
    await bank_create(client, bank_body("RG-gone"), callback=url)
    await wait_until(lambda: _counter(client, BANK, "callbacks_abandoned", 1), timeout=15)
    log = (await admin_json(client, "/admin/callbacks", provider=BANK))["callbacks"]
    assert [e["attempt"] for e in log] == list(range(1, 9))
    assert log[-1]["outcome"] == "abandoned" and log[0]["error"]
    assert (await stats(client, BANK))["callbacks_failed"] == 8


async def test_admin_is_never_faulted_and_faults_can_be_cleared(client):
    for provider in (MOMO, BANK, PICKUP):
        await set_faults(client, provider, error_before_rate=1.0, latency_ms=5)
    assert (await admin_json(client, "/admin/faults"))[BANK] == {"error_before_rate": 1.0, "latency_ms": 5}
    assert (await client.get("/healthz")).status == 200
    assert (await client.delete("/admin/faults")).status == 200
    assert all(v == {} for v in (await admin_json(client, "/admin/faults")).values())
    assert (await bank_create(client, bank_body("RG-clear"))).status == 201


@pytest.mark.parametrize(
    "body",
    [{"error_before_rate": 2}, {"latency_ms": -1}, {"nonsense": True},
     {"script": [{"fault": "explode"}]}, {"script": [{"fault": "conflict", "operation": "lookup"}]}],
)
async def test_invalid_faults_are_422(client, body):
    response = await client.put(f"/admin/faults/{BANK}", json=body)
    assert response.status == 422
    assert (await response.json())["error"] == "invalid_request"


async def test_faults_of_unknown_provider_404(client):
    response = await client.put("/admin/faults/nobody", json={})
    assert response.status == 404
    assert (await response.json())["error"] == "unknown_provider"


async def _create(client, provider: str, reference: str, callback: str | None = None):
    if provider == MOMO:
        token = await momo_token(client)
        return await momo_create(client, token, momo_body(reference), str(uuid.uuid4()), callback=callback)
    if provider == BANK:
        return await bank_create(client, bank_body(reference), callback=callback)
    return await pickup_create(client, pickup_body(reference), callback=callback)


def _status(body: dict) -> str:
    return (body.get("payment") or body.get("pickup") or body)["status"]


async def _counter(client, provider: str, name: str, at_least: int) -> bool:
    return (await stats(client, provider))[name] >= at_least


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


async def test_lookup_of_pickup_can_be_faulted_by_reference(client):
    await pickup_create(client, pickup_body("RG-pk-look"))
    await set_faults(client, PICKUP, script=[{"match": {"reference": "RG-pk-look"}, "operation": "lookup",
                                              "fault": "error_before"}])
    assert (await pickup_get(client, "RG-pk-look")).status == 503
    assert (await pickup_get(client, "RG-pk-look")).status == 200
