"""Never twice, failures that end, settlements applied once: on the real broker, Postgres and the
provider sandbox over HTTP, each outcome asserted from the sandbox's own records.

The session's stack runs with short payment leases, polls and deadline, and a sandbox that forgets
idempotency keys after 5 s (conftest.py): a resend without asking the provider first would pay twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import signal

import pytest
from support import (
    beneficiary_update_record,
    clear_faults,
    payment_ref,
    payout_case_records,
    publish,
    query,
    sandbox_call,
    sandbox_transfers,
    set_faults,
    tranche_row,
    wait_for_row,
    watch,
)

MOMO = "orange_money_ci"


def wallet(run_id: str, n: int) -> str:
    """A Côte d'Ivoire mobile number of this test alone (scripted faults match on it)."""
    digits = int(hashlib.sha256(f"{run_id}:{n}".encode()).hexdigest(), 16) % 10**8
    return f"+22507{digits:08d}"


def momo(msisdn: str, provider: str = MOMO) -> dict:
    return {"method": "mobile_money", "provider": provider, "msisdn": msisdn}


@pytest.fixture(autouse=True)
def no_faults_left(stack):
    clear_faults(stack)
    yield
    clear_faults(stack)


async def pay_one(stack, case_id: str, payout: dict, phone: str, final: str = "grant.completed", *,
                  timeout_s: float = 90, before=None, **kw):
    """Publish one cash case and wait for its `final` status; returns the watcher's observations."""
    watcher = await watch(stack.bootstrap_servers, case_id, {case_id: final})
    try:
        await publish(stack.bootstrap_servers, payout_case_records(case_id, payout, phone=phone, **kw))
        if before is not None:
            await before(watcher)
        done = await watcher.wait_until(lambda: watcher.settled_count() == 1, timeout_s)
        assert done, (watcher.observed.last_status.get(case_id), watcher.observed.history.get(case_id))
        await watcher.wait_until(lambda: False, 1.0)  # anything late (a second status) shows up too
    finally:
        await watcher.stop()
    return watcher.observed


def once_each(observed, case_id: str, *statuses: str) -> None:
    for status in statuses:
        assert len(observed.status_ids[case_id][status]) == 1, (status, observed.status_ids[case_id][status])


async def test_a_lost_response_a_provider_restart_and_an_expired_key_still_pay_exactly_once(stack, run_id):
    case_id, msisdn = f"PRV-LOST-{run_id}", wallet(run_id, 1)
    reference = payment_ref(case_id)
    set_faults(stack, MOMO, script=[{"match": {"msisdn": msisdn}, "operation": "create", "fault": "lose_response"}])

    async def provider_restarts_and_forgets_the_key(watcher):
        # The transfer is executed, its answer lost; the provider goes down longer than its key lives.
        await wait_for_row(stack.database_url, "SELECT 1 FROM disbursement.payment_instructions WHERE reference = $1 "
                           "AND sends > 0", reference)
        stack.restart_sandbox(kill=True, down_s=6)

    observed = await pay_one(stack, case_id, momo(msisdn), msisdn, before=provider_restarts_and_forgets_the_key)

    executed = sandbox_transfers(stack, reference=reference)
    assert len(executed) == 1 and executed[0]["status"] == "settled", executed
    once_each(observed, case_id, "payment.sent", "payment.settled", "grant.completed")
    [instruction] = await query(stack.database_url,
                                "SELECT state, sends, lookups FROM disbursement.payment_instructions WHERE reference = $1",
                                reference)
    # Sent once; the outcome came back by a lookup or by the callback the restarted sandbox resumed.
    assert instruction["state"] == "settled" and instruction["sends"] == 1


@pytest.mark.parametrize("faults", [
    pytest.param([("create", "error_before")], id="5xx-before-executing"),
    pytest.param([("create", "error_after")], id="5xx-after-executing"),
    pytest.param([("create", "error_before"), ("create", "conflict")], id="500-then-409-then-ok"),
    pytest.param([("create", "lose_response"), ("lookup", "error_before"), ("lookup", "lose_response")],
                 id="lost-then-lookups-failing"),
])
async def test_each_unknown_outcome_ends_in_exactly_one_transfer(stack, run_id, faults):
    case_id, msisdn = f"PRV-UNK-{run_id}", wallet(run_id, 2)
    set_faults(stack, MOMO, script=[{"match": {"msisdn": msisdn}, "operation": op, "fault": fault}
                                    for op, fault in faults])
    observed = await pay_one(stack, case_id, momo(msisdn), msisdn)

    executed = sandbox_transfers(stack, reference=payment_ref(case_id))
    assert [t["status"] for t in executed] == ["settled"], executed
    once_each(observed, case_id, "payment.sent", "payment.settled")
    assert "payment.failed" not in observed.status_ids[case_id]


async def test_a_killed_dispatcher_between_the_provider_answer_and_its_record_sends_no_second_transfer(
        stack, run_id):
    import subprocess
    import sys

    from reintegra_stack.supervisor import PROJECT_ROOT

    case_id, msisdn = f"PRV-KILL-{run_id}", wallet(run_id, 3)
    reference = payment_ref(case_id)
    stack.kill_service("disbursement", signal.SIGTERM)
    log_file = stack.state_dir / "logs" / "disbursement-crashing.log"
    env = {**stack.env, "REINTEGRA_CRASH_AT": f"payment.after_provider_call:{case_id}"}
    with open(log_file, "ab") as log:
        crashing = subprocess.Popen([sys.executable, "-m", "faststream", "run", "disbursement.app:create_app",
                                     "--factory"], env=env, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
    try:
        await publish(stack.bootstrap_servers, payout_case_records(case_id, momo(msisdn), phone=msisdn))
        for _ in range(600):
            if crashing.poll() is not None:
                break
            await asyncio.sleep(0.1)
        assert crashing.returncode == -signal.SIGKILL, log_file.read_text(errors="replace")[-2000:]
        assert len(sandbox_transfers(stack, reference=reference)) == 1  # the provider executed it
    finally:
        if crashing.poll() is None:
            crashing.kill()
        stack.restart_service("disbursement")

    rows = await wait_for_row(stack.database_url, "SELECT status FROM disbursement.tranches WHERE reference = $1",
                              reference, predicate=lambda r: r and r[0]["status"] == "settled", timeout_s=60)
    assert rows[0]["status"] == "settled"
    assert len(sandbox_transfers(stack, reference=reference)) == 1


async def test_an_unregistered_number_fails_the_payment_and_a_new_wallet_pays_it_under_a_new_reference(
        stack, run_id):
    case_id, bad, good = f"PRV-FAIL-{run_id}", wallet(run_id, 4), wallet(run_id, 5)
    set_faults(stack, MOMO, unregistered_msisdns=[bad])
    reference = payment_ref(case_id)
    observed = await pay_one(stack, case_id, momo(bad), bad, final="payment.failed")
    [failed] = observed.statuses_of(case_id, "payment.failed")
    assert failed["reason"] == "PAYEE_NOT_FOUND" and failed["reference"] == reference
    row = await tranche_row(stack.database_url, case_id)
    assert row["status"] == "failed"
    # The money waits in the commitment for a re-issue.
    unpaid = await query(stack.database_url, "SELECT id FROM disbursement.ledger_transfers WHERE reference = $1 "
                         "AND (kind = 'unpay' OR id LIKE 'unpay-fx-%')", reference)
    assert unpaid

    watcher = await watch(stack.bootstrap_servers, case_id, {case_id: "grant.completed"})
    try:
        await publish(stack.bootstrap_servers, [beneficiary_update_record(case_id, momo(good, "mtn_momo_ci"), good)])
        assert await watcher.wait_until(lambda: watcher.settled_count() == 1, 60), watcher.observed.last_status
    finally:
        await watcher.stop()
    [released] = watcher.observed.statuses_of(case_id, "tranche.released")
    assert released["reference"] == f"{reference}-2" and released["previous_reference"] == reference
    assert [t["status"] for t in sandbox_transfers(stack, reference=reference)] == ["failed"]
    [paid] = sandbox_transfers(stack, reference=f"{reference}-2")
    assert paid["status"] == "settled" and paid["provider"] == "mtn_momo_ci"


async def test_a_beneficiary_update_during_retries_never_marks_a_paid_tranche_failed(stack, run_id):
    case_id, first, second = f"PRV-UPD-{run_id}", wallet(run_id, 6), wallet(run_id, 7)
    reference = payment_ref(case_id)
    set_faults(stack, MOMO, script=[{"match": {"msisdn": first}, "operation": "create", "fault": "error_after"},
                                    {"match": {"msisdn": first}, "operation": "lookup", "fault": "error_before"},
                                    {"match": {"msisdn": first}, "operation": "lookup", "fault": "error_before"}])

    async def update_while_retrying(watcher):
        await wait_for_row(stack.database_url, "SELECT 1 FROM disbursement.payment_instructions WHERE reference = $1 "
                           "AND state = 'unknown'", reference)
        await publish(stack.bootstrap_servers, [beneficiary_update_record(case_id, momo(second), second)])

    observed = await pay_one(stack, case_id, momo(first), first, before=update_while_retrying)
    assert "payment.failed" not in observed.status_ids[case_id]
    [paid] = sandbox_transfers(stack, reference=reference)
    assert paid["status"] == "settled"
    transitions = await query(stack.database_url, "SELECT to_status FROM disbursement.tranche_transitions "
                              "WHERE case_id = $1", case_id)
    assert "failed" not in {t["to_status"] for t in transitions}


async def test_duplicate_late_and_reordered_callbacks_change_nothing(stack, run_id):
    cases = [(f"PRV-CB{n}-{run_id}", wallet(run_id, 10 + n)) for n in range(3)]
    set_faults(stack, MOMO, callback_duplicates=2, callback_reorder=True, callback_delay_ms=300)
    watcher = await watch(stack.bootstrap_servers, "PRV-CB", {c: "grant.completed" for c, _ in cases})
    try:
        for case_id, msisdn in cases:
            await publish(stack.bootstrap_servers, payout_case_records(case_id, momo(msisdn), phone=msisdn))
        assert await watcher.wait_until(lambda: watcher.settled_count() == len(cases), 60)
        await watcher.wait_until(lambda: False, 3.0)  # the late copies arrive
    finally:
        await watcher.stop()
    for case_id, _ in cases:
        once_each(watcher.observed, case_id, "payment.sent", "payment.settled", "grant.completed")
    references = [payment_ref(c) for c, _ in cases]
    events = await query(stack.database_url, "SELECT reference, transfer_id, status, outcome "
                         "FROM disbursement.provider_events WHERE reference = ANY($1::text[])", references)
    assert {(e["reference"], e["status"]) for e in events} <= {(r, s) for r in references for s in ("pending", "settled")}
    assert len(events) == len({(e["transfer_id"], e["status"]) for e in events})  # each report stored once
    # Each payment was applied once; whatever came after it (a stale PENDING) changed nothing.
    applied = [(e["reference"], e["outcome"]) for e in events if e["outcome"] != "stale"]
    assert sorted(applied) == sorted((r, o) for r in references for o in ("sent", "settled"))
    stats = sandbox_call(stack, "GET", "/admin/stats")[MOMO]
    assert stats["callbacks_duplicated"] >= 2 * len(cases)  # the faults did fire
    exceptions = await query(stack.database_url, "SELECT kind FROM disbursement.payment_exceptions "
                             "WHERE reference = ANY($1::text[])", references)
    assert exceptions == []


async def test_a_settled_amount_that_differs_is_an_exception_for_finance(stack, run_id):
    case_id, msisdn = f"PRV-AMT-{run_id}", wallet(run_id, 20)
    set_faults(stack, MOMO, settled_amount_delta_minor=-100)
    observed = await pay_one(stack, case_id, momo(msisdn), msisdn, final="tranche.held")
    [held] = observed.statuses_of(case_id, "tranche.held")
    assert held["reason"] == "settlement_mismatch"
    assert "payment.settled" not in observed.status_ids[case_id]
    [exception] = await query(stack.database_url, "SELECT kind, details FROM disbursement.payment_exceptions "
                              "WHERE reference = $1", payment_ref(case_id))
    assert exception["kind"] == "amount_mismatch"


async def test_an_outcome_still_unknown_at_the_deadline_is_raised_and_never_resent(stack, run_id):
    case_id, msisdn = f"PRV-DEAD-{run_id}", wallet(run_id, 21)
    reference = payment_ref(case_id)
    set_faults(stack, MOMO, script=[{"match": {"msisdn": msisdn}, "operation": op, "fault": "error_before",
                                     "times": 1000} for op in ("create", "lookup")])
    observed = await pay_one(stack, case_id, momo(msisdn), msisdn, final="tranche.held", timeout_s=60)
    [held] = observed.statuses_of(case_id, "tranche.held")
    assert held["reason"] == "payment_outcome_unresolved"
    [instruction] = await query(stack.database_url, "SELECT state, sends FROM disbursement.payment_instructions "
                                "WHERE reference = $1", reference)
    assert instruction["state"] == "unresolved"
    sends = instruction["sends"]
    await asyncio.sleep(5)
    [again] = await query(stack.database_url, "SELECT sends FROM disbursement.payment_instructions "
                          "WHERE reference = $1", reference)
    assert again["sends"] == sends  # nothing is sent any more
    [exception] = await query(stack.database_url, "SELECT kind FROM disbursement.payment_exceptions "
                              "WHERE reference = $1", reference)
    assert exception["kind"] == "outcome_unresolved"
    assert sandbox_transfers(stack, reference=reference) == []


async def test_a_payout_through_an_unknown_provider_waits_until_the_payout_names_one(stack, run_id):
    case_id, msisdn = f"PRV-UNKN-{run_id}", wallet(run_id, 22)
    observed = await pay_one(stack, case_id, momo(msisdn, "flooz_ci"), msisdn, final="tranche.held")
    [held] = observed.statuses_of(case_id, "tranche.held")
    assert held["reason"] == "provider_unknown" and "flooz_ci" in held["reasons"][0]["message"]

    watcher = await watch(stack.bootstrap_servers, case_id, {case_id: "grant.completed"})
    try:
        await publish(stack.bootstrap_servers, [beneficiary_update_record(case_id, momo(msisdn), msisdn)])
        assert await watcher.wait_until(lambda: watcher.settled_count() == 1, 60), watcher.observed.last_status
    finally:
        await watcher.stop()


async def test_a_cash_pickup_in_cameroon_sends_its_code_by_sms(stack, run_id):
    from support import wait_for_sms

    case_id, phone = f"PRV-PICK-{run_id}", "+237671234567"
    payout = {"method": "cash_pickup", "provider": "express_union_cm"}
    observed = await pay_one(stack, case_id, payout, phone, origin="CM")
    [settled] = observed.statuses_of(case_id, "payment.settled")
    assert settled["amount"]["currency"] == "XAF"
    [pickup] = sandbox_transfers(stack, reference=payment_ref(case_id))
    assert pickup["provider"] == "express_union_cm"
    [instruction] = await query(stack.database_url, "SELECT pickup_code FROM disbursement.payment_instructions "
                                "WHERE reference = $1", payment_ref(case_id))
    code = instruction["pickup_code"]
    assert code and code.isdigit()
    lines = await wait_for_sms(stack.state_dir, case_id, 3)  # approval, pickup code, payment received
    assert len([line for line in lines if code in line]) == 1, lines


async def test_a_bank_transfer_in_senegal_and_a_closed_account(stack, run_id):
    iban_ok, iban_closed = "SN08SN0100152000048500003035", "SN39SN0120100103628190451264"
    set_faults(stack, "cbao_sn", closed_accounts=[iban_closed])
    ok_case, closed_case = f"PRV-BANK-{run_id}", f"PRV-BANKX-{run_id}"
    bank = {"method": "bank_transfer", "bank_code": "SN010", "account_number": iban_ok}
    await pay_one(stack, ok_case, bank, "+221771234567", origin="SN")
    [paid] = sandbox_transfers(stack, reference=payment_ref(ok_case))
    assert paid["provider"] == "cbao_sn" and paid["status"] == "settled"

    observed = await pay_one(stack, closed_case, {**bank, "account_number": iban_closed}, "+221771234568",
                             origin="SN", final="payment.failed")
    [failed] = observed.statuses_of(closed_case, "payment.failed")
    assert failed["reason"] == "AC04"


def callback_url(stack) -> str:
    """Where the running disbursement instance listens for provider callbacks."""
    urls = sorted((stack.state_dir / "callbacks").glob("disbursement-*.url"), key=lambda p: p.stat().st_mtime)
    return urls[-1].read_text(encoding="utf-8").strip()


def post_callback(stack, provider: str, body: bytes, *, secret: str | None = None) -> int:
    import hmac
    import urllib.error
    import urllib.request

    secret = secret if secret is not None else f"sandbox-callback-{provider}"
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    request = urllib.request.Request(f"{callback_url(stack)}/callbacks/{provider}", data=body, method="POST",
                                     headers={"Content-Type": "application/json", "X-Signature": signature})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


async def test_forged_unknown_and_malformed_callbacks_are_refused_kept_or_set_aside(stack, run_id):
    import json

    stranger = f"RG-STRANGER-{run_id}"
    body = json.dumps({"amount": "5000", "currency": "XOF", "financialTransactionId": f"FT-{run_id}",
                       "externalId": stranger, "payee": {"partyIdType": "MSISDN", "partyId": "2250700000000"},
                       "status": "SUCCESSFUL"}).encode()
    assert post_callback(stack, MOMO, body, secret="not-the-secret") == 401
    assert post_callback(stack, MOMO, body) == 200
    assert post_callback(stack, MOMO, body) == 200  # the same report again: stored once
    rows = await wait_for_row(stack.database_url, "SELECT kind, details FROM disbursement.payment_exceptions "
                              "WHERE reference = $1", stranger)
    assert [r["kind"] for r in rows] == ["unknown_reference"]

    garbage = f'{{"status": "SUCCESSFUL", "note": "{run_id}"}}'.encode()
    assert post_callback(stack, MOMO, garbage) == 202
    aside = await query(stack.database_url, "SELECT via, error FROM disbursement.provider_entries_set_aside "
                        "WHERE raw LIKE $1", f"%{run_id}%")
    assert [r["via"] for r in aside] == ["callback"]
    assert post_callback(stack, "nobody_we_know", body) == 404


async def test_an_in_kind_invoice_that_does_not_match_its_order_is_held_and_the_vendor_not_paid(stack, run_id):
    from reintegra.contract import samples
    from reintegra.contract.upstream import DELIVERY_CONFIRMED
    from support import held_case_records

    case_id = f"PRV-INV-{run_id}"
    records = held_case_records(case_id, vulnerabilities=[], date_of_birth="1990-01-01", cash_amount=None)
    watcher = await watch(stack.bootstrap_servers, case_id, {case_id: "tranche.held"})
    try:
        await publish(stack.bootstrap_servers, records)
        assert await watcher.wait_until(lambda: watcher.observed.statuses_of(case_id, "inkind.ordered"), 60)
        overbilled = samples.sample_delivery_confirmed(case_id, f"PL-{case_id}", amount="999999", currency="XOF",
                                                       invoice_number=f"INV-{run_id}")
        await publish(stack.bootstrap_servers, [samples.structured_record(
            samples.cloudevent(DELIVERY_CONFIRMED, case_id, overbilled))])
        assert await watcher.wait_until(lambda: watcher.settled_count() == 1, 60), watcher.observed.last_status
    finally:
        await watcher.stop()
    [held] = watcher.observed.statuses_of(case_id, "tranche.held")
    assert held["reason"] == "invoice_mismatch"
    assert [r["code"] for r in held["reasons"]] == ["invoice_exceeds_order"]
    assert "XOF 999,999" in held["reasons"][0]["message"]
    assert sandbox_transfers(stack, reference=payment_ref(case_id, "c2", 1)) == []
    [exception] = await query(stack.database_url, "SELECT kind FROM disbursement.payment_exceptions "
                              "WHERE case_id = $1", case_id)
    assert exception["kind"] == "invoice_mismatch"
