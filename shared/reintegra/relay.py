"""Outbox relay: publishes outbox rows in order, restoring each row's trace context."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Iterable

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    InvalidTopicError,
    MessageSizeTooLargeError,
    RecordTooLargeError,
    TopicAuthorizationFailedError,
)
from aiokafka.partitioner import DefaultPartitioner
from opentelemetry import trace

from reintegra.crash import crash_point
from reintegra.outbox import decode_headers
from reintegra.privacy import ScrubExceptionText, describe_exception
from reintegra.telemetry import context_from_traceparent, current_trace_carrier, is_unsampled, tracer

log = logging.getLogger(__name__)
log.addFilter(ScrubExceptionText())  # tracebacks may quote personal data from a failed statement
_PARTITIONER = DefaultPartitioner()
PARTITIONS_MAX_AGE_S = 60.0
REFUSED_FOR_GOOD = (MessageSizeTooLargeError, RecordTooLargeError, InvalidTopicError, TopicAuthorizationFailedError)


def new_producer(bootstrap_servers: str) -> AIOKafkaProducer:
    # acks=all for durability; no idempotent producer because Tansu (the fallback broker) rejects it.
    # Duplicates from a retried send are harmless: every consumer has an inbox.
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        acks="all",
        linger_ms=5,
        max_batch_size=256 * 1024,
        max_request_size=8 * 1024 * 1024,  # dead letters may exceed the upstream size limit
        request_timeout_ms=30_000,
        metadata_max_age_ms=60_000,  # partitions added to a topic are seen within a minute
    )


async def send_as_record_batches(
    producer: AIOKafkaProducer, topic: str, partition: int,
    records: Iterable[tuple[bytes | None, bytes, list[tuple[str, bytes]]]],
) -> list[asyncio.Future]:
    """(key, value, headers) records, in order, as few record batches as fit: far cheaper than a
    send() per record. Returns the delivery futures of the batches."""
    deliveries = []
    batch = producer.create_batch()
    for key, value, headers in records:
        if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
            batch.close()
            deliveries.append(await producer.send_batch(batch, topic, partition=partition))
            batch = producer.create_batch()
            batch.append(key=key, value=value, timestamp=None, headers=headers)
    batch.close()
    deliveries.append(await producer.send_batch(batch, topic, partition=partition))
    return deliveries


@functools.lru_cache(maxsize=65_536)
def partition_for_key(key: bytes, partition_count: int) -> int:
    """The Java client's murmur2 partitioner, as producers upstream use: same key, same partition.
    Cached: a case's key recurs in several rows, and murmur2 is pure Python in aiokafka."""
    partitions = list(range(partition_count))
    return _PARTITIONER(key, partitions, partitions)


@functools.lru_cache(maxsize=1024)
def _decoded_headers(stored: str) -> tuple[tuple[str, bytes], ...]:
    # Most rows share one of a few header sets (content-type only), so decoding is cached.
    return tuple(decode_headers(stored))


class OutboxRelay:
    """One relay per schema publishes at a time (an advisory lock held by the very session that
    reads and deletes the rows), so per-key order holds."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        producer: AIOKafkaProducer,
        *,
        schema: str,
        batch_size: int = 1000,
        idle_sleep_s: float = 0.02,
    ) -> None:
        self._pool = pool
        self._producer = producer
        self._lock_key = f"reintegra-outbox-relay-{schema}"
        self._batch_size = batch_size
        self._idle_sleep_s = idle_sleep_s
        self.published = 0
        self._partitions: dict[str, list[int]] = {}
        self._partitions_read_at = 0.0

    async def run(self) -> None:
        while True:
            try:
                async with self._pool.acquire() as leader_conn:
                    if not await leader_conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", self._lock_key):
                        await asyncio.sleep(1.0)  # another replica is relaying
                        continue
                    try:
                        await self._relay_while_leader(leader_conn)
                    finally:
                        await self._give_up_leadership(leader_conn)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay failed; retrying in 1 s")
                await asyncio.sleep(1.0)

    async def _give_up_leadership(self, leader_conn: asyncpg.Connection) -> None:
        try:
            await leader_conn.execute("SELECT pg_advisory_unlock(hashtext($1))", self._lock_key)
        except BaseException:
            # Unlock failed or was cancelled: end the session, which releases its lock, rather than
            # return to the pool a connection that would hold the leadership forever. A pool being
            # closed may already have taken the connection back (and ended it): nothing to do then.
            try:
                leader_conn.terminate()
            except asyncpg.InterfaceError:
                pass
            raise

    async def _relay_while_leader(self, leader_conn: asyncpg.Connection) -> None:
        # Every read and delete goes through the session that holds the lock: if that session dies
        # (and another relay takes the lock), the next read fails and this relay stops, instead of
        # publishing beside the new leader through other connections.
        while True:
            sent = await self.relay_once(leader_conn)
            if sent == 0:
                await asyncio.sleep(self._idle_sleep_s)

    async def relay_once(self, conn: asyncpg.Connection | None = None) -> int:
        if conn is None:
            async with self._pool.acquire() as conn:
                return await self._relay_batch(conn)
        return await self._relay_batch(conn)

    async def _relay_batch(self, conn: asyncpg.Connection) -> int:
        rows = await conn.fetch(
            "SELECT seq, topic, key, value, headers, traceparent, tracestate FROM outbox ORDER BY seq LIMIT $1",
            self._batch_size,
        )
        if not rows:
            return 0
        try:
            await asyncio.gather(*await self._send_in_batches(rows))
        except REFUSED_FOR_GOOD:
            # One row the broker will never take must not stop the others: find it, set it aside.
            await self._send_one_by_one(conn, rows)
        crash_point("relay.after_publish", (rows[0]["key"] or b"").decode(errors="replace"))
        await conn.execute("DELETE FROM outbox WHERE seq = ANY($1::bigint[])", [r["seq"] for r in rows])
        self.published += len(rows)
        return len(rows)

    async def _send_one_by_one(self, conn: asyncpg.Connection, rows: list[asyncpg.Record]) -> None:
        for row in rows:
            try:
                await (await self._producer.send(row["topic"], value=row["value"], key=row["key"],
                                                 headers=self._headers_with_trace(row)))
            except REFUSED_FOR_GOOD as exc:
                log.error("broker refused outbox row %d for %s for good (%s); moved to outbox_refused",
                          row["seq"], row["topic"], describe_exception(exc))
                await conn.execute(
                    """
                    INSERT INTO outbox_refused (seq, topic, key, value, headers, traceparent, tracestate, error, created_at)
                    SELECT seq, topic, key, value, headers, traceparent, tracestate, $2, created_at
                    FROM outbox WHERE seq = $1 ON CONFLICT DO NOTHING
                    """,
                    row["seq"], describe_exception(exc),
                )

    async def _send_in_batches(self, rows: list[asyncpg.Record]) -> list[asyncio.Future]:
        """One record batch per partition, filled in seq order: far cheaper than a send() per row,
        and it keeps each key's order (a key always maps to the same partition)."""
        by_partition: dict[tuple[str, int], list[asyncpg.Record]] = {}
        for row in rows:
            partition = await self._partition_of(row["topic"], row["key"])
            by_partition.setdefault((row["topic"], partition), []).append(row)
        deliveries = []
        for (topic, partition), partition_rows in by_partition.items():
            records = ((row["key"], row["value"], self._headers_with_trace(row)) for row in partition_rows)
            deliveries += await send_as_record_batches(self._producer, topic, partition, records)
        return deliveries

    async def _partition_of(self, topic: str, key: bytes | None) -> int:
        if time.monotonic() - self._partitions_read_at > PARTITIONS_MAX_AGE_S:
            # Re-read what the producer knows (its metadata is at most a minute old), so that partitions
            # added to a topic are used within two minutes, without a restart.
            self._partitions.clear()
            self._partitions_read_at = time.monotonic()
        partitions = self._partitions.get(topic)
        if partitions is None:
            partitions = self._partitions[topic] = sorted(await self._producer.partitions_for(topic))
        return partition_for_key(key, len(partitions)) if key is not None else _PARTITIONER(key, partitions, partitions)

    def _headers_with_trace(self, row: asyncpg.Record) -> list[tuple[str, bytes]]:
        headers = list(_decoded_headers(row["headers"]))
        # Rows that carry their own trace headers (dead letters keep the original record's) keep them.
        if any(name == "traceparent" for name, _ in headers) or not row["traceparent"]:
            return headers
        if is_unsampled(row["traceparent"]):
            # Nothing of this trace is recorded: pass its context on as is, without a span.
            headers.append(("traceparent", row["traceparent"].encode()))
            if row["tracestate"]:
                headers.append(("tracestate", row["tracestate"].encode()))
            return headers
        parent = context_from_traceparent(row["traceparent"], row["tracestate"])
        with tracer().start_as_current_span(
            f"{row['topic']} publish",
            context=parent,
            kind=trace.SpanKind.PRODUCER,
            attributes={"messaging.system": "kafka", "messaging.destination.name": row["topic"]},
        ):
            return headers + [(name, value.encode()) for name, value in current_trace_carrier().items()]
