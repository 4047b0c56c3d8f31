"""How a tranche's money moves through the ledger (pure): reserved against its programme's budget,
released to what is owed to its payee (converted at the locked rate), paid, or returned.

    approval   reserve:REF   budget → commitment      pending, programme currency
    release    release:REF   posts the reserve
               owe:REF       commitment → payable      same currency, or through the trading accounts:
               fx-out:REF    commitment → fx:P  (p)    programme currency
               fx-in:REF     fx:X → payable     (x)    payout currency
    settled    settle:REF    payable → paid
    returned   return-out / return-fx-out + return-fx-in, then return:REF  returned → budget
    cancelled before release: void:REF
    payment failed   unpay:REF   payable → commitment     (or unpay-fx-out + unpay-fx-in): the money
                                                          waits for a re-issue, still committed
    re-issued        owe:REF:aN  commitment → payable     (or fx-out:REF:aN + fx-in:REF:aN), attempt N
    failed, then cancelled       return:REF  commitment → budget
    invoiced below the order     rest-out:REF (or rest-fx-out + rest-fx-in), return-rest:REF: the
                                 part of the order not invoiced goes back to the budget

Each id is the transfer's idempotency key, so doing a step twice can only ever be a no-op.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date
from fractions import Fraction
from typing import TYPE_CHECKING

from reintegra.money import Money, minor_units

from disbursement.domain.currency import RateBook, rate_from_text, round_half_up
from disbursement.domain.ledger import (
    PENDING,
    Books,
    Transfer,
    budget_account,
    commitment_account,
    funding_account,
    paid_account,
    payable_account,
    returned_account,
    trading_account,
)
from disbursement.domain.tranche import Tranche

if TYPE_CHECKING:
    from disbursement.domain.providers import ProviderDirectory
    from disbursement.domain.vendors import VendorDirectory


@dataclass
class MoneyContext:
    """What one transaction knows about money: locked budgets, rates, today, and who acts."""

    books: Books
    rates: RateBook
    today: date
    queued: set[str] = field(default_factory=set)  # programmes with grants waiting for budget, in order
    cause: str = ""
    actor: str = ""
    holds_made: int = 0  # grants held so far in this transaction, to queue them in that order
    # The providers cash can be paid through (None: payouts are not routed, as before providers).
    providers: ProviderDirectory | None = None
    vendors: VendorDirectory | None = None  # who in-kind components can be ordered from
    # Invoices already matched, (vendor, normalised number) → the tranche reference they paid; the
    # matches made in this transaction are added, and stored by the repository.
    invoices: dict[tuple[str, str], str] = field(default_factory=dict)
    new_invoices: list[tuple[str, str, str, str]] = field(default_factory=list)  # vendor, number, case, reference

    def next_hold(self) -> int:
        self.holds_made += 1
        return self.holds_made


def opening_transfer_id(programme: str) -> str:
    return f"fund:{programme}:opening"


def open_budget(ctx: MoneyContext, programme: str, opening: Money | None) -> None:
    """The first time a programme is seen, its budget is funded with the configured amount."""
    budget = budget_account(programme, opening.currency if opening else "EUR")
    if opening is None or not ctx.books.is_new(budget.id) or opening.minor <= 0:
        return
    funding = ctx.books.open(funding_account(programme, opening.currency))
    ctx.books.transfer(Transfer(opening_transfer_id(programme), funding.id, budget.id, opening.currency,
                                opening.minor, kind="fund", programme=programme,
                                cause=ctx.cause, actor=ctx.actor))


def available(ctx: MoneyContext, programme: str) -> int:
    return ctx.books.available(f"budget:{programme}")


def next_reserve_id(previous: str | None, reference: str) -> str:
    """`reserve:REF` first; `reserve:REF:r2`, `:r3`... after revisions that changed the amount."""
    if previous is None:
        return f"reserve:{reference}"
    head, sep, version = previous.rpartition(":r")
    return f"{head}:r{int(version) + 1}" if sep and version.isdigit() else f"{previous}:r2"


def _suffix(t: Tranche) -> str:
    return t.reserve_id.removeprefix("reserve:")


def pending_reserve(t: Tranche) -> Transfer:
    assert t.programme_code and t.programme_currency and t.programme_minor is not None and t.reserve_id
    return Transfer(t.reserve_id, f"budget:{t.programme_code}", f"commitment:{t.programme_code}",
                    t.programme_currency, t.programme_minor, PENDING, kind="reserve", programme=t.programme_code,
                    case_id=t.case_id, reference=t.reference)


def reserve(ctx: MoneyContext, t: Tranche) -> None:
    if not t.programme_minor:
        return
    ctx.books.open(commitment_account(t.programme_code, t.programme_currency))
    t.reserve_id = next_reserve_id(t.reserve_id, t.reference)
    ctx.books.transfer(replace(pending_reserve(t), cause=ctx.cause, actor=ctx.actor))


def unreserve(ctx: MoneyContext, t: Tranche) -> None:
    """A reserved tranche cancelled before its release: the whole reserve goes back."""
    if t.programme_minor:
        ctx.books.open(commitment_account(t.programme_code, t.programme_currency))
        ctx.books.void(pending_reserve(t), f"void:{_suffix(t)}", kind="void", cause=ctx.cause, actor=ctx.actor)


def release(ctx: MoneyContext, t: Tranche) -> None:
    """Post the reserve and owe the payout amount to the payee, converted at the locked rate."""
    p, x = t.programme_minor or 0, t.payout_minor or 0
    commitment = ctx.books.open(commitment_account(t.programme_code, t.programme_currency)).id
    common = {"programme": t.programme_code, "case_id": t.case_id, "reference": t.reference,
              "cause": ctx.cause, "actor": ctx.actor}
    same_currency = t.payout_currency == t.programme_currency
    if p:
        # Paid in the programme's own currency but converted from the plan's at today's rate, the
        # payout may differ from what was reserved: post only what is paid (the rest goes back),
        # or take the difference from the budget (the caller checked it is available).
        posted = min(p, x) if same_currency else p
        ctx.books.post(pending_reserve(t), f"release:{_suffix(t)}", posted, kind="release",
                       cause=ctx.cause, actor=ctx.actor)
    if same_currency and x > p:
        ctx.books.transfer(Transfer(f"top-up:{t.reference}", f"budget:{t.programme_code}", commitment,
                                    t.programme_currency, x - p, kind="release", **common))
    if same_currency:
        t.programme_minor = x  # what the budget was finally charged
    if not (p or x):
        return
    owe(ctx, t)


def extra_needed(t: Tranche) -> int:
    """What a release must take from the budget beyond the reserve (see `release`)."""
    if t.payout_currency != t.programme_currency or t.payout_minor is None:
        return 0
    return max(t.payout_minor - (t.programme_minor or 0), 0)


def settle(ctx: MoneyContext, t: Tranche) -> None:
    """The provider confirmed the payment: what was owed is paid."""
    if not t.payout_minor:
        return
    payable = ctx.books.open(payable_account(t.payee, t.payout_currency)).id
    paid = ctx.books.open(paid_account(t.payee, t.payout_currency)).id
    ctx.books.transfer(Transfer(f"settle:{t.reference}", payable, paid,
                                t.payout_currency, t.payout_minor, kind="settle", programme=t.programme_code,
                                case_id=t.case_id, reference=t.reference, cause=ctx.cause, actor=ctx.actor))


def give_back(ctx: MoneyContext, t: Tranche) -> None:
    """Money released but not paid (a failed payment, a cancelled order) returns to the budget at the
    rate it left with, so the programme gets back exactly what it reserved."""
    p, x = t.programme_minor or 0, t.payout_minor or 0
    if not (p or x):
        return
    returned = ctx.books.open(returned_account(t.programme_code, t.programme_currency)).id
    common = _common(ctx, t)
    _move_payout(ctx, t, returned, p, x, to_payee=False, key=t.reference, fx_name="return",
                 same_id=f"return-out:{t.reference}", same_kind="return")
    ctx.books.transfer(Transfer(f"return:{t.reference}", returned, f"budget:{t.programme_code}",
                                t.programme_currency, p, kind="return", **common))


def _attempt_suffix(t: Tranche) -> str:
    return "" if t.attempt == 1 else f":a{t.attempt}"


def _common(ctx: MoneyContext, t: Tranche) -> dict:
    return {"programme": t.programme_code, "case_id": t.case_id, "reference": t.reference,
            "cause": ctx.cause, "actor": ctx.actor}


def _move_payout(ctx: MoneyContext, t: Tranche, home: str, p: int, x: int, *, to_payee: bool, key: str,
                 fx_name: str, same_id: str, same_kind: str) -> None:
    """Move a tranche's payout between a programme-currency account (`home`: its commitment, or the
    programme's returned account) and its payee's payable: `x` in the payout currency, `p` in the
    programme's, through the trading accounts when the two differ: `<fx_name>-fx-out:<key>` and
    `<fx_name>-fx-in:<key>`, conversion `<fx_name>:<key>` (without a name: `fx-out:<key>`, conversion
    `<key>`, as a release's); in one currency, one transfer `same_id`."""
    payable = ctx.books.open(payable_account(t.payee, t.payout_currency)).id
    common = _common(ctx, t)
    if t.payout_currency == t.programme_currency:
        debit, credit = (home, payable) if to_payee else (payable, home)
        ctx.books.transfer(Transfer(same_id, debit, credit, t.payout_currency, x, kind=same_kind, **common))
        return
    fx_p = ctx.books.open(trading_account(t.programme_currency)).id
    fx_x = ctx.books.open(trading_account(t.payout_currency)).id
    prefix = f"{fx_name}-" if fx_name else ""
    conversion = {"conversion_id": f"{fx_name}:{key}" if fx_name else key, "rate": t.programme_rate or t.rate,
                  "kind": "convert"}
    if to_payee:
        legs = [(home, fx_p, t.programme_currency, p), (fx_x, payable, t.payout_currency, x)]
    else:
        legs = [(payable, fx_x, t.payout_currency, x), (fx_p, home, t.programme_currency, p)]
    for leg, (debit, credit, currency, amount) in zip(("out", "in"), legs, strict=True):
        ctx.books.transfer(Transfer(f"{prefix}fx-{leg}:{key}", debit, credit, currency, amount, **conversion, **common))


def unpay(ctx: MoneyContext, t: Tranche) -> None:
    """The provider reported the payment failed: what was owed to the payee goes back to the
    programme's commitment, at the rate it left with, to wait for a re-issue (or a cancellation)."""
    p, x = t.programme_minor or 0, t.payout_minor or 0
    if p or x:
        commitment = ctx.books.open(commitment_account(t.programme_code, t.programme_currency)).id
        key = f"{t.reference}{_attempt_suffix(t)}"
        _move_payout(ctx, t, commitment, p, x, to_payee=False, key=key, fx_name="unpay", same_id=f"unpay:{key}",
                     same_kind="unpay")


def owe(ctx: MoneyContext, t: Tranche) -> None:
    """What the commitment holds for the tranche is owed to its payee at the locked rate: at its
    release (attempt 1), and again at each re-issue of a failed payment (attempt N)."""
    p, x = t.programme_minor or 0, t.payout_minor or 0
    if p or x:
        commitment = ctx.books.open(commitment_account(t.programme_code, t.programme_currency)).id
        key = f"{t.reference}{_attempt_suffix(t)}"
        _move_payout(ctx, t, commitment, p, x, to_payee=True, key=key, fx_name="", same_id=f"owe:{key}",
                     same_kind="owe")


def uncommit(ctx: MoneyContext, t: Tranche) -> None:
    """A failed tranche cancelled (the case withdrawn): its committed money goes back to the budget."""
    if t.programme_minor:
        commitment = ctx.books.open(commitment_account(t.programme_code, t.programme_currency)).id
        ctx.books.transfer(Transfer(f"return:{t.reference}", commitment, f"budget:{t.programme_code}",
                                    t.programme_currency, t.programme_minor, kind="return", **_common(ctx, t)))


def return_rest(ctx: MoneyContext, t: Tranche, rest_minor: int) -> int:
    """A vendor invoiced less than the order: the rest of what was owed goes back to the budget,
    converted back at the rate it left with. Returns the programme amount returned."""
    if rest_minor <= 0:
        return 0
    returned = ctx.books.open(returned_account(t.programme_code, t.programme_currency)).id
    back = rest_minor
    if t.payout_currency != t.programme_currency:
        # Payout units per programme unit, so the way back divides (minor units of each currency).
        shift = minor_units(t.programme_currency) - minor_units(t.payout_currency)
        back = round_half_up(rest_minor * Fraction(10) ** shift / rate_from_text(t.programme_rate or t.rate))
    _move_payout(ctx, t, returned, back, rest_minor, to_payee=False, key=t.reference, fx_name="rest",
                 same_id=f"rest-out:{t.reference}", same_kind="return")
    if back:
        ctx.books.transfer(Transfer(f"return-rest:{t.reference}", returned, f"budget:{t.programme_code}",
                                    t.programme_currency, back, kind="return", **_common(ctx, t)))
    return back
