"""Inbox, outbox, relay and batch consumer against a real Postgres (and, for the relay, a real broker)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter, defaultdict

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord, TopicPartition
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from reintegra import inbox, outbox
from reintegra.consumer import BatchConsumer
from reintegra.db import apply_migrations, create_pool
from reintegra.errors import PermanentError, TransientError
from reintegra.inbox import Verdict
from reintegra.relay import OutboxRelay, new_producer
from reintegra.settings import Settings
from scratch_schemas import drop_schemas, new_schema

APPLY, DUPLICATE, CONFLICT = Verdict.APPLY, Verdict.DUPLICATE, Verdict.CONFLICT


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sdk_tracer() -> trace.Tracer:
    """A recording tracer; the global provider must be an SDK one for the relay's publish spans."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(TracerProvider())
    assert isinstance(trace.get_tracer_provider(), TracerProvider)
    return trace.get_tracer("test-plumbing")


@pytest.fixture(scope="module")
def schema(infra, tmp_path_factory) -> str:
    return new_schema(infra.database_url, "plumbing", tmp_path_factory.mktemp("no-service-migrations"))


@pytest.fixture(scope="module")
async def pool(infra, schema):
    pool = await create_pool(infra.database_url, schema, max_size=4)
    await pool.execute("CREATE TABLE applied (record_id text NOT NULL, value bytea)")
    try:
        yield pool
    finally:
        await pool.close()
        await drop_schemas(infra.database_url, schema)


@pytest.fixture(autouse=True)
async def clean(pool):
    await pool.execute("TRUNCATE inbox, outbox, applied")


async def claim(pool: asyncpg.Pool, events) -> list[Verdict]:
    async with pool.acquire() as conn, conn.transaction():
        return await inbox.claim(conn, events)


async def outbox_rows(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return await pool.fetch("SELECT * FROM outbox ORDER BY seq")


# --- migrations ---------------------------------------------------------------------------------


async def test_migrations_create_the_plumbing_tables_in_the_schema_only(pool, schema, infra, tmp_path):
    tables = await pool.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name", schema)
    assert {"inbox", "outbox", "applied"} <= {r["table_name"] for r in tables}
    # Applying again is a no-op (services run it at every start).
    await asyncio.to_thread(apply_migrations, infra.database_url, schema, tmp_path)
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 0


# --- inbox --------------------------------------------------------------------------------------


async def test_first_claim_applies_and_later_claims_are_duplicates(pool):
    assert await claim(pool, [("urn:a", "1", "h1"), ("urn:a", "2", None)]) == [APPLY, APPLY]
    assert await claim(pool, [("urn:a", "2", None), ("urn:a", "1", "h1"), ("urn:a", "3", "h3")]) == [
        DUPLICATE, DUPLICATE, APPLY]


async def test_same_event_twice_in_one_batch_is_applied_once(pool):
    assert await claim(pool, [("urn:a", "1", "h"), ("urn:a", "2", None), ("urn:a", "1", "h"),
                              ("urn:a", "2", None), ("urn:a", "1", "h")]) == [APPLY, APPLY, DUPLICATE, DUPLICATE,
                                                                               DUPLICATE]


async def test_identity_is_source_and_id(pool):
    assert await claim(pool, [("urn:a", "1", "h"), ("urn:b", "1", "h"), ("urn:a", "01", "h")]) == [APPLY] * 3


async def test_same_id_with_other_content_is_a_conflict_across_batches(pool):
    assert await claim(pool, [("urn:a", "1", "h1")]) == [APPLY]
    assert await claim(pool, [("urn:a", "1", "h2")]) == [CONFLICT]
    # The stored content stays the first one: the original is still recognised as a duplicate.
    assert await claim(pool, [("urn:a", "1", "h1"), ("urn:a", "1", "h2")]) == [DUPLICATE, CONFLICT]
    assert await pool.fetchval("SELECT content_hash FROM inbox WHERE source = 'urn:a' AND event_id = '1'") == "h1"


async def test_same_id_with_other_content_is_a_conflict_within_one_batch(pool):
    assert await claim(pool, [("urn:a", "1", "h1"), ("urn:a", "1", "h2"), ("urn:a", "1", "h1")]) == [
        APPLY, CONFLICT, DUPLICATE]
    assert await claim(pool, [("urn:a", "1", "h2")]) == [CONFLICT]


async def test_a_none_hash_never_conflicts(pool):
    # Stored without a hash: any later content is a duplicate, not a conflict.
    assert await claim(pool, [("urn:a", "1", None)]) == [APPLY]
    assert await claim(pool, [("urn:a", "1", "h1"), ("urn:a", "1", None)]) == [DUPLICATE, DUPLICATE]
    # Stored with a hash: a later claim without one is a duplicate.
    assert await claim(pool, [("urn:a", "2", "h2")]) == [APPLY]
    assert await claim(pool, [("urn:a", "2", None)]) == [DUPLICATE]
    # Within one batch, the first (None) hash is what is stored.
    assert await claim(pool, [("urn:a", "3", None), ("urn:a", "3", "h3")]) == [APPLY, DUPLICATE]
    assert await pool.fetchval("SELECT content_hash FROM inbox WHERE event_id = '3'") is None


async def test_empty_claim(pool):
    assert await claim(pool, []) == []


async def test_a_claim_rolled_back_with_its_transaction_can_be_claimed_again(pool):
    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with pool.acquire() as conn, conn.transaction():
            assert await inbox.claim(conn, [("urn:a", "1", "h"), ("urn:a", "2", None)]) == [APPLY, APPLY]
            raise Boom()
    assert await pool.fetchval("SELECT count(*) FROM inbox") == 0
    assert await claim(pool, [("urn:a", "1", "h"), ("urn:a", "2", None)]) == [APPLY, APPLY]


async def test_large_mixed_batch_keeps_input_order(pool):
    await claim(pool, [("urn:a", str(i), f"h{i}") for i in range(0, 1000, 2)])  # the even ones
    events = [("urn:a", str(i), f"h{i}" if i % 3 else "other") for i in range(1000)]
    verdicts = await claim(pool, events)
    for i, verdict in enumerate(verdicts):
        if i % 2 == 0:
            assert verdict is (DUPLICATE if i % 3 else CONFLICT), i
        else:
            assert verdict is APPLY, i


# --- outbox -------------------------------------------------------------------------------------


async def test_outbox_keeps_the_order_messages_were_added_in(pool):
    async with pool.acquire() as conn, conn.transaction():
        await outbox.add(conn, [outbox.OutboxMessage("t", b"k", f"first-{i}".encode()) for i in range(100)])
        await outbox.add(conn, [])
        await outbox.add(conn, [outbox.OutboxMessage("t", b"k", f"second-{i}".encode()) for i in range(100)])
    rows = await outbox_rows(pool)
    assert [bytes(r["value"]) for r in rows] == [f"first-{i}".encode() for i in range(100)] + [
        f"second-{i}".encode() for i in range(100)]
    seqs = [r["seq"] for r in rows]
    assert seqs == sorted(seqs) and len(set(seqs)) == 200


async def test_outbox_round_trips_keys_values_and_headers_byte_for_byte(pool):
    headers = [
        ("content-type", b"application/cloudevents+json"),
        ("binary", bytes(range(256))),
        ("not-utf8", b"\xff\xfe\x00\xc3\x28"),
        ("empty", b""),
        ("unicode", "réf ١٢٣".encode()),
        ("repeated", b"1"),
        ("repeated", b"2"),
    ]
    messages = [
        outbox.OutboxMessage("topic-a", b"\x00key\xff", b"\x80\x81 not json", headers),
        outbox.OutboxMessage("topic-b", None, b"", []),
    ]
    async with pool.acquire() as conn, conn.transaction():
        await outbox.add(conn, messages)
    first, second = await outbox_rows(pool)
    assert (first["topic"], bytes(first["key"]), bytes(first["value"])) == ("topic-a", b"\x00key\xff",
                                                                           b"\x80\x81 not json")
    assert outbox.decode_headers(first["headers"]) == headers
    assert (second["topic"], second["key"], bytes(second["value"])) == ("topic-b", None, b"")
    assert outbox.decode_headers(second["headers"]) == []


async def test_outbox_rolled_back_with_the_transaction(pool):
    with pytest.raises(RuntimeError):
        async with pool.acquire() as conn, conn.transaction():
            await outbox.add(conn, [outbox.OutboxMessage("t", None, b"x")])
            raise RuntimeError("state change failed")
    assert await outbox_rows(pool) == []


async def test_outbox_stores_the_trace_of_the_span_it_was_created_in(pool, sdk_tracer):
    with sdk_tracer.start_as_current_span("cause") as span:
        inside = outbox.OutboxMessage("t", b"k", b"inside")
        ctx = span.get_span_context()
    outside = outbox.OutboxMessage("t", b"k", b"outside")
    async with pool.acquire() as conn, conn.transaction():
        await outbox.add(conn, [inside, outside])
    first, second = await outbox_rows(pool)
    assert first["traceparent"] == f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"
    assert second["traceparent"] is None and second["tracestate"] is None


def test_cloud_event_message_is_keyed_by_subject_in_structured_mode():
    from reintegra.events import new_event

    event = new_event("t.v1", "urn:x", "CASE-1", {"a": "é"}, event_id="e-1")
    message = outbox.cloud_event_message("topic", event)
    assert message.key == b"CASE-1"
    assert json.loads(message.value) == event
    assert ("content-type", b"application/cloudevents+json") in message.headers


# --- relay against the real broker ----------------------------------------------------------------


async def test_relay_publishes_every_row_once_in_order_per_key_with_its_trace(pool, schema, infra, sdk_tracer):
    from reintegra_stack.topics import ensure_topics  # aiokafka admin: create, then wait for leaders

    topic = f"test.relay.{uuid.uuid4().hex[:10]}"
    await ensure_topics(infra.bootstrap_servers, partitions=3, topics=(topic,))

    keys = [f"CASE-{k}".encode() for k in range(10)]
    trace_of: dict[bytes, str] = {}
    messages = []
    for n in range(300):
        key = keys[(n * 7) % 10]  # keys interleaved
        with sdk_tracer.start_as_current_span(f"cause {n}") as span:
            value = json.dumps({"key": key.decode(), "n": n}).encode()
            messages.append(outbox.OutboxMessage(topic, key, value, [("x-bytes", b"\xff\x00" + bytes([n % 256]))]))
            trace_of[value] = f"{span.get_span_context().trace_id:032x}"
    async with pool.acquire() as conn, conn.transaction():
        for start in range(0, 300, 100):
            await outbox.add(conn, messages[start:start + 100])

    stored = {bytes(r["value"]): r["traceparent"].split("-")[1] for r in await outbox_rows(pool)}
    assert stored == trace_of  # each row carries the trace of the span it was created in

    producer = new_producer(infra.bootstrap_servers)
    await producer.start()
    try:
        relay = OutboxRelay(pool, producer, schema=schema, batch_size=64)
        sent = []
        for _ in range(20):
            n = await relay.relay_once()
            if n == 0:
                break
            sent.append(n)
    finally:
        await producer.stop()
    assert sum(sent) == 300 and max(sent) <= 64
    assert relay.published == 300
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 0

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=infra.bootstrap_servers, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    received = []
    try:
        deadline = time.monotonic() + 30
        while len(received) < 300 and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                received.extend(records)
        partitions = [TopicPartition(topic, p) for p in range(3)]
        end_offsets = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()

    assert sum(end_offsets.values()) == 300  # nothing more was written than the 300 rows
    values = [r.value for r in received]
    assert Counter(values) == Counter(m.value for m in messages)  # each row exactly once

    per_key: dict[bytes, list[int]] = defaultdict(list)
    partitions_of_key: dict[bytes, set[int]] = defaultdict(set)
    for record in received:
        body = json.loads(record.value)
        assert record.key.decode() == body["key"]
        per_key[record.key].append(body["n"])
        partitions_of_key[record.key].add(record.partition)
        headers = dict(record.headers)
        assert headers["x-bytes"] == b"\xff\x00" + bytes([body["n"] % 256])
        version, trace_id, span_id, flags = headers["traceparent"].decode().split("-")
        assert trace_id == stored[record.value]
    for key in keys:
        assert per_key[key] == sorted(per_key[key]) and len(per_key[key]) == 30
        assert len(partitions_of_key[key]) == 1


async def test_relay_on_an_empty_outbox_sends_nothing(pool, schema):
    class NoProducer:
        async def send(self, *args, **kwargs):  # pragma: no cover - must not be called
            raise AssertionError("nothing to send")

    relay = OutboxRelay(pool, NoProducer(), schema=schema)  # type: ignore[arg-type]
    assert await relay.relay_once() == 0


async def test_relay_keeps_rows_whose_send_failed(pool, schema):
    class FailingProducer:
        """The broker is unreachable: every batch submitted fails."""

        async def partitions_for(self, topic):
            return {0}

        def create_batch(self):
            class Batch:
                def append(self, **kwargs):
                    return object()

                def close(self):
                    pass

            return Batch()

        async def send_batch(self, batch, topic, *, partition):
            raise ConnectionError("broker down")

    async with pool.acquire() as conn, conn.transaction():
        await outbox.add(conn, [outbox.OutboxMessage("t", b"k", b"v1"), outbox.OutboxMessage("t", b"k", b"v2")])
    relay = OutboxRelay(pool, FailingProducer(), schema=schema)  # type: ignore[arg-type]
    with pytest.raises(ConnectionError):
        await relay.relay_once()
    assert [bytes(r["value"]) for r in await outbox_rows(pool)] == [b"v1", b"v2"]
    assert relay.published == 0


# --- batch consumer: poison isolation, dead letters, retries ------------------------------------------

TOPIC = "test.consumer.v1"


def record(offset: int, value: bytes, *, partition: int = 0, key: bytes | None = b"CASE-1",
           headers=(("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),)) -> ConsumerRecord:
    return ConsumerRecord(TOPIC, partition, offset, 1_700_000_000_000, 0, key, value, None,
                          len(key or b""), len(value), tuple(headers))


def record_id(r: ConsumerRecord) -> str:
    return f"{r.partition}:{r.offset}"


class Handler:
    """Applies each record once (inbox), fails for b"poison" (and b"permanent"), optionally flaky."""

    def __init__(self, transient_failures: int = 0) -> None:
        self.calls = 0
        self.transient_failures = transient_failures

    async def __call__(self, conn: asyncpg.Connection, records) -> None:
        self.calls += 1
        verdicts = await inbox.claim(conn, [(f"test:{r.topic}", record_id(r), None) for r in records])
        for r, verdict in zip(records, verdicts, strict=False):
            if verdict is not Verdict.APPLY:
                continue
            if r.value == b"poison":
                raise ValueError("cannot digest this record")
            if r.value == b"permanent":
                raise PermanentError("bad_shape", "this record can never be applied")
            await conn.execute("INSERT INTO applied (record_id, value) VALUES ($1, $2)", record_id(r), r.value)
        if self.calls <= self.transient_failures:
            raise TransientError("database briefly unavailable")


async def applied_counts(pool) -> Counter:
    return Counter({r["record_id"]: r["n"] for r in await pool.fetch(
        "SELECT record_id, count(*) AS n FROM applied GROUP BY record_id")})


async def test_a_poison_record_is_dead_lettered_and_the_rest_applied_once(pool):
    poison_headers = (("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
                      ("weird", b"\xff\xfe\xfd"))
    records = [record(10 + i, f"good-{i}".encode()) for i in range(5)]
    records.insert(3, record(99, b"poison", key=b"CASE-P", headers=poison_headers))
    handler = Handler()
    consumer = BatchConsumer(lambda: pool, Settings(), handler, "test")

    await consumer.process(records)

    good = [r for r in records if r.value != b"poison"]
    assert await applied_counts(pool) == Counter({record_id(r): 1 for r in good})
    [dead] = await outbox_rows(pool)
    assert dead["topic"] == f"{TOPIC}.dlq"
    assert bytes(dead["value"]) == b"poison" and bytes(dead["key"]) == b"CASE-P"
    headers = outbox.decode_headers(dead["headers"])
    assert headers[:2] == list(poison_headers)  # the original headers, byte for byte, first
    extra = dict(headers[2:])
    assert extra["reintegra-dlq-reason"] == b"processing_failed"
    assert b"ValueError" in extra["reintegra-dlq-message"] and b"cannot digest" in extra["reintegra-dlq-message"]
    assert extra["reintegra-dlq-service"] == b"test"
    assert extra["reintegra-original-topic"] == TOPIC.encode()
    assert extra["reintegra-original-partition"] == b"0"
    assert extra["reintegra-original-offset"] == b"99"
    assert consumer.batches == 1 and consumer.records == len(records)

    # The same batch again (offsets not committed before a crash): nothing twice.
    await consumer.process(records)
    assert await applied_counts(pool) == Counter({record_id(r): 1 for r in good})
    assert len(await outbox_rows(pool)) == 1


async def test_a_permanent_error_keeps_its_reason_in_the_dead_letter(pool):
    records = [record(1, b"good"), record(2, b"permanent"), record(3, b"poison")]
    consumer = BatchConsumer(lambda: pool, Settings(), Handler(), "test")
    await consumer.process(records)
    assert await applied_counts(pool) == Counter({"0:1": 1})
    dead = await outbox_rows(pool)
    assert [bytes(r["value"]) for r in dead] == [b"permanent", b"poison"]
    reasons = [dict(outbox.decode_headers(r["headers"]))["reintegra-dlq-reason"] for r in dead]
    assert reasons == [b"bad_shape", b"processing_failed"]


async def test_dead_letters_are_told_apart_by_partition_and_offset(pool):
    records = [record(5, b"poison", partition=0), record(5, b"poison", partition=1), record(6, b"poison")]
    consumer = BatchConsumer(lambda: pool, Settings(), Handler(), "test")
    await consumer.process(records)
    await consumer.process(records)
    rows = await outbox_rows(pool)
    positions = [(h["reintegra-original-partition"], h["reintegra-original-offset"])
                 for h in (dict(outbox.decode_headers(r["headers"])) for r in rows)]
    assert positions == [(b"0", b"5"), (b"1", b"5"), (b"0", b"6")]


async def test_a_transient_error_is_retried_and_the_batch_applied_once(pool):
    records = [record(i, f"v{i}".encode()) for i in range(4)]
    handler = Handler(transient_failures=2)
    settings = Settings(REINTEGRA_RETRY_ATTEMPTS=6, REINTEGRA_RETRY_MAX_SECONDS=30)
    consumer = BatchConsumer(lambda: pool, settings, handler, "test")
    await consumer.process(records)
    assert handler.calls == 3
    assert await applied_counts(pool) == Counter({record_id(r): 1 for r in records})
    assert await outbox_rows(pool) == []


async def test_a_transient_error_that_outlasts_the_retries_is_raised_and_nothing_is_applied(pool):
    records = [record(i, f"v{i}".encode()) for i in range(3)]
    handler = Handler(transient_failures=100)
    settings = Settings(REINTEGRA_RETRY_ATTEMPTS=2)
    consumer = BatchConsumer(lambda: pool, settings, handler, "test")
    with pytest.raises(TransientError):
        await consumer.process(records)
    assert handler.calls == 2
    assert await applied_counts(pool) == Counter()
    assert await outbox_rows(pool) == []
    assert await pool.fetchval("SELECT count(*) FROM inbox") == 0
    assert consumer.batches == 0


async def test_fresh_events_keeps_in_order_the_events_not_applied_before(pool):
    from reintegra.events import encode, new_event
    from reintegra.handling import fresh_events

    events = [new_event("t.v1", "urn:s", "CASE-1", {"n": i}, event_id=f"e-{i}") for i in range(3)]
    records = [record(i, encode(e)) for i, e in enumerate(events)] + [record(9, encode(events[1]))]  # a redelivery
    async with pool.acquire() as conn, conn.transaction():
        fresh = await fresh_events(conn, records)
    assert [(r.offset, e.event_id, e.data) for r, e in fresh] == [(0, "e-0", {"n": 0}), (1, "e-1", {"n": 1}),
                                                                   (2, "e-2", {"n": 2})]
    async with pool.acquire() as conn, conn.transaction():
        assert await fresh_events(conn, records) == []
    with pytest.raises(PermanentError):
        async with pool.acquire() as conn, conn.transaction():
            await fresh_events(conn, [record(20, b"{not an event")])


async def test_a_stopped_relay_hands_leadership_to_the_next_one(pool, schema):
    class IdleProducer:
        async def partitions_for(self, topic):  # pragma: no cover - the outbox is empty
            return {0}

    async def leader_within(relay: OutboxRelay, seconds: float) -> bool:
        task = asyncio.create_task(relay.run())
        try:
            for _ in range(int(seconds / 0.05)):
                await asyncio.sleep(0.05)
                holders = await pool.fetchval(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND pid <> pg_backend_pid() AND objid = hashtext($1)::oid",
                    f"reintegra-outbox-relay-{schema}",
                )
                if holders == 1 and not task.done():
                    return True
            return False
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    first = OutboxRelay(pool, IdleProducer(), schema=schema)  # type: ignore[arg-type]
    assert await leader_within(first, 5.0)
    # the first relay was cancelled (a service stopping): no pooled connection may keep its lock
    still_held = await pool.fetchval(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = hashtext($1)::oid",
        f"reintegra-outbox-relay-{schema}",
    )
    assert still_held == 0
    second = OutboxRelay(pool, IdleProducer(), schema=schema)  # type: ignore[arg-type]
    assert await leader_within(second, 5.0)


async def test_relay_uses_partitions_added_to_a_topic_without_a_restart(pool, schema, infra, monkeypatch):
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewPartitions
    from aiokafka.partitioner import DefaultPartitioner
    from reintegra import relay as relay_module
    from reintegra_stack.topics import ensure_topics

    if infra.broker_kind == "tansu":
        pytest.skip("Tansu does not implement CreatePartitions")
    topic = f"test.grow.{uuid.uuid4().hex[:10]}"
    await ensure_topics(infra.bootstrap_servers, partitions=1, topics=(topic,))
    monkeypatch.setattr(relay_module, "PARTITIONS_MAX_AGE_S", 0.0)
    keys = [f"CASE-{k}".encode() for k in range(20)]

    async def relay_all(relay: OutboxRelay) -> None:
        async with pool.acquire() as conn, conn.transaction():
            await outbox.add(conn, [outbox.OutboxMessage(topic, key, b"v") for key in keys])
        assert await relay.relay_once() == len(keys)

    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers, metadata_max_age_ms=500)
    await producer.start()
    try:
        relay = OutboxRelay(pool, producer, schema=schema)  # one relay, as in a running service
        await relay_all(relay)
        admin = AIOKafkaAdminClient(bootstrap_servers=infra.bootstrap_servers)
        await admin.start()
        try:
            await admin.create_partitions({topic: NewPartitions(total_count=3)})
        finally:
            await admin.close()
        deadline = time.monotonic() + 20
        while len(await producer.partitions_for(topic)) < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        await relay_all(relay)
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(bootstrap_servers=infra.bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(3)])
    finally:
        await consumer.stop()
    expected = Counter(DefaultPartitioner()(key, [0, 1, 2], [0, 1, 2]) for key in keys)
    # the first round all on partition 0; the second spread over 3 as the Java client would
    assert {tp.partition: n for tp, n in ends.items()} == {p: expected[p] + (len(keys) if p == 0 else 0) for p in range(3)}


async def test_a_relay_whose_lock_session_died_stops_publishing_beside_the_new_leader(pool, schema, infra):
    """The leader's lock session is killed (a network blip, a DBA): another relay takes the lock. The
    old leader must stop, or both publish the same rows (duplicates arriving after newer events)."""
    from reintegra_stack.topics import ensure_topics

    topic = f"test.relay-fence.{uuid.uuid4().hex[:10]}"
    await ensure_topics(infra.bootstrap_servers, partitions=1, topics=(topic,))
    lock_key = f"reintegra-outbox-relay-{schema}"

    async def lock_holders() -> list[int]:
        rows = await pool.fetch("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                                "AND objid = hashtext($1)::oid", lock_key)
        return [r["pid"] for r in rows]

    producer = new_producer(infra.bootstrap_servers)
    await producer.start()
    instance_pools = [await create_pool(infra.database_url, schema, max_size=3) for _ in range(2)]  # two services
    relays = [OutboxRelay(p, producer, schema=schema, batch_size=20, idle_sleep_s=0.001) for p in instance_pools]
    first = asyncio.create_task(relays[0].run())
    second = None
    try:
        for _ in range(100):
            if await lock_holders():
                break
            await asyncio.sleep(0.05)
        [old_session] = await lock_holders()
        await pool.execute("SELECT pg_terminate_backend($1)", old_session)
        second = asyncio.create_task(relays[1].run())
        for _ in range(100):
            holders = await lock_holders()
            if holders and holders != [old_session]:
                break
            await asyncio.sleep(0.05)
        values = [json.dumps({"n": n}).encode() for n in range(600)]
        for start in range(0, len(values), 20):
            async with pool.acquire() as conn, conn.transaction():
                await outbox.add(conn, [outbox.OutboxMessage(topic, b"CASE-1", v) for v in values[start:start + 20]])
            await asyncio.sleep(0.005)
        for _ in range(400):
            if await pool.fetchval("SELECT count(*) FROM outbox") == 0:
                break
            await asyncio.sleep(0.05)
        assert await pool.fetchval("SELECT count(*) FROM outbox") == 0
    finally:
        for task in (first, second):
            if task is not None:
                task.cancel()
        await asyncio.wait([t for t in (first, second) if t is not None], timeout=10)
        await producer.stop()
        for instance_pool in instance_pools:
            instance_pool.terminate()

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=infra.bootstrap_servers, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        end = (await consumer.end_offsets([TopicPartition(topic, 0)]))[TopicPartition(topic, 0)]
        received = []
        deadline = time.monotonic() + 30
        while len(received) < end and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                received.extend(r.value for r in records)
    finally:
        await consumer.stop()
    assert end == len(values), f"{end - len(values)} rows were published twice"
    assert received == values  # once each, in order
