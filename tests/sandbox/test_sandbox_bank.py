"""Dialect bank: payments with an Idempotency-Key, lookup by end-to-end id, IBAN checks."""

from __future__ import annotations

import asyncio

import pytest
from sandbox_kit import (
    BANK,
    assert_signed,
    bank_body,
    bank_create,
    bank_get,
    bank_headers,
    running,
    stats,
    transfers,
)


async def test_payment_settles_and_calls_back_signed(client, callbacks):
    created = await bank_create(client, bank_body("RG-bank-1"), callback=callbacks.url())
    assert created.status == 201
    payment = await created.json()
    assert payment["payment_id"].startswith("pay_")
    assert payment["status"] == "ACSP" and payment["settled_amount"] is None and payment["status_reason"] is None
    assert payment["instructed_amount"] == {"amount": "15000", "currency": "XOF"}
    assert payment["creditor"] == {"name": "Awa Traoré", "iban": "CI93CI0080111301134291200589"}

    [callback] = await callbacks.wait_for(1)
    assert_signed(callback, BANK)
    body = callback.json()
    assert body["event"] == "payment.status_changed"
    settled = body["payment"]
    assert settled["payment_id"] == payment["payment_id"]
    assert settled["status"] == "ACSC"
    assert settled["settled_amount"] == {"amount": "15000", "currency": "XOF"}
    assert settled["created_at"] == payment["created_at"] and settled["updated_at"] >= payment["updated_at"]
    listed = await (await bank_get(client, "RG-bank-1")).json()
    assert listed == {"payments": [settled]}


async def test_replay_returns_the_same_payment_and_another_body_conflicts(client):
    first = await bank_create(client, bank_body("RG-bank-2"))
    replay = await bank_create(client, bank_body("RG-bank-2"))
    other = await bank_create(client, bank_body("RG-bank-2", amount="16000"))

    assert (first.status, replay.status, other.status) == (201, 200, 409)
    assert (await replay.json())["payment_id"] == (await first.json())["payment_id"]
    assert (await other.json())["error"] == "idempotency_key_in_use"
    assert len(await transfers(client, BANK, "RG-bank-2")) == 1
    counted = await stats(client, BANK)
    assert (counted["transfers"], counted["replays"], counted["conflicts"]) == (1, 1, 1)


async def test_expired_key_creates_a_second_payment_listed_oldest_first():
    async with running(idempotency_ttl_s=0.5) as client:
        first = await (await bank_create(client, bank_body("RG-bank-3"))).json()
        await asyncio.sleep(0.7)
        second = await bank_create(client, bank_body("RG-bank-3"))
        assert second.status == 201
        listed = (await (await bank_get(client, "RG-bank-3")).json())["payments"]
        assert [p["payment_id"] for p in listed] == [first["payment_id"], (await second.json())["payment_id"]]
        assert len(await transfers(client, BANK, "RG-bank-3")) == 2


async def test_account_number_and_bank_code_where_there_is_no_iban(client):
    body = bank_body("RG-bank-4", iban=None)
    body["creditor"] |= {"account_number": "000123456789", "bank_code": "SN010"}
    response = await bank_create(client, body, provider="cbao_sn")
    assert response.status == 201
    assert (await response.json())["creditor"]["account_number"] == "000123456789"


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        (bank_body("RG-v", iban="CI93CI0080111301134291200588"), "creditor.iban"),
        (bank_body("RG-v", iban="not an iban"), "creditor.iban"),
        (bank_body("RG-v", name=None), "creditor.name"),
        (bank_body("RG-v", name="   "), "creditor.name"),
        (bank_body("RG-v", iban=None), "creditor"),
        (bank_body("RG-v", amount="15000.50"), "instructed_amount.amount"),
        (bank_body("RG-v", amount="1e4"), "instructed_amount.amount"),
        ({**bank_body("RG-v"), "instructed_amount": {"amount": "15000", "currency": "EUR"}},
         "instructed_amount.currency"),
        ({**bank_body("RG-v"), "end_to_end_id": ""}, "end_to_end_id"),
        ({**bank_body("RG-v"), "extra": 1}, "extra"),
    ],
)
async def test_invalid_payment_is_422_and_not_executed(client, body, loc):
    response = await bank_create(client, body, key="RG-v")
    assert response.status == 422
    payload = await response.json()
    assert payload["error"] == "invalid_request"
    assert loc in [d["loc"] for d in payload["details"]], payload
    assert await transfers(client, BANK) == []
    assert (await stats(client, BANK))["rejected"] == 1


async def test_missing_idempotency_key_and_malformed_json_are_422(client):
    no_key = await client.post(f"/providers/{BANK}/v1/payments", json=bank_body("RG-k"), headers=bank_headers(None))
    not_json = await client.post(f"/providers/{BANK}/v1/payments", data=b"{nope", headers=bank_headers("RG-k"))
    assert (no_key.status, not_json.status) == (422, 422)
    assert (await no_key.json())["details"][0]["loc"] == "header.Idempotency-Key"


async def test_bearer_api_key_required(client):
    url = f"/providers/{BANK}/v1/payments"
    for headers in ({}, bank_headers("RG-a", api_key="wrong"), bank_headers("RG-a", api_key="sandbox-key-cbao_sn"),
                    {"Authorization": f"Basic sandbox-key-{BANK}", "Idempotency-Key": "RG-a"}):
        created = await client.post(url, json=bank_body("RG-a"), headers=headers)
        assert created.status == 401
        assert (await created.json())["error"] == "unauthorized"
    looked_up = await client.get(url, params={"end_to_end_id": "RG-a"})
    assert looked_up.status == 401
    assert await transfers(client, BANK) == []


async def test_lookup_of_unknown_reference_is_an_empty_list(client):
    response = await bank_get(client, "RG-never")
    assert response.status == 200
    assert await response.json() == {"payments": []}
    assert (await stats(client, BANK))["lookups"] == 1
