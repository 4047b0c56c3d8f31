"""The demo: feed a running stack a realistic sample and show what came out."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections import Counter

from aiokafka import AIOKafkaProducer
from reintegra.topics import UPSTREAM_CASE_EVENTS
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from reintegra_stack.demo.finance import reconcile_demo
from reintegra_stack.demo.money import load_demo_rates, print_money
from reintegra_stack.demo.providers import print_providers
from reintegra_stack.demo.review import second_act
from reintegra_stack.demo.scenario import Scenario
from reintegra_stack.demo.watch import PipelineWatcher
from reintegra_stack.traces import load_trace, render_trace, services_in

FOUR_SERVICES = {"intake", "eligibility", "disbursement", "notifications"}


def block_msisdns(provider_base_url: str, msisdns: list[str]) -> None:
    """Tell every mobile-money provider of the sandbox that these numbers are not registered, so some
    payments fail as they do in real life (docs/providers.md, sandbox faults)."""
    with urllib.request.urlopen(f"{provider_base_url}/admin/providers", timeout=10) as response:
        providers = json.loads(response.read())["providers"]
    for provider in providers:
        if provider["kind"] != "mobile_money":
            continue
        body = json.dumps({"unregistered_msisdns": msisdns}).encode()
        request = urllib.request.Request(f"{provider_base_url}/admin/faults/{provider['name']}", data=body,
                                         method="PUT", headers={"content-type": "application/json"})
        urllib.request.urlopen(request, timeout=10).read()


async def publish(bootstrap_servers: str, scenario: Scenario, progress: Progress) -> None:
    task = progress.add_task("publishing upstream events", total=len(scenario.records))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all", linger_ms=5)
    await producer.start()
    try:
        pending = []
        for key, value, headers in scenario.records:
            pending.append(await producer.send(UPSTREAM_CASE_EVENTS, value=value, key=key, headers=headers))
            if len(pending) >= 500:
                await asyncio.gather(*pending)
                progress.advance(task, len(pending))
                pending = []
        await asyncio.gather(*pending)
        progress.advance(task, len(pending))
    finally:
        await producer.stop()


async def run_demo(stack, scenario: Scenario, timeout_s: float, console: Console) -> bool:
    block_msisdns(stack.provider_base_url, scenario.blocked_msisdns)
    await load_demo_rates(stack.database_url, console)
    finals = {c.case_id: c.expected_final for c in scenario.cases}
    prefix = scenario.cases[0].case_id.rsplit("-", 1)[0]
    watcher = PipelineWatcher(stack.bootstrap_servers, prefix, finals)
    await watcher.start()
    console.print(
        f"Sample: [bold]{len(scenario.cases)}[/] cases, {len(scenario.records)} records "
        f"({scenario.duplicate_deliveries} duplicate deliveries, {scenario.garbage_records} unreadable records, "
        f"{sum(c.kind == 'out_of_order' for c in scenario.cases)} cases whose plan comes before the case)."
    )
    try:
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console) as progress:
            await publish(stack.bootstrap_servers, scenario, progress)
            task = progress.add_task("cases in their final state", total=len(finals))
            done = await watcher.wait_until(
                lambda: watcher.settled_count() == len(finals), timeout_s,
                lambda: progress.update(task, completed=watcher.settled_count()),
            )
        # Late dead letters and statuses still in flight: a short grace read.
        await watcher.wait_until(lambda: False, 1.5)
    finally:
        await watcher.stop()
    print_summary(console, scenario, watcher)
    await print_parked(console, stack.database_url, prefix)
    trace_ok = await show_one_trace(console, stack, scenario, watcher)
    review_ok = await second_act(stack, scenario, watcher, console, publish_records)
    providers_ok = await print_providers(console, stack.database_url, stack.provider_base_url)
    ledger_ok = await print_money(console, stack.database_url)
    finance_ok = await reconcile_demo(console, stack.database_url, stack.state_dir / "sandbox" / "statements",
                                      stack.console_url, prefix.rsplit("-", 1)[-1].lower())
    return done and trace_ok and review_ok and providers_ok and ledger_ok and finance_ok


async def publish_records(bootstrap_servers: str, records: list) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all")
    await producer.start()
    try:
        for key, value, headers in records:
            await producer.send_and_wait(UPSTREAM_CASE_EVENTS, value=value, key=key, headers=headers)
    finally:
        await producer.stop()


def print_summary(console: Console, scenario: Scenario, watcher: PipelineWatcher) -> None:
    obs = watcher.observed
    expected = Counter(c.expected_final for c in scenario.cases)
    actual = Counter(obs.last_status.get(c.case_id, "(no status yet)") for c in scenario.cases)
    table = Table(title="Cases by final status")
    for column in ("final status", "cases", "expected"):
        table.add_column(column, justify="right" if column != "final status" else "left")
    for status in sorted(set(expected) | set(actual)):
        table.add_row(status, str(actual.get(status, 0)), str(expected.get(status, 0)))
    console.print(table)
    wrong = [c for c in scenario.cases if obs.last_status.get(c.case_id) != c.expected_final]
    if wrong:
        console.print(f"[bold red]{len(wrong)} case(s) not in their expected state[/], e.g. "
                      + ", ".join(f"{c.case_id} ({c.kind}): {obs.last_status.get(c.case_id)}" for c in wrong[:5]))
    else:
        console.print("[bold green]Every case is in its expected final state.[/]")

    money = Table(title="Paid per currency (as upstream was told)")
    money.add_column("currency")
    money.add_column("cash settled", justify="right")
    money.add_column("in kind delivered", justify="right")
    from reintegra.money import Money
    for cur in sorted(set(obs.paid_minor) | set(obs.delivered_minor)):
        money.add_row(cur, Money(obs.paid_minor.get(cur, 0), cur).format_amount(),
                      Money(obs.delivered_minor.get(cur, 0), cur).format_amount())
    console.print(money)

    decided = Table(title="Eligibility decisions not plainly approved, by reason")
    decided.add_column("status")
    decided.add_column("reason code")
    decided.add_column("cases", justify="right")
    reasons: Counter = Counter()
    for case in scenario.cases:
        for status in ("eligibility.rejected", "eligibility.review_required"):
            for data in obs.statuses_of(case.case_id, status):
                for code in {r["code"] for r in data.get("reasons") or ()}:
                    reasons[(status.split(".")[1], code)] += 1
    for (status, code), count in sorted(reasons.items()):
        decided.add_row(status, code, str(count))
    console.print(decided)

    letters = Table(title="Dead letters (refused, with their reasons)")
    letters.add_column("topic")
    letters.add_column("reason codes", overflow="fold")
    letters.add_column("records", justify="right")
    for (topic, reason), count in sorted(obs.dead_letters.items()):
        letters.add_row(topic, reason, str(count))
    console.print(letters)


async def print_parked(console: Console, database_url: str, prefix: str) -> None:
    """Events still waiting for their case: its registration was refused (no consent, invalid)."""
    import asyncpg

    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT type, count(*) AS n FROM intake.parked_events WHERE case_id LIKE $1 GROUP BY type ORDER BY type",
            prefix + "%",
        )
    finally:
        await conn.close()
    if rows:
        listed = ", ".join(f"{r['n']} {r['type'].removeprefix('reintegration.')}" for r in rows)
        console.print(f"Kept for cases whose registration was refused (each answered with "
                      f"case_registration_refused; a corrected registration releases them): {listed} "
                      "(see `reintegra parked`).")


async def show_one_trace(console: Console, stack, scenario: Scenario, watcher: PipelineWatcher) -> bool:
    """One case's journey: every span of it, in all four services, under one trace id."""
    candidates = [c for c in scenario.cases if c.kind == "mixed_eur" and watcher.observed.last_status.get(c.case_id) == c.expected_final]
    candidates = candidates or [c for c in scenario.cases if c.expected_final == "grant.completed"]
    if not candidates:
        return False
    case = candidates[0]
    trace_dir = stack.state_dir / "traces"
    deadline = time.monotonic() + 15
    spans: list[dict] = []
    while time.monotonic() < deadline:  # span processors export in the background
        spans = load_trace(trace_dir, case.trace_id)
        if FOUR_SERVICES <= set(services_in(spans)):
            break
        await asyncio.sleep(0.5)
    console.print(f"\nOne case's journey: [bold]{case.case_id}[/] ({case.kind}), trace id [bold]{case.trace_id}[/]")
    console.print(render_trace(case.trace_id, spans))
    console.print(f"See it again with: reintegra trace {case.trace_id}")
    return FOUR_SERVICES <= set(services_in(spans))
