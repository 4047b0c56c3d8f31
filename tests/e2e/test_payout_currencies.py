"""Money on the real broker, Postgres and provider sandbox: payouts in the currency of the payout's
country at a locked rate, both amounts kept, and money that comes back (a withdrawal, a permanent
payment failure) returned to the budget to the last unit."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from reintegra.contract import samples
from reintegra.contract.upstream import CASE_REGISTERED, CASE_WITHDRAWN, PLAN_APPROVED, RETURN_COMPLETED
from reintegra_stack.demo.run import block_msisdns
from support import publish, query, watch

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# (origin and wallet country, msisdn, provider, currency paid)
WALLETS = {
    "CI": ("+2250701000001", "orange_money_ci", "XOF"),
    "SN": ("+221770000001", "wave_sn", "XOF"),
    "CM": ("+237670000001", "mtn_momo_cm", "XAF"),
    "GN": ("+224620000001", "orange_money_gn", "GNF"),
}
GNF_PER_EUR = "10123.45"


def case_records(case_id: str, country: str, plan: dict) -> list:
    phone = WALLETS[country][0]
    registered = samples.sample_case_registered(case_id, origin_country=country, phone=phone, vulnerabilities=[],
                                                full_name=f"Person {case_id}")
    events = [
        samples.cloudevent(CASE_REGISTERED, case_id, registered),
        samples.cloudevent(RETURN_COMPLETED, case_id, samples.sample_return_completed(case_id, arrival_country=country)),
        samples.cloudevent(PLAN_APPROVED, case_id, plan),
    ]
    return [samples.structured_record(e) for e in events]


def cash_plan(case_id: str, country: str, amount: str, currency: str = "EUR") -> dict:
    phone, provider, _ = WALLETS[country]
    return samples.sample_plan_approved(case_id, f"PL-{case_id}", currency=currency, cash_amount=amount, inkind=False,
                                        payout=samples.mobile_money_payout(phone, provider))


def reintegra(database_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": database_url, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "reintegra_stack.cli", *args], env=env, capture_output=True,
                          text=True, timeout=120, cwd=PROJECT_ROOT)


async def tranche(database_url: str, case_id: str, component: str = "c1", seq: int = 1):
    rows = await query(database_url, "SELECT * FROM disbursement.tranches WHERE case_id = $1 AND component_id = $2 "
                       "AND seq = $3", case_id, component, seq)
    return rows[0]


async def transfers_of(database_url: str, case_id: str) -> dict[str, dict]:
    rows = await query(database_url, "SELECT * FROM disbursement.ledger_transfers WHERE case_id = $1", case_id)
    return {r["id"]: dict(r) for r in rows}


async def test_each_country_is_paid_in_its_currency_at_the_locked_rate(stack, run_id):
    ids = {country: f"FX-{run_id}-{country}" for country in WALLETS}
    plans = {
        "CI": cash_plan(ids["CI"], "CI", "300.00"),               # 300 × 655.957 = 196,787.1
        "SN": cash_plan(ids["SN"], "SN", "250000", "XOF"),        # paid as planned; the budget takes EUR 381.12
        "CM": cash_plan(ids["CM"], "CM", "333.33"),               # 333.33 × 655.957 = 218,650.14
        "GN": cash_plan(ids["GN"], "GN", "300.00"),               # no GNF rate yet: waits
    }
    watcher = await watch(stack.bootstrap_servers, f"FX-{run_id}", {ids[c]: "grant.completed" for c in WALLETS})
    try:
        await publish(stack.bootstrap_servers, [r for c in WALLETS for r in case_records(ids[c], c, plans[c])])
        assert await watcher.wait_until(
            lambda: watcher.settled_count() == 3 and watcher.observed.statuses_of(ids["GN"], "tranche.held"), 90), (
            watcher.observed.last_status)
        held = watcher.observed.statuses_of(ids["GN"], "tranche.held")[-1]
        assert held["reason"] == "exchange_rate_missing"
        assert not watcher.observed.statuses_of(ids["GN"], "payment.sent")

        # Finance loads the day's GNF rate; the waiting tranche is then released at it.
        today = datetime.now(UTC).date().isoformat()
        loaded = reintegra(stack.database_url, "rates", "set", "GNF", GNF_PER_EUR, "--effective", today,
                           "--source", "BCRG fixing (test)")
        assert loaded.returncode == 0, loaded.stderr
        assert await watcher.wait_until(lambda: watcher.settled_count() == 4, 60), watcher.observed.last_status
    finally:
        await watcher.stop()

    expected = {  # country: (payout currency, payout minor, rate, programme minor in EUR cents)
        "CI": ("XOF", 196787, "655.957", 30000),
        "SN": ("XOF", 250000, "1", 38112),
        "CM": ("XAF", 218650, "655.957", 33333),
        "GN": ("GNF", 3037035, GNF_PER_EUR, 30000),
    }
    for country, (currency, minor, rate, programme_minor) in expected.items():
        row = await tranche(stack.database_url, ids[country])
        assert (row["payout_currency"], row["payout_minor"], row["rate"]) == (currency, minor, rate), (country, dict(row))
        assert (row["programme_currency"], row["programme_minor"]) == ("EUR", programme_minor), country
        settled = watcher.observed.statuses_of(ids[country], "payment.settled")[-1]
        assert settled["amount"]["currency"] == currency
        assert int(settled["amount"]["amount"]) == minor
        assert settled["programme_amount"] == {"amount": f"{programme_minor // 100}.{programme_minor % 100:02d}",
                                               "currency": "EUR"}
        transfers = await transfers_of(stack.database_url, ids[country])
        ref = row["reference"]
        assert transfers[f"settle:{ref}"]["amount_minor"] == minor
        if currency != "EUR":
            assert transfers[f"fx-out:{ref}"]["amount_minor"] == programme_minor
            assert transfers[f"fx-in:{ref}"]["amount_minor"] == minor
    gn = watcher.observed.statuses_of(ids["GN"], "tranche.released")[-1]
    assert gn["exchange_rate"]["rate"] == GNF_PER_EUR and gn["exchange_rate"]["effective_date"] == today
    assert gn["amount"] == {"amount": "3037035", "currency": "GNF"}


async def test_an_in_kind_kit_is_split_exactly_in_the_payout_currency(stack, run_id):
    case_id = f"KIT-{run_id}"
    plan = samples.sample_plan_approved(case_id, f"PL-{case_id}", cash_amount="300.00", inkind="1200.00")
    watcher = await watch(stack.bootstrap_servers, case_id, {case_id: "inkind.ordered"})
    try:
        await publish(stack.bootstrap_servers, case_records(case_id, "CI", plan))
        assert await watcher.wait_until(lambda: watcher.observed.statuses_of(case_id, "inkind.ordered"), 60)
    finally:
        await watcher.stop()
    first = await tranche(stack.database_url, case_id, "c2", 1)
    # 1,200 EUR = 787,148.4 XOF → 787,148; 60 % is 472,288.8 and 40 % 314,859.2: the remainder goes to the first.
    assert (first["payout_currency"], first["payout_minor"]) == ("XOF", 472289)
    assert first["programme_minor"] == 72000 and first["payee"] == "vendor:V-ABJ-017"
    second = await tranche(stack.database_url, case_id, "c2", 2)
    assert second["status"] == "planned" and second["payout_minor"] is None  # its rate is locked at its release
    assert second["programme_minor"] == 48000


async def test_a_withdrawal_returns_what_was_not_paid_to_the_budget(stack, run_id):
    case_id = f"WDR-{run_id}"
    plan = samples.sample_plan_approved(case_id, f"PL-{case_id}", cash_amount="300.00", inkind="1200.00")
    watcher = await watch(stack.bootstrap_servers, case_id, {case_id: "tranche.cancelled"})
    try:
        await publish(stack.bootstrap_servers, case_records(case_id, "CI", plan))
        assert await watcher.wait_until(lambda: watcher.observed.statuses_of(case_id, "payment.settled")
                                        and watcher.observed.statuses_of(case_id, "inkind.ordered"), 60)
        withdrawn = samples.cloudevent(CASE_WITHDRAWN, case_id, samples.sample_case_withdrawn(case_id))
        await publish(stack.bootstrap_servers, [samples.structured_record(withdrawn)])
        assert await watcher.wait_until(lambda: len(watcher.observed.statuses_of(case_id, "tranche.cancelled")) == 2, 60)
    finally:
        await watcher.stop()
    kit_now, kit_later = [await tranche(stack.database_url, case_id, "c2", s) for s in (1, 2)]
    transfers = await transfers_of(stack.database_url, case_id)
    # The ordered kit tranche went back at the rate it left with, and the planned one was released whole.
    assert transfers[f"return-fx-out:{kit_now['reference']}"]["amount_minor"] == kit_now["payout_minor"]
    assert transfers[f"return:{kit_now['reference']}"]["amount_minor"] == kit_now["programme_minor"] == 72000
    assert transfers[f"void:{kit_later['reference']}"]["amount_minor"] == kit_later["programme_minor"] == 48000
    reserved = sum(t["amount_minor"] for t in transfers.values() if t["kind"] == "reserve")
    back = sum(t["amount_minor"] for t in transfers.values() if t["id"].startswith(("void:", "return:")))
    assert reserved - back == 30000  # what stays spent: the cash that was paid


async def test_a_permanent_payment_failure_keeps_the_money_committed_until_a_withdrawal_returns_it(stack, run_id):
    case_id = f"FAIL-{run_id}"
    phone = "+2250799000123"
    block_msisdns(stack.provider_base_url, [phone])
    plan = samples.sample_plan_approved(case_id, f"PL-{case_id}", cash_amount="250.00", inkind=False,
                                        payout=samples.mobile_money_payout(phone))
    registered = samples.sample_case_registered(case_id, phone=phone, vulnerabilities=[])
    records = [samples.structured_record(e) for e in (
        samples.cloudevent(CASE_REGISTERED, case_id, registered),
        samples.cloudevent(RETURN_COMPLETED, case_id, samples.sample_return_completed(case_id)),
        samples.cloudevent(PLAN_APPROVED, case_id, plan))]
    watcher = await watch(stack.bootstrap_servers, case_id, {case_id: "tranche.cancelled"})
    try:
        await publish(stack.bootstrap_servers, records)
        assert await watcher.wait_until(lambda: watcher.observed.statuses_of(case_id, "payment.failed"), 60)
        row = await tranche(stack.database_url, case_id)
        assert row["status"] == "failed"
        transfers = await transfers_of(stack.database_url, case_id)
        ref = row["reference"]
        assert f"settle:{ref}" not in transfers
        # The money waits in the programme's commitment for a re-issue, at the rate it left with.
        assert transfers[f"unpay-fx-out:{ref}"]["amount_minor"] == row["payout_minor"] == 163989  # 250 × 655.957
        assert transfers[f"unpay-fx-in:{ref}"]["credit_account"] == "commitment:MA-AVRR-2026"
        assert transfers[f"unpay-fx-in:{ref}"]["amount_minor"] == 25000
        assert f"return:{ref}" not in transfers

        withdrawn = samples.cloudevent(CASE_WITHDRAWN, case_id, samples.sample_case_withdrawn(case_id))
        await publish(stack.bootstrap_servers, [samples.structured_record(withdrawn)])
        assert await watcher.wait_until(lambda: watcher.observed.statuses_of(case_id, "tranche.cancelled"), 60)
    finally:
        await watcher.stop()
    transfers = await transfers_of(stack.database_url, case_id)
    assert transfers[f"return:{ref}"]["amount_minor"] == transfers[f"reserve:{ref}"]["amount_minor"] == 25000
    assert transfers[f"return:{ref}"]["debit_account"] == "commitment:MA-AVRR-2026"
    assert transfers[f"return:{ref}"]["credit_account"] == "budget:MA-AVRR-2026"
