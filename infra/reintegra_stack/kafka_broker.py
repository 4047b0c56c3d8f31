"""Single-node KRaft Apache Kafka, run with the machine's Java from Maven-resolved jars.

Layout under ``<state_dir>/kafka/``::

    ports.json          {"broker": P, "controller": Q}  (reused on restart: KRaft stores Q)
    server.properties   regenerated on every start
    cluster.id          written once, before the storage format
    data/               log.dirs (formatted once; meta.properties marks it)
    kafka.log           broker stdout/stderr (log4j2 config: infra/kafka/log4j2.xml)
    kafka.pid           pid of the running broker (stale ones are killed on start)

Jars: ``mvn -q -f infra/kafka/pom.xml dependency:copy-dependencies`` into
``<project>/.reintegra/cache/kafka-<version>/jars`` once (``.complete`` marker);
``REINTEGRA_CACHE_DIR`` overrides ``<project>/.reintegra/cache``.
"""

from __future__ import annotations

import base64
import fcntl
import os
import re
import shlex
import shutil
import subprocess
import time
import uuid
from pathlib import Path

from . import _proc

PROJECT_ROOT = Path(__file__).resolve().parents[2]
KAFKA_INFRA_DIR = PROJECT_ROOT / "infra" / "kafka"
POM = KAFKA_INFRA_DIR / "pom.xml"
LOG4J2_CONFIG = KAFKA_INFRA_DIR / "log4j2.xml"

READY_TIMEOUT_S = 90.0
JVM_HEAP = "-Xmx512m"


def kafka_version() -> str:
    m = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", POM.read_text())
    if not m:
        raise RuntimeError(f"no <kafka.version> property in {POM}")
    return m.group(1).strip()


def cache_root() -> Path:
    env = os.environ.get("REINTEGRA_CACHE_DIR")
    return Path(env) if env else PROJECT_ROOT / ".reintegra" / "cache"


def java_and_mvn_available() -> bool:
    return shutil.which("java") is not None and shutil.which("mvn") is not None


def ensure_jars(version: str | None = None) -> Path:
    """Resolve the broker jars with Maven once; returns the jars directory."""
    version = version or kafka_version()
    base = cache_root() / f"kafka-{version}"
    jars = base / "jars"
    marker = base / ".complete"
    if marker.exists():
        return jars
    base.mkdir(parents=True, exist_ok=True)
    with open(base / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be resolving right now
        if marker.exists():
            return jars
        mvn = shutil.which("mvn")
        if mvn is None:
            raise RuntimeError("`mvn` not found on PATH: needed once to fetch the Kafka jars")
        if jars.exists():
            shutil.rmtree(jars)
        cmd = [
            mvn, "-q", "-B", "-f", str(POM),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={jars}",
            f"-Dkafka.version={version}",
        ]
        t0 = time.monotonic()
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(
                f"maven failed to resolve Kafka {version} jars (exit {res.returncode}):\n"
                f"{res.stdout[-4000:]}\n{res.stderr[-4000:]}"
            )
        if not any(jars.glob("kafka_2.13-*.jar")):
            raise RuntimeError(f"maven finished but no kafka_2.13 jar in {jars}")
        marker.write_text(f"resolved in {time.monotonic() - t0:.1f}s\n")
    return jars


def _kafka_uuid() -> str:
    """A cluster id as Kafka's own Uuid.randomUuid makes it: never starting with '-',
    which a command line would read as an option."""
    while True:
        candidate = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not candidate.startswith("-"):
            return candidate


def _server_properties(data_dir: Path, broker_port: int, controller_port: int) -> str:
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "listeners": f"PLAINTEXT://127.0.0.1:{broker_port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{broker_port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "controller.quorum.bootstrap.servers": f"127.0.0.1:{controller_port}",
        "log.dirs": str(data_dir),
        "num.partitions": "6",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "auto.create.topics.enable": "false",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "6",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "6",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "num.network.threads": "1",
        "num.io.threads": "2",
        "num.recovery.threads.per.data.dir": "1",
        "log.retention.hours": "168",
        "delete.topic.enable": "true",
    }
    return "# generated by reintegra_stack.kafka_broker; edits are overwritten\n" + "".join(
        f"{k}={v}\n" for k, v in props.items()
    )


def jvm_tuning_options() -> list[str]:
    """Heap, garbage collector and JIT; REINTEGRA_KAFKA_JVM_OPTS replaces them (another heap, a profiler)."""
    override = os.environ.get("REINTEGRA_KAFKA_JVM_OPTS")
    if override is not None:
        return shlex.split(override)
    # Measured on a 2-core machine (bench/): C2's compilations cost this broker more CPU than they
    # ever win back in a dev or test run, so the JIT stops at C1; a serial collector with a large
    # young generation is the cheapest for a broker's short-lived garbage.
    return [JVM_HEAP, "-Xms256m", "-Xmn256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"]


def _classpath(jars: Path) -> str:
    return str(jars / "*")


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise RuntimeError("`java` not found on PATH (Java 17+ needed for the embedded Kafka broker)")
    return java


def _format_storage(jars: Path, kdir: Path, data_dir: Path, props_file: Path) -> None:
    if (data_dir / "meta.properties").exists():
        return
    id_file = kdir / "cluster.id"
    if not id_file.exists():
        id_file.write_text(_kafka_uuid() + "\n")
    cluster_id = id_file.read_text().strip()
    cmd = [
        _java(), "-Xmx256m", f"-Dlog4j2.configurationFile={LOG4J2_CONFIG}",
        "-cp", _classpath(jars), "kafka.tools.StorageTool",
        "format", "--standalone", f"--cluster-id={cluster_id}", "-c", str(props_file),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if res.returncode != 0:
        raise RuntimeError(f"kafka storage format failed (exit {res.returncode}):\n{res.stdout}\n{res.stderr}")


async def _metadata_ok(bootstrap: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    await admin.start()
    try:
        await admin.list_topics()
    finally:
        await admin.close()


def start_kafka(state_dir: Path, *, ready_timeout: float = READY_TIMEOUT_S) -> tuple[_proc.ManagedProcess, str]:
    """Start (or restart on the same data) the broker; returns (process, bootstrap) once ready."""
    state_dir = Path(state_dir).resolve()
    kdir = state_dir / "kafka"
    data_dir = kdir / "data"
    log_file = kdir / "kafka.log"
    pid_file = kdir / "kafka.pid"
    kdir.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(exist_ok=True)

    jars = ensure_jars()
    _proc.kill_stale(pid_file, "kafka.Kafka")

    ports = _proc.load_or_pick_ports(kdir / "ports.json", ["broker", "controller"])
    formatted = (data_dir / "meta.properties").exists()
    for name, port in ports.items():
        if not _proc.wait_port_free(port, timeout=10):
            if formatted and name == "controller":
                raise RuntimeError(
                    f"Kafka controller port {port} (saved in {kdir / 'ports.json'}) is in use; "
                    "KRaft stores it in the data dir, so it cannot change. Free the port or delete "
                    f"{kdir} to start from scratch."
                )
            ports[name] = _proc.free_port()
            _proc.save_ports(kdir / "ports.json", ports)
    bport, cport = ports["broker"], ports["controller"]

    props_file = kdir / "server.properties"
    props_file.write_text(_server_properties(data_dir, bport, cport))
    _format_storage(jars, kdir, data_dir, props_file)

    with open(log_file, "a") as f:
        f.write(f"\n===== reintegra: starting Kafka {time.strftime('%Y-%m-%d %H:%M:%S')} =====\n")
    argv = [
        _java(), *jvm_tuning_options(),
        "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={LOG4J2_CONFIG}",
        f"-Dkafka.logs.dir={kdir}",
        "-cp", _classpath(jars), "kafka.Kafka", str(props_file),
    ]
    env = dict(os.environ)
    for var in ("KAFKA_OPTS", "KAFKA_HEAP_OPTS", "KAFKA_LOG4J_OPTS", "JAVA_TOOL_OPTIONS", "CLASSPATH"):
        env.pop(var, None)
    proc = _proc.spawn(argv, log_file=log_file, env=env, cwd=kdir)
    managed = _proc.ManagedProcess(proc, "kafka", pid_file=pid_file)
    bootstrap = f"127.0.0.1:{bport}"
    try:
        _wait_ready(managed, bootstrap, bport, log_file, ready_timeout)
    except BaseException:
        managed.stop(timeout=15)
        raise
    return managed, bootstrap


def _wait_ready(managed: _proc.ManagedProcess, bootstrap: str, port: int, log_file: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last_err: BaseException | None = None
    while time.monotonic() < deadline:
        if not managed.alive():
            raise RuntimeError(
                f"Kafka broker exited with code {managed.proc.returncode} during startup; "
                f"log {log_file}:\n{_proc.tail(log_file)}"
            )
        if _proc.tcp_connectable("127.0.0.1", port):
            try:
                _proc.run_coro_blocking(lambda: _metadata_ok(bootstrap), timeout=15)
                return
            except Exception as exc:  # noqa: BLE001 - retried until the deadline
                last_err = exc
        time.sleep(0.5)
    raise TimeoutError(
        f"Kafka broker not ready on {bootstrap} after {timeout:.0f}s (last error: {last_err!r}); "
        f"log {log_file}:\n{_proc.tail(log_file)}"
    )

