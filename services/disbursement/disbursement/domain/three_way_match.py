"""Three-way match of an in-kind tranche: purchase order, proof of delivery, invoice (pure).

The order is what we asked the vendor for when the tranche was released: its amount in the plan's
currency and, at the rate locked then, what is owed to the vendor in the payout currency. The
delivery (reintegration.delivery.confirmed.v1) carries the invoice. Only a match becomes a payable:
same vendor, plan, component and tranche; an invoice whose number the vendor has not billed for
another order; in the plan's or the order's currency; more than zero and at most the order. The
vendor is paid what it invoiced; what the order reserved beyond that goes back to the budget.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass, field
from decimal import Decimal

from reintegra.money import Money

from disbursement.domain.currency import LockedRate, convert, rate_from_text

VENDOR_MISMATCH = "vendor_mismatch"
PLAN_MISMATCH = "plan_mismatch"
COMPONENT_MISMATCH = "component_mismatch"
TRANCHE_MISMATCH = "tranche_mismatch"
INVOICE_MISSING = "invoice_missing"
INVOICE_NUMBER_MISSING = "invoice_number_missing"
INVOICE_DUPLICATE = "invoice_duplicate"
INVOICE_CURRENCY_MISMATCH = "invoice_currency_mismatch"
INVOICE_AMOUNT_NOT_POSITIVE = "invoice_amount_not_positive"
INVOICE_EXCEEDS_ORDER = "invoice_exceeds_order"

LOCKED = "locked_at_release"  # the source of a rate read back from an order


@dataclass(frozen=True, slots=True)
class PurchaseOrder:
    order_number: str
    case_id: str
    plan_id: str
    component_id: str
    tranche_seq: int
    vendor_id: str
    plan_amount: Money  # the tranche in the plan's currency
    order_amount: Money  # what is owed to the vendor, in the payout currency, as locked at release
    rate_text: str | None  # payout units per plan unit, as locked (LockedRate.text); None: same currency

    def __post_init__(self) -> None:
        # An order that cannot be matched consistently is a bug upstream of the match: refuse to build it.
        # Zero is possible (a tranche of a tiny component rounds to nothing) and matches no invoice.
        if self.plan_amount.minor < 0 or self.order_amount.minor < 0:
            raise ValueError("an order's amounts are never negative")
        if self.plan_amount.currency != self.order_amount.currency:
            if self.rate_text is None:
                raise ValueError(f"an order from {self.plan_amount.currency} to {self.order_amount.currency} "
                                 "needs the rate locked at release")
            rate_from_text(self.rate_text)  # ValueError when it is not a rate


@dataclass(frozen=True, slots=True)
class Invoice:
    number: str
    amount: Money


@dataclass(frozen=True, slots=True)
class Delivery:
    vendor_id: str
    plan_id: str
    component_id: str
    tranche_seq: int
    delivered_at: str
    invoice: Invoice | None


@dataclass(frozen=True)
class MatchResult:
    matched: bool
    reasons: list[dict[str, str]] = field(default_factory=list)  # {code, field, message}, the contract's shape
    # What the vendor is paid, in the order's currency: at most the order; zero only for an invoice in the
    # plan's currency worth less than one unit of the payout currency.
    payable: Money | None = None
    remainder: Money | None = None  # order - payable: released back to the budget


def purchase_order_number(case_id: str, plan_id: str, component_id: str, seq: int) -> str:
    """The same tranche always orders under the same number. Hashed with its own prefix so it is not
    a prefix of the tranche's payment reference (which hashes the same ids)."""
    digest = hashlib.sha256(f"purchase-order\x1f{case_id}\x1f{plan_id}\x1f{component_id}\x1f{seq}".encode())
    return f"PO-{digest.hexdigest()[:16]}"


def invoice_key(vendor_id: str, number: str) -> tuple[str, str]:
    """(vendor, invoice number) as uniqueness is checked: case and spaces do not make a new invoice."""
    return vendor_id, "".join(number.split()).upper()


def match(order: PurchaseOrder, delivery: Delivery,
          invoices_already_matched: Collection[tuple[str, str]]) -> MatchResult:
    """`invoices_already_matched`: the (vendor_id, invoice number) pairs matched for other orders
    (leave out this order's own, so that matching it again is not a duplicate)."""
    reasons = _identity_reasons(order, delivery)
    invoice = delivery.invoice
    if invoice is None:
        reasons.append(_reason(INVOICE_MISSING, "data.invoice", "the delivery carries no invoice: nothing can be paid"))
        return MatchResult(False, reasons)
    if not invoice.number.strip():
        reasons.append(_reason(INVOICE_NUMBER_MISSING, "data.invoice.number", "the invoice has no number"))
    elif _already_billed(order.vendor_id, invoice.number, invoices_already_matched):
        reasons.append(_reason(INVOICE_DUPLICATE, "data.invoice.number",
                               f"vendor {order.vendor_id} already billed invoice {invoice.number} for another order"))
    payable = _payable(order, invoice.amount, reasons)
    if reasons or payable is None:
        return MatchResult(False, reasons)
    return MatchResult(True, [], payable, order.order_amount - payable)


def _identity_reasons(order: PurchaseOrder, delivery: Delivery) -> list[dict[str, str]]:
    pairs = [
        (VENDOR_MISMATCH, "data.vendor_id", "vendor", order.vendor_id, delivery.vendor_id),
        (PLAN_MISMATCH, "data.plan_id", "plan", order.plan_id, delivery.plan_id),
        (COMPONENT_MISMATCH, "data.component_id", "component", order.component_id, delivery.component_id),
        (TRANCHE_MISMATCH, "data.tranche_seq", "tranche", order.tranche_seq, delivery.tranche_seq),
    ]
    return [_reason(code, where, f"the delivery is for {what} {delivered}, the order {order.order_number} "
                                 f"for {what} {ordered}")
            for code, where, what, ordered, delivered in pairs if ordered != delivered]


def _already_billed(vendor_id: str, number: str, matched: Collection[tuple[str, str]]) -> bool:
    key = invoice_key(vendor_id, number)
    return key in matched or any(invoice_key(v, n) == key for v, n in matched)


def _payable(order: PurchaseOrder, invoiced: Money, reasons: list[dict[str, str]]) -> Money | None:
    """What the vendor is paid for `invoiced`, in the order's currency; None (with a reason) when it
    cannot be paid."""
    plan, owed = order.plan_amount, order.order_amount
    if invoiced.currency not in (plan.currency, owed.currency):
        allowed = " or ".join(sorted({plan.currency, owed.currency}))
        reasons.append(_reason(INVOICE_CURRENCY_MISMATCH, "data.invoice.amount.currency",
                               f"the invoice is in {invoiced.currency}, the order in {allowed}"))
        return None
    if invoiced.minor <= 0:
        reasons.append(_reason(INVOICE_AMOUNT_NOT_POSITIVE, "data.invoice.amount.amount",
                               "the invoice amount must be greater than zero"))
        return None
    # Compared in the invoice's own currency: a tranche converted on its own can differ by a few units
    # from its share of the converted component (what was ordered), and must not refuse an invoice for
    # exactly the tranche.
    ordered = owed if invoiced.currency == owed.currency else plan
    if invoiced > ordered:
        reasons.append(_reason(INVOICE_EXCEEDS_ORDER, "data.invoice.amount",
                               f"the invoice is for {_written(invoiced)} against an order of {_written(ordered)}"))
        return None
    if invoiced.currency == owed.currency:
        return invoiced
    if invoiced == plan:
        return owed  # the whole order: exactly what was locked, whatever the tranche split's rounding
    # Part of the order, at the locked rate; never more than the order (a rate into a currency with
    # larger units can round a smaller invoice up to it).
    return min(_at_rate(invoiced, order.rate_text, owed.currency), owed)


def _at_rate(money: Money, rate_text: str | None, currency: str) -> Money:
    """`money` in `currency` at the locked rate: `convert` itself, so the rounding (half up) is the
    one the order was computed with."""
    assert rate_text is not None  # PurchaseOrder refuses a cross-currency order without a rate
    rate = rate_from_text(rate_text)  # exact: its numerator and denominator are integers
    locked = LockedRate(money.currency, currency, Decimal(rate.numerator), Decimal(rate.denominator), LOCKED, None)
    return convert(money, locked)


def _written(money: Money) -> str:
    """Money for people reading a reason, currency first and digits grouped: XOF 787,148, EUR 1,200.00."""
    whole, dot, fraction = money.format_amount().partition(".")
    return f"{money.currency} {int(whole):,}{dot}{fraction}"


def _reason(code: str, where: str, message: str) -> dict[str, str]:
    return {"code": code, "field": where, "message": message}
