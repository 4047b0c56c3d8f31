"""How a grant's money moves through the ledger: `CaseLedger` with a `MoneyContext`.

Each event runs in its own transaction, as the service runs it: a fresh `Books` with only the
programme budgets loaded under lock (what `money_context` locks), the rates finance loaded and a
fixed day. `Bank` plays the ledger's tables between transactions. After every transaction the
books are checked: from the balances loaded plus `books.changes`, every currency's debits equal
its credits (posted and pending separately) and no budget has less than zero available.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from datetime import date
from decimal import Decimal

import pytest
from disbursement.domain.case import (
    GRANT_COMPLETED,
    GRANT_HELD,
    GRANT_RESERVED,
    INKIND_ORDERED,
    PAYMENT_FAILED,
    PAYMENT_SENT,
    PAYMENT_SETTLED,
    TRANCHE_CANCELLED,
    TRANCHE_HELD,
    TRANCHE_RELEASED,
    CaseLedger,
)
from disbursement.domain.currency import LoadedRate, RateBook
from disbursement.domain.grant_money import MoneyContext, next_reserve_id
from disbursement.domain.ledger import (
    PENDING,
    POST_PENDING,
    POSTED,
    VOID_PENDING,
    Account,
    Balance,
    Books,
    Transfer,
    budget_account,
    funding_account,
)
from disbursement.domain.tranche import Facts, payment_reference
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

P = "MA-AVRR-2026"
CASE = "MA-2026-000123"
PLAN = "PL-5531"
TODAY = date(2026, 11, 2)
BUDGET = f"budget:{P}"
COMMITMENT = f"commitment:{P}"
RETURNED = f"returned:{P}"
FUNDING = f"funding:{P}"
VENDOR = "V-ABJ-017"
MILESTONE = "business_established"

CI = {"method": "mobile_money", "provider": "orange_money_ci", "msisdn": "+2250701020304"}
SN = {"method": "mobile_money", "provider": "wave_sn", "msisdn": "+221771234567"}
CM = {"method": "mobile_money", "provider": "mtn_momo_cm", "msisdn": "+237671234567"}
GN = {"method": "mobile_money", "provider": "orange_money_gn", "msisdn": "+224621234567"}
CONTACT = {"phone": "+2250701020304", "preferred_language": "fr"}

GNF_RATE = LoadedRate("GNF", date(2026, 11, 1), Decimal("10250.5"), "finance:bceao-2026-11-01")


# --------------------------------------------------------------------------------------------
# the ledger's tables between transactions
# --------------------------------------------------------------------------------------------


class Bank:
    """Balances and transfers as the database keeps them; `begin` locks the budgets into fresh
    books, `commit` checks the transaction's books and applies them."""

    def __init__(self, budgets: dict[str, tuple[str, int]] | None = None, rates: tuple[LoadedRate, ...] = ()):
        self.accounts: dict[str, Account] = {}
        self.balances: dict[str, Balance] = {}
        self.transfers: dict[str, Transfer] = {}
        self.rates = rates
        self.vendors = None  # set: in-kind orders are matched and their vendors paid through Reintegra
        self.invoices: dict[tuple[str, str], str] = {}  # what vendor_invoices holds
        for programme, (currency, amount) in (budgets if budgets is not None else {P: ("EUR", 1_000_000)}).items():
            self.accounts[f"budget:{programme}"] = budget_account(programme, currency)
            self.balances[f"budget:{programme}"] = Balance(credits_posted=amount)
            self.accounts[f"funding:{programme}"] = funding_account(programme, currency)
            self.balances[f"funding:{programme}"] = Balance(debits_posted=amount)

    def begin(self, *, queued: set[str] | None = None, rates: tuple[LoadedRate, ...] | None = None,
              today: date = TODAY, vendors=None) -> MoneyContext:
        books = Books()
        for account_id, account in sorted(self.accounts.items()):
            if account.limited:  # money_context locks the budgets only
                books.load(account, copy.copy(self.balances[account_id]))
        self._loaded = {a: copy.copy(b) for a, b in books.balances.items()}
        return MoneyContext(books, RateBook(self.rates if rates is None else rates), today, set(queued or ()),
                            vendors=vendors if vendors is not None else self.vendors,
                            invoices=dict(self.invoices))

    def commit(self, ctx: MoneyContext) -> None:
        books = ctx.books
        assert_books_balance(books, self._loaded, self)
        for t in books.transfers:
            stored = self.transfers.get(t.id)
            assert stored is None or stored.content() == t.content(), f"transfer {t.id} reused with other content"
        for account_id in books.opened:
            known = self.accounts.setdefault(account_id, books.accounts[account_id])
            assert (known.currency, known.kind) == (books.accounts[account_id].currency,
                                                    books.accounts[account_id].kind)
        for vendor, number, _case, reference in ctx.new_invoices:
            assert self.invoices.setdefault((vendor, number), reference) == reference, "an invoice paid twice"
        new = [t for t in books.transfers if t.id not in self.transfers]
        assert len(new) == len(books.transfers), "a transfer stored before was made again"
        for t in new:
            self.transfers[t.id] = t
        for account_id, change in books.changes.items():
            self.accounts.setdefault(account_id, books.accounts[account_id])
            self.balances.setdefault(account_id, Balance()).add(change)
        assert_bank_balances(self)

    def fund(self, programme: str, amount: int) -> None:
        """Finance raises a budget (outside any case)."""
        self.balances[f"budget:{programme}"].credits_posted += amount
        self.balances[f"funding:{programme}"].debits_posted += amount

    def available(self, programme: str = P) -> int:
        return self.balances[f"budget:{programme}"].available

    def balance(self, account_id: str) -> Balance:
        return self.balances.get(account_id, Balance())


def assert_books_balance(books: Books, loaded: dict[str, Balance], bank: Bank) -> None:
    """One transaction: the loaded balances plus its changes balance per currency, and no budget is
    overdrawn, ever (not only at the end)."""
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    totals = {a: copy.copy(b) for a, b in bank.balances.items()}  # what the tables hold before it
    for account_id, balance in loaded.items():
        assert totals[account_id] == balance
    for account_id, change in books.changes.items():
        totals.setdefault(account_id, Balance()).add(change)
    for account_id, balance in totals.items():
        account = books.accounts.get(account_id) or bank.accounts[account_id]
        s = sums[account.currency]
        s[0] += balance.debits_posted
        s[1] += balance.credits_posted
        s[2] += balance.debits_pending
        s[3] += balance.credits_pending
        if account.limited:
            assert balance.available >= 0, f"{account_id} overdrawn: {balance}"
    for currency, (dp, cp, dpe, cpe) in sums.items():
        assert (dp, dpe) == (cp, cpe), f"{currency} does not balance: {(dp, cp, dpe, cpe)}"
    # The running balance of every budget never went below zero within the transaction either.
    running = {a: copy.copy(b) for a, b in loaded.items()}
    for t in books.transfers:
        if t.debit in running:
            b = running[t.debit]
            if t.phase == PENDING:
                b.debits_pending += t.amount
            elif t.phase == POSTED:
                b.debits_posted += t.amount
            else:
                pending = next(p for p in [*books.transfers, *bank.transfers.values()] if p.id == t.pending_id)
                b.debits_pending -= pending.amount
                b.debits_posted += t.amount if t.phase == POST_PENDING else 0
            assert b.available >= 0, f"{t.debit} overdrawn by {t.id}"
        if t.credit in running and t.phase == POSTED:
            running[t.credit].credits_posted += t.amount


def assert_bank_balances(bank: Bank) -> None:
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for account_id, b in bank.balances.items():
        s = sums[bank.accounts[account_id].currency]
        s[0] += b.debits_posted
        s[1] += b.credits_posted
        s[2] += b.debits_pending
        s[3] += b.credits_pending
        assert b.debits_pending >= 0 and b.credits_pending >= 0, f"{account_id}: {b}"
        if bank.accounts[account_id].limited:
            assert b.available >= 0
    for currency, (dp, cp, dpe, cpe) in sums.items():
        assert (dp, dpe) == (cp, cpe), f"{currency} does not balance: {(dp, cp, dpe, cpe)}"


def run(bank: Bank, ledger: CaseLedger, action, *args, cause: str = "ev-1", actor: str = "caseworker:k.benali",
        **begin) -> MoneyContext:
    """One transaction: lock, act, check, apply. Returns its context (its books stay readable)."""
    ctx = bank.begin(**begin)
    ledger.money = ctx
    ledger.act(cause, actor)
    action(*args)
    bank.commit(ctx)
    return ctx


# --------------------------------------------------------------------------------------------
# plans and events
# --------------------------------------------------------------------------------------------


def contract_plan(plan_id: str = PLAN, *, cash: str = "300.00", inkind: str = "1200.00", currency: str = "EUR",
                  payout: dict | None = None) -> dict:
    """The contract's example: c1 cash on approval; c2 in kind, 60 % on approval, 40 % at a milestone."""
    return {
        "case_id": CASE, "plan_id": plan_id, "approved_by": "caseworker:k.benali",
        "approved_at": "2026-10-20T09:30:00Z", "payout": dict(payout or CI),
        "components": [
            {"component_id": "c1", "modality": "cash", "category": "immediate_needs",
             "amount": {"amount": cash, "currency": currency},
             "tranches": [{"seq": 1, "share_percent": 100, "release": "on_approval"}]},
            {"component_id": "c2", "modality": "in_kind", "category": "business_startup",
             "amount": {"amount": inkind, "currency": currency}, "vendor_id": VENDOR,
             "tranches": [{"seq": 1, "share_percent": 60, "release": "on_approval"},
                          {"seq": 2, "share_percent": 40, "release": f"milestone:{MILESTONE}"}]},
        ],
    }


def cash_plan(amount: str = "300.00", currency: str = "EUR", payout: dict | None = None,
              tranches: list[dict] | None = None, plan_id: str = PLAN) -> dict:
    return {
        "case_id": CASE, "plan_id": plan_id, "payout": dict(payout or CI),
        "components": [{"component_id": "c1", "modality": "cash", "category": "immediate_needs",
                        "amount": {"amount": amount, "currency": currency},
                        "tranches": tranches or [{"seq": 1, "share_percent": 100, "release": "on_approval"}]}],
    }


def approved(plan: dict, *, country: str = "CI", programme_currency: str = "EUR", budget: dict | None = None,
             case_id: str = CASE) -> dict:
    """eligibility's grant.approved data."""
    data = {"case_id": case_id, "program_code": P, "plan": plan, "contact": dict(CONTACT),
            "programme_currency": programme_currency, "country": country}
    if budget is not None:
        data["programme_budget"] = budget
    return data


def new_ledger(case_id: str = CASE) -> CaseLedger:
    return CaseLedger(case_id=case_id, facts=Facts(), tranches={})


def key(component_id: str, seq: int, plan_id: str = PLAN) -> tuple[str, str, int]:
    return plan_id, component_id, seq


def ref(component_id: str, seq: int, plan_id: str = PLAN, case_id: str = CASE) -> str:
    return payment_reference(case_id, plan_id, component_id, seq)


def moves(ctx: MoneyContext) -> list[tuple]:
    """(id, debit, credit, currency, amount, phase) of the transaction's transfers, in order."""
    return [(t.id, t.debit, t.credit, t.currency, t.amount, t.phase) for t in ctx.books.transfers]


def statuses(ledger: CaseLedger) -> list[tuple[str, dict]]:
    out = [(t, d) for t, d, _ in ledger.statuses]
    ledger.statuses.clear()
    return out


def status_types(ledger: CaseLedger) -> list[tuple[str, str | None, int | None]]:
    return [(t, d.get("component_id"), d.get("tranche_seq")) for t, d in statuses(ledger)]


def eur(minor: int) -> dict:
    return {"amount": f"{minor // 100}.{minor % 100:02d}", "currency": "EUR"}


def approve_contract_plan(bank: Bank, payout: dict | None = None, **kw) -> tuple[CaseLedger, MoneyContext]:
    ledger = new_ledger()
    ctx = run(bank, ledger, ledger.approve, approved(contract_plan(payout=payout), **kw))
    return ledger, ctx


# --------------------------------------------------------------------------------------------
# approval: reserve, release, convert
# --------------------------------------------------------------------------------------------


def test_approval_to_a_ci_mobile_money_payout_reserves_in_eur_and_owes_exact_xof():
    bank = Bank()
    ledger, ctx = approve_contract_plan(bank)
    c1, c21, c22 = (ledger.tranches[key(*k)] for k in (("c1", 1), ("c2", 1), ("c2", 2)))

    # What the budget reserved, in the programme's currency.
    assert [(t.programme_code, t.programme_currency, t.programme_minor) for t in (c1, c21, c22)] == [
        (P, "EUR", 30_000), (P, "EUR", 72_000), (P, "EUR", 48_000)]
    assert [t.reserve_id for t in (c1, c21, c22)] == [f"reserve:{ref('c1', 1)}", f"reserve:{ref('c2', 1)}",
                                                      f"reserve:{ref('c2', 2)}"]
    # What is paid: XOF at the peg, locked at release. 300.00 EUR × 655.957 = 196787.1 → 196787; the
    # in-kind component is converted whole (787148.4 → 787148) and split 60/40 exactly.
    assert (c1.status, c1.payout_currency, c1.payout_minor, c1.rate, c1.rate_source, c1.rate_date, c1.payee) == (
        "released", "XOF", 196_787, "655.957", "peg", TODAY.isoformat(), "orange_money_ci")
    assert (c21.status, c21.payout_currency, c21.payout_minor, c21.payee) == ("ordered", "XOF", 472_289,
                                                                             f"vendor:{VENDOR}")
    assert (c22.status, c22.payout_currency, c22.payout_minor, c22.rate) == ("planned", None, None, None)

    r1, r21, r22 = ref("c1", 1), ref("c2", 1), ref("c2", 2)
    assert moves(ctx) == [
        (f"reserve:{r1}", BUDGET, COMMITMENT, "EUR", 30_000, PENDING),
        (f"reserve:{r21}", BUDGET, COMMITMENT, "EUR", 72_000, PENDING),
        (f"reserve:{r22}", BUDGET, COMMITMENT, "EUR", 48_000, PENDING),
        (f"release:{r1}", BUDGET, COMMITMENT, "EUR", 30_000, POST_PENDING),
        (f"fx-out:{r1}", COMMITMENT, "fx:EUR", "EUR", 30_000, POSTED),
        (f"fx-in:{r1}", "fx:XOF", "payable:orange_money_ci:XOF", "XOF", 196_787, POSTED),
        (f"release:{r21}", BUDGET, COMMITMENT, "EUR", 72_000, POST_PENDING),
        (f"fx-out:{r21}", COMMITMENT, "fx:EUR", "EUR", 72_000, POSTED),
        (f"fx-in:{r21}", "fx:XOF", f"payable:vendor:{VENDOR}:XOF", "XOF", 472_289, POSTED),
    ]
    by_id = {t.id: t for t in ctx.books.transfers}
    assert by_id[f"release:{r1}"].pending_id == f"reserve:{r1}"
    for leg in (f"fx-out:{r1}", f"fx-in:{r1}"):
        assert (by_id[leg].conversion_id, by_id[leg].rate, by_id[leg].kind) == (r1, "655.957", "convert")
    assert all((t.programme, t.case_id) == (P, CASE) for t in ctx.books.transfers)
    assert bank.available() == 1_000_000 - 150_000
    assert bank.balance(COMMITMENT) == Balance(credits_pending=48_000, debits_posted=102_000,
                                               credits_posted=102_000)
    assert bank.balance("payable:orange_money_ci:XOF") == Balance(credits_posted=196_787)


def test_released_statuses_carry_the_payout_amount_the_programme_amount_and_the_locked_rate():
    bank = Bank()
    ledger, _ = approve_contract_plan(bank)
    out = statuses(ledger)
    assert [(t, d.get("component_id"), d.get("tranche_seq")) for t, d in out] == [
        (TRANCHE_RELEASED, "c1", 1), (TRANCHE_RELEASED, "c2", 1), (INKIND_ORDERED, "c2", 1)]
    released = out[0][1]
    assert released["amount"] == {"amount": "196787", "currency": "XOF"}
    assert released["programme_amount"] == {"amount": "300.00", "currency": "EUR"}
    assert released["plan_amount"] == {"amount": "300.00", "currency": "EUR"}
    assert released["exchange_rate"] == {"from": "EUR", "to": "XOF", "rate": "655.957", "source": "peg",
                                         "effective_date": TODAY.isoformat()}
    assert released["reference"] == ref("c1", 1)
    assert out[2][1]["amount"] == {"amount": "472289", "currency": "XOF"}
    assert out[2][1]["programme_amount"] == {"amount": "720.00", "currency": "EUR"}
    assert out[2][1]["vendor_id"] == VENDOR


def test_transitions_are_recorded_with_the_cause_and_the_actor():
    bank = Bank()
    ledger = new_ledger()
    ctx = run(bank, ledger, ledger.approve, approved(contract_plan()), cause="evt-approve-1", actor="caseworker:x")
    assert ledger.transitions == [
        (key("c1", 1), None, "planned", None, "evt-approve-1", "caseworker:x"),
        (key("c2", 1), None, "planned", None, "evt-approve-1", "caseworker:x"),
        (key("c2", 2), None, "planned", None, "evt-approve-1", "caseworker:x"),
        (key("c1", 1), "planned", "released", None, "evt-approve-1", "caseworker:x"),
        (key("c2", 1), "planned", "released", None, "evt-approve-1", "caseworker:x"),
        (key("c2", 1), "released", "ordered", None, "evt-approve-1", "caseworker:x"),
    ]
    assert {(t.cause, t.actor) for t in ctx.books.transfers} == {("evt-approve-1", "caseworker:x")}
    ledger.transitions.clear()
    ctx = run(bank, ledger, ledger.verify_milestone, {"case_id": CASE, "plan_id": PLAN, "milestone": MILESTONE},
              cause="evt-ms-1", actor="monitor:a.kone")
    assert ledger.transitions == [
        (key("c2", 2), "planned", "released", None, "evt-ms-1", "monitor:a.kone"),
        (key("c2", 2), "released", "ordered", None, "evt-ms-1", "monitor:a.kone"),
    ]
    assert {(t.cause, t.actor) for t in ctx.books.transfers} == {("evt-ms-1", "monitor:a.kone")}


@pytest.mark.parametrize(("payout", "currency", "payee", "c1_minor"), [
    (SN, "XOF", "wave_sn", 196_787),
    (CM, "XAF", "mtn_momo_cm", 196_787),  # XAF has the same peg as XOF
])
def test_payouts_to_sn_and_cm_are_converted_at_the_peg(payout, currency, payee, c1_minor):
    bank = Bank()
    country = "SN" if payout is SN else "CM"
    ledger = new_ledger()
    ctx = run(bank, ledger, ledger.approve, approved(contract_plan(payout=payout), country=country))
    c1 = ledger.tranches[key("c1", 1)]
    assert (c1.status, c1.payout_currency, c1.payout_minor, c1.rate, c1.payee) == (
        "released", currency, c1_minor, "655.957", payee)
    assert (f"fx-in:{ref('c1', 1)}", f"fx:{currency}", f"payable:{payee}:{currency}", currency, c1_minor,
            POSTED) in moves(ctx)
    # In kind, the goods are bought where the case is: the case's country's currency.
    assert ledger.tranches[key("c2", 1)].payout_currency == currency


def test_a_plan_in_the_payout_currency_pays_its_exact_amount_and_reserves_the_converted_one():
    # 250000 XOF from a EUR programme: the budget reserves 250000 / 655.957 = 381.1225 → 381.12 EUR.
    bank = Bank()
    ledger = new_ledger()
    ctx = run(bank, ledger, ledger.approve, approved(cash_plan("250000", "XOF", SN), country="SN"))
    c1 = ledger.tranches[key("c1", 1)]
    assert (c1.programme_currency, c1.programme_minor) == ("EUR", 38_112)
    assert (c1.payout_currency, c1.payout_minor) == ("XOF", 250_000)
    r = ref("c1", 1)
    assert moves(ctx)[-2:] == [(f"fx-out:{r}", COMMITMENT, "fx:EUR", "EUR", 38_112, POSTED),
                               (f"fx-in:{r}", "fx:XOF", "payable:wave_sn:XOF", "XOF", 250_000, POSTED)]
    assert bank.available() == 1_000_000 - 38_112


def test_a_gn_payout_without_a_gnf_rate_waits_reserved_and_is_released_once_a_rate_is_loaded():
    bank = Bank()
    ledger = new_ledger()
    ctx = run(bank, ledger, ledger.approve, approved(cash_plan(payout=GN), country="GN"), cause="ev-approve")
    c1 = ledger.tranches[key("c1", 1)]
    r = ref("c1", 1)
    # Reserved (the programme's currency needs no rate), but never paid at a guessed rate.
    assert (c1.status, c1.hold_reason, c1.payout_currency, c1.payout_minor, c1.rate) == (
        "planned", "exchange_rate_missing", "GNF", None, None)
    assert moves(ctx) == [(f"reserve:{r}", BUDGET, COMMITMENT, "EUR", 30_000, PENDING)]
    out = statuses(ledger)
    assert [t for t, _ in out] == [TRANCHE_HELD]
    held = out[0][1]
    assert held["status"] == "tranche_held" and held["reason"] == "exchange_rate_missing"
    assert held["reasons"][0]["code"] == "exchange_rate_missing"
    assert held["amount"] == {"amount": "300.00", "currency": "EUR"}  # no payout amount yet
    assert held["programme_amount"] == {"amount": "300.00", "currency": "EUR"}
    assert (key("c1", 1), "planned", "planned", "exchange_rate_missing", "ev-approve", "caseworker:k.benali") \
        in ledger.transitions

    # Still no rate: nothing moves and nothing is said again.
    ctx = run(bank, ledger, ledger.retry_waiting, cause="rates:loaded", actor="disbursement")
    assert moves(ctx) == [] and statuses(ledger) == []
    # A rate effective only after today does not count either.
    later = LoadedRate("GNF", date(2026, 11, 3), Decimal("10000"), "finance")
    ctx = run(bank, ledger, ledger.retry_waiting, cause="rates:loaded", actor="disbursement", rates=(later,))
    assert moves(ctx) == [] and c1.status == "planned"

    ctx = run(bank, ledger, ledger.retry_waiting, cause="rates:loaded", actor="disbursement", rates=(GNF_RATE,))
    # 300.00 EUR × 10250.5 = 3075150 GNF.
    assert (c1.status, c1.hold_reason, c1.payout_currency, c1.payout_minor, c1.rate, c1.rate_source,
            c1.rate_date) == ("released", None, "GNF", 3_075_150, "10250.5", "rates:GNF@2026-11-01", "2026-11-01")
    assert moves(ctx) == [
        (f"release:{r}", BUDGET, COMMITMENT, "EUR", 30_000, POST_PENDING),
        (f"fx-out:{r}", COMMITMENT, "fx:EUR", "EUR", 30_000, POSTED),
        (f"fx-in:{r}", "fx:GNF", "payable:orange_money_gn:GNF", "GNF", 3_075_150, POSTED),
    ]
    released = statuses(ledger)
    assert [t for t, _ in released] == [TRANCHE_RELEASED]
    assert released[0][1]["amount"] == {"amount": "3075150", "currency": "GNF"}
    assert released[0][1]["exchange_rate"]["rate"] == "10250.5"
    assert (key("c1", 1), "planned", "released", None, "rates:loaded", "disbursement") in ledger.transitions
    assert bank.available() == 1_000_000 - 30_000


def test_a_plan_in_a_currency_without_a_rate_holds_the_whole_grant_until_one_is_loaded():
    # 3075150 GNF from a EUR programme: nothing can be reserved before a GNF rate exists.
    bank = Bank()
    ledger = new_ledger()
    ctx = run(bank, ledger, ledger.approve, approved(cash_plan("3075150", "GNF", GN), country="GN"))
    c1 = ledger.tranches[key("c1", 1)]
    assert (c1.status, c1.hold_reason, c1.programme_minor) == ("held", "exchange_rate_missing", None)
    assert moves(ctx) == []
    out = statuses(ledger)
    assert [t for t, _ in out] == [GRANT_HELD]
    assert out[0][1]["reasons"][0]["code"] == "exchange_rate_missing"
    assert ledger.budget_hold() is None  # not queued for budget: nothing to fund
    assert ctx.queued == set()

    ctx = run(bank, ledger, ledger.retry_waiting, rates=(GNF_RATE,))
    r = ref("c1", 1)
    assert (c1.status, c1.programme_minor, c1.payout_currency, c1.payout_minor, c1.rate) == (
        "released", 30_000, "GNF", 3_075_150, "1")
    assert moves(ctx) == [
        (f"reserve:{r}", BUDGET, COMMITMENT, "EUR", 30_000, PENDING),
        (f"release:{r}", BUDGET, COMMITMENT, "EUR", 30_000, POST_PENDING),
        (f"fx-out:{r}", COMMITMENT, "fx:EUR", "EUR", 30_000, POSTED),
        (f"fx-in:{r}", "fx:GNF", "payable:orange_money_gn:GNF", "GNF", 3_075_150, POSTED),
    ]


def test_a_component_split_in_thirds_sums_exactly_in_both_currencies():
    bank = Bank()
    ledger = new_ledger()
    thirds = [{"seq": 1, "share_percent": "33.33", "release": "on_approval"},
              {"seq": 2, "share_percent": "33.33", "release": "on_approval"},
              {"seq": 3, "share_percent": "33.34", "release": "on_approval"}]
    ctx = run(bank, ledger, ledger.approve, approved(cash_plan("100.00", tranches=thirds)))
    tranches = [ledger.tranches[key("c1", s)] for s in (1, 2, 3)]
    assert [t.programme_minor for t in tranches] == [3333, 3333, 3334]
    # 100.00 EUR = 65595.7 → 65596 XOF, split with the largest remainder.
    assert [t.payout_minor for t in tranches] == [21_863, 21_863, 21_870]
    assert sum(t.payout_minor for t in tranches) == 65_596
    assert bank.balance("payable:orange_money_ci:XOF").credits_posted == 65_596
    assert bank.balance("fx:EUR").credits_posted == 10_000
    assert bank.available() == 1_000_000 - 10_000
    assert len([m for m in moves(ctx) if m[0].startswith("fx-in:")]) == 3


def test_a_component_in_xof_split_in_thirds_reserves_exactly_its_converted_total():
    # 100001 XOF → 152.45 EUR (15244.9… rounds to 15245), split 5081/5081/5083; paid 33330/33330/33341.
    bank = Bank()
    ledger = new_ledger()
    thirds = [{"seq": 1, "share_percent": "33.33", "release": "on_approval"},
              {"seq": 2, "share_percent": "33.33", "release": "milestone:m"},
              {"seq": 3, "share_percent": "33.34", "release": "milestone:m"}]
    run(bank, ledger, ledger.approve, approved(cash_plan("100001", "XOF", SN, thirds), country="SN"))
    tranches = [ledger.tranches[key("c1", s)] for s in (1, 2, 3)]
    assert [t.programme_minor for t in tranches] == [5081, 5081, 5083]
    assert bank.available() == 1_000_000 - 15_245
    run(bank, ledger, ledger.verify_milestone, {"case_id": CASE, "plan_id": PLAN, "milestone": "m"})
    assert [t.payout_minor for t in tranches] == [33_330, 33_330, 33_341]
    assert bank.balance("payable:wave_sn:XOF").credits_posted == 100_001
    assert bank.balance(COMMITMENT) == Balance(debits_posted=15_245, credits_posted=15_245)


def test_the_first_grant_of_a_programme_opens_its_budget_once():
    bank = Bank({P: ("EUR", 0)})
    ledger = new_ledger()
    ctx = run(bank, ledger, ledger.approve,
              approved(contract_plan(), budget={"amount": "50000.00", "currency": "EUR"}))
    assert moves(ctx)[0] == (f"fund:{P}:opening", FUNDING, BUDGET, "EUR", 5_000_000, POSTED)
    assert bank.available() == 5_000_000 - 150_000
    # A second grant of the programme does not fund it again.
    other = new_ledger("MA-2026-000124")
    plan = {**contract_plan(), "case_id": "MA-2026-000124"}
    ctx = run(bank, other, other.approve,
              approved(plan, budget={"amount": "50000.00", "currency": "EUR"}, case_id="MA-2026-000124"))
    assert not any(m[0].startswith("fund:") for m in moves(ctx))
    assert bank.available() == 5_000_000 - 300_000


def test_a_budget_in_another_currency_than_the_programme_is_not_opened():
    bank = Bank({P: ("EUR", 0)})
    ledger = new_ledger()
    ctx = run(bank, ledger, ledger.approve, approved(contract_plan(), budget={"amount": "50000", "currency": "XOF"}))
    assert moves(ctx) == []
    assert {t.status for t in ledger.tranches.values()} == {"held"}


# --------------------------------------------------------------------------------------------
# budget holds
# --------------------------------------------------------------------------------------------


def test_a_budget_too_small_holds_every_tranche_and_moves_nothing():
    bank = Bank({P: ("EUR", 100_000)})  # 1000.00 EUR for a 1500.00 EUR grant
    ledger = new_ledger()
    ctx = run(bank, ledger, ledger.approve, approved(contract_plan()), cause="ev-1", actor="caseworker:k")
    assert {(t.status, t.hold_reason, t.reserve_id) for t in ledger.tranches.values()} == {
        ("held", "budget_exhausted", None)}
    assert ctx.books.transfers == [] and ctx.books.changes == {}
    assert bank.available() == 100_000
    out = statuses(ledger)
    assert [t for t, _ in out] == [GRANT_HELD]
    data = out[0][1]
    assert (data["status"], data["plan_id"], data["programme_code"]) == ("grant_held", PLAN, P)
    assert data["programme_amount"] == eur(150_000)
    assert [r["code"] for r in data["reasons"]] == ["budget_exhausted"]
    assert "1000.00 EUR available" in data["reasons"][0]["message"]
    assert ledger.budget_hold() == (P, "EUR", 150_000)
    assert P in ctx.queued and ledger.hold_order == 1
    assert all(tr[2:] == ("held", "budget_exhausted", "ev-1", "caseworker:k") for tr in ledger.transitions)


def test_a_queued_programme_holds_a_new_grant_even_if_it_would_fit():
    bank = Bank()
    ledger = new_ledger()
    ctx = run(bank, ledger, ledger.approve, approved(contract_plan()), queued={P})
    assert {t.status for t in ledger.tranches.values()} == {"held"}
    assert ctx.books.transfers == []
    data = statuses(ledger)[0][1]
    assert data["reasons"][0]["code"] == "budget_exhausted"
    assert "grants approved before it are waiting" in data["reasons"][0]["message"]


def test_in_one_transaction_a_grant_held_for_budget_holds_the_next_one_of_its_programme():
    bank = Bank({P: ("EUR", 200_000)})
    first, second = new_ledger("MA-2026-000001"), new_ledger("MA-2026-000002")
    ctx = bank.begin()
    for ledger, amount in ((first, "3000.00"), (second, "10.00")):
        ledger.money = ctx
        ledger.approve(approved({**cash_plan(amount), "case_id": ledger.case_id}, case_id=ledger.case_id))
    bank.commit(ctx)
    assert first.tranches[key("c1", 1)].status == "held"
    assert second.tranches[key("c1", 1)].status == "held"  # would fit, but may not pass the first
    assert (first.hold_order, second.hold_order) == (1, 2)
    assert ctx.books.transfers == []


def test_fund_held_after_a_raise_reserves_and_releases_in_one_step():
    bank = Bank({P: ("EUR", 100_000)})
    ledger = new_ledger()
    run(bank, ledger, ledger.approve, approved(contract_plan()))
    statuses(ledger)
    ledger.transitions.clear()

    # Not enough yet: nothing changes.
    bank.fund(P, 40_000)
    result = []
    ctx = run(bank, ledger, lambda: result.append(ledger.fund_held()), queued={P})
    assert result == [False] and ctx.books.transfers == [] and statuses(ledger) == []
    assert ledger.budget_hold() == (P, "EUR", 150_000)

    bank.fund(P, 10_000)  # exactly 1500.00 available now
    ctx = run(bank, ledger, lambda: result.append(ledger.fund_held()), queued={P},
              cause=f"budget:{P}:available", actor="disbursement")
    assert result == [False, True]
    assert ledger.budget_hold() is None
    assert {k: t.status for k, t in ledger.tranches.items()} == {
        key("c1", 1): "released", key("c2", 1): "ordered", key("c2", 2): "planned"}
    assert all(t.hold_reason is None for t in ledger.tranches.values())
    r1 = ref("c1", 1)
    assert [m[0] for m in moves(ctx)] == [
        f"reserve:{r1}", f"reserve:{ref('c2', 1)}", f"reserve:{ref('c2', 2)}",
        f"release:{r1}", f"fx-out:{r1}", f"fx-in:{r1}",
        f"release:{ref('c2', 1)}", f"fx-out:{ref('c2', 1)}", f"fx-in:{ref('c2', 1)}"]
    assert bank.available() == 0
    out = statuses(ledger)
    assert [t for t, _ in out] == [GRANT_RESERVED, TRANCHE_RELEASED, TRANCHE_RELEASED, INKIND_ORDERED]
    assert out[0][1]["programme_amount"] == eur(150_000) and out[0][1]["status"] == "grant_reserved"
    assert out[1][1]["amount"] == {"amount": "196787", "currency": "XOF"}
    assert (key("c1", 1), "held", "planned", None, f"budget:{P}:available", "disbursement") in ledger.transitions
    assert (key("c1", 1), "planned", "released", None, f"budget:{P}:available", "disbursement") \
        in ledger.transitions


# --------------------------------------------------------------------------------------------
# later transactions: milestones, payments, withdrawal, revisions
# --------------------------------------------------------------------------------------------


def test_a_milestone_verified_in_a_later_transaction_releases_its_reserved_tranche():
    bank = Bank()
    ledger, _ = approve_contract_plan(bank)
    ctx = run(bank, ledger, ledger.verify_milestone, {"case_id": CASE, "plan_id": PLAN, "milestone": MILESTONE})
    r = ref("c2", 2)
    # 787148 XOF split 60/40: 472289 + 314859.
    assert moves(ctx) == [
        (f"release:{r}", BUDGET, COMMITMENT, "EUR", 48_000, POST_PENDING),
        (f"fx-out:{r}", COMMITMENT, "fx:EUR", "EUR", 48_000, POSTED),
        (f"fx-in:{r}", "fx:XOF", f"payable:vendor:{VENDOR}:XOF", "XOF", 314_859, POSTED),
    ]
    assert bank.balance(f"payable:vendor:{VENDOR}:XOF").credits_posted == 472_289 + 314_859
    assert bank.balance(COMMITMENT) == Balance(debits_posted=150_000, credits_posted=150_000)


def test_payment_settled_moves_what_is_owed_from_payable_to_paid():
    bank = Bank()
    ledger, _ = approve_contract_plan(bank)
    statuses(ledger)
    k, r = key("c1", 1), ref("c1", 1)
    ctx = run(bank, ledger, ledger.payment_sent, k, "MTN-1", cause="send-1", actor="disbursement")
    assert ctx.books.transfers == []
    sent = statuses(ledger)
    assert sent[0][0] == PAYMENT_SENT and sent[0][1]["amount"] == {"amount": "196787", "currency": "XOF"}
    ctx = run(bank, ledger, ledger.payment_settled, k, cause="cb-1", actor="provider:orange_money_ci")
    assert moves(ctx) == [(f"settle:{r}", "payable:orange_money_ci:XOF", "paid:orange_money_ci:XOF", "XOF",
                           196_787, POSTED)]
    assert (ctx.books.transfers[0].cause, ctx.books.transfers[0].actor) == ("cb-1", "provider:orange_money_ci")
    assert bank.balance("payable:orange_money_ci:XOF") == Balance(debits_posted=196_787, credits_posted=196_787)
    assert bank.balance("paid:orange_money_ci:XOF") == Balance(credits_posted=196_787)
    settled = statuses(ledger)
    assert settled[0][0] == PAYMENT_SETTLED
    assert settled[0][1]["amount"] == {"amount": "196787", "currency": "XOF"}
    assert settled[0][1]["programme_amount"] == eur(30_000)
    assert ledger.notices[-1]["params"]["amount"] == {"amount": "196787", "currency": "XOF"}
    # A settlement reported again moves nothing.
    ctx = run(bank, ledger, ledger.payment_settled, k)
    assert ctx.books.transfers == []


def test_payment_failed_returns_the_money_to_the_commitment_at_the_rate_it_left_with():
    bank = Bank()
    ledger, _ = approve_contract_plan(bank)
    k, r = key("c1", 1), ref("c1", 1)
    run(bank, ledger, ledger.payment_sent, k, "MTN-1")
    before = bank.available()
    ctx = run(bank, ledger, ledger.payment_failed, k, "account_blocked", cause="cb-2", actor="provider")
    assert moves(ctx) == [
        (f"unpay-fx-out:{r}", "payable:orange_money_ci:XOF", "fx:XOF", "XOF", 196_787, POSTED),
        (f"unpay-fx-in:{r}", "fx:EUR", COMMITMENT, "EUR", 30_000, POSTED),
    ]
    by_id = {t.id: t for t in ctx.books.transfers}
    assert by_id[f"unpay-fx-out:{r}"].conversion_id == f"unpay:{r}"
    assert by_id[f"unpay-fx-out:{r}"].rate == "655.957"
    # The money waits for a re-issue: still committed to this grant, not back in the budget.
    assert bank.available() == before
    assert bank.balance("payable:orange_money_ci:XOF").credits_posted \
        == bank.balance("payable:orange_money_ci:XOF").debits_posted
    # The trading accounts are flat again: what went out came back at the same amounts.
    assert bank.balance("fx:EUR").credits_posted - bank.balance("fx:EUR").debits_posted == 72_000
    failed = statuses(ledger)[-1]
    assert failed[0] == PAYMENT_FAILED and failed[1]["reason"] == "account_blocked"
    assert failed[1]["amount"] == {"amount": "196787", "currency": "XOF"}
    # Failing again changes nothing.
    ctx = run(bank, ledger, ledger.payment_failed, k, "account_blocked")
    assert ctx.books.transfers == []

    # A new wallet: the committed money is owed again, under attempt 2.
    ctx = run(bank, ledger, ledger.update_beneficiary,
              {"case_id": CASE, "payout": {"method": "mobile_money", "provider": "mtn_momo_ci",
                                           "msisdn": "+2250709998877"}}, cause="ev-u", actor="caseworker:k")
    assert moves(ctx) == [
        (f"fx-out:{r}:a2", COMMITMENT, "fx:EUR", "EUR", 30_000, POSTED),
        (f"fx-in:{r}:a2", "fx:XOF", "payable:mtn_momo_ci:XOF", "XOF", 196_787, POSTED),
    ]
    assert ledger.tranches[k].attempt == 2 and ledger.tranches[k].status == "released"


def test_a_failed_tranche_cancelled_returns_its_committed_money_to_the_budget():
    bank = Bank()
    ledger, _ = approve_contract_plan(bank)
    k, r = key("c1", 1), ref("c1", 1)
    run(bank, ledger, ledger.payment_sent, k, "MTN-1")
    run(bank, ledger, ledger.payment_failed, k, "account_blocked")
    before = bank.available()
    ctx = run(bank, ledger, ledger.withdraw, {"case_id": CASE, "reason": "beneficiary_request"})
    assert (f"return:{r}", COMMITMENT, BUDGET, "EUR", 30_000, POSTED) in moves(ctx)
    assert bank.available() >= before + 30_000


def test_withdrawal_voids_the_reserves_and_returns_released_money_exactly():
    bank = Bank()
    start = bank.available()
    ledger, _ = approve_contract_plan(bank)
    statuses(ledger)
    ctx = run(bank, ledger, ledger.withdraw, {"case_id": CASE, "reason": "beneficiary_request"},
              cause="ev-w", actor="caseworker:k")
    r1, r21, r22 = ref("c1", 1), ref("c2", 1), ref("c2", 2)
    assert moves(ctx) == [
        (f"return-fx-out:{r1}", "payable:orange_money_ci:XOF", "fx:XOF", "XOF", 196_787, POSTED),
        (f"return-fx-in:{r1}", "fx:EUR", RETURNED, "EUR", 30_000, POSTED),
        (f"return:{r1}", RETURNED, BUDGET, "EUR", 30_000, POSTED),
        (f"return-fx-out:{r21}", f"payable:vendor:{VENDOR}:XOF", "fx:XOF", "XOF", 472_289, POSTED),
        (f"return-fx-in:{r21}", "fx:EUR", RETURNED, "EUR", 72_000, POSTED),
        (f"return:{r21}", RETURNED, BUDGET, "EUR", 72_000, POSTED),
        (f"void:{r22}", BUDGET, COMMITMENT, "EUR", 48_000, VOID_PENDING),
    ]
    assert {t.status for t in ledger.tranches.values()} == {"cancelled"}
    assert bank.available() == start
    assert bank.balance(BUDGET).debits_pending == 0
    for account_id in ("payable:orange_money_ci:XOF", f"payable:vendor:{VENDOR}:XOF", "fx:EUR", "fx:XOF",
                       RETURNED, COMMITMENT):
        b = bank.balance(account_id)
        assert b.debits_posted == b.credits_posted and b.debits_pending == b.credits_pending == 0, account_id
    out = statuses(ledger)
    assert [t for t, _ in out] == [TRANCHE_CANCELLED] * 3
    assert out[0][1]["amount"] == {"amount": "196787", "currency": "XOF"}
    assert out[2][1]["amount"] == eur(48_000) and out[2][1]["programme_amount"] == eur(48_000)
    assert all(d["reason"] == "beneficiary_request" for _, d in out)
    # Withdrawn again: nothing more.
    ctx = run(bank, ledger, ledger.withdraw, {"case_id": CASE})
    assert ctx.books.transfers == []


def test_withdrawal_keeps_money_sent_and_cancels_a_tranche_waiting_for_a_rate():
    bank = Bank()
    ledger = new_ledger()
    run(bank, ledger, ledger.approve, approved(contract_plan(payout=GN), country="GN"))
    assert ledger.tranches[key("c1", 1)].hold_reason == "exchange_rate_missing"
    ctx = run(bank, ledger, ledger.withdraw, {"case_id": CASE})
    assert sorted(m[0] for m in moves(ctx)) == sorted(f"void:{ref(c, s)}" for c, s in (("c1", 1), ("c2", 1),
                                                                                       ("c2", 2)))
    assert bank.available() == 1_000_000
    # And a sent payment is not touched by a withdrawal.
    bank2 = Bank()
    ledger2, _ = approve_contract_plan(bank2)
    run(bank2, ledger2, ledger2.payment_sent, key("c1", 1), "T-1")
    ctx = run(bank2, ledger2, ledger2.withdraw, {"case_id": CASE})
    assert not any(m[0].endswith(ref("c1", 1)) for m in moves(ctx))
    assert ledger2.tranches[key("c1", 1)].status == "sent"
    assert bank2.available() == 1_000_000 - 30_000


def test_withdrawal_of_a_grant_held_for_budget_moves_nothing_and_leaves_the_queue():
    bank = Bank({P: ("EUR", 100)})
    ledger = new_ledger()
    run(bank, ledger, ledger.approve, approved(contract_plan()))
    ctx = run(bank, ledger, ledger.withdraw, {"case_id": CASE})
    assert ctx.books.transfers == []
    assert ledger.budget_hold() is None


def test_a_revision_that_changes_a_planned_tranche_voids_its_reserve_and_reserves_the_next_version():
    bank = Bank()
    ledger, _ = approve_contract_plan(bank)
    statuses(ledger)
    r21, r22 = ref("c2", 1), ref("c2", 2)
    ctx = run(bank, ledger, ledger.revise, {"case_id": CASE, "plan": contract_plan(inkind="1600.00")},
              cause="ev-rev-1", actor="caseworker:k")
    c22 = ledger.tranches[key("c2", 2)]
    assert (c22.status, c22.programme_minor, c22.reserve_id) == ("planned", 64_000, f"reserve:{r22}:r2")
    assert moves(ctx) == [
        (f"void:{r22}", BUDGET, COMMITMENT, "EUR", 48_000, VOID_PENDING),
        (f"reserve:{r22}:r2", BUDGET, COMMITMENT, "EUR", 64_000, PENDING),
    ]
    assert ctx.books.transfers[1].cause == "ev-rev-1"
    # The released tranche is not re-priced: it keeps its amounts and its money.
    c21 = ledger.tranches[key("c2", 1)]
    assert (c21.status, c21.programme_minor, c21.payout_minor) == ("ordered", 72_000, 472_289)
    assert f"reserve:{r21}" not in {m[0] for m in moves(ctx)}
    assert bank.available() == 1_000_000 - 30_000 - 72_000 - 64_000

    # A second change: void the r2 reserve, reserve r3; then the milestone releases r3.
    ctx = run(bank, ledger, ledger.revise, {"case_id": CASE, "plan": contract_plan(inkind="1000.00")})
    assert moves(ctx) == [
        (f"void:{r22}:r2", BUDGET, COMMITMENT, "EUR", 64_000, VOID_PENDING),
        (f"reserve:{r22}:r3", BUDGET, COMMITMENT, "EUR", 40_000, PENDING),
    ]
    ctx = run(bank, ledger, ledger.verify_milestone, {"case_id": CASE, "plan_id": PLAN, "milestone": MILESTONE})
    assert moves(ctx)[0] == (f"release:{r22}:r3", BUDGET, COMMITMENT, "EUR", 40_000, POST_PENDING)
    assert ctx.books.transfers[0].pending_id == f"reserve:{r22}:r3"
    assert bank.available() == 1_000_000 - 30_000 - 72_000 - 40_000
    assert bank.balance(BUDGET).debits_pending == 0


def test_a_revision_that_keeps_a_planned_tranches_amount_keeps_its_reserve():
    bank = Bank()
    ledger, _ = approve_contract_plan(bank)
    ctx = run(bank, ledger, ledger.revise, {"case_id": CASE, "plan": contract_plan(cash="999.00")})
    assert ctx.books.transfers == []  # c1 released (not revised), c2/2 unchanged
    assert ledger.tranches[key("c2", 2)].reserve_id == f"reserve:{ref('c2', 2)}"


def test_a_revision_that_removes_a_planned_tranche_voids_its_reserve():
    bank = Bank()
    ledger, _ = approve_contract_plan(bank)
    plan = contract_plan()
    plan["components"][1]["tranches"] = [{"seq": 1, "share_percent": 100, "release": "on_approval"}]
    ctx = run(bank, ledger, ledger.revise, {"case_id": CASE, "plan": plan})
    assert moves(ctx) == [(f"void:{ref('c2', 2)}", BUDGET, COMMITMENT, "EUR", 48_000, VOID_PENDING)]
    assert ledger.tranches[key("c2", 2)].status == "cancelled"
    assert bank.available() == 1_000_000 - 102_000


def test_a_revision_beyond_the_budget_holds_the_revised_tranche_after_voiding_its_reserve():
    bank = Bank({P: ("EUR", 160_000)})
    ledger, _ = approve_contract_plan(bank)  # 1500.00 reserved, 100.00 left
    ctx = run(bank, ledger, ledger.revise, {"case_id": CASE, "plan": contract_plan(inkind="1500.00")})
    c22 = ledger.tranches[key("c2", 2)]
    assert (c22.status, c22.hold_reason, c22.programme_minor) == ("held", "budget_exhausted", 60_000)
    assert moves(ctx) == [(f"void:{ref('c2', 2)}", BUDGET, COMMITMENT, "EUR", 48_000, VOID_PENDING)]
    assert ledger.budget_hold() == (P, "EUR", 60_000)
    bank.fund(P, 2_000)
    result = []
    ctx = run(bank, ledger, lambda: result.append(ledger.fund_held()), queued={P})
    assert result == [True]
    # The next reserve gets the next version: the voided id is never reused.
    assert moves(ctx) == [(f"reserve:{ref('c2', 2)}:r2", BUDGET, COMMITMENT, "EUR", 60_000, PENDING)]
    assert bank.available() == 0


def test_a_grant_settled_and_delivered_completes_with_what_was_paid_in_the_payout_currency():
    bank = Bank()
    ledger, _ = approve_contract_plan(bank)
    run(bank, ledger, ledger.verify_milestone, {"case_id": CASE, "plan_id": PLAN, "milestone": MILESTONE})
    for seq in (1, 2):
        run(bank, ledger, ledger.confirm_delivery, {"case_id": CASE, "plan_id": PLAN, "component_id": "c2",
                                                    "tranche_seq": seq, "vendor_id": VENDOR})
    run(bank, ledger, ledger.payment_sent, key("c1", 1), "T-1")
    statuses(ledger)
    run(bank, ledger, ledger.payment_settled, key("c1", 1))
    done = [d for t, d in statuses(ledger) if t == GRANT_COMPLETED]
    assert done and done[0]["paid"] == [{"currency": "XOF", "amount_minor": 196_787 + 472_289 + 314_859}]
    assert bank.balance(COMMITMENT) == Balance(debits_posted=150_000, credits_posted=150_000)


def test_redelivered_events_never_move_money_twice():
    bank = Bank()
    ledger, _ = approve_contract_plan(bank)
    for action, args in ((ledger.approve, (approved(contract_plan()),)),
                         (ledger.verify_milestone, ({"case_id": CASE, "plan_id": PLAN, "milestone": MILESTONE},)),
                         (ledger.verify_milestone, ({"case_id": CASE, "plan_id": PLAN, "milestone": MILESTONE},)),
                         (ledger.revise, ({"case_id": CASE, "plan": contract_plan()},)),
                         (ledger.withdraw, ({"case_id": CASE},)),
                         (ledger.withdraw, ({"case_id": CASE},))):
        run(bank, ledger, action, *args)  # Bank.commit refuses a transfer id made twice
    assert bank.available() == 1_000_000


def test_next_reserve_id_versions():
    assert next_reserve_id(None, "RG-1") == "reserve:RG-1"
    assert next_reserve_id("reserve:RG-1", "RG-1") == "reserve:RG-1:r2"
    assert next_reserve_id("reserve:RG-1:r2", "RG-1") == "reserve:RG-1:r3"
    assert next_reserve_id("reserve:RG-1:r9", "RG-1") == "reserve:RG-1:r10"


def test_a_replacement_plan_voids_what_the_old_plan_reserved_and_reserves_its_own():
    bank = Bank()
    ledger, _ = approve_contract_plan(bank)
    ctx = run(bank, ledger, ledger.revise, {"case_id": CASE, "plan": contract_plan("PL-9000", inkind="2000.00")})
    old, new = ref("c2", 2), ref("c2", 2, "PL-9000")
    ids = [m[0] for m in moves(ctx)]
    assert ids[0] == f"void:{old}"
    assert f"reserve:{new}" in ids and f"release:{ref('c1', 1, 'PL-9000')}" in ids
    assert ledger.tranches[key("c2", 2)].status == "cancelled"
    # The old plan's released tranches stay released; the new plan's are added next to them.
    assert ledger.tranches[key("c1", 1)].status == "released"
    assert ledger.tranches[key("c1", 1, "PL-9000")].status == "released"
    assert bank.available() == 1_000_000 - 30_000 - 72_000 - 30_000 - 200_000


# --------------------------------------------------------------------------------------------
# production bugs found while writing these tests (failing until fixed)
# --------------------------------------------------------------------------------------------


def test_a_revision_of_a_grant_waiting_for_a_rate_is_not_held_for_budget_once_the_rate_exists():
    """Was a bug (case.py, CaseLedger.revise): `was_held = any(t.status == "held" ...)` counts a grant held
    for exchange_rate_missing as held for budget, so once the rate exists the revised grant is held
    with budget_exhausted ("has 10000.00 EUR available for a grant of 200.00 EUR"), queued, and every
    later grant of the programme waits behind it. Fix: count only budget holds:
    `was_held = any(t.status == "held" and t.hold_reason == BUDGET_EXHAUSTED for t in self.tranches.values())`."""
    bank = Bank()
    ledger = new_ledger()
    run(bank, ledger, ledger.approve, approved(cash_plan("3075150", "GNF", GN), country="GN"))
    assert ledger.tranches[key("c1", 1)].hold_reason == "exchange_rate_missing"
    ctx = run(bank, ledger, ledger.revise, {"case_id": CASE, "plan": cash_plan("2050100", "GNF", GN)},
              rates=(GNF_RATE,))
    c1 = ledger.tranches[key("c1", 1)]
    assert (c1.status, c1.hold_reason) == ("released", None)  # 2050100 GNF = 200.00 EUR, well within budget
    assert P not in ctx.queued
    assert bank.available() == 1_000_000 - 20_000


def test_the_conversion_legs_carry_the_rate_of_the_conversion_they_make():
    """Was a bug (grant_money.py, release/give_back): the fx-out/fx-in pair converts the programme amount
    (EUR 381.12) into the payout amount (XOF 250000) but carries `t.rate`, the plan→payout rate,
    here "1" (the plan is in XOF): the ledger records 381.12 EUR → 250000 XOF "at 1". The legs
    should carry the programme→payout rate (EUR→XOF "655.957"). Fix: lock it with the payout
    (e.g. a `Tranche.conversion_rate` set in `_lock_payout` from
    `rates.rate(t.programme_currency, currency, today).text`) and use it for the legs of
    release and give_back; it equals `t.rate` whenever the plan is in the programme's currency."""
    bank = Bank()
    ledger = new_ledger()
    ctx = run(bank, ledger, ledger.approve, approved(cash_plan("250000", "XOF", SN), country="SN"))
    legs = [t for t in ctx.books.transfers if t.conversion_id]
    assert [(t.currency, t.amount) for t in legs] == [("EUR", 38_112), ("XOF", 250_000)]
    assert {t.rate for t in legs} == {"655.957"}


def test_a_rate_change_between_reserve_and_release_leaves_nothing_in_the_commitment_account():
    """Was a bug (grant_money.py, release): when the payout currency is the programme's currency but not
    the plan's (a GNF plan, an XOF programme, an XOF payout), the reserve is posted for the amount
    priced at approval while the payee is owed the amount converted at release: with a new GNF rate
    in between, 196787 XOF leave the budget and 163989 XOF are owed, so 32798 XOF stay in
    `commitment:` for ever (with the rate moving the other way the payee is owed more than the
    budget was charged, with no limit check, and `commitment:` goes negative). Fix, in `release`
    when payout and programme currency are the same: post the reserve for what is owed,
    `ctx.books.post(pending, f"release:...", min(p, x))` (the rest goes back to the budget); when
    x > p, first check `x - p <= available` (else wait with budget_exhausted) and debit it as its own
    posted transfer budget → commitment (`top-up:REF`); then set `t.programme_minor = x`, so that
    statuses and `give_back` use what the budget was actually charged."""
    r1 = LoadedRate("GNF", date(2026, 11, 1), Decimal("10000"), "finance")
    r2 = LoadedRate("GNF", date(2026, 12, 1), Decimal("12000"), "finance")
    bank = Bank({P: ("XOF", 10**9)}, rates=(r1, r2))
    ledger = new_ledger()
    halves = [{"seq": 1, "share_percent": 50, "release": "on_approval"},
              {"seq": 2, "share_percent": 50, "release": "milestone:m"}]
    run(bank, ledger, ledger.approve, approved(cash_plan("6000000", "GNF", SN, halves), country="SN",
                                               programme_currency="XOF"))
    run(bank, ledger, ledger.verify_milestone, {"case_id": CASE, "plan_id": PLAN, "milestone": "m"},
        today=date(2026, 12, 2))
    owed = sum(t.payout_minor for t in ledger.tranches.values())
    commitment = bank.balance(COMMITMENT)
    assert commitment.credits_posted - commitment.debits_posted == 0, "money left in the commitment account"
    assert bank.available() == 10**9 - owed  # the budget is charged what is paid


# --------------------------------------------------------------------------------------------
# property: any sequence of events, each in its own transaction, keeps the books right
# --------------------------------------------------------------------------------------------

CASES = ("MA-2026-000001", "MA-2026-000002", "MA-2026-000003")
_HOLDING = {"released", "sending", "sent", "ordered", "delivered", "settled"}
_OWING = {"released", "sending", "sent", "ordered", "delivered"}


def random_plan(case_id: str, plan_id: str, cash: str, inkind: str | None, split: bool, payout: dict) -> dict:
    tranches = ([{"seq": 1, "share_percent": 50, "release": "on_approval"},
                 {"seq": 2, "share_percent": 50, "release": "milestone:m"}] if split
                else [{"seq": 1, "share_percent": 100, "release": "on_approval"}])
    plan = {**cash_plan(cash, payout=payout, tranches=tranches, plan_id=plan_id), "case_id": case_id}
    if inkind is not None:
        plan["components"].append(
            {"component_id": "c2", "modality": "in_kind", "category": "business_startup",
             "amount": {"amount": inkind, "currency": "EUR"}, "vendor_id": VENDOR,
             "tranches": [{"seq": 1, "share_percent": 60, "release": "on_approval"},
                          {"seq": 2, "share_percent": 40, "release": "milestone:m"}]})
    return plan


amounts_eur = st.sampled_from(["0.01", "100.00", "333.33", "1200.00", "2500.50"])
payouts = st.sampled_from([(CI, "CI"), (SN, "SN"), (GN, "GN"), (CM, "CM")])


class GrantMoneyMachine(RuleBasedStateMachine):
    """Grants of a few cases against one budget, events in any order, a budget raised now and then and
    a GNF rate loaded at some point; after every transaction the books balance, no budget is overdrawn
    and the budget, commitment, payable and paid accounts hold exactly what the tranches say."""

    @initialize(budget=st.one_of(st.integers(min_value=0, max_value=400_000), st.just(10**7)))
    def start(self, budget):
        self.bank = Bank({P: ("EUR", budget)})
        self.funded = budget
        self.ledgers = {c: new_ledger(c) for c in CASES}
        self.rates: tuple[LoadedRate, ...] = ()
        self.serial = 0

    def _run(self, ledger, action, *args):
        self.serial += 1
        queued = {P} if any(lg.budget_hold() is not None for lg in self.ledgers.values()) else set()
        run(self.bank, ledger, action, *args, cause=f"ev-{self.serial}", queued=queued, rates=self.rates)
        ledger.statuses.clear()

    @rule(case=st.sampled_from(CASES), cash=amounts_eur, inkind=st.none() | amounts_eur, split=st.booleans(),
          payout=payouts)
    def approve(self, case, cash, inkind, split, payout):
        ledger = self.ledgers[case]
        plan = random_plan(case, PLAN, cash, inkind, split, payout[0])
        self._run(ledger, ledger.approve, approved(plan, country=payout[1], case_id=case))

    @rule(case=st.sampled_from(CASES), cash=amounts_eur, inkind=st.none() | amounts_eur, split=st.booleans(),
          replace=st.booleans())
    def revise(self, case, cash, inkind, split, replace):
        ledger = self.ledgers[case]
        if ledger.plan_id is None:
            return
        payout = ledger.facts.grant["payout"]
        plan_id = f"{ledger.plan_id}-r" if replace else ledger.plan_id
        self._run(ledger, ledger.revise, {"case_id": case, "plan": random_plan(case, plan_id, cash, inkind, split,
                                                                               payout)})

    @rule(case=st.sampled_from(CASES))
    def milestone(self, case):
        ledger = self.ledgers[case]
        if ledger.plan_id is not None:
            self._run(ledger, ledger.verify_milestone, {"case_id": case, "plan_id": ledger.plan_id, "milestone": "m"})

    @rule(case=st.sampled_from(CASES))
    def withdraw(self, case):
        ledger = self.ledgers[case]
        self._run(ledger, ledger.withdraw, {"case_id": case})

    @rule(case=st.sampled_from(CASES), data=st.data(), outcome=st.sampled_from(["sent", "settled", "failed"]))
    def payment(self, case, data, outcome):
        ledger = self.ledgers[case]
        cash = sorted(k for k, t in ledger.tranches.items() if t.modality == "cash")
        live = [k for k in cash if ledger.tranches[k].status in ("released", "sent")]
        cash = live if live and data.draw(st.integers(0, 3)) else cash  # mostly a payment that can move
        if not cash:
            return
        k = data.draw(st.sampled_from(cash))
        if outcome == "sent":
            self._run(ledger, ledger.payment_sent, k, "T-1")
        elif outcome == "settled":
            if ledger.tranches[k].status == "released":
                self._run(ledger, ledger.payment_sent, k, "T-1")
            self._run(ledger, ledger.payment_settled, k)
        else:
            self._run(ledger, ledger.payment_failed, k, "rejected")

    @rule(case=st.sampled_from(CASES), wallet=st.sampled_from(["+2250709998877", "+2250701112233"]))
    def new_wallet(self, case, wallet):
        """The beneficiary's payout changes: failed payments are re-issued to it (attempt 2, 3...)."""
        ledger = self.ledgers[case]
        self._run(ledger, ledger.update_beneficiary,
                  {"case_id": case, "payout": {"method": "mobile_money", "provider": "mtn_momo_ci", "msisdn": wallet}})

    @rule(amount=st.integers(min_value=0, max_value=300_000))
    def raise_budget(self, amount):
        """Finance raises the budget; the waiter funds held grants in queue order, stopping at the first
        that does not fit."""
        self.bank.fund(P, amount)
        self.funded += amount
        for ledger in sorted(self.ledgers.values(), key=lambda lg: lg.hold_order):
            if ledger.budget_hold() is None:
                continue
            self._run(ledger, self._fund_held, ledger)
            if not self.funded_all:
                break

    def _fund_held(self, ledger: CaseLedger) -> None:
        self.funded_all = ledger.fund_held()

    @precondition(lambda self: not self.rates)
    @rule()
    def load_gnf_rate(self):
        self.rates = (GNF_RATE,)
        for ledger in self.ledgers.values():
            self._run(ledger, ledger.retry_waiting)

    @invariant()
    def the_accounts_hold_what_the_tranches_say(self):
        if not hasattr(self, "bank"):
            return
        tranches = [t for lg in self.ledgers.values() for t in lg.tranches.values()]
        reserved = sum(t.programme_minor for t in tranches if t.status == "planned" and t.reserve_id)
        spent = sum(t.programme_minor for t in tranches if t.status in _HOLDING)
        waiting = sum(t.programme_minor for t in tranches if t.status == "failed")  # committed, to re-issue
        assert self.bank.available() == self.funded - reserved - spent - waiting
        commitment = self.bank.balance(COMMITMENT)
        assert commitment.credits_pending == reserved
        # Everything released was converted out, but what failed came back to wait for its re-issue.
        assert commitment.credits_posted - commitment.debits_posted == waiting
        for currency in ("XOF", "XAF", "GNF"):
            owed = sum(t.payout_minor for t in tranches if t.status in _OWING and t.payout_currency == currency)
            paid = sum(t.payout_minor for t in tranches if t.status == "settled" and t.payout_currency == currency)
            payable = [b for a, b in self.bank.balances.items() if a.startswith("payable:") and a.endswith(currency)]
            assert sum(b.credits_posted - b.debits_posted for b in payable) == owed, currency
            assert sum(b.credits_posted for a, b in self.bank.balances.items()
                       if a.startswith("paid:") and a.endswith(currency)) == paid, currency
        for t in tranches:
            if t.status in _HOLDING:
                assert t.payout_minor is not None and t.rate is not None and t.payee is not None
            if t.status == "held":
                assert t.reserve_id is None or t.hold_reason == "budget_exhausted"


GrantMoneyMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=30, deadline=None,
                                               suppress_health_check=[HealthCheck.too_slow])
test_any_sequence_of_events_keeps_the_books_right = GrantMoneyMachine.TestCase


# --------------------------------------------------------------------------------------------
# what finance decided: re-pay an attempt that executed nothing, write off a doubt
# --------------------------------------------------------------------------------------------


def unresolved_cash_tranche(bank: Bank) -> tuple[CaseLedger, tuple[str, str, int], str]:
    """The c1 cash tranche claimed (`sending`, as the dispatcher's claim leaves it) whose outcome
    the provider never told by the deadline."""
    ledger, _ = approve_contract_plan(bank)
    k = key("c1", 1)
    ledger.tranches[k].status = "sending"
    run(bank, ledger, ledger.payment_unresolved, k, "no outcome by the deadline", cause="unresolved:1",
        actor="disbursement")
    statuses(ledger)
    return ledger, k, ref("c1", 1)


def test_finance_repay_ends_the_unresolved_attempt_failed_and_pays_again_under_attempt_2():
    bank = Bank()
    ledger, k, r = unresolved_cash_tranche(bank)
    available = bank.available()
    refusal = None

    def repay():
        nonlocal refusal
        refusal = ledger.finance_repay(k, "provider confirmed nothing executed")

    ctx = run(bank, ledger, repay, cause="decision-1", actor="finance:approver-2")
    assert refusal is None
    # What was owed goes back to the commitment and is owed again under a2: nothing is paid twice.
    assert moves(ctx) == [
        (f"unpay-fx-out:{r}", "payable:orange_money_ci:XOF", "fx:XOF", "XOF", 196_787, POSTED),
        (f"unpay-fx-in:{r}", "fx:EUR", COMMITMENT, "EUR", 30_000, POSTED),
        (f"fx-out:{r}:a2", COMMITMENT, "fx:EUR", "EUR", 30_000, POSTED),
        (f"fx-in:{r}:a2", "fx:XOF", "payable:orange_money_ci:XOF", "XOF", 196_787, POSTED),
    ]
    assert all((t.cause, t.actor) == ("decision-1", "finance:approver-2") for t in ctx.books.transfers)
    assert bank.available() == available
    tranche = ledger.tranches[k]
    assert (tranche.status, tranche.attempt, tranche.hold_reason, tranche.payment_ref) == ("released", 2, None,
                                                                                          f"{r}-2")
    said = statuses(ledger)
    assert [(t, d.get("reason")) for t, d in said] == [
        (PAYMENT_FAILED, "not_executed_confirmed_by_finance"), (TRANCHE_RELEASED, "reissued")]
    # The decision delivered again (a replay) finds nothing to re-pay and moves nothing.
    again = []
    ctx = run(bank, ledger, lambda: again.append(ledger.finance_repay(k, "again")))
    assert ctx.books.transfers == [] and again[0] is not None and "released" in again[0]


def test_finance_repay_of_a_failed_tranche_pays_it_again_to_the_same_payout():
    bank = Bank()
    ledger, _ = approve_contract_plan(bank)
    k, r = key("c1", 1), ref("c1", 1)
    run(bank, ledger, ledger.payment_sent, k, "OM-1")
    run(bank, ledger, ledger.payment_failed, k, "provider_outage")
    statuses(ledger)
    out = []
    ctx = run(bank, ledger, lambda: out.append(ledger.finance_repay(k, "outage over")))
    assert out == [None]
    assert moves(ctx) == [
        (f"fx-out:{r}:a2", COMMITMENT, "fx:EUR", "EUR", 30_000, POSTED),
        (f"fx-in:{r}:a2", "fx:XOF", "payable:orange_money_ci:XOF", "XOF", 196_787, POSTED),
    ]
    assert ledger.tranches[k].status == "released" and ledger.tranches[k].attempt == 2


@pytest.mark.parametrize("status", ["released", "sent", "settled", "cancelled"])
def test_finance_repay_is_refused_for_a_payment_without_doubt_and_moves_nothing(status):
    bank = Bank()
    ledger, _ = approve_contract_plan(bank)
    k = key("c1", 1)
    ledger.tranches[k].status = status
    statuses(ledger)
    out = []
    ctx = run(bank, ledger, lambda: out.append(ledger.finance_repay(k, "why not")))
    assert out[0] is not None and status in out[0]
    assert ctx.books.transfers == [] and ledger.tranches[k].status == status and statuses(ledger) == []


def test_finance_repay_of_a_vendor_payment_is_refused():
    bank = Bank()
    ledger, _ = approve_contract_plan(bank)
    k = key("c2", 1)
    ledger.tranches[k].status = "failed"
    out = []
    ctx = run(bank, ledger, lambda: out.append(ledger.finance_repay(k, "vendor")))
    assert out[0] is not None and "vendor" in out[0]
    assert ctx.books.transfers == [] and ledger.tranches[k].attempt == 1


def test_finance_write_off_books_an_unresolved_payment_paid_as_instructed_once():
    bank = Bank()
    ledger, k, r = unresolved_cash_tranche(bank)
    out = []
    ctx = run(bank, ledger, lambda: out.append(ledger.finance_write_off(k, "provider cannot tell; loss accepted")),
              cause="decision-2", actor="finance:approver-2")
    assert out == [None]
    assert moves(ctx) == [(f"settle:{r}", "payable:orange_money_ci:XOF", "paid:orange_money_ci:XOF", "XOF",
                           196_787, POSTED)]
    tranche = ledger.tranches[k]
    assert (tranche.status, tranche.hold_reason) == ("settled", None)
    said = statuses(ledger)
    assert (PAYMENT_SETTLED, "written_off_by_finance") in [(t, d.get("reason")) for t, d in said]
    assert said.index(next(s for s in said if s[0] == PAYMENT_SENT)) < said.index(
        next(s for s in said if s[0] == PAYMENT_SETTLED))
    # Written off twice: refused, nothing moves.
    ctx = run(bank, ledger, lambda: out.append(ledger.finance_write_off(k, "again")))
    assert ctx.books.transfers == [] and out[-1] is not None and "settled" in out[-1]


def test_finance_write_off_of_a_settlement_mismatch_settles_at_the_instructed_amount():
    bank = Bank()
    ledger, _ = approve_contract_plan(bank)
    k, r = key("c1", 1), ref("c1", 1)
    run(bank, ledger, ledger.payment_sent, k, "OM-1")
    run(bank, ledger, ledger.settlement_mismatch, k, "the provider settled 190000 XOF where 196787 XOF ...")
    assert ledger.tranches[k].hold_reason == "settlement_mismatch"
    out = []
    ctx = run(bank, ledger, lambda: out.append(ledger.finance_write_off(k, "difference written off")))
    assert out == [None]
    assert moves(ctx) == [(f"settle:{r}", "payable:orange_money_ci:XOF", "paid:orange_money_ci:XOF", "XOF",
                           196_787, POSTED)]


@pytest.mark.parametrize("status", ["released", "sent", "failed"])
def test_finance_write_off_without_a_doubt_held_is_refused(status):
    bank = Bank()
    ledger, _ = approve_contract_plan(bank)
    k = key("c1", 1)
    ledger.tranches[k].status = status
    out = []
    ctx = run(bank, ledger, lambda: out.append(ledger.finance_write_off(k, "no")))
    assert out[0] is not None and status in out[0]
    assert ctx.books.transfers == [] and ledger.tranches[k].status == status
