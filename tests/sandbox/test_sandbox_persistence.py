"""State in SQLite: a restart (clean, or SIGKILL) resumes settlements and callback deliveries."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import aiohttp
from provider_sandbox.__main__ import parse_config
from sandbox_kit import (
    BANK,
    MOMO,
    admin_json,
    bank_body,
    bank_create,
    momo_body,
    momo_headers,
    receiver,
    running,
    set_faults,
    stats,
    transfers,
    wait_until,
)

INFRA = Path(__file__).resolve().parents[2] / "infra"


async def test_restart_resumes_settlements_and_callbacks(tmp_path):
    async with receiver() as callbacks:
        callbacks.statuses = [503]  # the first callback fails once, so it is still pending at the restart
        async with running(state_dir=tmp_path, settle_delay_ms=300, callback_backoff_ms=400) as before:
            await set_faults(before, BANK, settled_amount_delta_minor=-1)
            first = await (await bank_create(before, bank_body("RG-p1"), callback=callbacks.url("/p1"))).json()
            await callbacks.wait_for(1)
            assert (await bank_create(before, bank_body("RG-p2"), callback=callbacks.url("/p2"))).status == 201
        assert (tmp_path / "sandbox.sqlite3").exists()

        async with running(state_dir=tmp_path, settle_delay_ms=300, callback_backoff_ms=400) as after:
            pending = {t["reference"]: t["status"] for t in await transfers(after, BANK)}
            assert pending == {"RG-p1": "settled", "RG-p2": "pending"}
            received = await callbacks.wait_for(3)
            assert sorted(c.path for c in received) == ["/p1", "/p1", "/p2"]
            p2 = next(c.json() for c in received if c.path == "/p2")["payment"]
            assert p2["status"] == "ACSC" and p2["settled_amount"]["amount"] == "14999"  # faults were kept too
            replay = await bank_create(after, bank_body("RG-p1"))
            assert replay.status == 200 and (await replay.json())["payment_id"] == first["payment_id"]
            counted = await stats(after, BANK)
            assert (counted["transfers"], counted["replays"], counted["callbacks_failed"]) == (2, 1, 1)
            await wait_until(lambda: _sent(after, 2))
            log = (await admin_json(after, "/admin/callbacks", provider=BANK))["callbacks"]
            assert [e["outcome"] for e in log] == ["failed", "delivered", "delivered"]


async def test_memory_state_is_fresh_each_time():
    async with running() as client:
        await bank_create(client, bank_body("RG-m"))
    async with running() as client:
        assert await transfers(client) == []


async def test_sigkill_then_restart_delivers_the_pending_callback(tmp_path):
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    async with receiver() as callbacks, aiohttp.ClientSession() as http:
        process = await _start(port, tmp_path, "--settle-delay-ms", "800")
        try:
            await _wait_ready(http, base, process)
            token = await _token(http, base)
            reference_id = str(uuid.uuid4())
            async with http.post(f"{base}/providers/{MOMO}/disbursement/v1_0/transfer", json=momo_body("RG-kill"),
                                 headers=momo_headers(token, MOMO, reference_id, callbacks.url())) as created:
                assert created.status == 202
        finally:
            process.kill()
            process.wait(10)
        assert callbacks.received == []

        process = await _start(port, tmp_path, "--settle-delay-ms", "800")
        try:
            await _wait_ready(http, base, process)
            [callback] = await callbacks.wait_for(1, timeout=10)
            assert callback.json()["status"] == "SUCCESSFUL"
            async with http.get(f"{base}/providers/{MOMO}/disbursement/v1_0/transfer/{reference_id}",
                                headers=momo_headers(token, MOMO)) as looked_up:  # the token outlives the restart
                assert (await looked_up.json())["status"] == "SUCCESSFUL"
            async with http.get(f"{base}/admin/transfers") as listed:
                assert [t["reference"] for t in (await listed.json())["transfers"]] == ["RG-kill"]
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(10) == 0  # SIGTERM is a clean stop


def test_flags_override_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SANDBOX_STATE_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("SANDBOX_SETTLE_DELAY_MS", "5")
    monkeypatch.setenv("SANDBOX_IDEMPOTENCY_TTL_S", "7")
    monkeypatch.setenv("SANDBOX_SEED", "3")
    _, from_env = parse_config([])
    assert (from_env.state_dir, from_env.settle_delay_ms, from_env.idempotency_ttl_s, from_env.seed) == (
        tmp_path / "env", 5, 7, 3)
    _, flagged = parse_config(["--state-dir", str(tmp_path / "flag"), "--settle-delay-ms", "9",
                               "--idempotency-ttl-s", "1", "--seed", "4", "--providers", "x.yaml"])
    assert (flagged.state_dir, flagged.settle_delay_ms, flagged.idempotency_ttl_s, flagged.seed) == (
        tmp_path / "flag", 9, 1, 4)
    assert flagged.providers_path == Path("x.yaml")


async def _sent(client, count: int) -> bool:
    return (await stats(client, BANK))["callbacks_sent"] >= count


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _start(port: int, state_dir: Path, *flags: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(INFRA), os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen(
        [sys.executable, "-m", "provider_sandbox", "--port", str(port), "--state-dir", str(state_dir), *flags],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


async def _wait_ready(http: aiohttp.ClientSession, base: str, process: subprocess.Popen) -> None:
    for _ in range(200):
        assert process.poll() is None, "the sandbox exited"
        try:
            async with http.get(f"{base}/healthz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError("the sandbox never answered /healthz")


async def _token(http: aiohttp.ClientSession, base: str) -> str:
    basic = base64.b64encode(f"sandbox-user-{MOMO}:sandbox-key-{MOMO}".encode()).decode()
    headers = {"Authorization": f"Basic {basic}", "Ocp-Apim-Subscription-Key": f"sandbox-subscription-{MOMO}"}
    async with http.post(f"{base}/providers/{MOMO}/disbursement/token/", headers=headers) as response:
        return (await response.json())["access_token"]
