"""Run the whole Reintegra stack on one machine: Postgres, broker, topics, sandbox, services.

    with Stack(StackConfig(state_dir=tmp_path / "state")) as stack:
        ... stack.bootstrap_servers, stack.database_url, stack.provider_base_url, stack.review_api_url
        stack.kill_service("disbursement"); stack.restart_service("disbursement")
        stack.restart_service("review-api")

Used by ``reintegra up`` and by pytest fixtures. Every service is its own OS process
(``python -m faststream run <svc>.app:create_app --factory``), exactly as in production, in its
own process group with PDEATHSIG so that nothing outlives the supervisor. Signal handling
(Ctrl-C) belongs to the caller: the CLI installs handlers, a test fixture does not.

The eligibility review API (``python -m eligibility.review_api``, uvicorn) runs as one more
process once the services are ready (eligibility has created the schema it reads by then), on a
port saved in ``state_dir/review-api/ports.json`` so that ``reintegra review`` finds it; it is
ready when ``/healthz`` answers. It runs only beside the eligibility service (``review_api``).
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

__all__ = ["ALL_SERVICES", "CONSOLE", "READY_MARKER", "REVIEW_API", "ServiceProcess", "Stack", "StackConfig", "StackError",
           "console_ports_file", "review_api_ports_file"]

ALL_SERVICES = ("intake", "eligibility", "disbursement", "notifications", "finance")
# What `faststream run` logs once on_startup hooks ran and the broker is connected and
# subscribed (faststream/_internal/application.py, `_startup_logging`).
READY_MARKER = "FastStream app started successfully"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
SANDBOX = "provider-sandbox"
REVIEW_API = "review-api"
# The finance console and API (``python -m finance.web``, uvicorn), beside the finance service.
CONSOLE = "finance-console"
CONSOLE_MODULE = "finance.web"
REVIEW_API_MODULE = "eligibility.review_api"
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
    review_api: bool = True  # the review API process, when eligibility is among the services
    review_api_port: int | None = None  # None: reuse the port saved under state_dir, else a free one
    console: bool = True  # the finance console process, when finance is among the services
    console_port: int | None = None  # None: reuse the port saved under state_dir, else a free one
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
        self.review_api: ServiceProcess | None = None
        self.review_api_url = ""
        self.console: ServiceProcess | None = None
        self.console_url = ""
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
            if self.config.review_api and "eligibility" in self.processes:
                self._start_review_api()
            if self.config.console and "finance" in self.processes:
                self._start_console()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Services and review API first (they flush offsets/outbox), then sandbox, broker, Postgres. Idempotent."""
        front = [s for s in self.processes.values() if s.process is not None]
        for extra in (self.review_api, self.console):
            if extra is not None and extra.process is not None:
                front.append(extra)
        self._stop_processes(front)
        if self.sandbox is not None:
            self._stop_processes([self.sandbox])
        for component in (self.broker, self.postgres):
            if component is not None:
                component.stop()

    def kill_service(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal the service's (or ``"review-api"``'s) process group; for terminating signals wait until it is gone."""
        svc = self._process(name)
        if not svc.alive():
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(svc.pid, sig)
        if sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(subprocess.TimeoutExpired):
                svc.process.proc.wait(SERVICE_STOP_TIMEOUT_S)

    def restart_service(self, name: str) -> None:
        """Stop the service (or ``"review-api"``) if it still runs (gracefully), start it again, wait until ready."""
        svc = self._process(name)
        self._stop_processes([svc])
        if svc is self.review_api:
            self._start_review_api()
            return
        if svc is self.console:
            self._start_console()
            return
        self._spawn_service(svc)
        self._wait_ready([svc])

    def _process(self, name: str) -> ServiceProcess:
        if name == REVIEW_API:
            if self.review_api is None:
                raise KeyError(f"{REVIEW_API} is not part of this stack (StackConfig.review_api, eligibility)")
            return self.review_api
        if name == CONSOLE:
            if self.console is None:
                raise KeyError(f"{CONSOLE} is not part of this stack (StackConfig.console, finance)")
            return self.console
        return self.processes[name]

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
            port = _saved_port(self.state_dir / "sandbox" / "ports.json", "sandbox")
        self.provider_base_url = f"http://127.0.0.1:{port}"
        self.sandbox = ServiceProcess(SANDBOX, "provider_sandbox", self.logs_dir / f"{SANDBOX}.log")
        self._spawn_sandbox(port)

    def _spawn_sandbox(self, port: int) -> None:
        # Its state (transfers, idempotency keys, pending settlements and callbacks) is kept under
        # state_dir, so a sandbox restarted like a real provider remembers what it executed.
        argv = [sys.executable, "-m", "provider_sandbox", "--host", "127.0.0.1", "--port", str(port),
                "--state-dir", str(self.state_dir / "sandbox")]
        self._spawn(self.sandbox, argv, {**os.environ, **self.config.extra_env}, must_contain="provider_sandbox")
        self._wait_healthz(self.sandbox, self.provider_base_url, 30)

    def restart_sandbox(self, *, kill: bool = False, down_s: float = 0.0) -> None:
        """Stop the provider sandbox (SIGKILL with `kill`), leave it down `down_s` seconds, and start it
        again on the same port and state."""
        assert self.sandbox is not None, "the stack runs no sandbox"
        port = int(self.provider_base_url.rsplit(":", 1)[1])
        if kill and self.sandbox.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.sandbox.pid, signal.SIGKILL)
            self.sandbox.process.proc.wait(10)
        else:
            self._stop_processes([self.sandbox])
        time.sleep(down_s)
        self._spawn_sandbox(port)

    def _start_review_api(self) -> None:
        port = self.config.review_api_port
        if port is None:
            port = _saved_port(review_api_ports_file(self.state_dir), REVIEW_API)
        self.review_api_url = f"http://127.0.0.1:{port}"
        if self.review_api is None:
            self.review_api = ServiceProcess(REVIEW_API, REVIEW_API_MODULE, self.logs_dir / f"{REVIEW_API}.log")
        argv = [sys.executable, "-m", REVIEW_API_MODULE, "--host", "127.0.0.1", "--port", str(port)]
        self._spawn(self.review_api, argv, self.env, must_contain=REVIEW_API_MODULE)
        self._wait_healthz(self.review_api, self.review_api_url, self.config.ready_timeout_s)

    def _start_console(self) -> None:
        port = self.config.console_port
        if port is None:
            port = _saved_port(console_ports_file(self.state_dir), CONSOLE)
        self.console_url = f"http://127.0.0.1:{port}"
        if self.console is None:
            self.console = ServiceProcess(CONSOLE, CONSOLE_MODULE, self.logs_dir / f"{CONSOLE}.log")
        env = {**self.env}
        if self.review_api_url:
            env.setdefault("REINTEGRA_REVIEW_API_URL", self.review_api_url)
        argv = [sys.executable, "-m", CONSOLE_MODULE, "--host", "127.0.0.1", "--port", str(port)]
        self._spawn(self.console, argv, env, must_contain=CONSOLE_MODULE)
        self._wait_healthz(self.console, self.console_url, self.config.ready_timeout_s)

    def _wait_healthz(self, svc: ServiceProcess, base_url: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not _http_ok(f"{base_url}/healthz"):
            if not svc.alive() or time.monotonic() > deadline:
                raise StackError(_failure_message(svc, "did not answer /healthz"))
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


def console_ports_file(state_dir: Path) -> Path:
    """Where the local stack saves the finance console's port (``reintegra finance`` and the demo read it)."""
    return Path(state_dir) / "finance-console" / "ports.json"


def review_api_ports_file(state_dir: Path) -> Path:
    """Where the local stack saves the review API's port (``reintegra review`` reads it)."""
    return Path(state_dir) / "review-api" / "ports.json"


def _saved_port(ports_file: Path, name: str) -> int:
    """The port saved in ``ports_file`` if it is free (again) within 3 s, else a new free one, saved."""
    port = _proc.load_or_pick_ports(ports_file, [name])[name]
    if not _proc.wait_port_free(port, timeout=3):
        port = _proc.free_port()
        _proc.save_ports(ports_file, {name: port})
    return port


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
