"""Three-way match of in-kind tranches: order, delivery, invoice; what becomes payable (pure)."""

from __future__ import annotations

import dataclasses
import re
from datetime import date

import pytest
from disbursement.domain.currency import RateBook, convert, converted_tranche
from disbursement.domain.three_way_match import (
    Delivery,
    Invoice,
    MatchResult,
    PurchaseOrder,
    invoice_key,
    match,
    purchase_order_number,
)
from disbursement.domain.tranche import payment_reference
from hypothesis import given
from hypothesis import strategies as st
from reintegra.contract.tranches import component_tranches
from reintegra.money import Money

CASE, PLAN, VENDOR = "MA-2026-000123", "PL-5531", "V-ABJ-017"
DAY = date(2026, 11, 2)
RATES = RateBook()
EUR_TO_XOF = RATES.rate("EUR", "XOF", DAY)
XOF_TO_EUR = RATES.rate("XOF", "EUR", DAY)


def component(amount: str, currency: str = "EUR", shares=(60, 40)) -> dict:
    """The contract's example component c2 (1200 EUR, 60 % on approval, 40 % at a milestone) by default."""
    return {"component_id": "c2", "modality": "in_kind", "category": "business_startup", "vendor_id": VENDOR,
            "amount": {"amount": amount, "currency": currency},
            "tranches": [{"seq": n, "share_percent": share, "release": "on_approval"}
                         for n, share in enumerate(shares, start=1)]}


def order_of(comp: dict, seq: int = 1, rate=EUR_TO_XOF) -> PurchaseOrder:
    """The order a released tranche makes: its plan amount, and its part of the converted component."""
    plan_amount = next(t.amount for t in component_tranches(comp) if t.seq == seq)
    return PurchaseOrder(
        order_number=purchase_order_number(CASE, PLAN, comp["component_id"], seq), case_id=CASE, plan_id=PLAN,
        component_id=comp["component_id"], tranche_seq=seq, vendor_id=VENDOR, plan_amount=plan_amount,
        order_amount=converted_tranche(comp, seq, rate), rate_text=rate.text)


ORDER = order_of(component("1200.00"))  # tranche 1: 720.00 EUR, XOF 472,289 at the peg


def money(amount: str, currency: str) -> Money:
    return Money.parse(amount, currency)


def delivery(order: PurchaseOrder = ORDER, *, invoice: Invoice | None | str = "default", **changes) -> Delivery:
    if invoice == "default":
        invoice = Invoice("INV-2026-4410", order.plan_amount)
    base = Delivery(vendor_id=order.vendor_id, plan_id=order.plan_id, component_id=order.component_id,
                    tranche_seq=order.tranche_seq, delivered_at="2026-11-02T11:00:00Z", invoice=invoice)
    return dataclasses.replace(base, **changes)


def codes(result: MatchResult) -> list[str]:
    return [r["code"] for r in result.reasons]


def refused(result: MatchResult) -> bool:
    return not result.matched and result.payable is None and result.remainder is None and bool(result.reasons)


# --- a match ------------------------------------------------------------------------------------


def test_the_contracts_delivery_matches_and_the_whole_order_is_payable():
    assert (ORDER.plan_amount, ORDER.order_amount) == (money("720.00", "EUR"), money("472289", "XOF"))
    result = match(ORDER, delivery(), set())
    assert result == MatchResult(True, [], money("472289", "XOF"), Money(0, "XOF"))


def test_an_invoice_in_the_orders_currency_below_the_order_is_paid_as_invoiced_the_rest_returns():
    result = match(ORDER, delivery(invoice=Invoice("INV-1", money("400000", "XOF"))), set())
    assert result.matched and result.reasons == []
    assert (result.payable, result.remainder) == (money("400000", "XOF"), money("72289", "XOF"))


def test_an_invoice_for_exactly_the_order_in_its_currency_is_paid_whole():
    result = match(ORDER, delivery(invoice=Invoice("INV-1", money("472289", "XOF"))), set())
    assert (result.matched, result.payable, result.remainder) == (True, money("472289", "XOF"), Money(0, "XOF"))


def test_an_invoice_in_the_plans_currency_below_the_order_is_converted_at_the_locked_rate_half_up():
    # 500.00 EUR × 655.957 = 327,978.5 XOF: the half goes up.
    result = match(ORDER, delivery(invoice=Invoice("INV-1", money("500.00", "EUR"))), set())
    assert result.matched
    assert result.payable == money("327979", "XOF") == convert(money("500.00", "EUR"), EUR_TO_XOF)
    assert result.remainder == money("144310", "XOF")


def test_an_invoice_for_the_whole_plan_tranche_pays_the_order_even_when_conversion_rounds_above_it():
    # 101.01 EUR split 60/40 gives 60.61 EUR; converted on its own that is XOF 39,758, but the tranche's
    # share of the converted component (what was ordered) is XOF 39,755.
    order = order_of(component("101.01"))
    assert order.plan_amount == money("60.61", "EUR") and order.order_amount == money("39755", "XOF")
    assert convert(order.plan_amount, EUR_TO_XOF) > order.order_amount
    result = match(order, delivery(order), set())
    assert (result.matched, result.payable, result.remainder) == (True, order.order_amount, Money(0, "XOF"))


def test_a_converted_invoice_is_never_paid_above_the_order():
    # 193 XOF split 60/40: tranche 1 is 116 XOF, ordered as 0.17 EUR; 115 XOF converts to 0.18 EUR.
    order = order_of(component("193", "XOF"), rate=XOF_TO_EUR)
    assert order.order_amount == money("0.17", "EUR") and order.rate_text == "1/655.957"
    invoice = Invoice("INV-9", money("115", "XOF"))
    assert convert(invoice.amount, XOF_TO_EUR) == money("0.18", "EUR")
    result = match(order, delivery(order, invoice=invoice), set())
    assert (result.matched, result.payable, result.remainder) == (True, money("0.17", "EUR"), Money(0, "EUR"))


def test_an_invoice_worth_less_than_a_unit_of_the_payout_currency_matches_and_pays_nothing():
    # 1 XOF is 0.0015 EUR: the goods were delivered, what is owed rounds to nothing, the order returns whole.
    order = order_of(component("1000", "XOF"), rate=XOF_TO_EUR)
    result = match(order, delivery(order, invoice=Invoice("INV-1", money("1", "XOF"))), ())
    assert (result.matched, result.payable, result.remainder) == (True, Money(0, "EUR"), order.order_amount)


def test_an_order_in_the_plans_own_currency_needs_no_rate():
    comp = component("787148", "XOF", shares=(100,))
    same = RATES.rate("XOF", "XOF", DAY)
    order = dataclasses.replace(order_of(comp, rate=same), rate_text=None)
    assert order.plan_amount == order.order_amount == money("787148", "XOF")
    result = match(order, delivery(order, invoice=Invoice("INV-1", money("700000", "XOF"))), set())
    assert (result.matched, result.payable, result.remainder) == (True, money("700000", "XOF"), money("87148", "XOF"))


@given(total=st.integers(min_value=2, max_value=10**9), first_share=st.integers(min_value=1, max_value=99),
       seq=st.sampled_from([1, 2]), fraction=st.fractions(min_value=0, max_value=1),
       direction=st.sampled_from(["EUR-XOF", "XOF-EUR"]), in_plan_currency=st.booleans())
def test_what_is_payable_never_exceeds_the_order_and_the_rest_returns_to_the_budget(
        total, first_share, seq, fraction, direction, in_plan_currency):
    plan_currency, _ = direction.split("-")
    rate = EUR_TO_XOF if plan_currency == "EUR" else XOF_TO_EUR
    comp = component(Money(total, plan_currency).format_amount(), plan_currency, shares=(first_share, 100 - first_share))
    order = order_of(comp, seq, rate)
    if order.plan_amount.minor == 0 or order.order_amount.minor == 0:
        return  # a tranche too small to be anything in one of the currencies (see the zero order's test)
    ordered = order.plan_amount if in_plan_currency else order.order_amount
    invoiced = Money(max(1, int(ordered.minor * fraction)), ordered.currency)
    result = match(order, delivery(order, invoice=Invoice("INV-1", invoiced)), ())
    assert result.matched
    assert Money(0, order.order_amount.currency) <= result.payable <= order.order_amount
    if not in_plan_currency:
        assert result.payable == invoiced
    assert result.payable + result.remainder == order.order_amount
    if invoiced == ordered:
        assert result.payable == order.order_amount


# --- the same vendor, plan, component and tranche ---------------------------------------------------------


@pytest.mark.parametrize(("change", "code", "field"), [
    ({"vendor_id": "V-DKR-004"}, "vendor_mismatch", "data.vendor_id"),
    ({"plan_id": "PL-9999"}, "plan_mismatch", "data.plan_id"),
    ({"component_id": "c1"}, "component_mismatch", "data.component_id"),
    ({"tranche_seq": 2}, "tranche_mismatch", "data.tranche_seq"),
])
def test_a_delivery_for_something_else_than_the_order_is_refused(change, code, field):
    result = match(ORDER, delivery(**change), set())
    assert refused(result)
    [reason] = result.reasons
    assert (reason["code"], reason["field"]) == (code, field)
    assert str(next(iter(change.values()))) in reason["message"] and ORDER.order_number in reason["message"]


def test_every_mismatch_is_reported_at_once():
    result = match(ORDER, delivery(vendor_id="V-X", plan_id="PL-X", component_id="cX", tranche_seq=3), set())
    assert codes(result) == ["vendor_mismatch", "plan_mismatch", "component_mismatch", "tranche_mismatch"]


# --- the invoice ------------------------------------------------------------------------------------


def test_a_delivery_without_an_invoice_is_not_payable():
    result = match(ORDER, delivery(invoice=None), set())
    assert refused(result)
    assert result.reasons == [{"code": "invoice_missing", "field": "data.invoice",
                               "message": "the delivery carries no invoice: nothing can be paid"}]


def test_a_missing_invoice_is_reported_with_the_mismatches():
    assert codes(match(ORDER, delivery(invoice=None, vendor_id="V-X"), set())) == ["vendor_mismatch",
                                                                                    "invoice_missing"]


@pytest.mark.parametrize("number", ["", "   "])
def test_an_invoice_without_a_number_is_refused(number):
    result = match(ORDER, delivery(invoice=Invoice(number, ORDER.plan_amount)), set())
    assert refused(result) and codes(result) == ["invoice_number_missing"]
    assert result.reasons[0]["field"] == "data.invoice.number"


@pytest.mark.parametrize("number", ["INV-2026-4410", "inv-2026-4410", " INV-2026-4410 ", "INV- 2026-4410"])
def test_an_invoice_number_the_vendor_billed_for_another_order_is_a_duplicate(number):
    result = match(ORDER, delivery(invoice=Invoice(number, ORDER.plan_amount)), {(VENDOR, "INV-2026-4410")})
    assert refused(result) and codes(result) == ["invoice_duplicate"]
    assert result.reasons[0]["field"] == "data.invoice.number"
    assert VENDOR in result.reasons[0]["message"] and number in result.reasons[0]["message"]


def test_invoice_numbers_are_unique_per_vendor_only():
    others = [("V-DKR-004", "INV-2026-4410"), (VENDOR, "INV-2026-4411")]
    assert match(ORDER, delivery(), others).matched


def test_the_same_delivery_matched_again_is_not_a_duplicate_of_itself():
    first = match(ORDER, delivery(), frozenset())
    again = match(ORDER, delivery(), frozenset())  # the caller leaves this order's own invoice out
    assert first == again and again.matched


def test_already_matched_keys_can_be_given_normalised():
    assert match(ORDER, delivery(invoice=Invoice("inv 7", ORDER.plan_amount)), {invoice_key(VENDOR, "INV7")}).reasons[0][
        "code"] == "invoice_duplicate"
    assert invoice_key(VENDOR, " inv-1 a ") == (VENDOR, "INV-1A")


def test_a_duplicate_is_checked_against_the_vendor_of_the_order():
    # The delivery names another vendor (a mismatch); the vendor we would pay already billed the number.
    result = match(ORDER, delivery(vendor_id="V-DKR-004"), {(VENDOR, "INV-2026-4410")})
    assert codes(result) == ["vendor_mismatch", "invoice_duplicate"]


@pytest.mark.parametrize("invoiced", [money("720", "GNF"), money("720.00", "USD"), money("720.000", "KWD")])
def test_an_invoice_in_neither_the_plans_nor_the_orders_currency_is_refused(invoiced):
    result = match(ORDER, delivery(invoice=Invoice("INV-1", invoiced)), set())
    assert refused(result) and codes(result) == ["invoice_currency_mismatch"]
    reason = result.reasons[0]
    assert reason["field"] == "data.invoice.amount.currency"
    assert invoiced.currency in reason["message"] and "EUR or XOF" in reason["message"]


def test_an_invoice_above_the_order_is_refused_naming_both_amounts():
    order = order_of(component("1200.00", shares=(100,)))
    assert order.order_amount == money("787148", "XOF")
    result = match(order, delivery(order, invoice=Invoice("INV-1", money("999999", "XOF"))), set())
    assert refused(result)
    assert result.reasons == [{"code": "invoice_exceeds_order", "field": "data.invoice.amount",
                               "message": "the invoice is for XOF 999,999 against an order of XOF 787,148"}]


def test_an_invoice_above_the_order_in_the_plans_currency_is_compared_in_that_currency():
    result = match(ORDER, delivery(invoice=Invoice("INV-1", money("720.01", "EUR"))), set())
    assert codes(result) == ["invoice_exceeds_order"]
    assert result.reasons[0]["message"] == "the invoice is for EUR 720.01 against an order of EUR 720.00"


def test_an_invoice_one_unit_above_the_order_in_its_currency_is_refused():
    result = match(ORDER, delivery(invoice=Invoice("INV-1", money("472290", "XOF"))), set())
    assert codes(result) == ["invoice_exceeds_order"]


@pytest.mark.parametrize("minor", [0, -1, -72000])
def test_an_invoice_for_nothing_or_less_is_refused(minor):
    result = match(ORDER, delivery(invoice=Invoice("INV-1", Money(minor, "EUR"))), set())
    assert refused(result) and codes(result) == ["invoice_amount_not_positive"]
    assert result.reasons[0]["field"] == "data.invoice.amount.amount"


def test_several_invoice_problems_are_reported_together():
    result = match(ORDER, delivery(tranche_seq=2, invoice=Invoice("INV-2026-4410", money("999999", "XOF"))),
                   {(VENDOR, "INV-2026-4410")})
    assert codes(result) == ["tranche_mismatch", "invoice_duplicate", "invoice_exceeds_order"]


def test_every_reason_has_the_contracts_shape():
    results = [match(ORDER, delivery(vendor_id="V-X", invoice=None), ()),
               match(ORDER, delivery(invoice=Invoice("", money("1", "GNF"))), ()),
               match(ORDER, delivery(invoice=Invoice("I", money("1000.00", "EUR"))), {(VENDOR, "I")})]
    for result in results:
        for reason in result.reasons:
            assert set(reason) == {"code", "field", "message"}
            assert all(isinstance(v, str) and v for v in reason.values())
            assert reason["field"].startswith("data.")


# --- the order itself -------------------------------------------------------------------------------


def test_an_order_across_currencies_needs_the_locked_rate():
    with pytest.raises(ValueError, match="rate"):
        dataclasses.replace(ORDER, rate_text=None)
    with pytest.raises(ValueError, match="not a rate"):
        dataclasses.replace(ORDER, rate_text="about 656")


@pytest.mark.parametrize("change", [{"plan_amount": Money(-1, "EUR")}, {"order_amount": Money(-1, "XOF")}])
def test_an_order_is_never_negative(change):
    with pytest.raises(ValueError, match="negative"):
        dataclasses.replace(ORDER, **change)


def test_a_tranche_rounded_to_nothing_orders_nothing_and_no_invoice_matches_it():
    # 1 XOF split 60/40: tranche 2 is 0 XOF; ordered, it is nothing to pay.
    order = order_of(component("1", "XOF"), seq=2, rate=XOF_TO_EUR)
    assert (order.plan_amount, order.order_amount) == (Money(0, "XOF"), Money(0, "EUR"))
    assert codes(match(order, delivery(order, invoice=Invoice("INV-1", money("1", "XOF"))), ())) == [
        "invoice_exceeds_order"]


def test_the_purchase_order_number_is_stable_and_names_one_tranche():
    number = purchase_order_number(CASE, PLAN, "c2", 1)
    assert re.fullmatch(r"PO-[0-9a-f]{16}", number)
    assert number == purchase_order_number(CASE, PLAN, "c2", 1)
    others = {purchase_order_number(*ids) for ids in [("MA-2026-000124", PLAN, "c2", 1), (CASE, "PL-5532", "c2", 1),
                                                      (CASE, PLAN, "c3", 1), (CASE, PLAN, "c2", 2),
                                                      (CASE, PLAN + "c", "2", 1)]}
    assert len(others) == 5 and number not in others
    # Not a piece of the payment reference of the same tranche (that hashes the same ids).
    assert number[3:] not in payment_reference(CASE, PLAN, "c2", 1)
