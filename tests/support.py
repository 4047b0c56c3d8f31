"""Helpers for tests that drive the running system from outside, as an upstream system would."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaProducer
from reintegra.contract import samples
from reintegra.contract.upstream import CASE_REGISTERED, PLAN_APPROVED, RETURN_COMPLETED
from reintegra.topics import UPSTREAM_CASE_EVENTS
from reintegra_stack.demo.watch import PipelineWatcher

Record = tuple[bytes | None, bytes, list[tuple[str, bytes]]]


async def publish(bootstrap_servers: str, records: Iterable[Record], topic: str = UPSTREAM_CASE_EVENTS) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(topic, value=v, key=k, headers=h) for k, v, h in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def traceparent_for(trace_id: str, n: int) -> str:
    return f"00-{trace_id}-{n + 1:016x}-01"


def cash_case_records(case_id: str, *, trace_id: str | None = None, phone: str = "+2250701020304",
                      currency: str = "XOF", amount: str = "250000") -> list[Record]:
    """case.registered, return.completed and a one-tranche mobile-money plan for one case."""
    events = [
        samples.cloudevent(CASE_REGISTERED, case_id, samples.sample_case_registered(case_id, phone=phone)),
        samples.cloudevent(RETURN_COMPLETED, case_id, samples.sample_return_completed(case_id)),
        samples.cloudevent(PLAN_APPROVED, case_id, samples.sample_plan_approved(
            case_id, f"PL-{case_id}", currency=currency, cash_amount=amount, inkind=False,
            payout=samples.mobile_money_payout(phone))),
    ]
    return [samples.structured_record(e, traceparent_for(trace_id, i) if trace_id else None)
            for i, e in enumerate(events)]


async def watch(bootstrap_servers: str, prefix: str, finals: dict[str, str]) -> PipelineWatcher:
    watcher = PipelineWatcher(bootstrap_servers, prefix, finals)
    await watcher.start()
    return watcher


async def query(database_url: str, sql: str, *args) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


def sms_lines(state_dir: Path, case_prefix: str) -> list[str]:
    path = state_dir / "sms" / "outbox.log"
    if not path.exists():
        return []
    return [line for line in path.read_text(encoding="utf-8").splitlines() if f"case={case_prefix}" in line]


async def wait_for_sms(state_dir: Path, case_prefix: str, count: int, timeout_s: float = 30) -> list[str]:
    """SMS go out after the status that triggered them: wait for them rather than race."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    lines = sms_lines(state_dir, case_prefix)
    while len(lines) < count and loop.time() < deadline:
        await asyncio.sleep(0.2)
        lines = sms_lines(state_dir, case_prefix)
    return lines
