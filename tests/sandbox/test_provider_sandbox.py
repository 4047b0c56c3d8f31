import asyncio

import pytest
from aiohttp.test_utils import TestClient, TestServer
from provider_sandbox import FaultSettings, SandboxConfig, create_app


def mobile_money(reference: str, amount_minor: int = 50_000, msisdn: str = "+221771234567") -> dict:
    return {
        "reference": reference,
        "amount_minor": amount_minor,
        "currency": "XOF",
        "method": "mobile_money",
        "provider": "orange_money",
        "msisdn": msisdn,
        "beneficiary_name": "Awa Diop",
    }


@pytest.fixture
async def client():
    async with TestClient(TestServer(create_app(SandboxConfig(settle_delay_ms=20)))) as client:
        yield client


async def stats(client: TestClient) -> dict:
    return await (await client.get("/v1/admin/stats")).json()


async def wait_for_events(client: TestClient, count: int) -> list[dict]:
    for _ in range(100):
        events = (await (await client.get("/v1/settlements")).json())["events"]
        if len(events) >= count:
            return events
        await asyncio.sleep(0.02)
    raise AssertionError(f"expected {count} settlement events, got {len(events)}")


async def test_same_reference_twice_creates_one_transfer(client):
    first = await client.post("/v1/transfers", json=mobile_money("grant-1"))
    second = await client.post("/v1/transfers", json=mobile_money("grant-1"))

    assert first.status == 201
    assert second.status == 200
    assert (await first.json())["transfer_id"] == (await second.json())["transfer_id"]
    counts = await stats(client)
    assert counts["transfers"] == 1
    assert counts["duplicate_requests"] == 1


async def test_reusing_reference_with_different_amount_conflicts(client):
    await client.post("/v1/transfers", json=mobile_money("grant-2", amount_minor=50_000))
    conflict = await client.post("/v1/transfers", json=mobile_money("grant-2", amount_minor=60_000))

    assert conflict.status == 409
    assert (await conflict.json())["error"] == "idempotency_conflict"
    assert (await stats(client))["transfers"] == 1


async def test_batch_reports_each_item(client):
    await client.post("/v1/transfers", json=mobile_money("existing"))
    batch = [
        mobile_money("new"),
        mobile_money("existing"),
        mobile_money("existing", amount_minor=1),
        {**mobile_money("bad"), "amount_minor": 12.5},
    ]

    response = await client.post("/v1/transfers:batch", json={"transfers": batch})

    assert response.status == 200
    results = (await response.json())["results"]
    assert [r["reference"] for r in results] == ["new", "existing", "existing", "bad"]
    assert [r["status_code"] for r in results] == [201, 200, 409, 422]
    assert results[0]["transfer"]["status"] == "pending"
    assert results[2]["error"]["error"] == "idempotency_conflict"
    assert results[3]["error"]["error"] == "invalid_request"
    assert (await stats(client))["transfers"] == 2


async def test_batch_larger_than_500_is_rejected(client):
    batch = [mobile_money(f"big-{i}") for i in range(501)]
    response = await client.post("/v1/transfers:batch", json={"transfers": batch})
    assert response.status == 422


async def test_settlement_feed_is_ordered_and_paged_by_cursor(client):
    references = [f"feed-{i}" for i in range(5)]
    await client.post("/v1/transfers:batch", json={"transfers": [mobile_money(r) for r in references]})

    events = await wait_for_events(client, 5)
    assert [e["reference"] for e in events] == references
    assert [e["cursor"] for e in events] == [1, 2, 3, 4, 5]
    assert all(e["status"] == "settled" and e["amount_minor"] == 50_000 for e in events)

    page = await (await client.get("/v1/settlements", params={"after": 2, "limit": 2})).json()
    assert [e["cursor"] for e in page["events"]] == [3, 4]
    assert page["next_cursor"] == 4
    tail = await (await client.get("/v1/settlements", params={"after": 5})).json()
    assert tail == {"events": [], "next_cursor": 5}
    transfer = await (await client.get("/v1/transfers/feed-0")).json()
    assert transfer["status"] == "settled"


async def test_transient_error_creates_nothing_and_retry_succeeds(client):
    await client.post("/v1/admin/faults", json={"transient_error_rate": 1.0})
    failed = await client.post("/v1/transfers", json=mobile_money("flaky"))
    assert failed.status == 503
    assert (await client.get("/v1/transfers/flaky")).status == 404

    await client.post("/v1/admin/faults", json={})
    retried = await client.post("/v1/transfers", json=mobile_money("flaky"))

    assert retried.status == 201
    counts = await stats(client)
    assert counts["transfers"] == 1
    assert counts["transient_errors_injected"] == 1


async def test_rejected_msisdn_fails_in_settlement_feed(client):
    await client.post("/v1/admin/faults", json={"reject_msisdns": ["+221770000000"]})
    accepted = await client.post("/v1/transfers", json=mobile_money("blocked", msisdn="+221770000000"))
    await client.post("/v1/transfers", json=mobile_money("fine"))

    assert accepted.status == 201
    events = {e["reference"]: e for e in await wait_for_events(client, 2)}
    assert events["blocked"]["status"] == "failed"
    assert events["blocked"]["failure_reason"] == "recipient_account_blocked"
    assert events["fine"]["status"] == "settled"
    assert (await stats(client))["failed"] == 1


async def test_fault_settings_round_trip(client):
    set_response = await client.post("/v1/admin/faults", json={"latency_ms": 5, "reject_rate": 0.25, "seed": 7})
    assert set_response.status == 200
    current = await (await client.get("/v1/admin/faults")).json()
    assert current == {**FaultSettings().to_json(), "latency_ms": 5, "reject_rate": 0.25, "seed": 7}
    assert (await client.post("/v1/admin/faults", json={"reject_rate": 2})).status == 422


@pytest.mark.parametrize(
    "body",
    [
        {**mobile_money("v"), "amount_minor": 0},
        {**mobile_money("v"), "amount_minor": 100.0},
        {**mobile_money("v"), "amount_minor": "100"},
        {**mobile_money("v"), "currency": "xof"},
        {**mobile_money("v"), "msisdn": None},
        {**mobile_money("v"), "reference": ""},
        {**mobile_money("v"), "reference": "x" * 129},
        {**mobile_money("v"), "method": "carrier_pigeon"},
        {**mobile_money("v"), "unexpected": True},
        {"reference": "v", "amount_minor": 1, "currency": "XOF", "method": "bank_transfer", "bank_code": "SN01"},
    ],
)
async def test_invalid_transfer_is_422(client, body):
    response = await client.post("/v1/transfers", json=body)
    assert response.status == 422
    payload = await response.json()
    assert payload["error"] == "invalid_request"
    assert payload["details"]
    assert (await stats(client))["transfers"] == 0


async def test_malformed_json_is_422(client):
    response = await client.post("/v1/transfers", data=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status == 422


async def test_healthz(client):
    assert (await (await client.get("/healthz")).json()) == {"status": "ok"}


async def test_unknown_transfer_is_404(client):
    assert (await client.get("/v1/transfers/nope")).status == 404
