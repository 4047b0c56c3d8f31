"""End-to-end benchmark: N cash cases through intake → eligibility → disbursement (paid and settled
at the provider sandbox) → notifications, on the embedded default.

    python bench/pipeline_bench.py --cases 5000

Prints cases/s from the first publish to the last `grant.completed` status, and latency
percentiles from publishing a case's last event to its `grant.completed` status.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aiokafka import AIOKafkaProducer
from reintegra.relay import partition_for_key, send_as_record_batches
from reintegra.topics import UPSTREAM_CASE_EVENTS
from reintegra_stack.demo.money import load_demo_rates
from reintegra_stack.demo.scenario import simple_cash_scenario
from reintegra_stack.demo.watch import PipelineWatcher
from reintegra_stack.supervisor import Stack, StackConfig
from rich.console import Console


def cpu_seconds_by_component(stack: Stack) -> dict[str, float]:
    """CPU time (user + system) each component has used so far, read from /proc (Linux)."""
    tick = os.sysconf("SC_CLK_TCK")

    def cpu(pid: int) -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick

    components = {name: svc.pid for name, svc in stack.processes.items()}
    if stack.sandbox is not None:
        components["provider-sandbox"] = stack.sandbox.pid
    if stack.broker is not None and stack.broker.pid:
        components[f"broker ({stack.broker.kind})"] = stack.broker.pid
    result = {}
    for name, pid in components.items():
        try:
            result[name] = cpu(pid)
        except (OSError, TypeError):
            pass
    postgres = 0.0
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if (proc / "comm").read_text().strip() == "postgres":
                    postgres += cpu(int(proc.name))
            except OSError:
                pass
    result["postgres (all backends)"] = postgres
    return result


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


async def publish(producer: AIOKafkaProducer, cases: list, partition_count: int) -> None:
    """One record batch per partition, as a high-volume upstream producer (librdkafka, the Java
    client) sends them; a case's records keep their order within its partition."""
    by_partition: dict[int, list] = {}
    for case in cases:
        for key, value, headers in case.records:
            by_partition.setdefault(partition_for_key(key, partition_count), []).append((key, value, headers))
    deliveries = []
    for partition, records in by_partition.items():
        deliveries += await send_as_record_batches(producer, UPSTREAM_CASE_EVENTS, partition, records)
    await asyncio.gather(*deliveries)


async def run(stack: Stack, scenario, timeout_s: float, rate: float) -> dict:
    n_cases = len(scenario.cases)
    finals = {c.case_id: c.expected_final for c in scenario.cases}
    watcher = PipelineWatcher(stack.bootstrap_servers, scenario.cases[0].case_id.rsplit("-", 1)[0], finals,
                              keep_history=False)
    await watcher.start()
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap_servers, acks="all", linger_ms=5,
                                max_batch_size=1024 * 1024)
    await producer.start()
    partition_count = len(await producer.partitions_for(UPSTREAM_CASE_EVENTS))
    published_at: dict[str, float] = {}
    chunk = 50 if rate else 500
    started = time.monotonic()
    try:
        for first in range(0, n_cases, chunk):
            cases = scenario.cases[first:first + chunk]
            await publish(producer, cases, partition_count)
            now = time.monotonic()
            published_at.update((case.case_id, now) for case in cases)
            if rate:
                # Paced load: latency then measures the pipeline, not the queue of a burst.
                due = started + len(published_at) / rate
                while (ahead := due - time.monotonic()) > 0:
                    await watcher.poll(timeout_ms=int(ahead * 1000) + 1)
            else:
                await watcher.poll(timeout_ms=0)
        done = await watcher.wait_until(lambda: watcher.settled_count() == n_cases, timeout_s)
    finally:
        await producer.stop()
        await watcher.stop()
    finished = max(watcher.observed.final_status_at.values(), default=time.monotonic())
    latencies = [(watcher.observed.final_status_at[c] - published_at[c]) * 1000
                 for c in finals if c in watcher.observed.final_status_at]
    stages = {status: (count, at - started) for status, (count, at) in watcher.observed.stage_progress.items()}
    return {
        "stages": stages,
        "cases": n_cases,
        "completed": len(latencies),
        "all_completed": done,
        "seconds": finished - started,
        "cases_per_s": len(latencies) / (finished - started),
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "p99_ms": percentile(latencies, 99),
    }


def run_floor(script: Path, stack: Stack, n_cases: int) -> str:
    """The hand-written floor's own summary line, run against this stack's broker and Postgres
    (the services are stopped first so that it has the machine to itself, as they had)."""
    for name in list(stack.processes):
        stack.kill_service(name, signal.SIGTERM)
    done = subprocess.run([sys.executable, str(script), stack.bootstrap_servers, stack.database_url, str(n_cases)],
                          capture_output=True, text=True, timeout=600)
    lines = [line for line in done.stdout.splitlines() if line.startswith("baseline")]
    return lines[-1] if lines else f"the floor failed: {done.stderr.strip()[-500:]}"


def scenario_of(n_cases: int, sampled_share: float):
    return simple_cash_scenario(n_cases, run_id=secrets.token_hex(3).upper(), sampled_share=sampled_share)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=5000)
    parser.add_argument("--broker", default="auto", help="auto | kafka | tansu")
    parser.add_argument("--sample-ratio", type=float, default=0.01,
                        help="share of cases whose upstream trace is sampled (spans recorded and exported)")
    parser.add_argument("--warmup", type=int, default=1000,
                        help="cases pushed through first and not measured (the broker's JIT, caches, connections)")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--rate", type=float, default=0,
                        help="publish at this many cases/s (default: as fast as possible, a burst)")
    parser.add_argument("--floor", type=Path, metavar="BASELINE_PY",
                        help="afterwards, run this hand-written four-stage floor (../shared/bench/"
                        "baseline_pipeline.py) on the same broker and Postgres, with the same number of cases")
    args = parser.parse_args()
    state_dir = Path(tempfile.mkdtemp(prefix="reintegra-bench-"))
    env = {"REINTEGRA_TRACE_SAMPLE_RATIO": str(args.sample_ratio)}
    stack = Stack(StackConfig(state_dir=state_dir, broker=args.broker, extra_env=env))
    try:
        stack.start()
        # Finance's rates for the day, as in the demo: Guinean wallets are paid in GNF.
        asyncio.run(load_demo_rates(stack.database_url, Console(quiet=True)))
        if args.warmup:
            print(f"stack up: broker {stack.broker.kind}; warming up with {args.warmup} cases...")
            asyncio.run(run(stack, scenario_of(args.warmup, args.sample_ratio), args.timeout, args.rate))
        scenario = scenario_of(args.cases, args.sample_ratio)  # built before the CPU count starts
        print(f"publishing {args.cases} cases (3 events each)...")
        cpu_before = cpu_seconds_by_component(stack)
        cpu_before["bench (publisher + watcher)"] = time.process_time()
        result = asyncio.run(run(stack, scenario, args.timeout, args.rate))
        cpu_after = cpu_seconds_by_component(stack)
        cpu_after["bench (publisher + watcher)"] = time.process_time()
        if args.floor:
            floor = run_floor(args.floor, stack, args.cases)
    finally:
        stack.stop()
        if not os.environ.get("BENCH_KEEP_STATE"):
            shutil.rmtree(state_dir, ignore_errors=True)
        else:
            print(f"state kept in {state_dir}")
    print(f"{result['completed']}/{result['cases']} cases reached grant.completed in {result['seconds']:.1f} s")
    print(f"throughput: {result['cases_per_s']:.0f} cases/s end to end")
    print(f"latency publish → grant.completed: p50 {result['p50_ms']:.0f} ms, "
          f"p95 {result['p95_ms']:.0f} ms, p99 {result['p99_ms']:.0f} ms")
    print("CPU per case, by component:")
    for name in sorted(cpu_after, key=lambda n: cpu_before.get(n, 0) - cpu_after[n]):
        used = cpu_after[name] - cpu_before.get(name, 0)
        print(f"  {name:<24} {1000 * used / args.cases:6.2f} ms")
    print("when each stage finished (seconds after the first publish):")
    for status, (count, at) in sorted(result["stages"].items(), key=lambda item: item[1][1]):
        print(f"  {status:<22} {count:>6} statuses, last at {at:6.1f} s")
    if args.floor:
        print(f"floor on the same broker and Postgres: {floor}")
    if not result["all_completed"]:
        raise SystemExit("not every case completed before the timeout")


if __name__ == "__main__":
    main()
