"""At-least-once batch consumption: one Postgres transaction per batch, offsets committed after it.

Flow for each batch fetched from Kafka:
1. the service's handler runs over the whole batch in one transaction (inbox check, effects,
   outbox rows); transient failures are retried with tenacity, bounded well below
   max_poll_interval_ms;
2. if it fails for a non-transient reason, the batch is replayed record by record, each in its own
   transaction, and a record that still fails goes to `<topic>.dlq` with the reason, so one poison
   record neither fails nor blocks the records around it;
3. only then are the offsets committed. If the database stays unreachable past the retry budget,
   every partition of the batch is rewound (nack) after a pause, and nothing is committed.

An exception's message may quote a row (`Key (phone)=(…) already exists`): what this module logs or
writes into a dead letter's headers is scrubbed (reintegra.privacy), tracebacks included.

Crash points (reintegra.crash; the subject is the key of the batch's first record):
`consumer.in_transaction` after the handler ran, before its transaction commits;
`consumer.after_db_commit` after the batch's transactions committed, before its offsets are;
`consumer.mid_batch` while a failed batch is replayed record by record, after the first record.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg
from aiokafka import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, stop_after_delay, wait_exponential_jitter

from reintegra import inbox, outbox
from reintegra.crash import crash_point
from reintegra.errors import PermanentError, is_transient
from reintegra.events import utc_now_iso
from reintegra.privacy import ScrubExceptionText, describe_exception, scrub
from reintegra.settings import Settings
from reintegra.topics import dead_letter_topic

log = logging.getLogger(__name__)
log.addFilter(ScrubExceptionText())  # tracebacks of log.exception / exc_info=True, scrubbed

IN_TRANSACTION = "consumer.in_transaction"
AFTER_DB_COMMIT = "consumer.after_db_commit"
MID_BATCH = "consumer.mid_batch"

BatchHandler = Callable[[asyncpg.Connection, Sequence[ConsumerRecord]], Awaitable[None]]


def dead_letter_message(record: ConsumerRecord, reason: str, message: str, service: str) -> outbox.OutboxMessage:
    """The original bytes and headers, plus why and where from, on `<topic>.dlq` (the message scrubbed:
    the original bytes are there for whoever needs the data)."""
    headers = list(record.headers or ()) + [
        ("reintegra-dlq-reason", reason.encode()),
        ("reintegra-dlq-message", scrub(message)[:2000].encode(errors="replace")),
        ("reintegra-dlq-service", service.encode()),
        ("reintegra-original-topic", record.topic.encode()),
        ("reintegra-original-partition", str(record.partition).encode()),
        ("reintegra-original-offset", str(record.offset).encode()),
        ("reintegra-failed-at", utc_now_iso().encode()),
    ]
    return outbox.OutboxMessage(dead_letter_topic(record.topic), record.key, record.value or b"", headers)


async def dead_letter(conn: asyncpg.Connection, record: ConsumerRecord, reason: str, message: str, service: str) -> None:
    # The record's position is its identity here: it may be too broken to have any other.
    verdicts = await inbox.claim(conn, [(f"kafka:{record.topic}:{record.partition}", str(record.offset), None)])
    if verdicts[0] is inbox.Verdict.APPLY:
        await outbox.add(conn, [dead_letter_message(record, reason, message, service)])


class BatchConsumer:
    def __init__(
        self, pool_source: Callable[[], asyncpg.Pool], settings: Settings, handler: BatchHandler, service: str
    ) -> None:
        self._pool_source = pool_source  # a callable: the pool exists only once the service has started
        self._settings = settings
        self._handler = handler
        self._service = service
        self.batches = 0
        self.records = 0
        self.busy_seconds = 0.0
        self._last_report = time.monotonic()
        self._reported = (0, 0, 0.0)

    def _retrying(self) -> AsyncRetrying:
        return AsyncRetrying(
            retry=retry_if_exception(is_transient),
            stop=stop_after_attempt(self._settings.retry_attempts) | stop_after_delay(self._settings.retry_max_seconds),
            wait=wait_exponential_jitter(multiplier=0.1, max=5.0),
            reraise=True,
        )

    async def _in_transaction(self, work: Callable[[asyncpg.Connection], Awaitable[None]]) -> None:
        async for attempt in self._retrying():
            with attempt:
                async with self._pool_source().acquire() as conn, conn.transaction():
                    await work(conn)

    async def _apply(self, records: Sequence[ConsumerRecord]) -> None:
        async def work(conn: asyncpg.Connection) -> None:
            await self._handler(conn, records)
            crash_point(IN_TRANSACTION, _subject(records))

        await self._in_transaction(work)

    async def process(self, records: Sequence[ConsumerRecord]) -> None:
        """Apply a batch; raises only when a transient failure outlasts the retry budget."""
        started = time.monotonic()
        try:
            await self._apply(records)
        except Exception as exc:
            if is_transient(exc):
                raise
            log.warning("batch of %d failed (%s); isolating the failing record", len(records),
                        describe_exception(exc))
            subject = _subject(records)
            for n, record in enumerate(records):
                if n:
                    crash_point(MID_BATCH, subject)
                await self._process_alone(record)
        self.batches += 1
        self.records += len(records)
        self.busy_seconds += time.monotonic() - started
        self._report_throughput()

    def _report_throughput(self) -> None:
        """Every 10 s of activity, one log line an SRE can read: rate, batch size, time per batch."""
        now = time.monotonic()
        if now - self._last_report < self._settings.stats_interval_s:
            return
        batches, records, busy = (self.batches - self._reported[0], self.records - self._reported[1],
                                  self.busy_seconds - self._reported[2])
        log.info("%s: %d records in %d batches (avg %.0f/batch, %.1f ms/batch, %.0f records/s)",
                 self._service, records, batches, records / max(batches, 1), 1000 * busy / max(batches, 1),
                 records / (now - self._last_report))
        self._last_report = now
        self._reported = (self.batches, self.records, self.busy_seconds)

    async def _process_alone(self, record: ConsumerRecord) -> None:
        try:
            await self._apply([record])
        except Exception as exc:
            if is_transient(exc):
                raise
            reason = exc.reason if isinstance(exc, PermanentError) else "processing_failed"
            message = describe_exception(exc)
            log.error("dead-lettering %s[%d]@%d: %s", record.topic, record.partition, record.offset, message)
            await self._in_transaction(lambda conn: dead_letter(conn, record, reason, message, self._service))

    async def on_batch(self, message: Any) -> None:
        records: tuple[ConsumerRecord, ...] = message.raw_message
        if not records:
            return
        try:
            await self.process(records)
        except Exception:
            log.exception("batch not applied; rewinding its partitions to retry")
            await asyncio.sleep(1.0)
            await message.nack()
            return
        crash_point(AFTER_DB_COMMIT, _subject(records))
        try:
            await message.ack()
        except Exception:  # a rebalance took the partitions; the new owner's inbox skips what we applied
            log.warning("offset commit failed after applying a batch", exc_info=True)


def _subject(records: Sequence[ConsumerRecord]) -> str:
    """A crash point's subject: the first record's key (a case id), decoded; one per batch."""
    key = records[0].key if records else None
    return key.decode(errors="replace") if key else ""


def _decode_header_safely(record: ConsumerRecord) -> ConsumerRecord:
    headers = tuple((name, value if _is_utf8(value) else b"") for name, value in record.headers or ())
    return dataclasses.replace(record, headers=headers)


def _is_utf8(value: bytes | None) -> bool:
    try:
        (value or b"").decode()
        return True
    except UnicodeDecodeError:
        return False


async def _lean_batch_parser(records: tuple[ConsumerRecord, ...], original_parser: Callable) -> Any:
    """FastStream decodes every header of every record (and fails the whole batch on one non-UTF-8
    header); our handlers read the raw records and open one span per record themselves. So let
    FastStream see only the first record, sanitised, and hand the handler the original batch."""
    message = await original_parser((_decode_header_safely(records[0]),))
    message.raw_message = records
    return message


async def _raw_decoder(message: Any) -> Any:
    return None  # handlers read message.raw_message; skip FastStream's JSON decoding of each body


def subscribe_batch(
    broker: KafkaBroker,
    *,
    topic: str,
    group_id: str,
    consumer: BatchConsumer,
    settings: Settings,
    title: str,
    description: str,
) -> None:
    async def on_batch(body: Any, message: KafkaMessage) -> None:
        await consumer.on_batch(message)

    on_batch.__name__ = f"on_{title}"
    broker.subscriber(
        topic,
        group_id=group_id,
        batch=True,
        max_records=settings.batch_max_records,
        batch_timeout_ms=settings.batch_timeout_ms,
        auto_offset_reset="earliest",
        fetch_min_bytes=settings.fetch_min_bytes,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        ack_policy=AckPolicy.MANUAL,
        session_timeout_ms=settings.session_timeout_ms,
        heartbeat_interval_ms=settings.heartbeat_interval_ms,
        max_poll_interval_ms=300_000,
        parser=_lean_batch_parser,
        decoder=_raw_decoder,
        title=title,
        description=description,
    )(on_batch)
