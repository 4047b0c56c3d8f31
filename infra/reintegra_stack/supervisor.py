"""Run the whole Reintegra stack on one machine: Postgres, broker, topics, sandbox, services.

    with Stack(StackConfig(state_dir=tmp_path / "state")) as stack:
        ... stack.bootstrap_servers, stack.database_url, stack.provider_base_url, stack.review_api_url
        stack.kill_service("disbursement"); stack.restart_service("disbursement")
        stack.restart_service("review-api")
        stack.restart_counts  # {"disbursement": 0, ...}: restarts the supervisor made on its own

Used by ``reintegra up`` and by pytest fixtures. Every service is its own OS process
(``python -m faststream run <svc>.app:create_app --factory``), exactly as in production, in its
own process group with PDEATHSIG so that nothing outlives the supervisor. Signal handling
(Ctrl-C) belongs to the caller: the CLI installs handlers, a test fixture does not.

The eligibility review API (``python -m eligibility.review_api``, uvicorn) runs as one more
process once the services are ready (eligibility has created the schema it reads by then), on a
port saved in ``state_dir/review-api/ports.json`` so that ``reintegra review`` finds it; it is
ready when ``/healthz`` answers. It runs only beside the eligibility service (``review_api``).

With ``StackConfig.restart_crashed`` (``reintegra up`` and ``reintegra demo`` set it), a watcher
thread restarts every process that dies on its own (a crash, an OOM kill, a SIGKILL from outside):
the services, the review API, the finance console and the sandbox, after a backoff (0.5 s,
doubling up to 30 s; back to 0.5 s once a process stayed up 60 s), each restart reported as
``<name> exited with <code or signal>; restarting in N s (restart #k)``. What the supervisor
stops itself is never restarted behind the caller's back: ``stop()``, ``kill_service`` (until
``restart_service``), ``restart_service`` and ``restart_sandbox`` while they run. Tests leave
``restart_crashed`` off (the default) and restart what they kill themselves.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
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
# restart_crashed: the first restart after RESTART_BACKOFF_INITIAL_S, each next one after twice the
# previous wait, at most RESTART_BACKOFF_MAX_S; a process that stayed up RESTART_BACKOFF_RESET_AFTER_S
# starts the sequence again.
RESTART_BACKOFF_INITIAL_S = 0.5
RESTART_BACKOFF_MAX_S = 30.0
RESTART_BACKOFF_RESET_AFTER_S = 60.0
WATCH_INTERVAL_S = 0.2
_TERMINATING_SIGNALS = (signal.SIGKILL, signal.SIGTERM, signal.SIGINT)

log = logging.getLogger(__name__)


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
    # Restart a process that dies on its own, with a backoff (``reintegra up``/``demo``). Off for
    # tests, which kill services on purpose and restart them themselves.
    restart_crashed: bool = False
    # Where the supervisor's own messages (restarts) go; None: the logging module. Called from the
    # watcher thread.
    on_event: Callable[[str], None] | None = None


@dataclass
class ServiceProcess:
    name: str
    app: str
    log_file: Path
    process: _proc.ManagedProcess | None = None
    log_offset: int = 0  # logs are appended across restarts; readiness looks only past this
    # restart bookkeeping (restart_crashed); guarded by Stack._lock
    restarts: int = 0  # restarts the watcher made after a crash (not restart_service's)
    started_at: float = 0.0  # time.monotonic() of the last spawn
    backoff_s: float = 0.0  # the last wait before a restart; 0: none yet
    restart_at: float | None = None  # a restart is due then (the process died)
    held: bool = False  # stopped on purpose (kill_service, restart_service, stop): never restarted
    awaiting_ready: bool = False  # restarted by the watcher, not yet reported ready

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
        # The watcher thread (restart_crashed) and the caller's thread share the processes' state.
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    # ------------------------------------------------------------------ public API
    @property
    def bootstrap_servers(self) -> str:
        assert self.broker is not None, "stack not started"
        return self.broker.bootstrap_servers

    @property
    def database_url(self) -> str:
        assert self.postgres is not None, "stack not started"
        return self.postgres.url

    @property
    def restart_counts(self) -> dict[str, int]:
        """Per process (services, review API, console, sandbox): how often the supervisor restarted
        it after it died on its own (``restart_crashed``); ``restart_service`` does not count."""
        with self._lock:
            return {svc.name: svc.restarts for svc in self._watched()}

    def start(self) -> None:
        """Bring everything up; on any failure stop what already runs and re-raise."""
        self._stopping.clear()
        for svc in self._watched():  # a stack started again after stop()
            svc.held, svc.restart_at, svc.awaiting_ready = False, None, False
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
            if self.config.restart_crashed:
                self._watcher = threading.Thread(target=self._watch, name="reintegra-supervisor-watch", daemon=True)
                self._watcher.start()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Services and review API first (they flush offsets/outbox), then sandbox, broker, Postgres. Idempotent."""
        # No restart from here on: the watcher checks _stopping under the lock before each restart,
        # so once the lock was ours, a restart under way has spawned its process and no other follows.
        self._stopping.set()
        with self._lock:
            for svc in self._watched():
                svc.held = True
                svc.restart_at = None
        watcher, self._watcher = self._watcher, None
        if watcher is not None and watcher is not threading.current_thread():
            watcher.join(timeout=10)
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

    def kill_service(self, name: str, sig: int = signal.SIGKILL, *, as_crash: bool = False) -> None:
        """Signal the service's (or ``"review-api"``'s) process group; for terminating signals wait until it is gone.

        A service killed here (SIGKILL, SIGTERM, SIGINT) stays down until ``restart_service``, even with
        ``restart_crashed``. ``as_crash=True`` is a simulated crash instead: the supervisor restarts it
        as it would restart any process that died on its own."""
        svc = self._process(name)
        if sig in _TERMINATING_SIGNALS and not as_crash:
            with self._lock:
                svc.held = True
                svc.restart_at = None
        if not svc.alive():
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(svc.pid, sig)
        if sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(subprocess.TimeoutExpired):
                svc.process.proc.wait(SERVICE_STOP_TIMEOUT_S)

    def restart_service(self, name: str) -> None:
        """Stop the service (or ``"review-api"``) if it still runs (gracefully), start it again, wait until ready.

        Safe beside the watcher of ``restart_crashed``: while this runs the watcher leaves the process
        alone (a restart it had scheduled is dropped), and it watches the new process once ready."""
        svc = self._process(name)
        with self._lock:
            svc.held = True
            svc.restart_at = None
        self._stop_processes([svc])
        if svc is self.review_api:
            self._start_review_api()
        elif svc is self.console:
            self._start_console()
        else:
            self._spawn_service(svc)
            self._wait_ready([svc])
        self._release(svc)

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
        self._start_sandbox_on(port)

    def _spawn_sandbox(self, port: int) -> None:
        # Its state (transfers, idempotency keys, pending settlements and callbacks) is kept under
        # state_dir, so a sandbox restarted like a real provider remembers what it executed.
        argv = [sys.executable, "-m", "provider_sandbox", "--host", "127.0.0.1", "--port", str(port),
                "--state-dir", str(self.state_dir / "sandbox")]
        self._spawn(self.sandbox, argv, {**os.environ, **self.config.extra_env}, must_contain="provider_sandbox")

    def _start_sandbox_on(self, port: int) -> None:
        self._spawn_sandbox(port)
        self._wait_healthz(self.sandbox, self.provider_base_url, 30)

    def restart_sandbox(self, *, kill: bool = False, down_s: float = 0.0) -> None:
        """Stop the provider sandbox (SIGKILL with `kill`), leave it down `down_s` seconds, and start it
        again on the same port and state."""
        assert self.sandbox is not None, "the stack runs no sandbox"
        port = int(self.provider_base_url.rsplit(":", 1)[1])
        with self._lock:
            self.sandbox.held = True  # down on purpose for down_s: no restart behind the caller's back
            self.sandbox.restart_at = None
        if kill and self.sandbox.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.sandbox.pid, signal.SIGKILL)
            self.sandbox.process.proc.wait(10)
        else:
            self._stop_processes([self.sandbox])
        time.sleep(down_s)
        self._start_sandbox_on(port)
        self._release(self.sandbox)

    def _start_review_api(self) -> None:
        port = self.config.review_api_port
        if port is None:
            port = _saved_port(review_api_ports_file(self.state_dir), REVIEW_API)
        self.review_api_url = f"http://127.0.0.1:{port}"
        if self.review_api is None:
            self.review_api = ServiceProcess(REVIEW_API, REVIEW_API_MODULE, self.logs_dir / f"{REVIEW_API}.log")
        self._spawn_review_api()
        self._wait_healthz(self.review_api, self.review_api_url, self.config.ready_timeout_s)

    def _spawn_review_api(self) -> None:
        port = self.review_api_url.rsplit(":", 1)[1]
        argv = [sys.executable, "-m", REVIEW_API_MODULE, "--host", "127.0.0.1", "--port", port]
        self._spawn(self.review_api, argv, self.env, must_contain=REVIEW_API_MODULE)

    def _start_console(self) -> None:
        port = self.config.console_port
        if port is None:
            port = _saved_port(console_ports_file(self.state_dir), CONSOLE)
        self.console_url = f"http://127.0.0.1:{port}"
        if self.console is None:
            self.console = ServiceProcess(CONSOLE, CONSOLE_MODULE, self.logs_dir / f"{CONSOLE}.log")
        self._spawn_console()
        self._wait_healthz(self.console, self.console_url, self.config.ready_timeout_s)

    def _spawn_console(self) -> None:
        env = {**self.env}
        if self.review_api_url:
            env.setdefault("REINTEGRA_REVIEW_API_URL", self.review_api_url)
        port = self.console_url.rsplit(":", 1)[1]
        argv = [sys.executable, "-m", CONSOLE_MODULE, "--host", "127.0.0.1", "--port", port]
        self._spawn(self.console, argv, env, must_contain=CONSOLE_MODULE)

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
        svc.started_at = time.monotonic()

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

    # ------------------------------------------------------------------ restarts (restart_crashed)
    def _watched(self) -> list[ServiceProcess]:
        extras = [p for p in (self.review_api, self.console, self.sandbox) if p is not None]
        return [*self.processes.values(), *extras]

    def _release(self, svc: ServiceProcess) -> None:
        """The caller is done with ``svc`` (it runs again): the watcher looks after it from now on."""
        with self._lock:
            if not self._stopping.is_set():
                svc.held = False
            svc.restart_at = None
            svc.awaiting_ready = False

    def _notify(self, message: str) -> None:
        with contextlib.suppress(OSError):
            self.logs_dir.mkdir(parents=True, exist_ok=True)
            with open(self.logs_dir / "supervisor.log", "a") as f:
                f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")
        if self.config.on_event is None:
            log.warning("%s", message)
            return
        try:
            self.config.on_event(message)
        except Exception:  # noqa: BLE001 - a broken reporter must not stop restarts
            log.exception("on_event failed for: %s", message)

    def _watch(self) -> None:
        while not self._stopping.wait(WATCH_INTERVAL_S):
            for svc in self._watched():
                try:
                    self._watch_one(svc)
                except Exception:  # noqa: BLE001 - keep watching the others
                    log.exception("supervisor: watching %s failed", svc.name)

    def _watch_one(self, svc: ServiceProcess) -> None:
        with self._lock:
            if self._stopping.is_set() or svc.held or svc.process is None:
                return
            if svc.alive():
                if svc.awaiting_ready and self._is_ready(svc):
                    svc.awaiting_ready = False
                    self._notify(f"{svc.name} is running again (pid {svc.pid}, restart #{svc.restarts})")
                return
            now = time.monotonic()
            if svc.restart_at is None:
                # Just found dead: reap what is left of its process group, then schedule the restart.
                svc.process.stop(timeout=0.1)
                stayed_up = now - svc.started_at
                if svc.backoff_s == 0.0 or stayed_up >= RESTART_BACKOFF_RESET_AFTER_S:
                    delay = RESTART_BACKOFF_INITIAL_S
                else:
                    delay = min(svc.backoff_s * 2, RESTART_BACKOFF_MAX_S)
                svc.backoff_s = delay
                svc.restart_at = now + delay
                svc.awaiting_ready = False
                message = (f"{svc.name} exited with {_describe_exit(svc.process.proc.returncode)}; "
                           f"restarting in {delay:g} s (restart #{svc.restarts + 1})")
                with contextlib.suppress(OSError), open(svc.log_file, "a") as f:
                    f.write(f"\n===== reintegra: {message} =====\n")
                self._notify(message)
                return
            if now < svc.restart_at:
                return
            svc.restart_at = None
            svc.restarts += 1
            try:
                self._respawn(svc)
            except Exception as exc:  # noqa: BLE001 - retried after the next, longer, wait
                svc.started_at = now
                self._notify(f"{svc.name}: restart #{svc.restarts} failed to start the process ({exc})")
                return
            svc.awaiting_ready = True

    def _respawn(self, svc: ServiceProcess) -> None:
        """Start ``svc`` again as it was started first, without waiting (the watcher reports readiness)."""
        if svc is self.sandbox:
            self._spawn_sandbox(int(self.provider_base_url.rsplit(":", 1)[1]))
        elif svc is self.review_api:
            self._spawn_review_api()
        elif svc is self.console:
            self._spawn_console()
        else:
            self._spawn_service(svc)

    def _is_ready(self, svc: ServiceProcess) -> bool:
        if svc is self.sandbox:
            return _http_ok(f"{self.provider_base_url}/healthz")
        if svc is self.review_api:
            return _http_ok(f"{self.review_api_url}/healthz")
        if svc is self.console:
            return _http_ok(f"{self.console_url}/healthz")
        return _log_since(svc).find(READY_MARKER) >= 0


def _describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "an unknown status"
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"code {returncode}"


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
