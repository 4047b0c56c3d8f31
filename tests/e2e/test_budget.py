"""Budgets on the real broker and Postgres: 240 approved grants over every partition, two
disbursement instances, a budget that covers only some. Nothing is ever reserved beyond it; the
rest wait with a status upstream sees and are funded in approval order when finance raises it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

from reintegra.contract import samples
from reintegra.contract.upstream import CASE_REGISTERED, PLAN_APPROVED, RETURN_COMPLETED
from reintegra.money import Money
from reintegra.topics import ELIGIBILITY_CASE_EVENTS
from support import (
    BUDGET_TEST_BUDGET,
    BUDGET_TEST_PROGRAMME,
    instances_sharing,
    publish,
    query,
    second_instance,
    watch,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
GRANT = Money.parse("200.00", "EUR")  # 131,191 XOF to a wallet in Côte d'Ivoire
N_CASES = 240
FITS = Money.parse(BUDGET_TEST_BUDGET, "EUR").minor // GRANT.minor  # 100


def grant_records(case_id: str) -> list:
    registered = samples.sample_case_registered(case_id, vulnerabilities=[], full_name=f"Person {case_id}")
    registered["program_code"] = BUDGET_TEST_PROGRAMME
    events = [
        samples.cloudevent(CASE_REGISTERED, case_id, registered),
        samples.cloudevent(RETURN_COMPLETED, case_id, samples.sample_return_completed(case_id)),
        samples.cloudevent(PLAN_APPROVED, case_id, samples.sample_plan_approved(
            case_id, f"PL-{case_id}", cash_amount=GRANT.format_amount(), inkind=False)),
    ]
    return [samples.structured_record(e) for e in events]


def raise_budget(database_url: str, amount: str, key: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": database_url}
    return subprocess.run([sys.executable, "-m", "reintegra_stack.cli", "budget", "raise", BUDGET_TEST_PROGRAMME,
                           amount, "--currency", "EUR", "--reason", "donor top-up (test)", "--key", key],
                          env=env, capture_output=True, text=True, timeout=120, cwd=PROJECT_ROOT)


async def budget_row(database_url: str):
    rows = await query(database_url, "SELECT * FROM disbursement.ledger_accounts WHERE id = $1",
                       f"budget:{BUDGET_TEST_PROGRAMME}")
    return rows[0]


async def held_in_order(database_url: str) -> list[str]:
    rows = await query(database_url, "SELECT case_id FROM disbursement.budget_holds WHERE programme = $1 "
                       "ORDER BY queued_seq", BUDGET_TEST_PROGRAMME)
    return [r["case_id"] for r in rows]


async def wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


async def test_a_budget_that_covers_only_some_grants_holds_the_rest_and_funds_them_in_order(stack, run_id):
    case_ids = [f"BUD-{run_id}-{n:03d}" for n in range(N_CASES)]
    with second_instance(stack, "disbursement"):
        # Two instances, each owning some of eligibility's partitions (where the grants come from).
        await instances_sharing(stack.bootstrap_servers, "reintegra-disbursement", ELIGIBILITY_CASE_EVENTS)
        watcher = await watch(stack.bootstrap_servers, f"BUD-{run_id}", {c: "grant.completed" for c in case_ids})
        try:
            records = [r for c in case_ids for r in grant_records(c)]
            await publish(stack.bootstrap_servers, records)

            def settled_and_held() -> bool:
                held = sum(1 for c in case_ids if watcher.observed.statuses_of(c, "grant.held"))
                return watcher.settled_count() == FITS and held == N_CASES - FITS

            assert await watcher.wait_until(settled_and_held, 180), (
                watcher.settled_count(), sum(1 for c in case_ids if watcher.observed.statuses_of(c, "grant.held")))
            # Exactly used, never beyond: what is available is zero, the rest wait in approval order.
            budget = await budget_row(stack.database_url)
            assert budget["credits_posted"] - budget["debits_posted"] - budget["debits_pending"] == 0
            assert budget["credits_posted"] == Money.parse(BUDGET_TEST_BUDGET, "EUR").minor
            queue = await held_in_order(stack.database_url)
            assert len(queue) == N_CASES - FITS
            for case_id in queue:
                held = watcher.observed.statuses_of(case_id, "grant.held")[-1]
                assert [r["code"] for r in held["reasons"]] == ["budget_exhausted"]
                assert held["programme_amount"] == GRANT.to_contract()
                assert not watcher.observed.statuses_of(case_id, "tranche.released")

            # Finance raises the budget by ten grants: exactly the ten approved first are funded.
            done = raise_budget(stack.database_url, Money(10 * GRANT.minor, "EUR").format_amount(), f"{run_id}-1")
            assert done.returncode == 0, done.stderr
            first_ten = set(queue[:10])

            async def ten_funded():
                await watcher.poll(timeout_ms=200)
                return {c for c in case_ids if watcher.observed.statuses_of(c, "grant.reserved")} == first_ten

            await wait_for(ten_funded, 60, "the first ten held grants to be reserved")
            assert await watcher.wait_until(lambda: watcher.settled_count() == FITS + 10, 60)
            assert await held_in_order(stack.database_url) == queue[10:]

            # Then enough for all of them.
            rest = Money((N_CASES - FITS - 10) * GRANT.minor, "EUR").format_amount()
            done = raise_budget(stack.database_url, rest, f"{run_id}-2")
            assert done.returncode == 0, done.stderr
            assert await watcher.wait_until(lambda: watcher.settled_count() == N_CASES, 120), watcher.settled_count()
        finally:
            await watcher.stop()

    budget = await budget_row(stack.database_url)
    assert budget["credits_posted"] - budget["debits_posted"] - budget["debits_pending"] == 0
    assert await held_in_order(stack.database_url) == []
    # Funded in approval order: the audit trail shows each held grant reserved after the ones queued before it.
    rows = await query(stack.database_url, """
        SELECT case_id, min(id) AS first FROM disbursement.tranche_transitions
        WHERE case_id LIKE $1 AND from_status = 'held' AND to_status = 'planned'
        GROUP BY case_id ORDER BY first""", f"BUD-{run_id}-%")
    assert [r["case_id"] for r in rows] == queue
    assert watcher.observed.paid() == {"XOF": str(131191 * N_CASES)}
