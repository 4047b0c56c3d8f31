"""A case's whole journey through the four running services, on the real broker and Postgres."""

from __future__ import annotations

import asyncio
import secrets
import time

from reintegra.contract import samples
from reintegra.contract.upstream import (
    CASE_REGISTERED,
    DELIVERY_CONFIRMED,
    MILESTONE_VERIFIED,
    PLAN_APPROVED,
    RETURN_COMPLETED,
)
from reintegra_stack.traces import load_trace, services_in
from support import publish, query, sms_lines, traceparent_for, wait_for_sms, watch

FOUR_SERVICES = {"intake", "eligibility", "disbursement", "notifications"}


def contract_example_records(case_id: str, trace_id: str) -> list:
    """The contract's own example: 300 EUR cash now, a 1,200 EUR tailoring kit in two tranches."""
    plan_id = f"PL-{case_id}"
    events = [
        samples.cloudevent(CASE_REGISTERED, case_id, samples.sample_case_registered(case_id)),
        samples.cloudevent(RETURN_COMPLETED, case_id, samples.sample_return_completed(case_id)),
        samples.cloudevent(PLAN_APPROVED, case_id, samples.sample_plan_approved(case_id, plan_id)),
        samples.cloudevent(DELIVERY_CONFIRMED, case_id, samples.sample_delivery_confirmed(
            case_id, plan_id, invoice_number=f"INV-{case_id}-1")),
        samples.cloudevent(MILESTONE_VERIFIED, case_id, samples.sample_milestone_verified(case_id, plan_id)),
        samples.cloudevent(DELIVERY_CONFIRMED, case_id, samples.sample_delivery_confirmed(
            case_id, plan_id, tranche_seq=2, amount="480.00", invoice_number=f"INV-{case_id}-2")),
    ]
    return [samples.structured_record(e, traceparent_for(trace_id, i)) for i, e in enumerate(events)]


JOURNEY_SPANS = {"intake process", "eligibility process", "disbursement process", "disbursement send payment",
                 "disbursement apply provider report", "notifications process", "notifications send sms"}


async def wait_for_spans(state_dir, trace_id: str, names: set[str], timeout_s: float = 20) -> list[dict]:
    """Each service exports its spans in the background: wait until every expected one is written."""
    deadline = time.monotonic() + timeout_s
    spans: list[dict] = []
    while time.monotonic() < deadline:
        spans = load_trace(state_dir / "traces", trace_id)
        if names <= {s["name"] for s in spans}:
            return spans
        await asyncio.sleep(0.3)
    return spans


async def test_case_reaches_payment_settled_and_sms_as_one_trace(stack, run_id):
    case_id = f"E2E-{run_id}"
    trace_id = secrets.token_hex(16)
    watcher = await watch(stack.bootstrap_servers, case_id, {case_id: "grant.completed"})
    try:
        await publish(stack.bootstrap_servers, contract_example_records(case_id, trace_id))
        assert await watcher.wait_until(lambda: watcher.settled_count() == 1, 90), watcher.observed.last_status
    finally:
        await watcher.stop()

    seen = watcher.observed.status_counts[case_id]
    for status in ("case.accepted", "eligibility.approved", "tranche.released", "payment.sent",
                   "payment.settled", "inkind.ordered", "inkind.delivered", "grant.completed"):
        assert seen[status] >= 1, f"no {status} status for {case_id}: {dict(seen)}"
    # 300 EUR to a wallet in Côte d'Ivoire is paid in XOF at the peg: 300 × 655.957 = 196,787.1.
    assert watcher.observed.paid() == {"XOF": "196787"}

    # Every status carries a sequence number, strictly growing along the case's causal chain (upstream
    # orders by it, whatever order copies arrive in), across the three services that publish them.
    numbered = {status: data["sequence"] for status, data in watcher.observed.history[case_id]
                if status in ("case.accepted", "eligibility.approved", "payment.sent", "payment.settled",
                              "grant.completed")}
    chain = [numbered[s] for s in ("case.accepted", "eligibility.approved", "payment.sent", "payment.settled",
                                   "grant.completed")]
    assert chain == sorted(chain) and len(set(chain)) == len(chain), numbered
    every = [data["sequence"] for _, data in watcher.observed.history[case_id]]
    assert len(set(every)) == len(every), "two statuses of one case share a sequence number"

    # The beneficiary prefers French: one SMS on approval, one when the payment settled.
    lines = await wait_for_sms(stack.state_dir, case_id, 2)
    assert len(lines) == 2, lines
    assert any("approuvée" in line for line in lines) and any("Paiement reçu : 196\u202f787 XOF" in line for line in lines)
    assert all("+2250701020304" not in line for line in lines), "the SMS log must not show the full number"

    spans = await wait_for_spans(stack.state_dir, trace_id, JOURNEY_SPANS)
    assert FOUR_SERVICES <= set(services_in(spans)), services_in(spans)
    assert {s["trace_id"] for s in spans} == {trace_id}
    assert JOURNEY_SPANS <= {s["name"] for s in spans}
    # No span of this case escaped into another trace.
    stray = [s for s in load_trace_all(stack.state_dir) if s["attributes"].get("reintegra.case_id") == case_id
             and s["trace_id"] != trace_id]
    assert not stray, stray[:3]


def load_trace_all(state_dir) -> list[dict]:
    import json
    spans = []
    for path in (state_dir / "traces").glob("*.jsonl"):
        spans += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return spans


async def test_every_event_delivered_three_times_is_applied_once(stack, run_id):
    prefix = f"DUP-{run_id}"
    cases = [f"{prefix}-{i:03d}" for i in range(20)]
    records = []
    for case_id in cases:
        for record in contract_example_records(case_id, secrets.token_hex(16)):
            records += [record, record, record]
    watcher = await watch(stack.bootstrap_servers, prefix, {c: "grant.completed" for c in cases})
    try:
        await publish(stack.bootstrap_servers, records)
        assert await watcher.wait_until(lambda: watcher.settled_count() == len(cases), 120), (
            {c: watcher.observed.last_status.get(c) for c in cases})
        await watcher.wait_until(lambda: False, 2)  # anything late and duplicated would show up now
    finally:
        await watcher.stop()

    for case_id in cases:
        ids = watcher.observed.status_ids[case_id]
        # One event per status change: the same status is never produced twice by a re-applied event.
        assert len(ids["case.accepted"]) == 1 and len(ids["eligibility.approved"]) == 1
        # settled: the cash, and the vendor for each of the two kit tranches
        assert len(ids["payment.settled"]) == 3 and len(ids["grant.completed"]) == 1
        assert len(ids["tranche.released"]) == 3  # c1/1 and c2/1 on approval, c2/2 on the milestone
    grants = await query(stack.database_url,
                         "SELECT case_id, count(*) AS n FROM disbursement.tranches WHERE case_id LIKE $1 GROUP BY case_id",
                         prefix + "%")
    assert {r["case_id"]: r["n"] for r in grants} == {c: 3 for c in cases}
    payments = await query(stack.database_url,
                           "SELECT reference FROM disbursement.tranches WHERE case_id LIKE $1 AND modality = 'cash'",
                           prefix + "%")
    assert len(payments) == len(cases)
    transfers = await sandbox_transfers(stack.provider_base_url, [r["reference"] for r in payments])
    assert len({t["transfer_id"] for t in transfers}) == len(cases)
    await wait_for_sms(stack.state_dir, prefix, 40)  # notices trail the statuses that caused them
    notices = await query(stack.database_url,
                          "SELECT kind, count(*) AS n FROM notifications.notices WHERE case_id LIKE $1 GROUP BY kind",
                          prefix + "%")
    assert {r["kind"]: r["n"] for r in notices} == {"eligibility_approved": 20, "payment_settled": 20}
    assert len(sms_lines(stack.state_dir, prefix)) == 40


async def sandbox_transfers(base_url: str, references: list[str]) -> list[dict]:
    """What the sandbox executed under each reference (exactly one each)."""
    import aiohttp
    async with aiohttp.ClientSession() as http:
        found = []
        for reference in references:
            async with http.get(f"{base_url}/admin/transfers", params={"reference": reference}) as response:
                assert response.status == 200, reference
                executed = (await response.json())["transfers"]
            assert len(executed) == 1, (reference, executed)
            found.extend(executed)
        return found
