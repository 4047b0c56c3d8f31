"""The HTTP door against the real broker: what it accepts lands on upstream.case-events.v1."""

from __future__ import annotations

import asyncio
import json
import uuid

import aiohttp
import pytest
from aiohttp import web
from aiokafka import AIOKafkaConsumer
from intake.http_door import create_app
from reintegra.contract import samples
from reintegra.contract.envelope import MAX_RECORD_BYTES
from reintegra.contract.upstream import CASE_REGISTERED, PLAN_APPROVED
from reintegra.topics import UPSTREAM_CASE_EVENTS
from reintegra_stack.demo.watch import topic_partitions

STRUCTURED = "application/cloudevents+json"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
async def door(infra):
    runner = web.AppRunner(create_app(infra.bootstrap_servers))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    async with aiohttp.ClientSession(f"http://{host}:{port}") as session:
        yield session
    await runner.cleanup()


@pytest.fixture
async def upstream_topic(infra):
    """A consumer positioned at the current end of every partition of the upstream topic."""
    consumer = AIOKafkaConsumer(bootstrap_servers=infra.bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    partitions = await topic_partitions(infra.bootstrap_servers, (UPSTREAM_CASE_EVENTS,))
    consumer.assign(partitions)
    await consumer.seek_to_end(*partitions)
    for tp in partitions:
        await consumer.position(tp)  # resolve the end now, before anything is posted
    yield consumer
    await consumer.stop()


async def record_with_key(consumer: AIOKafkaConsumer, key: str, timeout_s: float = 30):
    async def find():
        while True:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    if record.key == key.encode():
                        return record

    return await asyncio.wait_for(find(), timeout_s)


async def end_offsets(consumer: AIOKafkaConsumer) -> dict:
    return await consumer.end_offsets(list(consumer.assignment()))


def case_id() -> str:
    return f"HD-{uuid.uuid4().hex[:12].upper()}"


async def test_structured_event_is_published_as_sent(door, upstream_topic) -> None:
    cid = case_id()
    event = samples.cloudevent(CASE_REGISTERED, cid, samples.sample_case_registered(cid))
    body = json.dumps(event, ensure_ascii=False).encode()

    async with door.post("/v1/events", data=body,
                         headers={"Content-Type": STRUCTURED, "traceparent": TRACEPARENT}) as response:
        assert response.status == 202, await response.text()
        assert await response.json() == {"id": event["id"], "source": event["source"], "case_id": cid}

    record = await record_with_key(upstream_topic, cid)
    assert record.value == body
    headers = dict(record.headers)
    assert headers["content-type"] == STRUCTURED.encode()
    assert headers["traceparent"] == TRACEPARENT.encode()


async def test_binary_mode_ce_headers_become_kafka_ce_headers(door, upstream_topic) -> None:
    cid = case_id()
    event = samples.cloudevent(CASE_REGISTERED, cid, samples.sample_case_registered(cid))
    _, body, kafka_style = samples.binary_record(event)
    http_headers = {name.replace("ce_", "ce-", 1): value.decode() for name, value in kafka_style}

    async with door.post("/v1/events", data=body, headers=http_headers) as response:
        assert response.status == 202, await response.text()
        assert (await response.json())["case_id"] == cid

    record = await record_with_key(upstream_topic, cid)
    assert record.value == body
    headers = dict(record.headers)
    assert headers["content-type"] == b"application/json"
    assert headers["ce_id"] == event["id"].encode()
    assert headers["ce_type"] == CASE_REGISTERED.encode()
    assert headers["ce_subject"] == cid.encode()


async def test_invalid_event_gets_reasons_and_publishes_nothing(door, upstream_topic) -> None:
    cid = case_id()
    plan = samples.sample_plan_approved(cid, f"PL-{cid}")
    plan["components"][0]["amount"]["amount"] = 300.00  # a JSON number: refused, never rounded
    event = samples.cloudevent(PLAN_APPROVED, cid, plan)
    before = await end_offsets(upstream_topic)

    async with door.post("/v1/events", json=event, headers={"Content-Type": STRUCTURED}) as response:
        assert response.status == 400
        reasons = (await response.json())["reasons"]
    assert {"code": "amount_not_string", "field": "data.components[0].amount.amount",
            "message": 'must be a decimal string, e.g. "1200.00" (JSON numbers are not accepted)'} in reasons
    assert all(set(r) == {"code", "field", "message"} for r in reasons)
    assert await end_offsets(upstream_topic) == before


async def test_body_over_1mb_is_413(door, upstream_topic) -> None:
    before = await end_offsets(upstream_topic)
    async with door.post("/v1/events", data=b" " * (MAX_RECORD_BYTES + 1),
                         headers={"Content-Type": STRUCTURED}) as response:
        assert response.status == 413
        assert (await response.json())["reasons"][0]["code"] == "record_too_large"
    assert await end_offsets(upstream_topic) == before


async def test_not_json_is_400(door) -> None:
    async with door.post("/v1/events", data=b"{nope", headers={"Content-Type": STRUCTURED}) as response:
        assert response.status == 400
        assert (await response.json())["reasons"][0]["code"] == "not_json"


async def test_healthz(door) -> None:
    async with door.get("/healthz") as response:
        assert response.status == 200
        assert await response.json() == {"status": "ok"}
