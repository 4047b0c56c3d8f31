"""The fault schedule (drawn from the seed up front) and what each fault does.

Every fault is recorded with its start and end (seconds since the run began), its target and
parameters, and `fired`: whether it was confirmed to have done something (a process gone and back,
a marker file, a proxy counter, a sandbox counter). A fault whose mechanism is missing from this
build (a crash point nobody placed yet) is "not fired", which is not a failure of the run unless
`--require-all-faults`.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

from reintegra.topics import ELIGIBILITY_CASE_EVENTS, INTAKE_CASE_EVENTS, NOTICE_REQUESTS
from reintegra_stack.supervisor import ALL_SERVICES

from .cases import MOMO_PROVIDERS
from .cluster import SESSION_TIMEOUT_S, Cluster, faketime_env, service_of

CRASH_POINTS: dict[str, tuple[str, ...]] = {  # point → services whose code reaches it
    "consumer.in_transaction": ("intake", "eligibility", "disbursement", "notifications"),
    "consumer.after_db_commit": ("intake", "eligibility", "disbursement", "notifications"),
    # reached only when a batch fails for good and is replayed record by record: the fault publishes
    # poison records (undecodable internal events) to the service's topic; intake's upstream topic
    # has none (it refuses unreadable records to .invalid without failing the batch)
    "consumer.mid_batch": ("eligibility", "disbursement", "notifications"),
    "relay.after_publish": ("intake", "eligibility", "disbursement"),
    "payment.after_provider_call": ("disbursement",),
    "sms.after_send": ("notifications",),
}
CONSUMED_BY = {"eligibility": INTAKE_CASE_EVENTS, "disbursement": ELIGIBILITY_CASE_EVENTS,
               "notifications": NOTICE_REQUESTS}
PROVIDER_VARIANTS = ("lose_response", "500_then_409_then_ok", "errors_before_and_after", "lookup_faults",
                     "duplicate_reordered_callbacks", "lost_delayed_callbacks", "key_expiry")
PROXY_MODES = ("latency", "stall", "reset", "blackhole")

# kind → rough seconds it takes (the schedule's spacing)
COST_S = {"sigkill": 8, "crash_point": 20, "pg_restart": 12, "broker_restart": 30, "sandbox_restart": 8,
          "proxy_postgres": 10, "proxy_sandbox": 10, "provider": 20, "sigstop": 14, "join_leave": 30,
          "rolling_restart": 45, "clock_skew": 30,
          # the partition itself, then the services' deadlines (PoolHealth: statement 30 s, TCP user
          # timeout 30 s) giving up on the dead connections
          "pg_partition": 45}
ALL_KINDS = tuple(COST_S)
CHEAP_KINDS = ("sigkill", "crash_point", "proxy_postgres", "proxy_sandbox", "provider", "sandbox_restart",
               "sigstop", "pg_restart")


@dataclass
class Fault:
    n: int
    at: float  # planned start, seconds after the first publish
    kind: str
    target: str = ""
    params: dict = field(default_factory=dict)
    started: float | None = None
    ended: float | None = None
    fired: bool | None = None
    detail: dict = field(default_factory=dict)

    def describe(self) -> str:
        params = " ".join(f"{k}={v}" for k, v in self.params.items())
        return f"#{self.n:02d} t+{self.at:6.1f}s {self.kind:<16} {self.target:<16} {params}"

    def to_json(self) -> dict:
        return asdict(self)


def plan_faults(seed: int, duration_s: float, kinds: tuple[str, ...], instances: list[str],
                crash_points: tuple[str, ...] = tuple(CRASH_POINTS)) -> list[Fault]:
    """The schedule, in rounds: each round is every kind once and every crash point once (shuffled,
    and every proxy mode and provider variant drawn in turn), so a longer run fires each of them more
    times, evenly. The first round is planned whole; later ones while they fit in `duration_s`."""
    rng = random.Random(f"faults:{seed}")
    if not kinds:
        return []
    order = _round(rng, kinds, crash_points)
    points = _shuffled(rng, crash_points)
    variants = _shuffled(rng, PROVIDER_VARIANTS)
    modes = {"proxy_postgres": _shuffled(rng, PROXY_MODES), "proxy_sandbox": _shuffled(rng, PROXY_MODES)}
    faults: list[Fault] = []
    t = rng.uniform(3, 6)
    first_round = len(order)
    i = 0
    while True:
        if i == len(order):  # the next round, drawn afresh
            order += _round(rng, kinds, crash_points)
            points += _shuffled(rng, crash_points)
            variants += _shuffled(rng, PROVIDER_VARIANTS)
            for pool in modes.values():
                pool += _shuffled(rng, PROXY_MODES)
        kind = order[i]
        if i >= first_round and t + COST_S[kind] > duration_s:
            break
        i += 1
        fault = Fault(len(faults) + 1, round(t, 1), kind)
        _draw(rng, fault, instances, points, variants, modes)
        faults.append(fault)
        t += COST_S[kind] + rng.uniform(2, 6)
    return faults


def crash_marker(crash_dir: Path, f: Fault) -> Path:
    """Where the process that reaches fault `f`'s crash point writes before it dies."""
    return crash_dir / f"fault-{f.n:02d}" / f.params["point"]


def _round(rng: random.Random, kinds: tuple[str, ...], crash_points: tuple[str, ...]) -> list[str]:
    order = [k for k in kinds if k != "crash_point"]
    if "crash_point" in kinds:
        order += ["crash_point"] * max(1, len(crash_points))
    rng.shuffle(order)
    return order


def _shuffled(rng: random.Random, items) -> list:
    out = list(items)
    rng.shuffle(out)
    return out


def _draw(rng: random.Random, f: Fault, instances: list[str], points: list, variants: list, modes: dict) -> None:
    services_up = [n for n in instances]
    if f.kind == "sigkill":
        f.target = rng.choice(services_up)
    elif f.kind == "crash_point":
        point = points.pop(0) if points else rng.choice(sorted(CRASH_POINTS))
        f.params = {"point": point, "window_s": 20}
        # every instance of the service is armed: a relay point is reached by the relay's leader only
        f.target = rng.choice(CRASH_POINTS[point])
    elif f.kind in ("pg_restart", "sandbox_restart"):
        f.params = {"down_s": round(rng.uniform(1, 4), 1)}
    elif f.kind == "broker_restart":
        f.params = {"down_s": round(rng.uniform(2, 6), 1)}
    elif f.kind == "pg_partition":
        f.params = {"mode": "partition", "duration_s": round(rng.uniform(3, 8), 1)}
    elif f.kind in ("proxy_postgres", "proxy_sandbox"):
        pool = modes[f.kind]
        mode = pool.pop(0) if pool else rng.choice(PROXY_MODES)
        f.params = {"mode": mode, "duration_s": round(rng.uniform(3, 8), 1)}
        if mode == "latency":
            f.params["ms"] = rng.choice([50, 150, 400])
        if mode == "reset":
            f.params["duration_s"] = 1.0
    elif f.kind == "provider":
        variant = variants.pop(0) if variants else rng.choice(PROVIDER_VARIANTS)
        f.params = {"variant": variant, "window_s": 15}
        f.target = ",".join(MOMO_PROVIDERS)
    elif f.kind == "sigstop":
        f.target = rng.choice(services_up)
        f.params = {"stopped_s": round(SESSION_TIMEOUT_S + rng.uniform(3, 6), 1)}
    elif f.kind == "join_leave":
        service = rng.choice(ALL_SERVICES)
        f.target = f"{service}-3"
        f.params = {"service": service, "stay_s": round(rng.uniform(10, 20), 1)}
    elif f.kind == "rolling_restart":
        f.target = "all"
    elif f.kind == "clock_skew":
        # a service that stamps case statuses (their sequence is a hybrid logical clock)
        f.target = rng.choice([n for n in instances if service_of(n) in ("intake", "eligibility", "disbursement")])
        f.params = {"offset": rng.choice(["+120s", "-120s", "+900s", "-45s"]), "window_s": 20}


# ---------------------------------------------------------------------------------- executing

def _sandbox(base_url: str, method: str, path: str, body: object | None = None) -> object:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{base_url}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


class Injector:
    def __init__(self, cluster: Cluster, scenario, t0: float, log) -> None:
        self.cluster = cluster
        self.scenario = scenario
        self.blocked = scenario.blocked_msisdns
        self.probes_published = 0
        self.t0 = t0
        self.log = log
        self.retired: set[str] = set()
        self.poison_keys: list[str] = []  # poison records published: each must end on a .dlq

    def now(self) -> float:
        return round(time.monotonic() - self.t0, 2)

    # the sandbox's base settings: the blocked wallets that make some payments fail on purpose
    def base_faults(self) -> dict:
        return {"unregistered_msisdns": list(self.blocked)}

    async def apply_base_faults(self) -> None:
        for provider in MOMO_PROVIDERS:
            await asyncio.to_thread(_sandbox, self.cluster.stack.provider_base_url, "PUT",
                                    f"/admin/faults/{provider}", self.base_faults())

    async def sandbox_stats(self) -> dict:
        try:
            return await asyncio.to_thread(_sandbox, self.cluster.stack.provider_base_url, "GET", "/admin/stats")
        except OSError:
            return {}

    async def run(self, fault: Fault) -> None:
        fault.started = self.now()
        self.log(f"fault {fault.describe()} ...")
        try:
            await getattr(self, f"_{fault.kind}")(fault)
        except Exception as exc:  # noqa: BLE001 - a fault that could not be applied is recorded, not fatal
            fault.fired = False
            fault.detail["error"] = f"{type(exc).__name__}: {exc}"
        fault.ended = self.now()
        state = {True: "fired", False: "NOT fired", None: "skipped"}[fault.fired]
        self.log(f"fault #{fault.n:02d} {fault.kind} {state} ({fault.ended - fault.started:.1f} s) {fault.detail}")

    # --- processes
    async def _came_back(self, name: str, old_pid: int | None, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            pid = self.cluster.pid(name)
            if pid is not None and pid != old_pid:
                return True
            await asyncio.sleep(0.2)
        return False

    async def _sigkill(self, f: Fault) -> None:
        spawns = self.cluster.spawns.get(f.target, 0)
        pid = await asyncio.to_thread(self.cluster.kill, f.target)
        gone = pid is not None and not _pid_alive(pid)
        # A supervisor that restarts crashed processes may bring it back on its own (within the 3 s the
        # keeper leaves it); else the keeper (or this) starts it again.
        back = await self._came_back(f.target, pid, 3)
        by_supervisor = back and self.cluster.spawns.get(f.target, 0) == spawns
        if not back:
            await asyncio.to_thread(self.cluster.ensure_running, f.target)
        back = await self._came_back(f.target, pid, 60)
        f.fired = bool(gone and back)
        f.detail = {"killed_pid": pid, "new_pid": self.cluster.pid(f.target),
                    "restarted_by": "supervisor" if by_supervisor else "harness"}

    async def _crash_point(self, f: Fault) -> None:
        point = f.params["point"]
        # a directory per fault: the point fires once for this fault, again for a later one
        marker = crash_marker(self.cluster.crash_dir, f)
        armed = [n for n in self.cluster.names if service_of(n) == f.target]
        armed_pids = {}
        for name in armed:
            if marker.exists():
                break
            try:
                await asyncio.to_thread(self.cluster.restart, name, {
                    "REINTEGRA_CRASH_AT": point, "REINTEGRA_CRASH_ONCE_DIR": str(marker.parent)})
            except Exception as exc:  # noqa: BLE001 - reached the point before it reported ready
                if not marker.exists():
                    raise
                f.detail["died_starting"] = f"{name}: {str(exc)[:120]}"
            armed_pids[name] = self.cluster.pid(name)
        started = time.monotonic()
        deadline = started + f.params["window_s"]
        poisoned_at = probed_at = 0.0
        while time.monotonic() < deadline and not marker.exists():
            if point == "consumer.mid_batch" and time.monotonic() - poisoned_at > 5:
                poisoned_at = time.monotonic()
                await self._poison(CONSUMED_BY[f.target], f)
            elif time.monotonic() - started > 5 and time.monotonic() - probed_at > 3:
                probed_at = time.monotonic()
                await self._probe(f)
            await asyncio.sleep(0.2)
        f.detail.update(armed=armed_pids, marker=str(marker))
        if marker.exists():
            f.fired = True
            f.detail["marker_text"] = marker.read_text().strip()
            for name in armed:
                self.cluster.envs[name] = {}  # it fired: later restarts run unarmed
            # whichever process reached it killed itself: it comes back (keeper or supervisor)
            await asyncio.sleep(1)
            for name in list(self.cluster.stack.processes):
                if name not in self.retired:
                    await asyncio.to_thread(self.cluster.ensure_running, name)
        else:
            f.fired = False
            f.detail["note"] = "marker never appeared: the point is not placed in this build, or not reached"
            # leave it armed: it may still fire later (checked at the end)

    async def _probe(self, f: Fault) -> None:
        """No traffic meets the fault: publish one of the scenario's spare cash cases."""
        from aiokafka import AIOKafkaProducer
        from reintegra.topics import UPSTREAM_CASE_EVENTS

        if self.probes_published >= len(self.scenario.probes):
            return
        case = self.scenario.probes[self.probes_published]
        self.probes_published += 1
        producer = AIOKafkaProducer(bootstrap_servers=self.cluster.stack.bootstrap_servers, acks="all")
        await producer.start()
        try:
            for k, v, h in case.records:
                await producer.send_and_wait(UPSTREAM_CASE_EVENTS, key=k, value=v, headers=h)
        finally:
            await producer.stop()
        self.scenario.cases.append(case)
        f.detail.setdefault("probe_cases", []).append(case.case_id)

    async def _poison(self, topic: str, f: Fault) -> None:
        """A few undecodable records in one produce batch to one partition: the batch fails for good,
        the consumer replays it record by record (reaching consumer.mid_batch) and dead-letters each."""
        from aiokafka import AIOKafkaProducer

        key = f"POISON-{f.n}-{len(self.poison_keys)}"
        producer = AIOKafkaProducer(bootstrap_servers=self.cluster.stack.bootstrap_servers, acks="all", linger_ms=50)
        await producer.start()
        try:
            futures = [await producer.send(topic, key=key.encode(), value=b"{poison record " + bytes([48 + i]))
                       for i in range(4)]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()
        self.poison_keys.append(key)
        f.detail.setdefault("poison", []).append(f"{topic} key={key} x4")

    async def _sigstop(self, f: Fault) -> None:
        pid = self.cluster.pid(f.target)
        self.cluster.stop_process(f.target)
        await asyncio.sleep(0.5)
        state = _proc_state(pid)
        await asyncio.sleep(max(0.0, f.params["stopped_s"] - 0.5))
        self.cluster.cont(f.target)
        f.fired = state == "T"
        f.detail = {"pid": pid, "state_while_stopped": state, "session_timeout_s": SESSION_TIMEOUT_S}

    async def _join_leave(self, f: Fault) -> None:
        name, service = f.target, f.params["service"]
        if name in self.cluster.stack.processes and name not in self.retired:
            f.fired, f.detail = None, {"skipped": f"{name} is already running"}
            return
        self.retired.discard(name)
        if name in self.cluster.stack.processes:
            await asyncio.to_thread(self.cluster.restart, name)
        else:
            await asyncio.to_thread(self.cluster.add_instance, service, name)
        pid = self.cluster.pid(name)
        await asyncio.sleep(f.params["stay_s"])
        self.retired.add(name)
        await asyncio.to_thread(self.cluster.remove_instance, name)
        f.fired = pid is not None and not self.cluster.alive(name)
        f.detail = {"pid": pid}

    async def _rolling_restart(self, f: Fault) -> None:
        done = []
        for name in list(self.cluster.names):
            old = self.cluster.pid(name)
            await asyncio.to_thread(self.cluster.restart, name)
            done.append((name, old, self.cluster.pid(name)))
        f.fired = all(old != new and new is not None for _, old, new in done)
        f.detail = {"restarted": [n for n, _, _ in done]}

    async def _clock_skew(self, f: Fault) -> None:
        env = faketime_env(f.params["offset"])
        if env is None:
            f.fired, f.detail = None, {"skipped": "no /usr/bin/faketime (Debian package faketime)"}
            return
        await asyncio.to_thread(self.cluster.restart, f.target, env)
        pid = self.cluster.pid(f.target)
        environ = _environ(pid)
        await asyncio.sleep(f.params["window_s"])
        await asyncio.to_thread(self.cluster.restart, f.target, {})
        f.fired = environ.get("FAKETIME") == f.params["offset"]
        f.detail = {"pid": pid, "FAKETIME": environ.get("FAKETIME")}

    # --- infrastructure
    async def _pg_restart(self, f: Fault) -> None:
        f.detail = await asyncio.to_thread(self.cluster.postgres_immediate_restart, f.params["down_s"])
        f.fired = f.detail.get("new_pid") is not None and f.detail.get("new_pid") != f.detail.get("stopped_pid")

    async def _broker_restart(self, f: Fault) -> None:
        f.detail = await asyncio.to_thread(self.cluster.broker_restart, f.params["down_s"])
        if "skipped" in f.detail:
            f.fired = None
        else:
            f.fired = "error" not in f.detail and f.detail.get("new_pid") != f.detail.get("stopped_pid")

    async def _sandbox_restart(self, f: Fault) -> None:
        f.detail = await asyncio.to_thread(self.cluster.sandbox_restart, f.params["down_s"])
        f.fired = f.detail["new_pid"] != f.detail["stopped_pid"]

    async def _proxy(self, f: Fault, proxy) -> None:
        if proxy is None:
            f.fired, f.detail = None, {"skipped": "no proxy in front of it (--no-proxy)"}
            return
        before = proxy.stats()
        mode = f.params["mode"]
        counter = {"latency": "chunks_delayed", "stall": "stalled_connections", "reset": "resets",
                   "blackhole": "bytes_dropped", "partition": "partitioned_connections"}[mode]
        await asyncio.to_thread(proxy.set_mode, mode, ms=f.params.get("ms", 0))
        await asyncio.sleep(f.params["duration_s"])
        # nothing went through it yet (no payment due, say): keep the mode up to 20 s longer
        extra = time.monotonic() + 20
        probed_at = 0.0
        while proxy.stats().get(counter, 0) == before.get(counter, 0) and time.monotonic() < extra:
            if time.monotonic() - probed_at > 4:
                probed_at = time.monotonic()
                await self._probe(f)
            await asyncio.sleep(0.5)
        during = proxy.stats()
        await asyncio.to_thread(proxy.set_mode, "pass")
        after = proxy.stats()
        delta = {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)}
        f.fired = delta.get(counter, 0) > 0
        f.detail = {"delta": delta, "open_during": during.get("open")}

    async def _proxy_postgres(self, f: Fault) -> None:
        await self._proxy(f, self.cluster.pg_proxy)

    async def _pg_partition(self, f: Fault) -> None:
        await self._proxy(f, self.cluster.pg_proxy)

    async def _proxy_sandbox(self, f: Fault) -> None:
        await self._proxy(f, self.cluster.sandbox_proxy)

    # --- providers
    async def _provider(self, f: Fault) -> None:
        variant = f.params["variant"]
        base = self.base_faults()
        settings, counters = {
            "lose_response": ({"lose_response_rate": 0.3}, ("responses_lost",)),
            "500_then_409_then_ok": ({"script": [
                entry for _ in range(5) for entry in (
                    {"match": {}, "operation": "create", "fault": "error_before"},
                    {"match": {}, "operation": "create", "fault": "conflict"})]}, ("errors_before", "conflicts")),
            "errors_before_and_after": ({"error_before_rate": 0.2, "error_after_rate": 0.2},
                                        ("errors_before", "errors_after")),
            "lookup_faults": ({"lose_response_rate": 0.3, "script": [
                {"match": {}, "operation": "lookup", "fault": "error_before", "times": 5},
                {"match": {}, "operation": "lookup", "fault": "lose_response", "times": 5}]},
                ("responses_lost",)),
            "duplicate_reordered_callbacks": ({"callback_duplicates": 2, "callback_reorder": True,
                                               "callback_delay_ms": 1500}, ("callbacks_duplicated",)),
            "lost_delayed_callbacks": ({"callback_loss_rate": 0.5, "callback_delay_ms": 3000}, ("callbacks_lost",)),
            # answers lost, then the provider down longer than it keeps idempotency keys (5 s)
            "key_expiry": ({"lose_response_rate": 0.5}, ("responses_lost",)),
        }[variant]
        before = await self.sandbox_stats()
        url = self.cluster.stack.provider_base_url
        for provider in MOMO_PROVIDERS:
            await asyncio.to_thread(_sandbox, url, "PUT", f"/admin/faults/{provider}", {**base, **settings})
        await asyncio.sleep(f.params["window_s"])
        extra, probed_at = time.monotonic() + 20, 0.0
        while time.monotonic() < extra and not _grew(before, await self.sandbox_stats(), counters):
            if time.monotonic() - probed_at > 4:  # no payment went out in the window: make one
                probed_at = time.monotonic()
                await self._probe(f)
            await asyncio.sleep(0.5)
        if variant == "key_expiry":
            f.detail["restart"] = await asyncio.to_thread(self.cluster.sandbox_restart, 6.0)
        await self.apply_base_faults()
        after = await self.sandbox_stats()
        delta = {}
        for provider in MOMO_PROVIDERS:
            for c in set(after.get(provider, {})):
                d = after.get(provider, {}).get(c, 0) - before.get(provider, {}).get(c, 0)
                if d:
                    delta[c] = delta.get(c, 0) + d
        f.fired = all(delta.get(c, 0) > 0 for c in counters)
        f.detail.update(delta=delta, confirmed_by=list(counters))


def _grew(before: dict, after: dict, counters: tuple[str, ...]) -> bool:
    def total(stats: dict, c: str) -> int:
        return sum(stats.get(p, {}).get(c, 0) for p in MOMO_PROVIDERS)

    return all(total(after, c) > total(before, c) for c in counters)


def _pid_alive(pid: int) -> bool:
    state = _proc_state(pid)
    return state is not None and state != "Z"


def _proc_state(pid: int | None) -> str | None:
    if pid is None:
        return None
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def _environ(pid: int | None) -> dict[str, str]:
    if pid is None:
        return {}
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)
