"""Helpers for tests that drive the running system from outside, as an upstream system would."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from reintegra.contract import samples
from reintegra.contract.upstream import (
    CASE_REGISTERED,
    DELIVERY_CONFIRMED,
    MILESTONE_VERIFIED,
    PLAN_APPROVED,
    RETURN_COMPLETED,
)
from reintegra.money import Money, split_minor
from reintegra.notices import notice_request
from reintegra.topics import UPSTREAM_CASE_EVENTS
from reintegra_stack.demo.watch import PipelineWatcher

Record = tuple[bytes | None, bytes, list[tuple[str, bytes]]]

# The session's stack also runs this programme (MA-AVRR-2026's rules, a small budget): see conftest.py.
BUDGET_TEST_PROGRAMME = "MA-BUDGET-TEST"
BUDGET_TEST_BUDGET = "20000.00"


async def publish(bootstrap_servers: str, records: Iterable[Record], topic: str = UPSTREAM_CASE_EVENTS) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(topic, value=v, key=k, headers=h) for k, v, h in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def traceparent_for(trace_id: str, n: int) -> str:
    return f"00-{trace_id}-{n + 1:016x}-01"


def cash_case_records(case_id: str, *, trace_id: str | None = None, phone: str = "+2250701020304",
                      currency: str = "XOF", amount: str = "250000") -> list[Record]:
    """case.registered, return.completed and a one-tranche mobile-money plan for one case."""
    events = [
        samples.cloudevent(CASE_REGISTERED, case_id, samples.sample_case_registered(case_id, phone=phone)),
        samples.cloudevent(RETURN_COMPLETED, case_id, samples.sample_return_completed(case_id)),
        samples.cloudevent(PLAN_APPROVED, case_id, samples.sample_plan_approved(
            case_id, f"PL-{case_id}", currency=currency, cash_amount=amount, inkind=False,
            payout=samples.mobile_money_payout(phone))),
    ]
    return [samples.structured_record(e, traceparent_for(trace_id, i) if trace_id else None)
            for i, e in enumerate(events)]


def held_case_records(case_id: str, *, vulnerabilities: Iterable[str] = ("unaccompanied_minor",),
                      date_of_birth: str = "2010-05-01", cash_amount: str = "300.00",
                      inkind_amount: str | None = "1200.00", phone: str = "+2250701020304") -> list[Record]:
    """case.registered, return.completed and an EUR plan (mobile-money cash, an in-kind kit in two
    tranches: 60 % on approval, 40 % on the milestone) for a person of the case's own: person id,
    document number and name derive from case_id, so that no other test's approval makes this
    one a possible duplicate. The defaults (an unaccompanied minor) are held for review."""
    registered = samples.sample_case_registered(
        case_id, phone=phone, vulnerabilities=list(vulnerabilities), date_of_birth=date_of_birth,
        person_id=f"P-{case_id}", full_name=f"Test Person {case_id}")
    registered["beneficiary"]["document_number"] = f"CI-{case_id}"[:64]
    events = [
        samples.cloudevent(CASE_REGISTERED, case_id, registered),
        samples.cloudevent(RETURN_COMPLETED, case_id, samples.sample_return_completed(case_id)),
        samples.cloudevent(PLAN_APPROVED, case_id, samples.sample_plan_approved(
            case_id, f"PL-{case_id}", currency="EUR", cash_amount=cash_amount,
            inkind=False if inkind_amount is None else inkind_amount, payout=samples.mobile_money_payout(phone))),
    ]
    return [samples.structured_record(e) for e in events]


def inkind_completion_records(case_id: str, inkind_amount: str = "1200.00") -> list[Record]:
    """What completes the in-kind component of a `held_case_records` plan: both deliveries and
    the milestone between them (published once the grant is approved)."""
    plan_id = f"PL-{case_id}"
    total = Money.parse(inkind_amount, "EUR")
    first, second = split_minor(total.minor, [60, 40])
    events = [
        samples.cloudevent(DELIVERY_CONFIRMED, case_id, samples.sample_delivery_confirmed(
            case_id, plan_id, amount=Money(first, "EUR").format_amount(), invoice_number=f"INV-{case_id}-1")),
        samples.cloudevent(MILESTONE_VERIFIED, case_id, samples.sample_milestone_verified(case_id, plan_id)),
        samples.cloudevent(DELIVERY_CONFIRMED, case_id, samples.sample_delivery_confirmed(
            case_id, plan_id, tranche_seq=2, amount=Money(second, "EUR").format_amount(),
            invoice_number=f"INV-{case_id}-2")),
    ]
    return [samples.structured_record(e) for e in events]


async def watch(bootstrap_servers: str, prefix: str, finals: dict[str, str]) -> PipelineWatcher:
    watcher = PipelineWatcher(bootstrap_servers, prefix, finals)
    await watcher.start()
    return watcher


async def query(database_url: str, sql: str, *args) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


def sms_lines(state_dir: Path, case_prefix: str) -> list[str]:
    path = state_dir / "sms" / "outbox.log"
    if not path.exists():
        return []
    return [line for line in path.read_text(encoding="utf-8").splitlines() if f"case={case_prefix}" in line]


async def wait_for_sms(state_dir: Path, case_prefix: str, count: int, timeout_s: float = 30) -> list[str]:
    """SMS go out after the status that triggered them: wait for them rather than race."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    lines = sms_lines(state_dir, case_prefix)
    while len(lines) < count and loop.time() < deadline:
        await asyncio.sleep(0.2)
        lines = sms_lines(state_dir, case_prefix)
    return lines


@contextlib.contextmanager
def second_instance(stack, service: str):
    """Another process of `service` in the same consumer group, as a second replica would be."""
    from reintegra_stack.supervisor import PROJECT_ROOT, READY_MARKER

    log_file = stack.state_dir / "logs" / f"{service}-2.log"
    with open(log_file, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "faststream", "run", f"{service}.app:create_app", "--factory"],
                                env=stack.env, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while READY_MARKER not in log_file.read_text(errors="replace"):
            assert proc.poll() is None and time.monotonic() < deadline, log_file.read_text(errors="replace")[-3000:]
            time.sleep(0.3)
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


async def assignment_by_member(bootstrap_servers: str, group: str, topic: str) -> list[set[int]]:
    """Partitions of `topic` that each member of the consumer group owns (empty while it rebalances)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        groups = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    members = []
    for response in groups:
        for described in response.groups:
            state, group_members = described[2], described[5]
            if state != "Stable":
                return []
            for member in group_members:
                decoded = ConsumerProtocolMemberAssignment.decode(member[-1])
                members.append({p for t, parts in decoded.assignment if t == topic for p in parts})
    return members


async def instances_sharing(bootstrap_servers: str, group: str, topic: str, count: int = 2,
                            timeout_s: float = 60) -> list[set[int]]:
    """Wait until `count` members of the group each own some of the topic's partitions."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        members = [m for m in await assignment_by_member(bootstrap_servers, group, topic) if m]
        if len(members) == count:
            return members
        await asyncio.sleep(0.5)
    raise AssertionError(f"{count} instances of {group} never shared the partitions of {topic}")


# --- the provider sandbox, as a test sees it (docs/providers.md, "Sandbox administration") ---------

def sandbox_call(stack, method: str, path: str, body: object | None = None) -> object:
    import json
    import urllib.request

    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{stack.provider_base_url}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


def set_faults(stack, provider: str, **faults) -> None:
    sandbox_call(stack, "PUT", f"/admin/faults/{provider}", faults)


def clear_faults(stack) -> None:
    sandbox_call(stack, "DELETE", "/admin/faults")


def sandbox_transfers(stack, *, provider: str | None = None, reference: str | None = None) -> list[dict]:
    from urllib.parse import urlencode

    query = urlencode({k: v for k, v in (("provider", provider), ("reference", reference)) if v})
    return sandbox_call(stack, "GET", f"/admin/transfers?{query}")["transfers"]


def payment_ref(case_id: str, component_id: str = "c1", seq: int = 1, plan_id: str | None = None) -> str:
    from disbursement.domain.tranche import payment_reference

    return payment_reference(case_id, plan_id or f"PL-{case_id}", component_id, seq)


def payout_case_records(case_id: str, payout: dict, *, phone: str, origin: str = "CI", currency: str = "EUR",
                        amount: str = "250.00", inkind: bool | str = False) -> list[Record]:
    """A case of its own (person, document, name) from `origin`, with a cash plan paid to `payout`."""
    registered = samples.sample_case_registered(case_id, phone=phone, person_id=f"P-{case_id}",
                                                full_name=f"Awa Test {case_id[-6:]}")
    registered["beneficiary"]["document_number"] = f"DOC-{case_id}"[:64]
    registered["origin_country"] = origin
    registered["beneficiary"]["nationality"] = origin
    events = [
        samples.cloudevent(CASE_REGISTERED, case_id, registered),
        samples.cloudevent(RETURN_COMPLETED, case_id, samples.sample_return_completed(case_id, arrival_country=origin)),
        samples.cloudevent(PLAN_APPROVED, case_id, samples.sample_plan_approved(
            case_id, f"PL-{case_id}", currency=currency, cash_amount=amount, inkind=inkind, payout=payout)),
    ]
    return [samples.structured_record(e) for e in events]


def beneficiary_update_record(case_id: str, payout: dict, phone: str) -> Record:
    from reintegra.contract.upstream import BENEFICIARY_UPDATED

    return samples.structured_record(samples.cloudevent(
        BENEFICIARY_UPDATED, case_id, samples.sample_beneficiary_updated(case_id, phone=phone, payout=payout)))


async def tranche_row(database_url: str, case_id: str, component_id: str = "c1", seq: int = 1) -> dict:
    rows = await query(database_url, "SELECT * FROM disbursement.tranches WHERE case_id = $1 AND component_id = $2 "
                       "AND seq = $3", case_id, component_id, seq)
    return dict(rows[0]) if rows else {}


async def wait_for_row(database_url: str, sql: str, *args, predicate=bool, timeout_s: float = 60) -> list:
    """Poll a query until `predicate(rows)` holds; returns the last rows either way."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        rows = [dict(r) for r in await query(database_url, sql, *args)]
        if predicate(rows) or loop.time() > deadline:
            return rows
        await asyncio.sleep(0.3)


async def send_notice(source: str, bootstrap_servers: str, case_id: str) -> None:
    """One payment-settled notice request, as the disbursement service would send it."""
    message = notice_request(source, str(uuid.uuid4()), {
        "kind": "payment_settled", "case_id": case_id, "phone": "+2250701020304", "language": "en",
        "params": {"amount": "10.00 EUR", "reference": f"REF-{case_id}"}})
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(message.topic, message.value, key=message.key, headers=message.headers)
    finally:
        await producer.stop()
