import asyncio
import socket
from dataclasses import asdict

import aiohttp
import pytest
from aiohttp import web
from disbursement.adapters.provider_client import (
    ProviderClient,
    ProviderUnavailable,
    Settlement,
    TransferRequest,
)
from provider_sandbox import SandboxConfig, create_app


class Sandbox:
    def __init__(self, base_url: str, session: aiohttp.ClientSession) -> None:
        self.base_url = base_url
        self._session = session

    async def set_faults(self, **faults) -> None:
        async with self._session.post(f"{self.base_url}/v1/admin/faults", json=faults) as response:
            assert response.status == 200

    async def stats(self) -> dict:
        async with self._session.get(f"{self.base_url}/v1/admin/stats") as response:
            return await response.json()

    async def post_transfer(self, body: dict) -> dict:
        async with self._session.post(f"{self.base_url}/v1/transfers", json=body) as response:
            assert response.status == 201
            return await response.json()


@pytest.fixture
async def sandbox():
    runner = web.AppRunner(create_app(SandboxConfig(settle_delay_ms=20)), shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    async with aiohttp.ClientSession() as session:
        yield Sandbox(f"http://{host}:{port}", session)
    await runner.cleanup()


def fast_client(base_url: str, **overrides) -> ProviderClient:
    options = {"timeout_s": 2, "max_attempts": 10, "max_wait_s": 0.01}
    return ProviderClient(base_url, **(options | overrides))


def mobile_money(reference: str, msisdn: str = "+221771234567", amount_minor: int = 75_000) -> TransferRequest:
    return TransferRequest(
        reference=reference,
        amount_minor=amount_minor,
        currency="XOF",
        method="mobile_money",
        provider="wave",
        msisdn=msisdn,
        beneficiary_name="Moussa Ba",
    )


async def read_feed(client: ProviderClient, expected: int) -> list[Settlement]:
    settlements: list[Settlement] = []
    cursor = 0
    for _ in range(100):
        page, cursor = await client.settlements_after(cursor, limit=2)
        settlements.extend(page)
        if len(settlements) >= expected:
            return settlements
        if not page:
            await asyncio.sleep(0.02)
    raise AssertionError(f"expected {expected} settlements, got {len(settlements)}")


async def test_retries_through_transient_errors_reach_one_transfer_per_reference(sandbox):
    await sandbox.set_faults(transient_error_rate=0.5, seed=11)
    requests = [mobile_money(f"grant-{i}") for i in range(1200)]  # three batches

    async with fast_client(sandbox.base_url) as client:
        outcomes = await client.send_transfers(requests)

    assert [o.reference for o in outcomes] == [r.reference for r in requests]
    assert all(o.accepted for o in outcomes)
    assert len({o.transfer_id for o in outcomes}) == 1200
    stats = await sandbox.stats()
    assert stats["transfers"] == 1200
    assert stats["transient_errors_injected"] > 0


async def test_resending_after_a_lost_response_returns_the_existing_transfer(sandbox):
    request = mobile_money("grant-lost-response")
    first = await sandbox.post_transfer(asdict(request))

    async with fast_client(sandbox.base_url) as client:
        [outcome] = await client.send_transfers([request])

    assert outcome.accepted
    assert outcome.transfer_id == first["transfer_id"]
    assert (await sandbox.stats())["transfers"] == 1


async def test_invalid_transfer_is_a_permanent_rejection(sandbox):
    invalid = TransferRequest(reference="grant-bad", amount_minor=0, currency="XOF", method="mobile_money")

    async with fast_client(sandbox.base_url) as client:
        valid, rejected = await client.send_transfers([mobile_money("grant-ok"), invalid])

    assert valid.accepted
    assert not rejected.accepted
    assert rejected.permanent
    assert rejected.error.startswith("invalid_request")
    assert "amount_minor" in rejected.error


async def test_reference_reused_with_different_amount_is_reported_as_conflict(sandbox):
    async with fast_client(sandbox.base_url) as client:
        await client.send_transfers([mobile_money("grant-7", amount_minor=10_000)])
        [conflict] = await client.send_transfers([mobile_money("grant-7", amount_minor=20_000)])

    assert not conflict.accepted
    assert not conflict.permanent
    assert conflict.error == "idempotency_conflict"


async def test_blocked_account_surfaces_as_failed_settlement(sandbox):
    await sandbox.set_faults(reject_msisdns=["+221770000001"])
    requests = [mobile_money("grant-a"), mobile_money("grant-blocked", msisdn="+221770000001"), mobile_money("grant-c")]

    async with fast_client(sandbox.base_url) as client:
        outcomes = await client.send_transfers(requests)
        settlements = await read_feed(client, expected=3)
        tail, tail_cursor = await client.settlements_after(settlements[-1].cursor)

    assert all(o.accepted for o in outcomes)
    assert [s.reference for s in settlements] == ["grant-a", "grant-blocked", "grant-c"]
    assert [s.cursor for s in settlements] == [1, 2, 3]
    blocked = settlements[1]
    assert blocked.status == "failed"
    assert blocked.failure_reason == "recipient_account_blocked"
    assert blocked.transfer_id == outcomes[1].transfer_id
    assert settlements[0].status == "settled"
    assert settlements[0].amount_minor == 75_000 and settlements[0].currency == "XOF"
    assert (tail, tail_cursor) == ([], 3)


async def test_persistent_outage_raises_provider_unavailable(sandbox):
    await sandbox.set_faults(transient_error_rate=1.0)

    async with fast_client(sandbox.base_url, max_attempts=3) as client:
        with pytest.raises(ProviderUnavailable):
            await client.send_transfers([mobile_money("grant-outage")])

    stats = await sandbox.stats()
    assert stats["transient_errors_injected"] == 3
    assert stats["transfers"] == 0


async def test_timeouts_are_retried_then_raise_provider_unavailable(sandbox):
    await sandbox.set_faults(latency_ms=300)

    async with fast_client(sandbox.base_url, timeout_s=0.05, max_attempts=2) as client:
        assert await client.settlements_after(0) == ([], 0)  # only POSTs are delayed
        with pytest.raises(ProviderUnavailable, match="TimeoutError"):
            await client.send_transfers([mobile_money("grant-slow")])


async def test_unreachable_provider_raises_provider_unavailable():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async with fast_client(f"http://127.0.0.1:{port}", max_attempts=2) as client:
        with pytest.raises(ProviderUnavailable):
            await client.send_transfers([mobile_money("grant-nowhere")])
