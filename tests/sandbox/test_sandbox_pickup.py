"""Dialect pickup: cash pickups in minor units, with a pickup code, X-Api-Key and Idempotency-Key."""

from __future__ import annotations

import asyncio

import pytest
from sandbox_kit import (
    PICKUP,
    assert_signed,
    pickup_body,
    pickup_create,
    pickup_get,
    pickup_headers,
    running,
    stats,
    transfers,
)


async def test_pickup_is_collected_and_calls_back_signed(client, callbacks):
    created = await pickup_create(client, pickup_body("RG-pk-1"), callback=callbacks.url())
    assert created.status == 201
    pickup = await created.json()
    assert pickup["pickup_id"].startswith("pk_")
    assert pickup["status"] == "AVAILABLE" and pickup["collected_amount_minor"] is None
    assert len(pickup["pickup_code"]) == 8 and pickup["pickup_code"].isdigit()
    assert pickup["recipient"] == {"name": "Jean Mbarga", "msisdn": "+237670000001"}

    [callback] = await callbacks.wait_for(1)
    assert_signed(callback, PICKUP)
    body = callback.json()
    assert body["event"] == "cash_pickup.updated"
    collected = body["pickup"]
    assert collected["status"] == "COLLECTED"
    assert collected["collected_amount_minor"] == 50_000
    assert collected["pickup_code"] == pickup["pickup_code"]
    assert await (await pickup_get(client, "RG-pk-1")).json() == collected


async def test_replay_and_duplicate_reference(client):
    first = await pickup_create(client, pickup_body("RG-pk-2"))
    replay = await pickup_create(client, pickup_body("RG-pk-2"))
    other = await pickup_create(client, pickup_body("RG-pk-2", amount_minor=1))
    assert (first.status, replay.status, other.status) == (201, 200, 409)
    assert (await replay.json())["pickup_id"] == (await first.json())["pickup_id"]
    assert (await other.json())["error"] == "duplicate_reference"
    assert len(await transfers(client, PICKUP)) == 1


async def test_expired_key_creates_a_second_pickup_and_lookup_gives_the_latest():
    async with running(idempotency_ttl_s=0.5) as client:
        await pickup_create(client, pickup_body("RG-pk-3"))
        await asyncio.sleep(0.7)
        second = await pickup_create(client, pickup_body("RG-pk-3"))
        assert second.status == 201
        latest = await (await pickup_get(client, "RG-pk-3")).json()
        assert latest["pickup_id"] == (await second.json())["pickup_id"]
        assert len(await transfers(client, PICKUP, "RG-pk-3")) == 2


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        (pickup_body("RG-v", name=None), "recipient.name"),
        (pickup_body("RG-v", name=""), "recipient.name"),
        (pickup_body("RG-v", msisdn="237670000001"), "recipient.msisdn"),
        (pickup_body("RG-v", amount_minor="50000"), "amount_minor"),
        (pickup_body("RG-v", amount_minor=500.0), "amount_minor"),
        (pickup_body("RG-v", amount_minor=0), "amount_minor"),
        ({**pickup_body("RG-v"), "currency": "XOF"}, "currency"),
        ({**pickup_body("RG-v"), "expires_in_days": 0}, "expires_in_days"),
    ],
)
async def test_invalid_pickup_is_422_and_not_executed(client, body, loc):
    response = await pickup_create(client, body, key="RG-v")
    assert response.status == 422
    payload = await response.json()
    assert payload["error"] == "invalid_request"
    assert loc in [d["loc"] for d in payload["details"]], payload
    assert await transfers(client, PICKUP) == []
    assert (await stats(client, PICKUP))["rejected"] == 1


async def test_x_api_key_required(client):
    url = f"/providers/{PICKUP}/v1/cash-pickups"
    for headers in ({"Idempotency-Key": "RG-a"}, pickup_headers("RG-a", api_key="sandbox-key-sgbci_ci")):
        assert (await client.post(url, json=pickup_body("RG-a"), headers=headers)).status == 401
    assert (await client.get(url + "/RG-a")).status == 401
    assert await transfers(client, PICKUP) == []


async def test_unknown_reference_is_404(client):
    response = await pickup_get(client, "RG-never")
    assert response.status == 404
    assert (await response.json())["error"] == "not_found"
