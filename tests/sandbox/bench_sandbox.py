"""Throughput of the provider sandbox: creates + lookups, all three dialects (not a pytest test).

    .venv/bin/python tests/sandbox/bench_sandbox.py [--requests 20000] [--concurrency 64] [--url URL]

Without --url it starts `python -m provider_sandbox` with a fresh state directory, pinned to one
CPU (taskset, where available), and drives it from this process.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

INFRA = Path(__file__).resolve().parents[2] / "infra"


async def _token(http: aiohttp.ClientSession, base: str, name: str) -> str:
    basic = base64.b64encode(f"sandbox-user-{name}:sandbox-key-{name}".encode()).decode()
    async with http.post(f"{base}/providers/{name}/disbursement/token/", headers={
            "Authorization": f"Basic {basic}", "Ocp-Apim-Subscription-Key": f"sandbox-subscription-{name}"}) as r:
        return (await r.json())["access_token"]


def _calls(i: int, base: str, token: str) -> tuple[tuple, tuple]:
    """(create, lookup) as (method, url, kwargs), rotating over the three dialects."""
    ref = f"RG-bench-{uuid.uuid4().hex[:20]}"
    if i % 3 == 0:
        rid = str(uuid.uuid4())
        headers = {"Authorization": f"Bearer {token}", "Ocp-Apim-Subscription-Key": "sandbox-subscription-wave_sn",
                   "X-Target-Environment": "sandbox", "X-Reference-Id": rid}
        body = {"amount": "15000", "currency": "XOF", "externalId": ref,
                "payee": {"partyIdType": "MSISDN", "partyId": "221771234567"}}
        url = f"{base}/providers/wave_sn/disbursement/v1_0/transfer"
        return ("POST", url, {"json": body, "headers": headers}), ("GET", f"{url}/{rid}", {"headers": headers})
    if i % 3 == 1:
        headers = {"Authorization": "Bearer sandbox-key-sgbci_ci", "Idempotency-Key": ref}
        body = {"end_to_end_id": ref, "instructed_amount": {"amount": "15000", "currency": "XOF"},
                "creditor": {"name": "Awa Traoré", "iban": "CI93CI0080111301134291200589"}}
        url = f"{base}/providers/sgbci_ci/v1/payments"
        return ("POST", url, {"json": body, "headers": headers}), (
            "GET", url, {"params": {"end_to_end_id": ref}, "headers": headers})
    headers = {"X-Api-Key": "sandbox-key-express_union_cm", "Idempotency-Key": ref}
    body = {"reference": ref, "amount_minor": 50000, "currency": "XAF",
            "recipient": {"name": "Jean", "msisdn": "+237670000001"}}
    url = f"{base}/providers/express_union_cm/v1/cash-pickups"
    return ("POST", url, {"json": body, "headers": headers}), ("GET", f"{url}/{ref}", {"headers": headers})


async def bench(base: str, requests: int, concurrency: int) -> float:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:
        token = await _token(http, base, "wave_sn")
        statuses: dict[int, int] = {}
        todo = iter(range(requests // 2))

        async def worker() -> None:
            for i in todo:
                for method, url, kwargs in _calls(i, base, token):
                    async with http.request(method, url, **kwargs) as response:
                        await response.read()
                        statuses[response.status] = statuses.get(response.status, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    done = sum(statuses.values())
    print(f"{done} requests in {elapsed:.2f} s: {done / elapsed:,.0f} requests/s; statuses {statuses}")
    return done / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--url")
    args = parser.parse_args()
    if args.url:
        asyncio.run(bench(args.url, args.requests, args.concurrency))
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    state = tempfile.mkdtemp(prefix="sandbox-bench-")
    pin = ["taskset", "-c", "0"] if shutil.which("taskset") else []
    env = {**os.environ, "PYTHONPATH": str(INFRA)}
    server = subprocess.Popen([*pin, sys.executable, "-m", "provider_sandbox", "--port", str(port),
                               "--state-dir", state], env=env, stdout=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                    break
            except OSError:
                time.sleep(0.05)
        if pin and (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(0, {1})  # the load generator on another core
        asyncio.run(bench(base, args.requests, args.concurrency))
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
