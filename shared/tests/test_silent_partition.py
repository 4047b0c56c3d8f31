"""A silent partition between a service and Postgres (no FIN, no RST: bench/chaos/proxy.py's
`partition` mode) must cost a bounded outage, not freeze the service: queries fail within the
command timeout, the pool comes back once the network does, and the sessions of the vanished client
end on the server, releasing the locks they held (a batch's per-case locks, the relay's leadership)."""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg
import pytest
from reintegra import outbox
from reintegra.db import PoolHealth, apply_migrations, connection_params, create_pool
from reintegra.relay import OutboxRelay

from bench.chaos.proxy import FaultProxy

# Small bounds, so that the test takes seconds; production defaults are in PoolHealth.
HEALTH = PoolHealth(command_timeout_s=1.0, connect_timeout_s=1.0, idle_in_transaction_timeout_s=1.5,
                    idle_session_timeout_s=2.0)
HANG = 20.0  # what "frozen" means here: far beyond every bound above


@pytest.fixture(scope="module")
def schema(infra, tmp_path_factory) -> str:
    name = f"partition_{uuid.uuid4().hex[:12]}"
    apply_migrations(infra.database_url, name, tmp_path_factory.mktemp("no-service-migrations"))
    return name


@pytest.fixture
def proxy(infra):
    params = connection_params(infra.database_url)
    if params.get("host", "/").startswith("/"):
        pytest.skip("Postgres is reached through a Unix socket here: nothing to proxy")
    proxy = FaultProxy("postgres", target=(params["host"], int(params.get("port", 5432)))).start()
    try:
        yield proxy
    finally:
        proxy.stop()


def through(proxy: FaultProxy, database_url: str) -> str:
    params = connection_params(database_url)
    return (f"postgresql://{params.get('user', 'postgres')}@127.0.0.1:{proxy.port}/{params['dbname']}"
            + (f"?password={params['password']}" if params.get("password") else ""))


async def direct_pool(infra, schema) -> asyncpg.Pool:
    return await create_pool(infra.database_url, schema, max_size=2, health=HEALTH)


async def test_a_query_on_a_silently_partitioned_connection_fails_in_bounded_time_and_the_pool_recovers(
        infra, schema, proxy):
    pool = await create_pool(through(proxy, infra.database_url), schema, max_size=2, health=HEALTH)
    try:
        assert await pool.fetchval("SELECT 1") == 1
        await asyncio.to_thread(proxy.set_mode, "partition")
        started = time.monotonic()
        with pytest.raises((TimeoutError, OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError)):
            async with asyncio.timeout(HANG):
                await pool.fetchval("SELECT 1")
        waited = time.monotonic() - started
        assert waited < 5.0, f"the query waited {waited:.1f} s on a dead connection"
        await asyncio.to_thread(proxy.set_mode, "pass")
        deadline = time.monotonic() + 10
        while True:  # the caller retries, as every consumer does on a transient error
            try:
                assert await pool.fetchval("SELECT 2") == 2
                break
            except (TimeoutError, OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError):
                assert time.monotonic() < deadline, "the pool never recovered after the partition ended"
                await asyncio.sleep(0.2)
    finally:
        pool.terminate()


async def test_the_sessions_of_a_vanished_client_end_and_release_their_locks(infra, schema, proxy):
    key_in_transaction, key_of_session = 7_000_001, 7_000_002
    vanishing = await create_pool(through(proxy, infra.database_url), schema, max_size=2, health=HEALTH)
    observer = await direct_pool(infra, schema)
    try:
        in_batch = await vanishing.acquire()
        relay_like = await vanishing.acquire()
        transaction = in_batch.transaction()
        await transaction.start()
        await in_batch.execute("SELECT pg_advisory_xact_lock($1)", key_in_transaction)  # a batch's per-case lock
        await relay_like.execute("SELECT pg_advisory_lock($1)", key_of_session)  # the relay's leadership
        await asyncio.to_thread(proxy.set_mode, "partition")  # the client is gone; the server is not told

        async def free(key: int) -> bool:
            return await observer.fetchval(
                "SELECT pg_try_advisory_lock($1) AND pg_advisory_unlock($1)", key)

        deadline = time.monotonic() + HANG
        while not (await free(key_in_transaction) and await free(key_of_session)):
            assert time.monotonic() < deadline, "a vanished client's session kept its locks"
            await asyncio.sleep(0.2)
        assert time.monotonic() < deadline - HANG + 6.0, "the locks were released, but only late"
    finally:
        vanishing.terminate()
        await observer.close()


async def test_a_relay_whose_leader_session_went_silent_hands_over_and_the_outbox_drains(infra, schema, proxy):
    published: list[bytes] = []

    class RecordingProducer:
        async def partitions_for(self, topic):
            return {0}

        def create_batch(self):
            return _Batch()

        async def send_batch(self, batch, topic, partition):
            published.extend(batch.values)
            future = asyncio.get_running_loop().create_future()
            future.set_result(None)
            return future

    silent = await create_pool(through(proxy, infra.database_url), schema, max_size=2, health=HEALTH)
    healthy = await direct_pool(infra, schema)
    relays = [OutboxRelay(p, RecordingProducer(), schema=schema, idle_sleep_s=0.01)  # type: ignore[arg-type]
              for p in (silent, healthy)]
    first = asyncio.create_task(relays[0].run())
    second = None
    try:
        deadline = time.monotonic() + 10
        while not await healthy.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objid = hashtext($1)::oid",
                f"reintegra-outbox-relay-{schema}"):
            assert time.monotonic() < deadline, "the first relay never led"
            await asyncio.sleep(0.05)
        await asyncio.to_thread(proxy.set_mode, "partition")
        second = asyncio.create_task(relays[1].run())
        values = [f"row-{n}".encode() for n in range(50)]
        async with healthy.acquire() as conn, conn.transaction():
            await outbox.add(conn, [outbox.OutboxMessage("test.partition", b"CASE-1", v) for v in values])
        deadline = time.monotonic() + HANG
        while await healthy.fetchval("SELECT count(*) FROM outbox"):
            assert time.monotonic() < deadline, "the outbox stayed undrained behind a silent leader"
            await asyncio.sleep(0.1)
        assert published == values
    finally:
        for task in (first, second):
            if task is not None:
                task.cancel()
        await asyncio.wait([t for t in (first, second) if t is not None], timeout=10)
        silent.terminate()
        await healthy.close()


class _Batch:
    def __init__(self) -> None:
        self.values: list[bytes] = []

    def append(self, *, key, value, timestamp, headers):
        self.values.append(value)
        return True

    def close(self) -> None:
        pass
