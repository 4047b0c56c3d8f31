"""Run the whole Reintegra stack on one machine: Postgres, broker, topics, sandbox, services.

    with Stack(StackConfig(state_dir=tmp_path / "state")) as stack:
        ... stack.bootstrap_servers, stack.database_url, stack.provider_base_url
        stack.kill_service("disbursement"); stack.restart_service("disbursement")

Used by ``reintegra up`` and by pytest fixtures. Every service is its own OS process
(``python -m faststream run <svc>.app:create_app --factory``), exactly as in production, in its
own process group with PDEATHSIG so that nothing outlives the supervisor. Signal handling
(Ctrl-C) belongs to the caller: the CLI installs handlers, a test fixture does not.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from . import _proc
from .embedded import RunningBroker, RunningPostgres, start_broker, start_postgres
from .topics import ensure_topics

__all__ = ["ALL_SERVICES", "READY_MARKER", "ServiceProcess", "Stack", "StackConfig", "StackError"]

ALL_SERVICES = ("intake", "eligibility", "disbursement", "notifications")
# What `faststream run` logs once on_startup hooks ran and the broker is connected and
# subscribed (faststream/_internal/application.py, `_startup_logging`).
READY_MARKER = "FastStream app started successfully"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
SANDBOX = "provider-sandbox"
SERVICE_STOP_TIMEOUT_S = 15.0


class StackError(RuntimeError):
    """A component did not come up; the message carries the tail of its log."""


@dataclass
class StackConfig:
    state_dir: Path
    broker: str = "auto"  # "auto" | "kafka" | "tansu" (KAFKA_BOOTSTRAP_SERVERS env -> external)
    services: tuple[str, ...] = ALL_SERVICES
    sandbox: bool = True
    sandbox_port: int | None = None  # None: reuse the port saved under state_dir, else a free one
    extra_env: dict[str, str] = field(default_factory=dict)  # applied last, overrides everything
    # service -> "module:factory" for `faststream run`; default "<svc>.app:create_app".
    # Lets tests run a stand-in app under a real service name.
    apps: dict[str, str] = field(default_factory=dict)
    ready_timeout_s: float = 60.0


@dataclass
class ServiceProcess:
    name: str
    app: str
    log_file: Path
    process: _proc.ManagedProcess | None = None
    log_offset: int = 0  # logs are appended across restarts; readiness looks only past this

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def alive(self) -> bool:
        return self.process is not None and self.process.alive()


class Stack:
    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.state_dir = Path(config.state_dir).resolve()
        self.logs_dir = self.state_dir / "logs"
        self._run_dir = self.state_dir / "run"  # pid files: lets a new supervisor reap a crashed one's children
        self.broker: RunningBroker | None = None
        self.postgres: RunningPostgres | None = None
        self.sandbox: ServiceProcess | None = None
        self.processes: dict[str, ServiceProcess] = {
            name: ServiceProcess(name, config.apps.get(name, f"{name}.app:create_app"), self.logs_dir / f"{name}.log")
            for name in config.services
        }
        self.provider_base_url = config.extra_env.get("PROVIDER_BASE_URL") or os.environ.get("PROVIDER_BASE_URL", "")
        self.env: dict[str, str] = {}

    # ------------------------------------------------------------------ public API
    @property
    def bootstrap_servers(self) -> str:
        assert self.broker is not None, "stack not started"
        return self.broker.bootstrap_servers

    @property
    def database_url(self) -> str:
        assert self.postgres is not None, "stack not started"
        return self.postgres.url

    def start(self) -> None:
        """Bring everything up; on any failure stop what already runs and re-raise."""
        try:
            self._start_infra()
            if self.config.sandbox:
                self._start_sandbox()
            self.env = self._service_env()
            for svc in self.processes.values():
                self._spawn_service(svc)
            self._wait_ready(list(self.processes.values()))
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Services first (they flush offsets/outbox), then sandbox, broker, Postgres. Idempotent."""
        self._stop_processes([s for s in self.processes.values() if s.process is not None])
        if self.sandbox is not None:
            self._stop_processes([self.sandbox])
        for component in (self.broker, self.postgres):
            if component is not None:
                component.stop()

    def kill_service(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal the service's process group; for terminating signals wait until it is gone."""
        svc = self.processes[name]
        if not svc.alive():
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(svc.pid, sig)
        if sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(subprocess.TimeoutExpired):
                svc.process.proc.wait(SERVICE_STOP_TIMEOUT_S)

    def restart_service(self, name: str) -> None:
        """Stop the service if it still runs (gracefully), start it again, wait until ready."""
        svc = self.processes[name]
        self._stop_processes([svc])
        self._spawn_service(svc)
        self._wait_ready([svc])

    def __enter__(self) -> Stack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ internals
    def _start_infra(self) -> None:
        # Kafka (JVM) and Postgres each take seconds to boot; start them side by side.
        # Safe from worker threads: _proc spawns every child from its own long-lived thread.
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            pg = pool.submit(start_postgres, self.state_dir)
            broker = pool.submit(start_broker, self.state_dir, self.config.broker)
            concurrent.futures.wait([pg, broker])
        # keep whichever did start before raising, so that stop() shuts it down
        self.postgres = None if pg.exception() else pg.result()
        self.broker = None if broker.exception() else broker.result()
        for future in (pg, broker):
            if future.exception():
                raise future.exception()
        _proc.run_coro_blocking(lambda: ensure_topics(self.bootstrap_servers), timeout=120)

    def _service_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            KAFKA_BOOTSTRAP_SERVERS=self.bootstrap_servers,
            DATABASE_URL=self.database_url,
            REINTEGRA_STATE_DIR=str(self.state_dir),
            PYTHONUNBUFFERED="1",  # readiness is read from the log as it is written
        )
        if self.provider_base_url:
            env["PROVIDER_BASE_URL"] = self.provider_base_url
        env.update(self.config.extra_env)
        return env

    def _start_sandbox(self) -> None:
        port = self.config.sandbox_port
        if port is None:
            ports_file = self.state_dir / "sandbox" / "ports.json"
            port = _proc.load_or_pick_ports(ports_file, ["sandbox"])["sandbox"]
            if not _proc.wait_port_free(port, timeout=3):
                port = _proc.free_port()
                _proc.save_ports(ports_file, {"sandbox": port})
        self.provider_base_url = f"http://127.0.0.1:{port}"
        self.sandbox = ServiceProcess(SANDBOX, "provider_sandbox", self.logs_dir / f"{SANDBOX}.log")
        argv = [sys.executable, "-m", "provider_sandbox", "--host", "127.0.0.1", "--port", str(port)]
        self._spawn(self.sandbox, argv, {**os.environ, **self.config.extra_env}, must_contain="provider_sandbox")
        deadline = time.monotonic() + 30
        while not _http_ok(f"{self.provider_base_url}/healthz"):
            if not self.sandbox.alive() or time.monotonic() > deadline:
                raise StackError(_failure_message(self.sandbox, "did not answer /healthz"))
            time.sleep(0.1)

    def _spawn_service(self, svc: ServiceProcess) -> None:
        argv = [sys.executable, "-m", "faststream", "run", svc.app, "--factory"]
        self._spawn(svc, argv, self.env, must_contain=svc.app)

    def _spawn(self, svc: ServiceProcess, argv: list[str], env: dict[str, str], *, must_contain: str) -> None:
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self._run_dir.mkdir(parents=True, exist_ok=True)
        pid_file = self._run_dir / f"{svc.name}.pid"
        _proc.kill_stale(pid_file, must_contain)  # left over by a supervisor that was SIGKILLed
        with open(svc.log_file, "a") as log:
            log.write(f"\n===== reintegra: starting {svc.name} {time.strftime('%Y-%m-%d %H:%M:%S')} =====\n")
        svc.log_offset = svc.log_file.stat().st_size
        # SIGKILL, not SIGTERM, if the supervisor dies: Stack.stop() is the graceful path, and
        # a service shutting down after broker and Postgres vanished can hang indefinitely.
        proc = _proc.spawn(argv, log_file=svc.log_file, env=env, cwd=PROJECT_ROOT, death_signal=signal.SIGKILL)
        svc.process = _proc.ManagedProcess(proc, svc.name, pid_file=pid_file)

    def _wait_ready(self, services: list[ServiceProcess]) -> None:
        deadline = time.monotonic() + self.config.ready_timeout_s
        pending = list(services)
        while pending:
            for svc in list(pending):
                if _log_since(svc).find(READY_MARKER) >= 0:
                    pending.remove(svc)
                elif not svc.alive():
                    raise StackError(_failure_message(svc, f"exited with code {svc.process.proc.returncode}"))
            if pending and time.monotonic() > deadline:
                svc = pending[0]
                raise StackError(_failure_message(svc, f"not ready after {self.config.ready_timeout_s:.0f} s"))
            time.sleep(0.1)

    def _stop_processes(self, services: list[ServiceProcess]) -> None:
        # SIGTERM all groups at once and share one deadline: graceful shutdowns overlap.
        running = [s for s in services if s.alive()]
        for svc in running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(svc.pid, signal.SIGTERM)
        deadline = time.monotonic() + SERVICE_STOP_TIMEOUT_S
        for svc in running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                svc.process.proc.wait(max(0.0, deadline - time.monotonic()))
        for svc in services:
            if svc.process is not None:
                svc.process.stop(timeout=0.1)  # SIGKILLs leftovers in the group; idempotent


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def _log_since(svc: ServiceProcess) -> str:
    try:
        with open(svc.log_file, "rb") as f:
            f.seek(svc.log_offset)
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def _failure_message(svc: ServiceProcess, what: str) -> str:
    return f"{svc.name} {what}; last lines of {svc.log_file}:\n{_proc.tail(svc.log_file, 40)}"
