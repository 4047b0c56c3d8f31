"""Finance's ledger view: balances from posting events equal disbursement's own, and every invariant
catches what it is about.

The realistic postings come from disbursement's money rules (grant_money on a `Books`), turned into
events exactly as disbursement.ledger_repository.apply builds them; the broken ones are written by
hand, one fault at a time.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from datetime import date

import pytest
from disbursement.domain import grant_money
from disbursement.domain.currency import RateBook
from disbursement.domain.grant_money import MoneyContext
from disbursement.domain.ledger import Balance as DisbursementBalance
from disbursement.domain.ledger import Books, budget_account
from disbursement.domain.tranche import Tranche
from finance.domain.ledger_view import (
    Balance,
    LedgerAccount,
    LedgerPosting,
    accounts_of,
    balances,
    change_of,
    check_invariants,
    payee_of,
    postings_from_event,
    unique_postings,
)
from reintegra.money import Money

P = "MA-AVRR-2026"
DAY1, DAY2, DAY3 = date(2026, 3, 1), date(2026, 3, 15), date(2026, 4, 2)
INVARIANTS = ["posting-sequence", "accounts", "transfer-legs", "currency-balance", "pending-resolution",
              "budget-limits", "holdings-not-negative", "paid-only-grows", "conversions"]


def events_of(books: Books, days: list[tuple[int, date]]) -> list[dict]:
    """The books' postings as disbursement publishes them: one event per posting here (apply groups
    them per account; the data is the same), numbered per account. `days`: (first posting index, day)."""
    transfers = {t.id: t for t in books.transfers}
    seq: dict[str, int] = defaultdict(int)
    events = []
    for i, p in enumerate(books.postings):
        t = transfers[p.transfer_id]
        seq[p.account] += 1
        entry = {"seq": seq[p.account], "transfer_id": p.transfer_id, "idempotency_key": p.transfer_id,
                 "side": p.side, "phase": p.phase, "amount_minor": p.amount, "currency": p.currency, "kind": t.kind,
                 "counter_account": t.credit if p.side == "debit" else t.debit,
                 "programme": t.programme, "case_id": t.case_id, "reference": t.reference}
        if t.pending_id:
            entry["pending_id"], entry["pending_amount_minor"] = t.pending_id, p.pending_amount
        if t.conversion_id:
            entry["conversion_id"], entry["rate"] = t.conversion_id, t.rate
        account = books.accounts[p.account]
        day = max(d for first, d in days if first <= i)
        events.append({"day": day, "data": {"account": p.account, "kind": account.kind, "currency": account.currency,
                                            "programme": account.programme, "postings": [entry]}})
    return events


def tranche(reference: str, p: int, x: int, payout_currency: str, payee: str, rate: str | None = None) -> Tranche:
    return Tranche(case_id=f"case-{reference}", component_id="c1", seq=1, plan_id="plan", modality="cash",
                   category="business", currency="EUR", amount_minor=p, release="on_approval", reference=reference,
                   programme_code=P, programme_currency="EUR", programme_minor=p, payout_currency=payout_currency,
                   payout_minor=x, rate=rate, programme_rate=rate, payee=payee)


def grant_lifecycle() -> tuple[Books, list[LedgerPosting]]:
    """A programme's money: funded, four grants reserved; one paid in XOF, one cancelled, one failed and
    re-issued in EUR to a vendor, one returned; an in-kind order invoiced below it."""
    books = Books()
    budget = budget_account(P, "EUR")
    books.load(budget, DisbursementBalance())
    ctx = MoneyContext(books, RateBook(), DAY1)
    days = [(0, DAY1)]
    grant_money.open_budget(ctx, P, Money(1_000_000, "EUR"))
    paid = tranche("RG-paid", 10_000, 65_596, "XOF", "orange_money_ci", "655.957")
    cancelled = tranche("RG-cancelled", 20_000, 20_000, "EUR", "vendor:V-1")
    failed = tranche("RG-failed", 5_000, 5_000, "EUR", "vendor:V-1")
    returned = tranche("RG-returned", 7_000, 45_917, "XOF", "wave_sn", "655.957")
    order = tranche("RG-order", 3_000, 19_679, "XOF", "vendor:V-2", "655.957")
    for t in (paid, cancelled, failed, returned, order):
        grant_money.reserve(ctx, t)
    days.append((len(books.postings), DAY2))
    for t in (paid, failed, returned, order):
        grant_money.release(ctx, t)
    grant_money.unreserve(ctx, cancelled)
    grant_money.settle(ctx, paid)
    grant_money.unpay(ctx, failed)
    days.append((len(books.postings), DAY3))
    failed.attempt = 2
    grant_money.owe(ctx, failed)
    grant_money.settle(ctx, failed)
    grant_money.give_back(ctx, returned)
    grant_money.return_rest(ctx, order, 1_000)
    postings = [p for e in events_of(books, days) for p in postings_from_event(e["data"], e["day"])]
    return books, postings


def by_name(results) -> dict:
    return {r.name: r for r in results}


def sums(b) -> tuple[int, int, int, int]:
    return b.debits_pending, b.debits_posted, b.credits_pending, b.credits_posted


# --------------------------------------------------------------------------- balances


def test_balances_from_the_events_are_disbursements_own():
    books, postings = grant_lifecycle()
    view = balances(postings)
    assert set(view) == set(books.changes)
    for account_id, change in books.changes.items():
        assert sums(view[account_id]) == sums(change), account_id
    budget = view[f"budget:{P}"]
    assert budget.available == books.balances[f"budget:{P}"].available
    assert view["paid:orange_money_ci:XOF"].posted_credit == 65_596
    assert view["paid:vendor:V-1:EUR"].posted_credit == 5_000
    assert view[f"commitment:{P}"].held == 0  # everything reserved was released, paid, returned or voided


def test_the_whole_lifecycle_keeps_every_invariant():
    _, postings = grant_lifecycle()
    results = check_invariants(postings)
    assert [r.name for r in results] == INVARIANTS
    assert all(r.ok for r in results), [(r.name, r.violations) for r in results if not r.ok]
    checked = by_name(results)
    assert checked["conversions"].checked == 5  # released: paid, returned, order; back: the return, the rest
    assert checked["budget-limits"].checked == 1 and checked["paid-only-grows"].checked == 2
    assert all(r.description and r.unit for r in results)


def test_a_redelivered_event_counts_once():
    _, postings = grant_lifecycle()
    again = postings + postings[:10] + [replace(postings[3], booked_on=DAY3)]
    assert balances(again) == balances(postings)
    assert all(r.ok for r in check_invariants(again))


def test_balances_at_the_end_of_a_day():
    _, postings = grant_lifecycle()
    budget = balances(postings, until=DAY1)[f"budget:{P}"]
    assert sums(budget) == (45_000, 0, 0, 1_000_000)  # funded, five grants reserved
    budget = balances(postings, until=DAY2)[f"budget:{P}"]
    assert budget.debits_pending == 0 and budget.debits_posted == 10_000 + 5_000 + 7_000 + 3_000
    assert all(r.ok for r in check_invariants(unique_postings(postings, until=DAY2)))


def test_change_of_mirrors_the_ledgers_arithmetic():
    base = LedgerPosting("budget:X", "budget", "EUR", "X", 1, "t", "debit", "pending", 100, "EUR", "reserve",
                         "commitment:X", "X", None, None, DAY1)
    assert sums(change_of(base)) == (100, 0, 0, 0)
    assert sums(change_of(replace(base, phase="posted", side="credit"))) == (0, 0, 0, 100)
    assert sums(change_of(replace(base, phase="post_pending", amount_minor=60, pending_amount_minor=100))) == (
        -100, 60, 0, 0)
    assert sums(change_of(replace(base, phase="void_pending", side="credit", pending_amount_minor=100))) == (
        0, 0, -100, 0)


def test_balance_figures():
    b = Balance(debits_pending=10, debits_posted=20, credits_pending=5, credits_posted=100)
    assert (b.available, b.held, b.posted_credit) == (70, 75, 80)


def test_accounts_and_payees():
    _, postings = grant_lifecycle()
    accounts = accounts_of(postings)
    assert accounts[f"budget:{P}"] == LedgerAccount(f"budget:{P}", "budget", "EUR", P)
    assert accounts["fx:XOF"].kind == "trading"
    assert payee_of("payable:vendor:V-1:EUR") == "vendor:V-1" and payee_of("paid:wave_sn:XOF") == "wave_sn"
    assert payee_of(f"budget:{P}") is None and payee_of("paid:nocurrency") is None


# --------------------------------------------------------------------------- events


def test_postings_from_an_event():
    data = {"account": "paid:wave_sn:XOF", "kind": "paid", "currency": "XOF", "programme": None,
            "postings": [{"seq": 4, "transfer_id": "settle:RG-1", "idempotency_key": "settle:RG-1", "side": "credit",
                          "phase": "posted", "amount_minor": 500, "currency": "XOF", "kind": "settle",
                          "counter_account": "payable:wave_sn:XOF", "programme": P, "case_id": "c", "reference": "RG-1"}]}
    (p,) = postings_from_event(data, DAY1)
    assert (p.account, p.account_kind, p.seq, p.side, p.amount_minor, p.programme, p.booked_on) == (
        "paid:wave_sn:XOF", "paid", 4, "credit", 500, P, DAY1)
    assert p.pending_id is None and p.pending_amount_minor == 0 and p.conversion_id is None


@pytest.mark.parametrize("change", [{"amount_minor": "500"}, {"seq": 1.0}, {"side": "left"}, {"phase": "done"}])
def test_an_event_that_is_not_one_is_refused(change):
    posting = {"seq": 1, "transfer_id": "t", "side": "credit", "phase": "posted", "amount_minor": 500,
               "currency": "XOF", "counter_account": "x"} | change
    with pytest.raises(ValueError):
        postings_from_event({"account": "a", "kind": "paid", "currency": "XOF", "postings": [posting]}, DAY1)
    with pytest.raises(KeyError):
        postings_from_event({"account": "a", "postings": []} | {"postings": [{"seq": 1}]}, DAY1)


# --------------------------------------------------------------------------- each invariant, broken


class Hand:
    """Postings written by hand: both legs of a transfer, numbered per account."""

    KINDS = {"funding": "funding", "budget": "budget", "commitment": "commitment", "payable": "payable",
             "paid": "paid", "returned": "returned", "fx": "trading"}

    def __init__(self) -> None:
        self.seq: dict[str, int] = defaultdict(int)
        self.postings: list[LedgerPosting] = []

    def transfer(self, tid: str, debit: str, credit: str, amount: int, currency: str = "EUR", phase: str = "posted",
                 *, kind: str = "", pending_id: str | None = None, pending_amount: int = 0,
                 conversion_id: str | None = None, rate: str | None = None, day: date = DAY1) -> Hand:
        for account, side, counter in ((debit, "debit", credit), (credit, "credit", debit)):
            self.seq[account] += 1
            account_currency = account.rsplit(":", 1)[-1] if account.startswith(("payable:", "paid:", "fx:")) \
                else "EUR"
            self.postings.append(LedgerPosting(
                account, self.KINDS[account.split(":")[0]], account_currency, None, self.seq[account], tid, side,
                phase, amount, currency, kind, counter, P, None, None, day, pending_id, pending_amount,
                conversion_id, rate))
        return self


def funded(amount: int = 1_000) -> Hand:
    return Hand().transfer("fund", f"funding:{P}", f"budget:{P}", amount, kind="fund")


def problems(postings, name: str, accounts=None) -> tuple[str, ...]:
    result = by_name(check_invariants(postings, accounts))
    broken = [n for n, r in result.items() if not r.ok]
    assert name in broken, broken
    return result[name].violations


def test_a_missing_posting_is_a_gap_and_a_missing_leg():
    hand = funded().transfer("reserve", f"budget:{P}", f"commitment:{P}", 100, phase="pending")
    hand.transfer("release", f"budget:{P}", f"commitment:{P}", 100, phase="post_pending", pending_id="reserve",
                  pending_amount=100)
    postings = [p for p in hand.postings if not (p.account == f"budget:{P}" and p.seq == 2)]
    assert problems(postings, "posting-sequence") == (f"budget:{P}: posting 2 of 3 not received",)
    assert "a leg has not arrived" in problems(postings, "transfer-legs")[0]
    assert problems(postings, "currency-balance") == ("EUR: pending debits -100 but pending credits 0 (off by -100)",)


def test_a_redelivery_with_other_content_and_one_number_for_two_postings():
    hand = funded()
    changed = replace(hand.postings[1], amount_minor=999)
    assert problems([*hand.postings, changed], "posting-sequence") == (
        f"budget:{P}: transfer fund arrived twice with different content",)
    other = replace(hand.postings[1], transfer_id="fund-2")
    assert problems([*hand.postings, other], "posting-sequence")[0] == f"budget:{P}: posting 1 is both fund and fund-2"


def test_a_budget_handing_out_more_than_it_was_given():
    hand = funded(100).transfer("reserve", f"budget:{P}", f"commitment:{P}", 150, phase="pending")
    assert problems(hand.postings, "budget-limits") == (
        f"budget:{P}: available is -50 (credits posted 100 - debits posted 0 - debits pending 150)",)


def test_a_payable_paying_more_than_it_was_owed():
    hand = funded().transfer("owe", f"commitment:{P}", "payable:wave_sn:EUR", 100)
    hand.transfer("settle", "payable:wave_sn:EUR", "paid:wave_sn:EUR", 120)
    violations = problems(hand.postings, "holdings-not-negative")
    assert "payable:wave_sn:EUR: holds -20" in violations and f"commitment:{P}: holds -100" in violations


def test_paid_never_shrinks():
    hand = funded().transfer("settle", "payable:wave_sn:EUR", "paid:wave_sn:EUR", 100)
    hand.transfer("unsettle", "paid:wave_sn:EUR", "payable:wave_sn:EUR", 100)
    assert problems(hand.postings, "paid-only-grows") == ("paid:wave_sn:EUR: transfer unsettle is a posted debit",)


def test_a_pending_transfer_resolved_twice_or_beyond_its_amount():
    hand = funded().transfer("reserve", f"budget:{P}", f"commitment:{P}", 100, phase="pending")
    hand.transfer("release", f"budget:{P}", f"commitment:{P}", 120, phase="post_pending", pending_id="reserve",
                  pending_amount=100)
    hand.transfer("void", f"budget:{P}", f"commitment:{P}", 90, phase="void_pending", pending_id="reserve",
                  pending_amount=100)
    violations = problems(hand.postings, "pending-resolution")
    assert "pending transfer reserve is resolved 2 times (release, void)" in violations
    assert "transfer release posts 120 of reserve, pending for 100" in violations
    assert "transfer void voids 90 of reserve, pending for 100" in violations


def test_a_resolution_of_nothing_pending():
    hand = funded().transfer("release", f"budget:{P}", f"commitment:{P}", 10, phase="post_pending",
                             pending_id="reserve:gone", pending_amount=10)
    hand.transfer("release-2", f"budget:{P}", f"commitment:{P}", 10, phase="post_pending", pending_id="fund",
                  pending_amount=1_000)
    hand.transfer("release-3", f"budget:{P}", f"commitment:{P}", 10, phase="void_pending")
    violations = problems(hand.postings, "pending-resolution")
    assert "transfer release resolves reserve:gone, which has not arrived" in violations
    assert "transfer release-2 resolves fund, which is not pending" in violations
    assert "transfer release-3: resolves no pending transfer" in violations


def test_a_resolution_between_other_accounts_or_of_another_pending_amount():
    hand = funded().transfer("reserve", f"budget:{P}", f"commitment:{P}", 100, phase="pending")
    hand.transfer("release", f"budget:{P}", f"returned:{P}", 100, phase="post_pending", pending_id="reserve",
                  pending_amount=90)
    violations = problems(hand.postings, "pending-resolution")
    assert "transfer release resolves reserve between other accounts" in violations
    assert "transfer release says reserve was pending for 90, it was for 100" in violations


def test_a_conversion_with_one_leg_or_two_rates():
    hand = funded().transfer("fx-out:A", f"commitment:{P}", "fx:EUR", 100, kind="convert", conversion_id="A",
                             rate="655.957")
    violations = problems(hand.postings, "conversions")
    assert violations[0] == "conversion A: 1 transfer(s) in EUR, not two in two currencies"
    hand.transfer("fx-in:A", "fx:XOF", "payable:wave_sn:XOF", 656, "XOF", kind="convert", conversion_id="A",
                  rate="655.9")
    assert problems(hand.postings, "conversions") == ("conversion A: rates ['655.9', '655.957'], not one",)


def test_a_conversion_not_through_the_trading_accounts():
    hand = funded().transfer("fx-out:A", f"commitment:{P}", "payable:x:EUR", 100, kind="convert", conversion_id="A",
                             rate="2")
    hand.transfer("fx-in:A", "fx:XOF", "payable:wave_sn:XOF", 200, "XOF", kind="convert", conversion_id="A", rate="2")
    assert problems(hand.postings, "conversions") == ("conversion A: through the trading accounts as debit XOF",)


def test_legs_that_disagree():
    hand = funded()
    debit, credit = hand.postings
    assert "transfer fund: debit amount_minor 1000, credit amount_minor 5" in problems(
        [debit, replace(credit, amount_minor=5)], "transfer-legs")
    assert "transfer fund: its legs name other counter accounts" in problems(
        [debit, replace(credit, counter_account="funding:other")], "transfer-legs")
    assert "2 debit and 0 credit legs" in problems([debit, replace(credit, side="debit")], "transfer-legs")[0]
    zero = Hand().transfer("reserve", f"budget:{P}", f"commitment:{P}", 0, phase="pending")
    assert problems(zero.postings, "transfer-legs") == ("transfer reserve: pending amount 0 is not allowed",)
    same = Hand().transfer("loop", f"budget:{P}", f"budget:{P}", 5)
    assert "transfer loop: 2 debit and 0 credit legs" not in problems(same.postings, "transfer-legs")


def test_accounts_that_are_not_what_they_say():
    hand = funded()
    wrong_currency = [hand.postings[0], replace(hand.postings[1], currency="XOF")]
    assert f"budget:{P}: transfer fund in XOF on an account in EUR" in problems(wrong_currency, "accounts")
    described_twice = [*hand.postings, replace(hand.postings[1], account_currency="XOF", transfer_id="x", seq=2)]
    assert f"budget:{P}: described as 2 different accounts" in problems(described_twice, "accounts")
    misnamed = [replace(p, account_kind="paid") if p.account == f"budget:{P}" else p for p in hand.postings]
    assert f"budget:{P}: a paid account's id does not start with paid:" in problems(misnamed, "accounts")
    known = {f"budget:{P}": LedgerAccount(f"budget:{P}", "budget", "EUR", P)}
    assert f"funding:{P}: no such account (posting 1, transfer fund)" in problems(hand.postings, "accounts", known)


def test_violations_are_counted_whole_and_listed_up_to_a_limit():
    hand = funded(0)
    for i in range(30):
        hand.transfer(f"settle-{i}", f"paid:p{i}:EUR", f"payable:p{i}:EUR", 1)
    result = by_name(check_invariants(hand.postings, max_examples=5))["paid-only-grows"]
    assert result.violation_count == 30 and len(result.violations) == 5 and not result.ok
