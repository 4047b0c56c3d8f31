"""The harness: start, drive, inject, drain, check, report (see bench/chaos/__init__.py)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import time
import urllib.request
from collections import Counter

from aiokafka import AIOKafkaProducer
from reintegra.topics import UPSTREAM_CASE_EVENTS
from reintegra_stack.supervisor import PROJECT_ROOT

from .cases import Scenario, build_scenario
from .cluster import Cluster, instance_names
from .faults import ALL_KINDS, CHEAP_KINDS, COST_S, CRASH_POINTS, Fault, Injector, crash_marker, plan_faults
from .observe import ProgressReader, check_everything, consumer_lag, db_backlog, group_members

EXIT_OK, EXIT_INVARIANTS, EXIT_FAULTS_NOT_FIRED, EXIT_HARNESS = 0, 1, 2, 3


def git_commit() -> str:
    done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PROJECT_ROOT,
                           capture_output=True, text=True).stdout.strip()
    return done.stdout.strip() + ("+dirty" if dirty else "")


def parse_kinds(spec: str) -> tuple[str, ...]:
    if spec in ("", "none"):
        return ()
    kinds: list[str] = []
    for token in (t.strip() for t in spec.split(",") if t.strip()):
        for kind in {"all": ALL_KINDS, "cheap": CHEAP_KINDS}.get(token, (token,)):
            if kind not in kinds:
                kinds.append(kind)
    kinds = tuple(kinds)
    unknown = [k for k in kinds if k not in ALL_KINDS]
    if unknown:
        raise SystemExit(f"unknown fault kinds {unknown}; known: {', '.join(ALL_KINDS)}")
    return kinds


class Harness:
    def __init__(self, args: argparse.Namespace, scenario: Scenario, schedule: list[Fault], cluster: Cluster,
                 log) -> None:
        self.args = args
        self.scenario = scenario
        self.schedule = schedule
        self.cluster = cluster
        self.log = log
        self.t0 = time.monotonic()
        self.injector = Injector(cluster, scenario, self.t0, log)
        self.reader = ProgressReader(cluster.stack.bootstrap_servers, scenario.prefix)
        self.keeper_restarts: Counter = Counter()
        self.keeper_errors: list[str] = []
        self.publish_resends = 0
        self.published_at: float | None = None
        self._stopping = False
        self.members_at_start: dict = {}
        self.lag_s = 0.0  # how late the fault schedule runs behind its plan
        self.all_final_at: float | None = None  # when every case first was in its expected state

    def now(self) -> float:
        return time.monotonic() - self.t0

    def span_s(self) -> float:
        """How long the run drives cases: the duration asked, or longer when the schedule is."""
        end = max((f.at + COST_S[f.kind] for f in self.schedule), default=0.0)
        return max(self.args.duration_s, end)

    def settled(self) -> int:
        last = self.reader.progress.last
        n = sum(1 for c in self.scenario.cases if c.accepts(last.get(c.case_id)))
        if n == len(self.scenario.cases) and self.all_final_at is None:
            self.all_final_at = self.now()
        elif n < len(self.scenario.cases):
            self.all_final_at = None
        return n

    async def keeper(self) -> None:
        """Every instance that died (a fault, a crash point, a crash of its own) is started again; a
        supervisor that restarts on its own gets 3 s to do it first."""
        dead_since: dict[str, float] = {}
        while not self._stopping:
            for name in list(self.cluster.stack.processes):
                if name in self.injector.retired or name in self.cluster.held_down or self.cluster.alive(name):
                    dead_since.pop(name, None)
                    continue
                first = dead_since.setdefault(name, time.monotonic())
                if time.monotonic() - first < 3:
                    continue
                try:
                    if await asyncio.to_thread(self.cluster.ensure_running, name):
                        self.keeper_restarts[name] += 1
                        self.log(f"keeper: {name} was down, started again")
                    dead_since.pop(name, None)
                except Exception as exc:  # noqa: BLE001 - e.g. Postgres still down: try again
                    self.keeper_errors.append(f"t+{self.now():.0f}s {name}: {str(exc)[:300]}")
                    dead_since[name] = time.monotonic()
            await asyncio.sleep(1)

    async def publisher(self) -> None:
        records = self.scenario.records
        span = max(1.0, self.span_s() * self.args.publish_share)
        chunk = 20
        producer = AIOKafkaProducer(bootstrap_servers=self.cluster.stack.bootstrap_servers, acks="all",
                                    enable_idempotence=True, linger_ms=5, request_timeout_ms=30000)
        await producer.start()
        start = time.monotonic()
        try:
            for first in range(0, len(records), chunk):
                # the schedule runs late when faults take longer than planned: stretch the stream
                # with it, so that every fault still meets traffic
                due = start + span * first / len(records) + self.lag_s
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                batch = records[first:first + chunk]
                while True:
                    try:
                        futures = [await producer.send(UPSTREAM_CASE_EVENTS, value=v, key=k, headers=h)
                                   for k, v, h in batch]
                        await asyncio.gather(*futures)
                        break
                    except Exception as exc:  # noqa: BLE001 - the broker restarting: send the chunk again
                        self.publish_resends += 1
                        self.log(f"publisher: {type(exc).__name__}: {exc}; sending the chunk again")
                        await asyncio.sleep(1)
        finally:
            await producer.stop()
        self.published_at = self.now()
        self.log(f"published {len(records)} records in {self.published_at:.1f} s")

    async def progress(self) -> None:
        last_log = 0.0
        while not self._stopping:
            await self.reader.poll(500)
            if self.now() - last_log >= 10:
                last_log = self.now()
                self.log(f"progress: {self.settled()}/{len(self.scenario.cases)} cases in their expected state")

    async def faults(self) -> None:
        for fault in self.schedule:
            await asyncio.sleep(max(0.0, self.t0 + fault.at - time.monotonic()))
            self.lag_s = max(self.lag_s, self.now() - fault.at)
            await self.injector.run(fault)

    async def restore(self) -> None:
        for proxy in (self.cluster.pg_proxy, self.cluster.sandbox_proxy):
            if proxy is not None:
                await asyncio.to_thread(proxy.set_mode, "pass")
        for name in list(self.cluster.held_down):
            self.cluster.cont(name)
        with contextlib.suppress(Exception):
            await self.injector.apply_base_faults()

    async def run(self) -> dict:
        await self.injector.apply_base_faults()
        await self.reader.start()
        self.members_at_start = await group_members(self.cluster.stack.bootstrap_servers)
        self.log(f"consumer group members: {self.members_at_start}")
        tasks = [asyncio.create_task(self.keeper(), name="keeper"),
                 asyncio.create_task(self.progress(), name="progress")]
        try:
            await asyncio.gather(self.publisher(), self.faults())
            faults_done = self.now()
            await self.restore()
            self.log(f"faults over at t+{faults_done:.1f}s; draining (bound {self.args.drain_s:.0f} s)")
            total = len(self.scenario.cases)
            deadline = time.monotonic() + self.args.drain_s
            while self.settled() < total and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
            drained = self.settled() == total
            # the drain: from the end of the faults to every case in its final state (0 when they all
            # got there while faults still ran)
            drain_s = max(0.0, (self.all_final_at if drained else self.now()) - faults_done)
            self.log(f"drain: {self.settled()}/{total} in {drain_s:.1f} s")
            quiet = await self.quiesce()
        finally:
            self._stopping = True
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await self.reader.stop()
        self.late_crash_points()
        with urllib.request.urlopen(f"{self.cluster.stack.provider_base_url}/admin/transfers", timeout=30) as r:
            transfers = json.loads(r.read())["transfers"]
        checks, figures = await check_everything(self.scenario, self.cluster.stack.bootstrap_servers,
                                                 self.cluster.stack.database_url, self.cluster.state_dir, transfers,
                                                 self.injector.poison_keys)
        after_publish = (self.all_final_at - self.published_at) if drained and self.published_at else None
        return {"drained": drained, "drain_s": round(drain_s, 1), "faults_done_at_s": round(faults_done, 1),
                "all_final_at_s": self.all_final_at and round(self.all_final_at, 1),
                "final_after_last_publish_s": after_publish and round(max(0.0, after_publish), 1),
                "quiesce": quiet, "checks": checks, "figures": figures}

    async def quiesce(self, bound_s: float = 60) -> dict:
        """After the drain: wait (bounded) for the outboxes to empty and the groups to catch up, and a few
        seconds more for anything late (a re-published status, a second SMS) to show."""
        deadline = time.monotonic() + bound_s
        backlog, lag = {}, {}
        while time.monotonic() < deadline:
            try:
                backlog = await db_backlog(self.cluster.stack.database_url)
                lag = await consumer_lag(self.cluster.stack.bootstrap_servers)
            except Exception as exc:  # noqa: BLE001
                self.log(f"quiesce: {exc}")
            if not any(v for k, v in backlog.items() if k.endswith(".outbox")) and not any(lag.values()):
                break
            await asyncio.sleep(1)
        await asyncio.sleep(5)
        return {"outbox": backlog, "lag": lag}

    def late_crash_points(self) -> None:
        for fault in self.schedule:
            if fault.kind == "crash_point" and fault.fired is False:
                marker = crash_marker(self.cluster.crash_dir, fault)
                if marker.exists():
                    fault.fired = True
                    fault.detail["fired_late"] = marker.read_text().strip()


def fault_summary(schedule: list[Fault]) -> dict:
    by_kind: dict[str, Counter] = {}
    for f in schedule:
        key = f.kind if f.kind != "crash_point" else f"crash_point:{f.params['point']}"
        if f.kind == "provider":
            key = f"provider:{f.params['variant']}"
        if f.kind.startswith("proxy_"):
            key = f"{f.kind}:{f.params['mode']}"
        state = {True: "fired", False: "not_fired", None: "skipped"}[f.fired]
        by_kind.setdefault(key, Counter())[state] += 1
    return {k: dict(v) for k, v in sorted(by_kind.items())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cases", type=int, default=300)
    parser.add_argument("--duration-s", type=float, default=120, help="how long cases are driven and faults injected")
    parser.add_argument("--publish-share", type=float, default=0.95,
                        help="share of the duration over which the cases are published")
    parser.add_argument("--drain-s", type=float, default=180, help="bound on the drain after the faults")
    parser.add_argument("--faults", default="all", help="all | cheap | none | a comma list of kinds (all and cheap expand): "
                        + ", ".join(ALL_KINDS))
    parser.add_argument("--crash-points", default="all",
                        help="all, or a comma list of the points to schedule: " + ", ".join(CRASH_POINTS))
    parser.add_argument("--require-all-faults", action="store_true",
                        help="exit 2 when a planned fault did not fire (e.g. a crash point not placed yet)")
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--broker", default="auto", help="auto | kafka | tansu")
    parser.add_argument("--no-proxy", action="store_true", help="services reach Postgres and the sandbox directly")
    parser.add_argument("--run-name", default=None, help="folder under .reintegra/chaos (default: time and seed)")
    parser.add_argument("--plan-only", action="store_true", help="print the case stream summary and the schedule")
    parser.add_argument("--extra-env", action="append", default=[], metavar="K=V",
                        help="one more variable for every service (e.g. REINTEGRA_TEST_DISABLE_INBOX=1)")
    args = parser.parse_args(argv)

    kinds = parse_kinds(args.faults)
    scenario = build_scenario(args.seed, args.cases)
    names = instance_names(args.instances)
    points = tuple(CRASH_POINTS) if args.crash_points == "all" else tuple(
        p.strip() for p in args.crash_points.split(",") if p.strip())
    unknown = [p for p in points if p not in CRASH_POINTS]
    if unknown:
        raise SystemExit(f"unknown crash points {unknown}; known: {', '.join(CRASH_POINTS)}")
    schedule = plan_faults(args.seed, args.duration_s, kinds, names, points)
    commit = git_commit()
    print(f"chaos: seed {args.seed}, commit {commit}, {len(scenario.cases)} cases, {len(scenario.records)} records "
          f"({scenario.duplicates} duplicate deliveries, {scenario.garbage} unreadable), "
          f"{args.instances} instances of each service")
    print(f"cases by kind: {scenario.summary()['by_kind']}; budget covers {scenario.budget_fits} of "
          f"{scenario.budget_cases} budget grants ({scenario.budget_amount} EUR)")
    print(f"fault schedule ({len(schedule)} faults over {args.duration_s:.0f} s, drawn from the seed):")
    for fault in schedule:
        print("  " + fault.describe())
    if args.plan_only:
        return EXIT_OK

    run_name = args.run_name or f"{time.strftime('%Y%m%d-%H%M%S')}-seed{args.seed}"
    run_dir = PROJECT_ROOT / ".reintegra" / "chaos" / run_name
    run_dir.mkdir(parents=True, exist_ok=True)
    log_file = open(run_dir / "harness.log", "a", encoding="utf-8")  # noqa: SIM115
    started = time.monotonic()

    def log(message: str) -> None:
        line = f"[{time.monotonic() - started:7.1f}s] {message}"
        print(line, flush=True)
        log_file.write(line + "\n")
        log_file.flush()

    extra_env = dict(item.split("=", 1) for item in args.extra_env)
    cluster = Cluster(run_dir / "state", budget_amount=scenario.budget_amount,
                      main_budget_amount=scenario.main_budget_amount, instances=args.instances,
                      broker=args.broker, proxy_postgres=not args.no_proxy, proxy_sandbox=not args.no_proxy,
                      extra_env=extra_env)
    result: dict = {"seed": args.seed, "commit": commit, "run_dir": str(run_dir), "args": vars(args),
                    "scenario": scenario.summary()}
    outcome = None
    error = None
    try:
        log(f"starting the stack in {cluster.state_dir} ...")
        cluster.start()
        log(f"stack up (broker {cluster.broker_kind}) in {time.monotonic() - started:.0f} s: "
            f"{', '.join(cluster.names)}")
        if cluster.broker_kind != "kafka":
            log("broker restarts are skipped: not Apache Kafka")
        harness = Harness(args, scenario, schedule, cluster, log)
        outcome = asyncio.run(harness.run())
        result.update(keeper_restarts=dict(harness.keeper_restarts), keeper_errors=harness.keeper_errors[:30],
                      publish_resends=harness.publish_resends,
                      probe_cases_published=harness.injector.probes_published,
                      group_members_at_start=harness.members_at_start, published_at_s=harness.published_at)
    except Exception as exc:  # noqa: BLE001 - reported in result.json
        import traceback

        error = traceback.format_exc()
        log(f"harness error: {exc}")
    finally:
        with contextlib.suppress(Exception):
            result["broker"] = cluster.broker_kind
        result["instance_events"] = [vars(e) for e in cluster.events]
        cluster.stop()
    result["faults"] = [f.to_json() for f in schedule]
    result["faults_by_kind"] = fault_summary(schedule)
    # markers of the faults (fault-<n>/<point>) and of points armed through --extra-env (<point>)
    crash_fired = sorted({p.name for p in cluster.crash_dir.rglob("*") if p.is_file()}) \
        if cluster.crash_dir.exists() else []
    result["crash_points_fired"] = crash_fired
    result["crash_points_never_fired"] = sorted(set(CRASH_POINTS) - set(crash_fired))
    not_fired = [f for f in schedule if f.fired is False]
    if outcome is not None:
        checks = outcome.pop("checks")
        result.update(outcome)
        result["checks"] = [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks]
        result["ok"] = all(c.ok for c in checks) and outcome["drained"]
    else:
        result["ok"] = False
        result["error"] = error
    code = EXIT_OK
    if not result["ok"]:
        code = EXIT_HARNESS if outcome is None else EXIT_INVARIANTS
    elif args.require_all_faults and not_fired:
        code = EXIT_FAULTS_NOT_FIRED
    result["exit_code"] = code
    (run_dir / "result.json").write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    print_report(result, log)
    log(f"result: {run_dir / 'result.json'}; exit {code}")
    log_file.close()
    return code


def print_report(result: dict, log) -> None:
    f = result.get("figures", {})
    log("=" * 78)
    log(f"seed {result['seed']}  commit {result['commit']}  broker {result.get('broker')}")
    if f:
        log(f"cases: {f.get('cases_attempted')} attempted, {f.get('cases_in_expected_state')} in their expected "
            f"state, {f.get('completed')} completed, {f.get('rejected_as_expected')} rejected as expected, "
            f"{f.get('lost')} lost")
        log(f"duplicates: transfers {f.get('duplicated_transfers')}, SMS {f.get('duplicated_sms')}, statuses "
            f"applied twice {f.get('statuses_applied_twice')}; ledger mismatches {f.get('ledger_mismatches')}; "
            f"drain {result.get('drain_s')} s")
    log("faults by kind: " + json.dumps(result.get("faults_by_kind", {})))
    log(f"crash points fired: {result.get('crash_points_fired')}; never: {result.get('crash_points_never_fired')}")
    for c in result.get("checks", []):
        mark = "ok  " if c["ok"] else "FAIL"
        detail = "" if c["ok"] else "  " + json.dumps(c["detail"], default=str)[:1500]
        log(f"  [{mark}] {c['name']}{detail}")
    if result.get("error"):
        log(result["error"][-3000:])
    log(f"INVARIANTS {'HOLD' if result['ok'] else 'VIOLATED'}")


if __name__ == "__main__":
    sys.exit(main())
