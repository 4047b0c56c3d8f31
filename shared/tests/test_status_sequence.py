"""Case statuses carry a sequence number that grows along each case's history, across services,
even when a clock goes back or one service's clock is behind (against a real Postgres)."""

from __future__ import annotations

import json
import uuid

import pytest
from reintegra import jsonfast, outbox, status_sequence
from reintegra.events import decode_internal, new_event
from reintegra.topics import CASE_STATUS, ELIGIBILITY_CASE_EVENTS, INTAKE_CASE_EVENTS
from scratch_schemas import scratch_pool


@pytest.fixture(scope="module")
async def pools(infra, tmp_path_factory):
    """Two services' schemas (say intake and eligibility)."""
    empty = tmp_path_factory.mktemp("no-service-migrations")
    async with scratch_pool(infra.database_url, "seq_a", empty) as a, \
            scratch_pool(infra.database_url, "seq_b", empty) as b:
        yield [a, b]


def status(case_id: str, type_: str) -> outbox.OutboxMessage:
    return outbox.cloud_event_message(CASE_STATUS, new_event(type_, "urn:test", case_id, {"case_id": case_id}))


async def publish(pool, messages) -> list[dict]:
    async with pool.acquire() as conn, conn.transaction():
        await outbox.add(conn, messages)
        rows = await conn.fetch("DELETE FROM outbox RETURNING seq, value")
    return [json.loads(r["value"]) for r in sorted(rows, key=lambda r: r["seq"])]


async def test_statuses_of_a_case_get_growing_numbers_across_batches_even_if_the_clock_goes_back(pools, monkeypatch):
    case_id = f"SEQ-{uuid.uuid4().hex[:8]}"
    first = await publish(pools[0], [status(case_id, "a.v1"), status(case_id, "b.v1")])
    numbers = [e["data"]["sequence"] for e in first]
    assert numbers[0] < numbers[1]
    monkeypatch.setattr(status_sequence, "now_us", lambda: 1_000)  # the clock stepped back by years
    later = await publish(pools[0], [status(case_id, "c.v1")])
    assert later[0]["data"]["sequence"] == numbers[1] + 1
    # Another case is not held back by this one's numbers.
    other = await publish(pools[0], [status(f"{case_id}-B", "a.v1")])
    assert other[0]["data"]["sequence"] == 1_000


async def test_a_service_whose_clock_is_behind_still_numbers_after_what_caused_it(pools, monkeypatch):
    case_id = f"SEQ-{uuid.uuid4().hex[:8]}"
    forwarded = outbox.cloud_event_message(INTAKE_CASE_EVENTS, new_event("x.v1", "urn:a", case_id, {}))
    accepted, sent_on = await publish(pools[0], [status(case_id, "accepted.v1"), forwarded])
    assert sent_on[status_sequence.CARRIED_ATTRIBUTE] == accepted["data"]["sequence"]

    # The next service reads the forwarded event (fresh_events does this), its clock an hour behind.
    event = decode_internal(jsonfast.dumps(sent_on))
    status_sequence.remember_carried([(event.subject, event.sequence)])
    real_now = status_sequence.now_us()
    monkeypatch.setattr(status_sequence, "now_us", lambda: real_now - 3_600_000_000)
    decided, passed_on = await publish(pools[1], [
        status(case_id, "approved.v1"), outbox.cloud_event_message(ELIGIBILITY_CASE_EVENTS,
                                                                   new_event("y.v1", "urn:b", case_id, {}))])
    assert decided["data"]["sequence"] == accepted["data"]["sequence"] + 1
    assert passed_on[status_sequence.CARRIED_ATTRIBUTE] == decided["data"]["sequence"]
    status_sequence.remember_carried([])


async def test_messages_of_other_topics_are_left_as_they_are(pools):
    message = outbox.OutboxMessage("reintegra.notifications.requests.v1", b"k", b"not json at all")
    async with pools[0].acquire() as conn, conn.transaction():
        await outbox.add(conn, [message])
        rows = await conn.fetch("DELETE FROM outbox RETURNING value")
    assert [bytes(r["value"]) for r in rows] == [b"not json at all"]
