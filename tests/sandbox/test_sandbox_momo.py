"""Dialect momo: token, transfer, lookup, callback, idempotency by X-Reference-Id."""

from __future__ import annotations

import asyncio
import base64
import uuid

import pytest
from sandbox_kit import (
    MOMO,
    assert_signed,
    momo_body,
    momo_create,
    momo_get,
    momo_headers,
    momo_token,
    running,
    stats,
    transfers,
    wait_settled,
)


async def test_transfer_settles_and_calls_back_signed(client, callbacks):
    token = await momo_token(client)
    reference_id = str(uuid.uuid4())

    created = await momo_create(client, token, momo_body("RG-momo-1"), reference_id, callback=callbacks.url())
    assert created.status == 202
    assert await created.read() == b""
    pending = await (await momo_get(client, token, reference_id)).json()
    assert pending["status"] == "PENDING" and "reason" not in pending

    [callback] = await callbacks.wait_for(1)
    assert_signed(callback, MOMO)
    body = callback.json()
    assert body["status"] == "SUCCESSFUL"
    assert body["externalId"] == "RG-momo-1"
    assert body["amount"] == "15000" and body["currency"] == "XOF"
    assert body["payee"] == {"partyIdType": "MSISDN", "partyId": "221771234567"}
    looked_up = await (await momo_get(client, token, reference_id)).json()
    assert looked_up == body
    assert await (await momo_get(client, token, reference_id.upper())).json() == body
    [transfer] = await transfers(client, MOMO, "RG-momo-1")
    assert transfer["transfer_id"] == body["financialTransactionId"]
    assert transfer["provider_reference"] == reference_id
    assert transfer["status"] == "settled" and transfer["settled_amount_minor"] == 15000


async def test_no_callback_without_callback_url(client, callbacks):
    token = await momo_token(client)
    await momo_create(client, token, momo_body("RG-momo-quiet"), str(uuid.uuid4()))
    await wait_settled(client, MOMO)
    await asyncio.sleep(0.1)
    assert callbacks.received == []
    assert (await stats(client, MOMO))["callbacks_sent"] == 0


async def test_same_reference_id_is_409_whatever_the_body(client):
    token = await momo_token(client)
    reference_id = str(uuid.uuid4())
    assert (await momo_create(client, token, momo_body("RG-momo-2"), reference_id)).status == 202

    same = await momo_create(client, token, momo_body("RG-momo-2"), reference_id)
    other = await momo_create(client, token, momo_body("RG-momo-2", amount="99"), reference_id)

    for response in (same, other):
        assert response.status == 409
        assert (await response.json())["code"] == "RESOURCE_ALREADY_EXIST"
    assert len(await transfers(client, MOMO)) == 1
    counted = await stats(client, MOMO)
    assert (counted["transfers"], counted["replays"], counted["conflicts"]) == (1, 1, 1)


async def test_expired_reference_id_creates_a_second_transfer():
    async with running(idempotency_ttl_s=0.5) as client:
        token = await momo_token(client)
        reference_id = str(uuid.uuid4())
        assert (await momo_create(client, token, momo_body("RG-momo-3"), reference_id)).status == 202
        assert (await momo_create(client, token, momo_body("RG-momo-3"), reference_id)).status == 409
        await asyncio.sleep(0.7)

        again = await momo_create(client, token, momo_body("RG-momo-3", amount="16000"), reference_id)

        assert again.status == 202
        executed = await transfers(client, MOMO, "RG-momo-3")
        assert [t["amount_minor"] for t in executed] == [15000, 16000]
        latest = await (await momo_get(client, token, reference_id)).json()
        assert latest["financialTransactionId"] == executed[-1]["transfer_id"]


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"amount": "15000.5"}, "BAD_REQUEST"),
        ({"amount": 15000}, "BAD_REQUEST"),
        ({"amount": "-5"}, "BAD_REQUEST"),
        ({"amount": "0"}, "BAD_REQUEST"),
        ({"currency": "EUR"}, "INVALID_CURRENCY"),
        ({"currency": "xof"}, "INVALID_CURRENCY"),
        ({"payee": {"partyIdType": "MSISDN", "partyId": "+221771234567"}}, "INVALID_PAYEE"),
        ({"payee": {"partyIdType": "EMAIL", "partyId": "a@b.c"}}, "INVALID_PAYEE"),
        ({"externalId": ""}, "BAD_REQUEST"),
        ({"unexpected": True}, "BAD_REQUEST"),
    ],
)
async def test_invalid_transfer_is_400_and_not_executed(client, change, code):
    token = await momo_token(client)
    response = await momo_create(client, token, {**momo_body("RG-momo-bad"), **change}, str(uuid.uuid4()))
    assert response.status == 400
    assert (await response.json())["code"] == code
    assert await transfers(client, MOMO) == []
    assert (await stats(client, MOMO))["rejected"] == 1


async def test_gnf_has_no_minor_unit(client):
    token = await momo_token(client, "orange_money_gn")
    body = {**momo_body("RG-gn"), "currency": "GNF", "amount": "100000.50"}
    refused = await momo_create(client, token, body, str(uuid.uuid4()), provider="orange_money_gn")
    accepted = await momo_create(client, token, {**body, "amount": "100000"}, str(uuid.uuid4()),
                                 provider="orange_money_gn")
    assert (refused.status, accepted.status) == (400, 202)


async def test_bad_headers_are_400(client):
    token = await momo_token(client)
    url = f"/providers/{MOMO}/disbursement/v1_0/transfer"
    not_uuid = await client.post(url, json=momo_body("RG-h"), headers=momo_headers(token, reference_id="RG-h"))
    wrong_env = await client.post(url, json=momo_body("RG-h"),
                                  headers={**momo_headers(token), "X-Target-Environment": "mtncongo"})
    bad_callback = await client.post(url, json=momo_body("RG-h"),
                                     headers={**momo_headers(token), "X-Callback-Url": "not a url"})
    assert [r.status for r in (not_uuid, wrong_env, bad_callback)] == [400, 400, 400]
    assert await transfers(client, MOMO) == []


async def test_token_needs_basic_credentials_and_subscription_key(client):
    url = f"/providers/{MOMO}/disbursement/token/"
    good = base64.b64encode(f"sandbox-user-{MOMO}:sandbox-key-{MOMO}".encode()).decode()
    wrong = base64.b64encode(f"sandbox-user-{MOMO}:guess".encode()).decode()
    subscription = {"Ocp-Apim-Subscription-Key": f"sandbox-subscription-{MOMO}"}
    cases = [
        {"Authorization": f"Basic {wrong}", **subscription},
        {"Authorization": f"Basic {good}"},
        {"Authorization": f"Basic {good}", "Ocp-Apim-Subscription-Key": "other"},
        {"Authorization": "Basic !!!", **subscription},
        subscription,
    ]
    for headers in cases:
        response = await client.post(url, headers=headers)
        assert response.status == 401
        assert (await response.json())["code"] == "UNAUTHORIZED"
    ok = await client.post(url, headers={"Authorization": f"Basic {good}", **subscription})
    assert ok.status == 200
    assert (await ok.json())["token_type"] == "access_token"


async def test_transfer_calls_need_a_valid_token(client):
    other_token = await momo_token(client, "mtn_momo_ci")
    token = await momo_token(client)
    async with running(token_ttl_s=-10) as expiring:
        expired = await momo_token(expiring)
    for bad in ("", "garbage", other_token, expired, token[:-2] + "00"):
        response = await momo_create(client, bad, momo_body("RG-auth"), str(uuid.uuid4()))
        assert response.status == 401, bad
        assert (await momo_get(client, bad, str(uuid.uuid4()))).status == 401
    no_subscription = {k: v for k, v in momo_headers(token).items() if k != "Ocp-Apim-Subscription-Key"}
    response = await client.post(f"/providers/{MOMO}/disbursement/v1_0/transfer", json=momo_body("RG-auth"),
                                 headers=no_subscription)
    assert response.status == 401
    assert await transfers(client, MOMO) == []
    assert (await stats(client, MOMO))["unauthorized"] == 11


async def test_unknown_reference_id_is_404(client):
    token = await momo_token(client)
    response = await momo_get(client, token, str(uuid.uuid4()))
    assert response.status == 404
    assert (await response.json())["code"] == "RESOURCE_NOT_FOUND"
