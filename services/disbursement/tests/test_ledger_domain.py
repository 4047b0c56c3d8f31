"""The double-entry ledger's pure rules (`disbursement.domain.ledger.Books`).

Every test that moves money also checks the invariants the ledger promises: per currency, the
debits equal the credits (posted and pending separately), counted over the balances loaded under
lock plus what the transaction changed, and a limited account (a budget) never has less than
zero available. A refused transfer changes nothing at all.
"""

from __future__ import annotations

import copy
from collections import defaultdict

import pytest
from disbursement.domain.ledger import (
    BUDGET,
    COMMITMENT,
    PENDING,
    POST_PENDING,
    POSTED,
    VOID_PENDING,
    Account,
    Balance,
    Books,
    ExceedsAvailable,
    LedgerError,
    Posting,
    Transfer,
    budget_account,
    commitment_account,
    funding_account,
    paid_account,
    payable_account,
    returned_account,
    trading_account,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

P = "MA-AVRR-2026"
Q = "SN-AVRR-2026"

BUDGET_P = budget_account(P, "EUR")
FUNDING_P = funding_account(P, "EUR")
COMMIT_P = commitment_account(P, "EUR")
PAYABLE_EUR = payable_account("orange_money_ci", "EUR")
PAYABLE_XOF = payable_account("orange_money_ci", "XOF")
FX_EUR = trading_account("EUR")
FX_XOF = trading_account("XOF")


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def funded_books(*budgets: tuple[Account, int]) -> tuple[Books, dict[str, tuple[Account, Balance]]]:
    """Books with each budget loaded under lock, funded (its credits) by its funding account (whose
    debits are loaded too, so that the loaded balances balance on their own). Returns the books and
    a copy of what was loaded (the books mutate loaded balances in place)."""
    books = Books()
    loaded: dict[str, tuple[Account, Balance]] = {}
    for budget, amount in budgets or ((BUDGET_P, 100_000),):
        funding = funding_account(budget.programme, budget.currency)
        for account, balance in ((budget, Balance(credits_posted=amount)), (funding, Balance(debits_posted=amount))):
            loaded[account.id] = (account, copy.copy(balance))
            books.load(account, balance)
    return books, loaded


def open_all(books: Books, *accounts: Account) -> None:
    for account in accounts:
        books.open(account)


def totals(books: Books, loaded: dict[str, tuple[Account, Balance]]) -> dict[str, Balance]:
    """Per account: what was loaded plus what the transaction changed."""
    result: dict[str, Balance] = {}
    for account_id, (_account, balance) in loaded.items():
        result.setdefault(account_id, Balance()).add(balance)
    for account_id, change in books.changes.items():
        result.setdefault(account_id, Balance()).add(change)
    return result


def assert_invariants(books: Books, loaded: dict[str, tuple[Account, Balance]]) -> None:
    """Each currency balances, posted and pending separately; no limited account is overdrawn;
    the books' own view of the loaded accounts agrees with loaded + changes; postings agree with
    the transfers."""
    per_account = totals(books, loaded)
    by_currency: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for account_id, balance in per_account.items():
        account = books.accounts.get(account_id) or loaded[account_id][0]
        sums = by_currency[account.currency]
        sums[0] += balance.debits_posted
        sums[1] += balance.credits_posted
        sums[2] += balance.debits_pending
        sums[3] += balance.credits_pending
        if account.limited:
            assert balance.available >= 0, f"{account_id} overdrawn: {balance}"
        assert balance.debits_pending >= 0 and balance.credits_pending >= 0, f"{account_id}: {balance}"
        if account_id in books.balances:
            assert books.balances[account_id] == balance
    for currency, (dp, cp, dpe, cpe) in by_currency.items():
        assert dp == cp, f"{currency}: posted debits {dp} != posted credits {cp}"
        assert dpe == cpe, f"{currency}: pending debits {dpe} != pending credits {cpe}"
    # Every transfer is one debit and one credit posting of the same amount and currency.
    assert len(books.postings) == 2 * len(books.transfers)
    assert [t.id for t in books.transfers] == [p.transfer_id for p in books.postings[::2]]
    for transfer, debit, credit in zip(books.transfers, books.postings[::2], books.postings[1::2], strict=True):
        assert (debit.account, debit.side, credit.account, credit.side) == (transfer.debit, "debit", transfer.credit,
                                                                            "credit")
        assert debit.amount == credit.amount == transfer.amount
        assert debit.currency == credit.currency == transfer.currency
        assert debit.phase == credit.phase == transfer.phase
    assert len({t.id for t in books.transfers}) == len(books.transfers)


def state_of(books: Books) -> tuple:
    """Everything a refused operation must leave as it was."""
    return copy.deepcopy((books.balances, books.accounts, books.opened, books.changes, books.transfers,
                          books.postings, books._resolved, books._by_id))


def refused(books: Books, code: str, call, *args, **kwargs) -> LedgerError:
    before = state_of(books)
    with pytest.raises(LedgerError) as caught:
        call(*args, **kwargs)
    assert caught.value.code == code, caught.value
    assert state_of(books) == before, "a refused operation changed the books"
    return caught.value


def reserve(tid: str, amount: int, account: Account = BUDGET_P, to: Account = COMMIT_P) -> Transfer:
    return Transfer(tid, account.id, to.id, account.currency, amount, PENDING, kind="reserve",
                    programme=account.programme, case_id="MA-2026-000123", reference="RG-1")


# --------------------------------------------------------------------------------------------
# accounts
# --------------------------------------------------------------------------------------------


def test_account_constructors_name_kind_currency_and_limits():
    assert BUDGET_P == Account("budget:MA-AVRR-2026", "EUR", BUDGET, P, limited=True)
    assert COMMIT_P == Account("commitment:MA-AVRR-2026", "EUR", COMMITMENT, P)
    assert FUNDING_P.id == "funding:MA-AVRR-2026" and not FUNDING_P.limited
    assert returned_account(P, "EUR").id == "returned:MA-AVRR-2026"
    assert FX_XOF.id == "fx:XOF" and FX_XOF.programme is None
    assert PAYABLE_XOF.id == "payable:orange_money_ci:XOF"
    assert paid_account("orange_money_ci", "XOF").id == "paid:orange_money_ci:XOF"
    assert not any(a.limited for a in (COMMIT_P, FUNDING_P, FX_EUR, PAYABLE_XOF))


def test_balance_available_counts_pending_debits_but_not_pending_credits():
    balance = Balance(debits_pending=30, debits_posted=20, credits_pending=1000, credits_posted=100)
    assert balance.available == 50
    assert not balance.is_zero() and Balance().is_zero()


def test_open_an_unknown_account_opens_it_once_and_returns_it():
    books = Books()
    assert books.open(COMMIT_P) is COMMIT_P
    assert books.opened == {COMMIT_P.id}
    assert books.open(Account(COMMIT_P.id, "EUR", COMMITMENT, P)) is COMMIT_P  # already known: the known one
    assert books.opened == {COMMIT_P.id}
    assert books.changes == {} and books.transfers == []


def test_open_a_loaded_account_returns_it_without_opening_it():
    books, _ = funded_books()
    assert books.open(BUDGET_P) == BUDGET_P
    assert books.opened == set()


def test_a_limited_account_cannot_be_opened_without_being_loaded_under_lock():
    books = Books()
    refused(books, "account_not_locked", books.open, BUDGET_P)
    assert BUDGET_P.id not in books.accounts


@pytest.mark.parametrize("other", [
    Account(COMMIT_P.id, "XOF", COMMITMENT, P),  # other currency
    Account(COMMIT_P.id, "EUR", BUDGET, P),  # other kind
])
def test_an_account_known_with_another_currency_or_kind_is_a_mismatch(other):
    books = Books()
    books.open(COMMIT_P)
    refused(books, "account_mismatch", books.open, other)
    assert books.accounts[COMMIT_P.id] == COMMIT_P


def test_a_loaded_account_opened_as_another_currency_is_a_mismatch():
    books, _ = funded_books()
    refused(books, "account_mismatch", books.open, budget_account(P, "XOF"))


def test_is_new_only_for_a_loaded_account_with_no_balance_and_no_change():
    books = Books()
    books.load(BUDGET_P, Balance())
    books.load(budget_account(Q, "XOF"), Balance(credits_posted=1))
    assert books.is_new(BUDGET_P.id)
    assert not books.is_new(f"budget:{Q}")  # has a balance
    assert not books.is_new("budget:unknown")  # never loaded
    books.open(FUNDING_P)
    assert not books.is_new(FUNDING_P.id)  # opened, not loaded: nothing is known of it
    books.transfer(Transfer("fund:1", FUNDING_P.id, BUDGET_P.id, "EUR", 0))  # a zero transfer still touches it
    assert not books.is_new(BUDGET_P.id)


def test_is_new_is_false_once_a_transfer_in_this_transaction_touched_it():
    books = Books()
    books.load(BUDGET_P, Balance())
    books.open(FUNDING_P)
    books.transfer(Transfer("fund:1", FUNDING_P.id, BUDGET_P.id, "EUR", 500))
    assert not books.is_new(BUDGET_P.id)


def test_available_of_an_account_not_loaded_is_refused():
    books = Books()
    books.open(COMMIT_P)
    with pytest.raises(LedgerError) as caught:
        books.available(COMMIT_P.id)
    assert caught.value.code == "account_not_locked"


# --------------------------------------------------------------------------------------------
# posted transfers
# --------------------------------------------------------------------------------------------


def test_a_posted_transfer_debits_one_account_and_credits_the_other_by_the_same_amount():
    books, loaded = funded_books()
    open_all(books, COMMIT_P)
    t = Transfer("t1", BUDGET_P.id, COMMIT_P.id, "EUR", 30_000, kind="x")
    assert books.transfer(t) is t
    assert books.changes == {BUDGET_P.id: Balance(debits_posted=30_000), COMMIT_P.id: Balance(credits_posted=30_000)}
    assert books.available(BUDGET_P.id) == 70_000
    assert books.transfers == [t]
    assert books.postings == [Posting(BUDGET_P.id, "t1", "debit", POSTED, 30_000, "EUR"),
                              Posting(COMMIT_P.id, "t1", "credit", POSTED, 30_000, "EUR")]
    assert_invariants(books, loaded)


def test_the_loaded_balance_is_updated_in_place_and_changes_hold_only_the_delta():
    books, loaded = funded_books((BUDGET_P, 1000))
    open_all(books, COMMIT_P)
    books.transfer(Transfer("t1", BUDGET_P.id, COMMIT_P.id, "EUR", 400))
    assert books.balances[BUDGET_P.id] == Balance(debits_posted=400, credits_posted=1000)
    assert books.changes[BUDGET_P.id] == Balance(debits_posted=400)
    assert COMMIT_P.id not in books.balances  # not loaded: only its change is known
    assert_invariants(books, loaded)


def test_currency_mismatch_on_either_side_is_refused():
    books, _ = funded_books()
    open_all(books, COMMIT_P, PAYABLE_XOF)
    refused(books, "currency_mismatch", books.transfer, Transfer("t1", BUDGET_P.id, COMMIT_P.id, "XOF", 10))
    refused(books, "currency_mismatch", books.transfer, Transfer("t2", BUDGET_P.id, PAYABLE_XOF.id, "EUR", 10))
    refused(books, "currency_mismatch", books.transfer, Transfer("t3", PAYABLE_XOF.id, COMMIT_P.id, "XOF", 10))


def test_the_same_account_on_both_sides_is_refused():
    books, _ = funded_books()
    refused(books, "accounts_must_be_different", books.transfer, Transfer("t1", BUDGET_P.id, BUDGET_P.id, "EUR", 10))


@pytest.mark.parametrize(("debit", "credit"), [("budget:" + P, "commitment:nobody"), ("commitment:nobody", "budget:" + P)])
def test_an_unknown_account_on_either_side_is_refused(debit, credit):
    books, _ = funded_books()
    refused(books, "account_not_found", books.transfer, Transfer("t1", debit, credit, "EUR", 10))


@pytest.mark.parametrize("amount", [-1, 1.0, "10", True, None, 10**20 * 1.0])
def test_a_negative_or_non_integer_amount_is_refused(amount):
    books, _ = funded_books()
    open_all(books, COMMIT_P)
    refused(books, "invalid_amount", books.transfer, Transfer("t1", BUDGET_P.id, COMMIT_P.id, "EUR", amount))


def test_a_zero_posted_transfer_is_allowed_but_a_zero_pending_one_is_not():
    books, loaded = funded_books()
    open_all(books, COMMIT_P)
    books.transfer(Transfer("t0", COMMIT_P.id, FUNDING_P.id, "EUR", 0))
    assert [t.id for t in books.transfers] == ["t0"]
    refused(books, "invalid_amount", books.transfer, reserve("r0", 0))
    assert_invariants(books, loaded)


@pytest.mark.parametrize("phase", [POST_PENDING, VOID_PENDING, "bogus"])
def test_transfer_only_takes_posted_or_pending_phases(phase):
    books, _ = funded_books()
    open_all(books, COMMIT_P)
    refused(books, "invalid_phase", books.transfer, Transfer("t1", BUDGET_P.id, COMMIT_P.id, "EUR", 1, phase))


def test_transfer_with_a_pending_id_is_refused():
    books, _ = funded_books()
    open_all(books, COMMIT_P)
    refused(books, "invalid_phase", books.transfer,
            Transfer("t1", BUDGET_P.id, COMMIT_P.id, "EUR", 1, POSTED, pending_id="r1"))


# --------------------------------------------------------------------------------------------
# limits
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("phase", [POSTED, PENDING])
def test_a_limited_account_refuses_a_debit_beyond_what_is_available(phase):
    books, _ = funded_books((BUDGET_P, 1000))
    open_all(books, COMMIT_P)
    error = refused(books, "exceeds_available", books.transfer,
                    Transfer("t1", BUDGET_P.id, COMMIT_P.id, "EUR", 1001, phase))
    assert isinstance(error, ExceedsAvailable)
    assert (error.account, error.available) == (BUDGET_P.id, 1000)


@pytest.mark.parametrize("phase", [POSTED, PENDING])
def test_exactly_what_is_available_may_be_debited(phase):
    books, loaded = funded_books((BUDGET_P, 1000))
    open_all(books, COMMIT_P)
    books.transfer(Transfer("t1", BUDGET_P.id, COMMIT_P.id, "EUR", 1000, phase))
    assert books.available(BUDGET_P.id) == 0
    refused(books, "exceeds_available", books.transfer, Transfer("t2", BUDGET_P.id, COMMIT_P.id, "EUR", 1, phase))
    books.transfer(Transfer("t3", BUDGET_P.id, COMMIT_P.id, "EUR", 0))  # zero still fits
    assert_invariants(books, loaded)


def test_a_pending_debit_counts_against_what_is_available():
    books, loaded = funded_books((BUDGET_P, 1000))
    open_all(books, COMMIT_P)
    books.transfer(reserve("r1", 700))
    assert books.available(BUDGET_P.id) == 300
    refused(books, "exceeds_available", books.transfer, reserve("r2", 301))
    refused(books, "exceeds_available", books.transfer, Transfer("t2", BUDGET_P.id, COMMIT_P.id, "EUR", 301))
    books.transfer(reserve("r2", 300))
    assert books.available(BUDGET_P.id) == 0
    assert_invariants(books, loaded)


def test_pending_credits_to_a_limited_account_are_not_available_until_posted():
    books, loaded = funded_books((BUDGET_P, 0))
    books.transfer(Transfer("in", FUNDING_P.id, BUDGET_P.id, "EUR", 500, PENDING))
    assert books.available(BUDGET_P.id) == 0
    open_all(books, COMMIT_P)
    refused(books, "exceeds_available", books.transfer, reserve("r1", 1))
    books.post(Transfer("in", FUNDING_P.id, BUDGET_P.id, "EUR", 500, PENDING), "in:post")
    assert books.available(BUDGET_P.id) == 500
    books.transfer(reserve("r1", 500))
    assert_invariants(books, loaded)


def test_an_unlimited_account_may_go_below_zero():
    books, loaded = funded_books()
    open_all(books, COMMIT_P, FX_EUR)
    books.transfer(Transfer("t1", FX_EUR.id, COMMIT_P.id, "EUR", 10**12))
    assert books.changes[FX_EUR.id] == Balance(debits_posted=10**12)
    assert_invariants(books, loaded)


def test_a_limited_account_known_but_not_loaded_cannot_be_debited():
    # Only `load` puts a limited account in the books; one forged into `accounts` has no balance to check.
    books = Books()
    books.accounts[BUDGET_P.id] = BUDGET_P
    open_all(books, COMMIT_P)
    refused(books, "account_not_locked", books.transfer, reserve("r1", 1))


def test_credits_to_a_limited_account_make_more_available_in_the_same_transaction():
    books, loaded = funded_books((BUDGET_P, 100))
    open_all(books, COMMIT_P, returned_account(P, "EUR"))
    books.transfer(Transfer("ret", f"returned:{P}", BUDGET_P.id, "EUR", 50))
    assert books.available(BUDGET_P.id) == 150
    books.transfer(reserve("r1", 150))
    assert books.available(BUDGET_P.id) == 0
    assert_invariants(books, loaded)


# --------------------------------------------------------------------------------------------
# two phases
# --------------------------------------------------------------------------------------------


def test_post_a_pending_transfer_in_full():
    books, loaded = funded_books((BUDGET_P, 1000))
    open_all(books, COMMIT_P)
    pending = books.transfer(reserve("reserve:RG-1", 600))
    assert books.changes[BUDGET_P.id] == Balance(debits_pending=600)
    assert books.changes[COMMIT_P.id] == Balance(credits_pending=600)
    posted = books.post(pending, "release:RG-1", kind="release", cause="ev-1", actor="finance:a")
    assert posted == Transfer("release:RG-1", BUDGET_P.id, COMMIT_P.id, "EUR", 600, POST_PENDING, "reserve:RG-1",
                              kind="release", programme=P, case_id="MA-2026-000123", reference="RG-1",
                              cause="ev-1", actor="finance:a")
    assert books.changes[BUDGET_P.id] == Balance(debits_posted=600)
    assert books.changes[COMMIT_P.id] == Balance(credits_posted=600)
    assert books.available(BUDGET_P.id) == 400
    assert books.postings[-2:] == [
        Posting(BUDGET_P.id, "release:RG-1", "debit", POST_PENDING, 600, "EUR", pending_amount=600),
        Posting(COMMIT_P.id, "release:RG-1", "credit", POST_PENDING, 600, "EUR", pending_amount=600)]
    assert_invariants(books, loaded)


def test_post_part_of_a_pending_transfer_releases_the_rest():
    books, loaded = funded_books((BUDGET_P, 1000))
    open_all(books, COMMIT_P)
    pending = books.transfer(reserve("r1", 600))
    assert books.available(BUDGET_P.id) == 400
    posted = books.post(pending, "p1", 250)
    assert posted.amount == 250 and posted.pending_id == "r1"
    assert books.changes[BUDGET_P.id] == Balance(debits_posted=250)
    assert books.available(BUDGET_P.id) == 750
    assert books.postings[-1].pending_amount == 600
    assert_invariants(books, loaded)


def test_post_zero_releases_everything():
    books, loaded = funded_books((BUDGET_P, 1000))
    open_all(books, COMMIT_P)
    pending = books.transfer(reserve("r1", 600))
    books.post(pending, "p1", 0)
    assert books.changes[BUDGET_P.id] == Balance()
    assert books.available(BUDGET_P.id) == 1000
    assert_invariants(books, loaded)


@pytest.mark.parametrize("amount", [601, -1, 1.5, True])
def test_post_more_than_pending_or_not_an_amount_is_refused(amount):
    books, _ = funded_books((BUDGET_P, 1000))
    open_all(books, COMMIT_P)
    pending = books.transfer(reserve("r1", 600))
    refused(books, "exceeds_pending_amount", books.post, pending, "p1", amount)
    books.post(pending, "p1", 600)  # the refusal did not resolve it


def test_void_releases_a_pending_transfer_whole():
    books, loaded = funded_books((BUDGET_P, 1000))
    open_all(books, COMMIT_P)
    pending = books.transfer(reserve("reserve:RG-1", 600))
    voided = books.void(pending, "void:RG-1", kind="void")
    assert (voided.phase, voided.amount, voided.pending_id, voided.kind) == (VOID_PENDING, 600, "reserve:RG-1", "void")
    assert books.changes[BUDGET_P.id] == Balance()
    assert books.changes[COMMIT_P.id] == Balance()
    assert books.available(BUDGET_P.id) == 1000
    assert_invariants(books, loaded)


def test_a_pending_transfer_from_an_earlier_transaction_is_resolved_against_the_loaded_balance():
    # The reserve was made before: the loaded budget shows it pending, its commitment too.
    books = Books()
    loaded = {}
    for account, balance in ((BUDGET_P, Balance(debits_pending=600, credits_posted=1000)),
                             (FUNDING_P, Balance(debits_posted=1000)), (COMMIT_P, Balance(credits_pending=600))):
        loaded[account.id] = (account, copy.copy(balance))
        books.load(account, balance)
    assert books.available(BUDGET_P.id) == 400
    books.post(reserve("r1", 600), "p1", 500)
    assert books.available(BUDGET_P.id) == 500
    assert totals(books, loaded)[COMMIT_P.id] == Balance(credits_posted=500)
    assert_invariants(books, loaded)


@pytest.mark.parametrize(("first", "second"), [("post", "post"), ("post", "void"), ("void", "post"), ("void", "void")])
def test_a_pending_transfer_is_resolved_exactly_once(first, second):
    books, loaded = funded_books((BUDGET_P, 1000))
    open_all(books, COMMIT_P)
    pending = books.transfer(reserve("r1", 600))
    getattr(books, first)(pending, "first")
    refused(books, "pending_transfer_already_resolved", getattr(books, second), pending, "second")
    assert_invariants(books, loaded)


def test_resolving_a_posted_transfer_is_refused():
    books, _ = funded_books((BUDGET_P, 1000))
    open_all(books, COMMIT_P)
    posted = books.transfer(Transfer("t1", BUDGET_P.id, COMMIT_P.id, "EUR", 100))
    refused(books, "pending_transfer_not_pending", books.post, posted, "p1")
    refused(books, "pending_transfer_not_pending", books.void, posted, "v1")


def test_resolving_a_pending_transfer_whose_accounts_are_not_known_is_refused():
    books, _ = funded_books((BUDGET_P, 1000))  # commitment never opened in this transaction
    refused(books, "account_not_found", books.post, reserve("r1", 600), "p1")
    refused(books, "account_not_found", books.void, reserve("r1", 600), "v1")


# --------------------------------------------------------------------------------------------
# idempotency within a transaction
# --------------------------------------------------------------------------------------------


def test_the_same_transfer_twice_is_a_no_op():
    books, loaded = funded_books((BUDGET_P, 1000))
    open_all(books, COMMIT_P)
    t = Transfer("t1", BUDGET_P.id, COMMIT_P.id, "EUR", 700, kind="x", cause="ev-1", actor="a")
    books.transfer(t)
    before = state_of(books)
    # Identical again, even though 700 more would exceed what is now available.
    assert books.transfer(Transfer("t1", BUDGET_P.id, COMMIT_P.id, "EUR", 700, kind="x", cause="ev-1", actor="a")) \
        == t
    assert state_of(books) == before
    assert_invariants(books, loaded)


def test_the_same_transfer_with_another_cause_or_actor_is_the_same_transfer():
    books, _ = funded_books((BUDGET_P, 1000))
    open_all(books, COMMIT_P)
    books.transfer(Transfer("t1", BUDGET_P.id, COMMIT_P.id, "EUR", 700, cause="ev-1", actor="a"))
    before = state_of(books)
    books.transfer(Transfer("t1", BUDGET_P.id, COMMIT_P.id, "EUR", 700, cause="ev-2", actor="b"))
    assert state_of(books) == before


@pytest.mark.parametrize("change", [
    {"amount": 701}, {"currency": "XOF"}, {"credit": FUNDING_P.id}, {"debit": FUNDING_P.id}, {"phase": PENDING},
    {"kind": "other"}, {"programme": Q}, {"case_id": "other"}, {"reference": "RG-2"}, {"conversion_id": "c"},
    {"rate": "655.957"},
])
def test_the_same_id_with_other_content_is_refused(change):
    books, _ = funded_books((BUDGET_P, 1000))
    open_all(books, COMMIT_P)
    fields = {"id": "t1", "debit": BUDGET_P.id, "credit": COMMIT_P.id, "currency": "EUR", "amount": 700}
    books.transfer(Transfer(**fields))
    refused(books, "exists_with_different_content", books.transfer, Transfer(**{**fields, **change}))


def test_a_post_repeated_with_the_same_id_and_amount_is_a_no_op_and_returns_the_first():
    books, loaded = funded_books((BUDGET_P, 1000))
    open_all(books, COMMIT_P)
    pending = books.transfer(reserve("r1", 600))
    first = books.post(pending, "p1", 400, kind="release", cause="ev-1")
    before = state_of(books)
    assert books.post(pending, "p1", 400, kind="release", cause="ev-2") is first
    assert state_of(books) == before
    assert_invariants(books, loaded)


def test_a_void_repeated_with_the_same_id_is_a_no_op():
    books, loaded = funded_books((BUDGET_P, 1000))
    open_all(books, COMMIT_P)
    pending = books.transfer(reserve("r1", 600))
    first = books.void(pending, "v1")
    before = state_of(books)
    assert books.void(pending, "v1") is first
    assert state_of(books) == before
    assert_invariants(books, loaded)


def test_a_resolution_id_reused_with_other_content_is_refused():
    books, _ = funded_books((BUDGET_P, 1000))
    open_all(books, COMMIT_P)
    pending = books.transfer(reserve("r1", 600))
    other = books.transfer(reserve("r2", 100))
    books.post(pending, "p1", 400)
    refused(books, "exists_with_different_content", books.post, pending, "p1", 300)  # other amount
    refused(books, "exists_with_different_content", books.void, pending, "p1")  # other phase
    refused(books, "exists_with_different_content", books.post, other, "p1", 100)  # other pending
    refused(books, "exists_with_different_content", books.post, pending, "p1", 400, kind="other")
    refused(books, "exists_with_different_content", books.transfer, reserve("p1", 400))
    refused(books, "exists_with_different_content", books.void, other, "r1")  # a transfer's id


def test_a_refused_transfer_does_not_take_its_id():
    books, loaded = funded_books((BUDGET_P, 100))
    open_all(books, COMMIT_P)
    refused(books, "exceeds_available", books.transfer, reserve("r1", 101))
    books.transfer(reserve("r1", 100))  # the same id with a valid amount is a new transfer
    assert [t.amount for t in books.transfers] == [100]
    assert_invariants(books, loaded)


# --------------------------------------------------------------------------------------------
# a conversion through the trading accounts
# --------------------------------------------------------------------------------------------


def test_a_conversion_balances_each_currency_on_its_own():
    books, loaded = funded_books((BUDGET_P, 100_000))
    open_all(books, COMMIT_P, FX_EUR, FX_XOF, PAYABLE_XOF)
    pending = books.transfer(reserve("reserve:RG-1", 30_000))
    books.post(pending, "release:RG-1")
    books.transfer(Transfer("fx-out:RG-1", COMMIT_P.id, FX_EUR.id, "EUR", 30_000, conversion_id="RG-1",
                            rate="655.957", kind="convert"))
    books.transfer(Transfer("fx-in:RG-1", FX_XOF.id, PAYABLE_XOF.id, "XOF", 196_787, conversion_id="RG-1",
                            rate="655.957", kind="convert"))
    t = totals(books, loaded)
    assert t[COMMIT_P.id] == Balance(debits_posted=30_000, credits_posted=30_000)
    assert t[FX_EUR.id].credits_posted == 30_000 and t[FX_XOF.id].debits_posted == 196_787
    assert t[PAYABLE_XOF.id] == Balance(credits_posted=196_787)
    assert books.available(BUDGET_P.id) == 70_000
    assert_invariants(books, loaded)


# --------------------------------------------------------------------------------------------
# properties: random sequences of operations over a few accounts in two currencies
# --------------------------------------------------------------------------------------------

BUDGET_Q = budget_account(Q, "XOF")
FUNDING_Q = funding_account(Q, "XOF")
COMMIT_Q = commitment_account(Q, "XOF")
UNLIMITED = [FUNDING_P, COMMIT_P, FX_EUR, PAYABLE_EUR, FUNDING_Q, COMMIT_Q, FX_XOF, PAYABLE_XOF]
ALL = [BUDGET_P, BUDGET_Q, *UNLIMITED]
GHOST = Account("payable:ghost:EUR", "EUR", "payable")  # never opened

amounts = st.one_of(st.integers(min_value=0, max_value=2_000), st.integers(min_value=-3, max_value=-1),
                    st.sampled_from([1.0, "5", True]))


class LedgerMachine(RuleBasedStateMachine):
    """Drives one transaction's Books with a model beside it: the model says which operations must
    be accepted and what every account's balance must then be; the Books must agree, keep every
    currency balanced and never overdraw a budget; anything refused changes nothing."""

    @initialize(p=st.integers(min_value=0, max_value=3_000), q=st.integers(min_value=0, max_value=3_000))
    def start(self, p, q):
        self.books, self.loaded = funded_books((BUDGET_P, p), (BUDGET_Q, q))
        open_all(self.books, *UNLIMITED)
        self.model = {a.id: Balance() for a in ALL}
        self.done: dict[str, Transfer] = {}  # accepted transfers by id
        self.pendings: list[Transfer] = []
        self.resolved: set[str] = set()
        self.serial = 0

    # --- the model's view ---------------------------------------------------------------------
    def _available(self, account_id: str) -> int:
        loaded = self.loaded[account_id][1]
        change = self.model[account_id]
        return loaded.credits_posted + change.credits_posted - loaded.debits_posted - change.debits_posted \
            - loaded.debits_pending - change.debits_pending

    def _new_id(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}{self.serial}"

    def _expect_transfer(self, t: Transfer) -> str | None:
        """The code the Books must refuse `t` with, or None when it must be accepted."""
        if t.phase not in (POSTED, PENDING) or t.pending_id is not None:
            return "invalid_phase"
        if t.id in self.done:
            return None if self.done[t.id].content() == t.content() else "exists_with_different_content"
        if t.debit == t.credit:
            return "accounts_must_be_different"
        accounts = {a.id: a for a in ALL}
        for side in (t.debit, t.credit):  # the debit side is checked first
            if side not in accounts:
                return "account_not_found"
            if accounts[side].currency != t.currency:
                return "currency_mismatch"
        if type(t.amount) is not int or t.amount < 0 or (t.phase == PENDING and t.amount == 0):
            return "invalid_amount"
        if accounts[t.debit].limited and t.amount > self._available(t.debit):
            return "exceeds_available"
        return None

    def _apply_model(self, t: Transfer, pending_amount: int = 0) -> None:
        d, c = self.model[t.debit], self.model[t.credit]
        if t.phase == POSTED:
            d.debits_posted += t.amount
            c.credits_posted += t.amount
        elif t.phase == PENDING:
            d.debits_pending += t.amount
            c.credits_pending += t.amount
        else:
            d.debits_pending -= pending_amount
            c.credits_pending -= pending_amount
            if t.phase == POST_PENDING:
                d.debits_posted += t.amount
                c.credits_posted += t.amount

    def _attempt(self, expected: str | None, call, *args, **kwargs):
        before = state_of(self.books)
        transfers_before = len(self.books.transfers)
        try:
            result = call(*args, **kwargs)
        except LedgerError as e:
            assert expected is not None and e.code == expected, f"refused with {e.code}, expected {expected}"
            assert state_of(self.books) == before, "a refused operation changed the books"
            return None
        assert expected is None, f"accepted, expected a refusal with {expected}"
        if len(self.books.transfers) == transfers_before:  # an identical repeat: a no-op
            assert state_of(self.books) == before
            return None
        return result

    # --- operations ---------------------------------------------------------------------------
    @rule(budget=st.sampled_from([BUDGET_P, BUDGET_Q]), amount=amounts)
    def fund(self, budget, amount):
        funding = FUNDING_P if budget is BUDGET_P else FUNDING_Q
        t = Transfer(self._new_id("fund:"), funding.id, budget.id, budget.currency, amount, kind="fund")
        self._do_transfer(t)

    @rule(budget=st.sampled_from([BUDGET_P, BUDGET_Q]), amount=amounts)
    def reserve(self, budget, amount):
        commitment = COMMIT_P if budget is BUDGET_P else COMMIT_Q
        self._do_transfer(Transfer(self._new_id("reserve:"), budget.id, commitment.id, budget.currency, amount,
                                   PENDING, kind="reserve"))

    @rule(debit=st.sampled_from([*ALL, GHOST]), credit=st.sampled_from([*ALL, GHOST]),
          currency=st.sampled_from(["EUR", "XOF"]), amount=amounts, phase=st.sampled_from([POSTED, PENDING, POSTED,
                                                                                          POST_PENDING]))
    def transfer(self, debit, credit, currency, amount, phase):
        self._do_transfer(Transfer(self._new_id("t:"), debit.id, credit.id, currency, amount, phase))

    @precondition(lambda self: self.done)
    @rule(data=st.data(), same=st.booleans())
    def repeat(self, data, same):
        """An id used again: identical (a no-op) or with another amount (refused)."""
        first = data.draw(st.sampled_from(sorted(self.done.values(), key=lambda t: t.id)))
        again = first if same else Transfer(**{**{n: getattr(first, n) for n in Transfer.__slots__},
                                               "amount": first.amount + 1})
        if first.phase in (POST_PENDING, VOID_PENDING):
            pending = next(p for p in self.pendings if p.id == first.pending_id)
            if first.phase == POST_PENDING:
                # The amount is checked before the id: more than pending is refused as such.
                self._attempt(None if same else "exceeds_pending_amount" if again.amount > pending.amount
                              else "exists_with_different_content",
                              self.books.post, pending, first.id, again.amount, kind=first.kind)
            else:
                self._attempt(None, self.books.void, pending, first.id, kind=first.kind)
            return
        self._do_transfer(again)

    @precondition(lambda self: self.pendings)
    @rule(data=st.data(), extra=st.integers(min_value=-2, max_value=2), full=st.booleans())
    def post(self, data, extra, full):
        pending = data.draw(st.sampled_from(self.pendings))
        amount = None if full else max(pending.amount + extra, 0) if extra > 0 else data.draw(
            st.integers(min_value=0, max_value=pending.amount))
        if amount is None or amount <= pending.amount:
            expected = "pending_transfer_already_resolved" if pending.id in self.resolved else None
        else:
            expected = "exceeds_pending_amount"
        tid = self._new_id("post:")
        result = self._attempt(expected, self.books.post, pending, tid, amount, kind="release")
        if result is not None:
            assert result.amount == (pending.amount if amount is None else amount)
            self._accept(result, pending.amount)

    @precondition(lambda self: self.pendings)
    @rule(data=st.data())
    def void(self, data):
        pending = data.draw(st.sampled_from(self.pendings))
        expected = "pending_transfer_already_resolved" if pending.id in self.resolved else None
        result = self._attempt(expected, self.books.void, pending, self._new_id("void:"), kind="void")
        if result is not None:
            self._accept(result, pending.amount)

    def _do_transfer(self, t: Transfer) -> None:
        result = self._attempt(self._expect_transfer(t), self.books.transfer, t)
        if result is not None:
            self._accept(result)

    def _accept(self, t: Transfer, pending_amount: int = 0) -> None:
        self.done[t.id] = t
        self._apply_model(t, pending_amount)
        if t.phase == PENDING:
            self.pendings.append(t)
        if t.pending_id is not None:
            self.resolved.add(t.pending_id)

    # --- what must hold after every step ------------------------------------------------------
    @invariant()
    def balanced_and_never_overdrawn(self):
        assert_invariants(self.books, self.loaded)

    @invariant()
    def agrees_with_the_model(self):
        for account_id, expected in self.model.items():
            assert self.books.changes.get(account_id, Balance()) == expected, account_id
        for budget in (BUDGET_P, BUDGET_Q):
            assert self.books.available(budget.id) == self._available(budget.id) >= 0
        assert [t.id for t in self.books.transfers] == list(self.done)


LedgerMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=40, deadline=None,
                                           suppress_health_check=[HealthCheck.too_slow])
test_random_operations_keep_the_books_balanced = LedgerMachine.TestCase


@settings(max_examples=300, deadline=None)
@given(start=st.integers(min_value=0, max_value=5_000),
       steps=st.lists(st.tuples(st.integers(min_value=1, max_value=1_500), st.sampled_from(["post", "void", "keep"]),
                                st.integers(min_value=0, max_value=100)), max_size=25))
def test_reserves_never_take_a_budget_below_zero_and_release_exactly_what_was_not_posted(start, steps):
    """Reserve greedily against one budget, then post a percentage of each reserve or void it: what
    is available is always the funding less what was posted less what is still pending."""
    books, loaded = funded_books((BUDGET_P, start))
    open_all(books, COMMIT_P)
    posted = pending_total = 0
    for i, (amount, outcome, percent) in enumerate(steps):
        available = books.available(BUDGET_P.id)
        if amount > available:
            refused(books, "exceeds_available", books.transfer, reserve(f"r{i}", amount))
            continue
        pending = books.transfer(reserve(f"r{i}", amount))
        pending_total += amount
        if outcome == "post":
            part = amount * percent // 100
            books.post(pending, f"p{i}", part)
            posted += part
            pending_total -= amount
        elif outcome == "void":
            books.void(pending, f"v{i}")
            pending_total -= amount
        assert books.available(BUDGET_P.id) == start - posted - pending_total >= 0
    assert_invariants(books, loaded)
