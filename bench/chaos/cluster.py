"""The whole stack with two instances of every service, and the levers the faults pull.

Built on `reintegra_stack.supervisor.Stack`: the second instance of `intake` is one more stack
process named `intake-2` running the same app (`intake.app:create_app`), so the supervisor starts,
stops, kills and restarts it like the first. Postgres and the provider sandbox are reached by the
services through `FaultProxy`s (DATABASE_URL and PROVIDER_BASE_URL point at the proxies); the
harness itself talks to them directly.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from reintegra.money import Money
from reintegra_stack import _proc
from reintegra_stack.embedded import RunningBroker, RunningPostgres, start_broker
from reintegra_stack.supervisor import ALL_SERVICES, PROJECT_ROOT, ServiceProcess, Stack, StackConfig

from .cases import BUDGET_PROGRAMME
from .proxy import FaultProxy

# As the test session's stack (conftest.FAST_GROUP_SETTINGS), with a payment deadline far beyond any
# fault window: an outcome still unknown at the deadline is raised to finance and never completes,
# which would be the right answer to an hour-long outage and the wrong one to a 10 s fault.
CHAOS_ENV = {
    "REINTEGRA_SESSION_TIMEOUT_MS": "6000",
    "REINTEGRA_HEARTBEAT_INTERVAL_MS": "500",
    "OTEL_BSP_SCHEDULE_DELAY": "500",
    "REINTEGRA_TRACE_SAMPLE_RATIO": "0.01",
    "DISBURSEMENT_PAYMENT_LEASE_S": "8",
    "DISBURSEMENT_PAYMENT_POLL_AFTER_S": "3",
    "DISBURSEMENT_PAYMENT_DEADLINE_S": "900",
    "SANDBOX_IDEMPOTENCY_TTL_S": "5",
    "REINTEGRA_DB_POOL_MAX": "4",
}
FAKETIME_LIB = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
SESSION_TIMEOUT_S = int(CHAOS_ENV["REINTEGRA_SESSION_TIMEOUT_MS"]) / 1000


def instance_names(instances: int = 2) -> list[str]:
    names = []
    for svc in ALL_SERVICES:
        names.append(svc)
        names += [f"{svc}-{n}" for n in range(2, instances + 1)]
    return names


def service_of(instance: str) -> str:
    base, _, n = instance.rpartition("-")
    return base if n.isdigit() and base in ALL_SERVICES else instance


def write_programmes(state_dir: Path, budget_amount: str, main_budget_amount: str) -> Path:
    """The shipped programmes, MA-AVRR-2026's budget sized for the run (the shipped EUR 2,000,000 runs
    out near 10,000 cases), and MA-BUDGET-CHAOS: the same rules, a budget for only part of its grants."""
    shipped = PROJECT_ROOT / "services" / "eligibility" / "eligibility" / "programmes.yaml"
    document = yaml.safe_load(shipped.read_text(encoding="utf-8"))
    main = document["programmes"]["MA-AVRR-2026"]
    if Money.parse(str(main["budget"]), "EUR").minor < Money.parse(main_budget_amount, "EUR").minor:
        main["budget"] = main_budget_amount
    programme = dict(main)
    programme.update(name="Chaos budget programme", budget=budget_amount)
    document["programmes"][BUDGET_PROGRAMME] = programme
    path = state_dir / "programmes-chaos.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


@dataclass
class InstanceEvent:
    at: float
    instance: str
    what: str
    pid: int | None


class Cluster:
    def __init__(self, state_dir: Path, *, budget_amount: str, main_budget_amount: str,
                 instances: int = 2, broker: str = "auto",
                 proxy_postgres: bool = True, proxy_sandbox: bool = True,
                 extra_env: dict[str, str] | None = None) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.crash_dir = self.state_dir / "crash"
        self.names = instance_names(instances)
        self.broker_pref = broker
        self.budget_amount = budget_amount
        self.main_budget_amount = main_budget_amount
        self.proxy_postgres = proxy_postgres
        self.proxy_sandbox = proxy_sandbox
        self.extra_env = dict(extra_env or {})
        self.pg_proxy: FaultProxy | None = None
        self.sandbox_proxy: FaultProxy | None = None
        self.stack: Stack | None = None
        self._locks = {name: threading.Lock() for name in self.names}
        self._infra_lock = threading.Lock()
        self.held_down: set[str] = set()  # instances a fault keeps down or stopped on purpose
        self.envs: dict[str, dict[str, str]] = {}  # instance → env overrides it runs with now
        self.events: list[InstanceEvent] = []
        self.spawns: dict[str, int] = {}  # instance → processes the harness started for it
        self.t0 = time.monotonic()

    # ------------------------------------------------------------------ start / stop
    def start(self) -> None:
        pg_port = _proc.load_or_pick_ports(self.state_dir / "postgres" / "ports.json", ["postgres"])["postgres"]
        sandbox_port = _proc.load_or_pick_ports(self.state_dir / "sandbox" / "ports.json", ["sandbox"])["sandbox"]
        programmes = write_programmes(self.state_dir, self.budget_amount, self.main_budget_amount)
        env = {**CHAOS_ENV, "REINTEGRA_PROGRAMME_CONFIG": str(programmes),
               "REINTEGRA_CRASH_ONCE_DIR": str(self.crash_dir), **self.extra_env}
        if self.proxy_postgres:
            self.pg_proxy = FaultProxy("postgres", ("127.0.0.1", pg_port)).start()
            env["DATABASE_URL"] = f"postgresql://postgres@127.0.0.1:{self.pg_proxy.port}/reintegra"
        if self.proxy_sandbox:
            self.sandbox_proxy = FaultProxy("sandbox", ("127.0.0.1", sandbox_port)).start()
            env["PROVIDER_BASE_URL"] = f"http://127.0.0.1:{self.sandbox_proxy.port}"
        apps = {name: f"{service_of(name)}.app:create_app" for name in self.names}
        self.stack = Stack(StackConfig(state_dir=self.state_dir, broker=self.broker_pref, services=tuple(self.names),
                                       apps=apps, sandbox_port=sandbox_port, review_api=False, console=False,
                                       extra_env=env, ready_timeout_s=180))
        self.stack.start()
        # The provider URL the harness uses (admin API, restarts) is the sandbox's own.
        self.stack.provider_base_url = f"http://127.0.0.1:{sandbox_port}"
        if self.pg_proxy is not None and not self.stack.database_url.endswith(f":{pg_port}/reintegra"):
            port = int(self.stack.database_url.rsplit(":", 1)[1].split("/")[0])
            self.pg_proxy.set_target(("127.0.0.1", port))
        for name in self.names:
            self._event(name, "started")

    def stop(self) -> None:
        if self.stack is not None:
            for name in list(self.held_down):
                self.cont(name)  # a stopped process would not answer SIGTERM
            self.stack.stop()
        for proxy in (self.pg_proxy, self.sandbox_proxy):
            if proxy is not None:
                proxy.stop()

    @property
    def broker_kind(self) -> str:
        return self.stack.broker.kind

    # ------------------------------------------------------------------ instances
    def svc(self, name: str) -> ServiceProcess:
        return self.stack.processes[name]

    def pid(self, name: str) -> int | None:
        svc = self.stack.processes.get(name)
        return svc.pid if svc is not None and svc.alive() else None

    def alive(self, name: str) -> bool:
        svc = self.stack.processes.get(name)
        return svc is not None and svc.alive()

    def _event(self, name: str, what: str) -> None:
        self.events.append(InstanceEvent(round(time.monotonic() - self.t0, 2), name, what, self.pid(name)))

    def signal(self, name: str, sig: int) -> int | None:
        pid = self.pid(name)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, sig)
        self._event(name, signal.Signals(sig).name)
        return pid

    def kill(self, name: str) -> int | None:
        with self._locks[name]:
            pid = self.pid(name)
            self.stack.kill_service(name, signal.SIGKILL)
            self._event(name, "SIGKILL")
            return pid

    def stop_process(self, name: str) -> None:
        """SIGSTOP: frozen, holding its partitions until the group's session times out."""
        self.held_down.add(name)
        self.signal(name, signal.SIGSTOP)

    def cont(self, name: str) -> None:
        self.signal(name, signal.SIGCONT)
        self.held_down.discard(name)

    def restart(self, name: str, env: dict[str, str] | None = None, *, graceful: bool = True) -> None:
        """Stop the instance (SIGTERM, then SIGKILL after the supervisor's timeout) and start it again
        with `env` on top of the stack's environment (None: what it ran with last), until ready."""
        with self._locks[name]:
            if env is not None:
                self.envs[name] = env
            svc = self.svc(name)
            if graceful:
                self.stack._stop_processes([svc])
            else:
                self.stack.kill_service(name, signal.SIGKILL)
            self._spawn(svc)
            self._event(name, "restarted")

    def ensure_running(self, name: str) -> str | None:
        """Start the instance if it is dead (not if a fault holds it down). Returns what was done."""
        with self._locks[name]:
            if name in self.held_down or self.alive(name):
                return None
            self._spawn(self.svc(name))
            self._event(name, "restarted (dead)")
            return "restarted"

    def _spawn(self, svc: ServiceProcess) -> None:
        overrides = self.envs.get(svc.name) or {}
        self.spawns[svc.name] = self.spawns.get(svc.name, 0) + 1
        env = {**self.stack.env, **overrides}
        argv = [os.environ.get("REINTEGRA_CHAOS_PYTHON") or _python(), "-m", "faststream", "run", svc.app, "--factory"]
        self.stack._spawn(svc, argv, env, must_contain=svc.app)
        self.stack._wait_ready([svc])

    def add_instance(self, service: str, name: str) -> None:
        """One more instance joining the group (an instance leaving is `remove_instance`)."""
        svc = ServiceProcess(name, f"{service}.app:create_app", self.stack.logs_dir / f"{name}.log")
        self.stack.processes[name] = svc
        self._locks[name] = threading.Lock()
        with self._locks[name]:
            self._spawn(svc)
        self._event(name, "joined")

    def remove_instance(self, name: str) -> None:
        svc = self.stack.processes[name]
        self.stack._stop_processes([svc])
        self._event(name, "left (SIGTERM)")

    # ------------------------------------------------------------------ infrastructure
    def postgres_immediate_restart(self, down_s: float) -> dict:
        """`pg_ctl stop -m immediate` (no checkpoint: crash recovery on start), then start it again."""
        from reintegra_stack import postgres_server as pgs

        with self._infra_lock:
            pgdata = self.state_dir / "postgres" / "data"
            user = pgs.SYSTEM_USER_WHEN_ROOT if os.geteuid() == 0 else None
            old = self.stack.postgres
            done = subprocess.run([str(pgs._bin_dir() / "pg_ctl"), "stop", "-m", "immediate", "-D", str(pgdata), "-w"],
                                  capture_output=True, text=True, timeout=60, **_proc.as_user_kwargs(user))
            how = "pg_ctl stop -m immediate"
            if done.returncode != 0 and old is not None and old.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(old.pid, signal.SIGQUIT)  # what pg_ctl -m immediate sends
                how = f"SIGQUIT (pg_ctl failed: {done.stderr.strip()[:200]})"
            if old is not None and old._process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    old._process.proc.wait(30)
            stopped_pid = old.pid if old else None
            # an immediate stop leaves the cluster "in production" (not "shut down"): recovery on start
            control = subprocess.run([str(pgs._bin_dir() / "pg_controldata"), "-D", str(pgdata)], capture_output=True,
                                     text=True, timeout=30, **_proc.as_user_kwargs(user))
            state = next((line.split(":", 1)[1].strip() for line in control.stdout.splitlines()
                          if line.startswith("Database cluster state")), "?")
            time.sleep(down_s)
            log_file = self.state_dir / "postgres" / "postgres.log"
            offset = log_file.stat().st_size if log_file.exists() else 0
            proc, url = pgs.start_postgres_server(self.state_dir)
            self.stack.postgres = RunningPostgres(url=url, kind="embedded", log_file=log_file, _process=proc,
                                                  **({"socket_dir": old.socket_dir} if hasattr(old, "socket_dir") else {}))
            port = int(url.rsplit(":", 1)[1].split("/")[0])
            if self.pg_proxy is not None:
                self.pg_proxy.set_target(("127.0.0.1", port))
            with open(log_file, "rb") as f:
                f.seek(offset)
                since = f.read().decode(errors="replace")
            return {"how": how, "stopped_pid": stopped_pid, "new_pid": proc.pid, "down_s": down_s,
                    "cluster_state_after_stop": state,
                    "crash_recovery": state != "shut down" or "not properly shut down" in since}

    def broker_restart(self, down_s: float) -> dict:
        """Stop the broker (SIGTERM, its log dirs kept), leave it down, start it on the same ports and data."""
        with self._infra_lock:
            old = self.stack.broker
            if old.kind != "kafka":
                return {"skipped": f"broker is {old.kind}: restart only on Apache Kafka"}
            old_pid = old.pid
            old.stop()
            time.sleep(down_s)
            self.stack.broker = start_broker(self.state_dir, "kafka")
            new: RunningBroker = self.stack.broker
            if new.bootstrap_servers != old.bootstrap_servers:
                return {"error": f"broker came back on {new.bootstrap_servers}, was {old.bootstrap_servers}",
                        "stopped_pid": old_pid, "new_pid": new.pid}
            return {"stopped_pid": old_pid, "new_pid": new.pid, "down_s": down_s}

    def sandbox_restart(self, down_s: float) -> dict:
        with self._infra_lock:
            old = self.stack.sandbox.pid
            self.stack.restart_sandbox(kill=True, down_s=down_s)
            return {"stopped_pid": old, "new_pid": self.stack.sandbox.pid, "down_s": down_s}


def _python() -> str:
    import sys

    return sys.executable


def faketime_env(offset: str) -> dict[str, str] | None:
    """Environment that runs a process under libfaketime at `offset` (e.g. "+90s"), or None without it."""
    if not Path("/usr/bin/faketime").exists() or not FAKETIME_LIB.exists():
        return None
    return {"LD_PRELOAD": str(FAKETIME_LIB), "FAKETIME": offset, "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            "FAKETIME_NO_CACHE": "1"}
