"""The composition every service shares: settings, telemetry, broker, pool, migrations, relay.

A service's `app.py` names its schema and migrations, registers its batch handlers and its
background loops, and gets back a FastStream application that `faststream run` can start.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaProducer
from faststream import FastStream
from faststream.kafka import KafkaBroker
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from opentelemetry.sdk.trace import TracerProvider

from reintegra.consumer import BatchConsumer, BatchHandler, subscribe_batch
from reintegra.db import apply_migrations_async, create_pool
from reintegra.privacy import ScrubExceptionText
from reintegra.relay import OutboxRelay, new_producer
from reintegra.settings import Settings, load_settings
from reintegra.telemetry import configure_telemetry

log = logging.getLogger(__name__)
log.addFilter(ScrubExceptionText())  # tracebacks may quote personal data from a failed statement


@dataclass
class ServiceRuntime:
    """What handlers and background loops of one service process share."""

    name: str
    schema: str
    settings: Settings
    tracer_provider: TracerProvider
    broker: KafkaBroker
    pool: asyncpg.Pool | None = None
    producer: AIOKafkaProducer | None = None
    relay: OutboxRelay | None = None
    consumers: dict[str, BatchConsumer] = field(default_factory=dict)
    tasks: list[asyncio.Task] = field(default_factory=list)

    @property
    def db(self) -> asyncpg.Pool:
        assert self.pool is not None, "the service has not started"
        return self.pool


BackgroundLoop = Callable[[ServiceRuntime], Awaitable[None]]


class ServiceBuilder:
    def __init__(self, name: str, *, schema: str, migrations: Path, settings: Settings | None = None) -> None:
        self.settings = settings or load_settings()
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
        provider = configure_telemetry(name, self.settings.trace_dir, self.settings.trace_sample_ratio)
        broker = KafkaBroker(
            self.settings.kafka_bootstrap_servers,
            middlewares=[KafkaTelemetryMiddleware(tracer_provider=provider)],
            client_id=f"reintegra-{name}",
            log_level=logging.DEBUG,  # one "Received/Processed" line per batch is noise at INFO
        )
        self.runtime = ServiceRuntime(name, schema, self.settings, provider, broker)
        self._migrations = migrations
        self._background: list[BackgroundLoop] = []
        self._startup: list[BackgroundLoop] = []

    def consume(self, topic: str, handler: BatchHandler, *, title: str, description: str) -> BatchConsumer:
        consumer = BatchConsumer(lambda: self.runtime.db, self.settings, handler, self.runtime.name)
        self.runtime.consumers[topic] = consumer
        subscribe_batch(
            self.runtime.broker,
            topic=topic,
            group_id=f"reintegra-{self.runtime.name}",
            consumer=consumer,
            settings=self.settings,
            title=title,
            description=description,
        )
        return consumer

    def on_startup(self, hook: BackgroundLoop) -> None:
        self._startup.append(hook)

    def background(self, loop: BackgroundLoop) -> None:
        self._background.append(loop)

    def build(self) -> FastStream:
        runtime = self.runtime

        async def start() -> None:
            s = runtime.settings
            await apply_migrations_async(s.database_url, runtime.schema, self._migrations)
            runtime.pool = await create_pool(s.database_url, runtime.schema, s.db_pool_max)
            runtime.producer = new_producer(s.kafka_bootstrap_servers)
            await runtime.producer.start()
            runtime.relay = OutboxRelay(
                runtime.pool, runtime.producer, schema=runtime.schema,
                batch_size=s.relay_batch_size, idle_sleep_s=s.relay_idle_sleep_s,
            )
            for hook in self._startup:
                await hook(runtime)
            runtime.tasks.append(asyncio.create_task(runtime.relay.run(), name=f"{runtime.name}-relay"))
            for loop in self._background:
                runtime.tasks.append(asyncio.create_task(_supervised(loop, runtime), name=loop.__name__))
            log.info("%s started (schema %s)", runtime.name, runtime.schema)

        async def stop() -> None:
            for task in runtime.tasks:
                task.cancel()
            await asyncio.gather(*runtime.tasks, return_exceptions=True)
            if runtime.producer is not None:
                await runtime.producer.stop()
            if runtime.pool is not None:
                await runtime.pool.close()
            runtime.tracer_provider.shutdown()

        app = FastStream(runtime.broker, on_startup=[start], after_shutdown=[stop])
        app.runtime = runtime  # type: ignore[attr-defined]  # tests reach in for counters
        return app


async def _supervised(loop: BackgroundLoop, runtime: ServiceRuntime) -> None:
    """Background loops restart after an unexpected error instead of dying silently."""
    while True:
        try:
            await loop(runtime)
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s crashed; restarting in 1 s", loop.__name__)
            await asyncio.sleep(1.0)
