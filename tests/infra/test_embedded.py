"""Real-process tests for reintegra_stack.embedded (Kafka via Java, Tansu, embedded Postgres)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from reintegra_stack.embedded import RunningBroker, RunningPostgres, start_broker, start_postgres

HAVE_JAVA_MVN = shutil.which("java") is not None and shutil.which("mvn") is not None
needs_java = pytest.mark.skipif(
    not HAVE_JAVA_MVN, reason="Apache Kafka embedded broker needs `java` (17+) and `mvn` on PATH"
)


@pytest.fixture(autouse=True)
def _no_external_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "REINTEGRA_BROKER"):
        monkeypatch.delenv(var, raising=False)


def _pid_gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return True
    return state == "Z"


async def _produce(bootstrap: str, topic: str, key: bytes, value: bytes) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key, partition=1)
    finally:
        await producer.stop()


async def _consume_all(bootstrap: str, topic: str, want: int, timeout: float = 30.0) -> list[tuple[bytes, bytes]]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"g-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
    )
    await consumer.start()
    got: list[tuple[bytes, bytes]] = []
    try:
        deadline = time.monotonic() + timeout
        while len(got) < want and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                got.extend((r.key, r.value) for r in records)
    finally:
        await consumer.stop()
    return got


async def _create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()


async def _describe_partitions(bootstrap: str, topic: str) -> int:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        assert topic in await admin.list_topics()
        (desc,) = await admin.describe_topics([topic])
        return len(desc["partitions"])
    finally:
        await admin.close()


@needs_java
async def test_kafka_roundtrip_and_restart_keeps_data(tmp_path: Path) -> None:
    state = tmp_path / "state"
    t0 = time.monotonic()
    # from a worker thread on purpose: the child must outlive that thread (PDEATHSIG is per-thread)
    broker = await asyncio.to_thread(start_broker, state, "kafka")
    print(f"kafka first start (incl. jar check + format): {time.monotonic() - t0:.1f}s")
    try:
        assert isinstance(broker, RunningBroker)
        assert broker.kind == "kafka"
        assert broker.bootstrap_servers.startswith("127.0.0.1:")
        topic = "reintegra.test.events"
        await _create_topic(broker.bootstrap_servers, topic, 3)
        assert await _describe_partitions(broker.bootstrap_servers, topic) == 3
        await _produce(broker.bootstrap_servers, topic, b"k1", b"hello")
        assert await _consume_all(broker.bootstrap_servers, topic, 1) == [(b"k1", b"hello")]
        first_bootstrap = broker.bootstrap_servers
        pid = broker.pid
    finally:
        broker.stop()
    broker.stop()  # idempotent
    assert pid is not None and _pid_gone(pid)

    t0 = time.monotonic()
    broker = await asyncio.to_thread(start_broker, state, "kafka")
    print(f"kafka restart: {time.monotonic() - t0:.1f}s")
    try:
        assert broker.bootstrap_servers == first_bootstrap  # ports.json reused
        assert await _describe_partitions(broker.bootstrap_servers, topic) == 3
        assert await _consume_all(broker.bootstrap_servers, topic, 1) == [(b"k1", b"hello")]
    finally:
        broker.stop()


async def test_tansu_roundtrip(tmp_path: Path) -> None:
    broker = await asyncio.to_thread(start_broker, tmp_path / "state", "tansu")
    try:
        assert broker.kind == "tansu"
        topic = "reintegra.tansu.test"
        await _create_topic(broker.bootstrap_servers, topic, 3)
        await _produce(broker.bootstrap_servers, topic, b"k", b"v")
        assert await _consume_all(broker.bootstrap_servers, topic, 1) == [(b"k", b"v")]
    finally:
        broker.stop()
    assert broker.pid is not None and _pid_gone(broker.pid)


def test_env_override_selects_tansu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REINTEGRA_BROKER", "tansu")
    broker = start_broker(tmp_path, "kafka")
    try:
        assert broker.kind == "tansu"
    finally:
        broker.stop()


def test_external_services_start_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker.example:9092")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@db.example:5432/x")
    broker = start_broker(tmp_path)
    pg = start_postgres(tmp_path)
    assert (broker.kind, broker.bootstrap_servers, broker.pid) == ("external", "broker.example:9092", None)
    assert (pg.kind, pg.url, pg.pid) == ("external", "postgresql://u:p@db.example:5432/x", None)
    broker.stop()
    pg.stop()
    assert not any(tmp_path.iterdir())


def test_children_die_with_sigkilled_parent(tmp_path: Path) -> None:
    """PDEATHSIG: a SIGKILLed parent (no atexit) still takes the broker down."""
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from reintegra_stack.embedded import start_broker
        b = start_broker(Path({str(tmp_path)!r}), "tansu")
        print(b.pid, flush=True)
        time.sleep(600)
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "REINTEGRA_BROKER")}
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
    try:
        line = parent.stdout.readline()
        child = int(line.strip())
        assert not _pid_gone(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 10
        while not _pid_gone(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _pid_gone(child), "tansu outlived its SIGKILLed parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


async def test_postgres_select_and_persistence(tmp_path: Path) -> None:
    import asyncpg

    state = tmp_path / "state"
    t0 = time.monotonic()
    pg = await asyncio.to_thread(start_postgres, state)
    print(f"postgres first start (incl. initdb): {time.monotonic() - t0:.1f}s")
    try:
        assert isinstance(pg, RunningPostgres)
        assert pg.kind == "embedded"
        assert pg.url.startswith("postgresql://") and pg.url.endswith("/reintegra")
        conn = await asyncpg.connect(pg.url)
        try:
            assert await conn.fetchval("select 1") == 1
            assert int(await conn.fetchval("show max_connections")) >= 200
            await conn.execute("create table kept (id int primary key, note text)")
            await conn.execute("insert into kept values (1, 'persisted')")
        finally:
            await conn.close()
        url = pg.url
    finally:
        pg.stop()
    pg.stop()  # idempotent
    assert pg.pid is not None and _pid_gone(pg.pid)

    pg = await asyncio.to_thread(start_postgres, state)
    try:
        assert pg.url == url
        conn = await asyncpg.connect(pg.url)
        try:
            assert await conn.fetchval("select note from kept where id = 1") == "persisted"
        finally:
            await conn.close()
    finally:
        pg.stop()


def test_generated_cluster_ids_never_look_like_an_option() -> None:
    from reintegra_stack.kafka_broker import _kafka_uuid

    ids = [_kafka_uuid() for _ in range(5000)]
    assert not [i for i in ids if i.startswith("-")]
    assert len(set(ids)) == len(ids)


@needs_java
def test_storage_formats_with_a_cluster_id_that_starts_with_a_dash(tmp_path: Path) -> None:
    # an id written by an older version (1 in 64 started with '-') must still format
    from reintegra_stack.kafka_broker import _format_storage, _server_properties, ensure_jars

    kdir = tmp_path / "kafka"
    data_dir = kdir / "data"
    data_dir.mkdir(parents=True)
    props = kdir / "server.properties"
    props.write_text(_server_properties(data_dir, 19092, 19093))
    (kdir / "cluster.id").write_text("-" + "A" * 21 + "\n")
    _format_storage(ensure_jars(), kdir, data_dir, props)
    assert "cluster.id=-AAAA" in (data_dir / "meta.properties").read_text()
