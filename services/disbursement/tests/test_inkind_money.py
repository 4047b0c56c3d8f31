"""In kind, the whole chain: order to a registered vendor, three-way match of the delivery's invoice,
the vendor paid (through its bank) before the grant completes; a mismatch held for finance."""

from __future__ import annotations

import pytest
from disbursement.domain.case import (
    GRANT_COMPLETED,
    INKIND_DELIVERED,
    INKIND_ORDERED,
    TRANCHE_HELD,
)
from disbursement.vendor_registry import load_vendor_directory
from test_grant_money import (
    CASE,
    PLAN,
    POSTED,
    VENDOR,
    Bank,
    approved,
    contract_plan,
    key,
    moves,
    new_ledger,
    ref,
    run,
    statuses,
)

RETURNED = "returned:MA-AVRR-2026"
BUDGET = "budget:MA-AVRR-2026"


@pytest.fixture(scope="module")
def vendors():
    return load_vendor_directory()


def with_vendors(vendors) -> Bank:
    bank = Bank()
    bank.vendors = vendors
    return bank


def delivery(invoice_amount: str | None, currency: str = "EUR", *, number: str = "INV-2026-4410",
             vendor: str = VENDOR, seq: int = 1) -> dict:
    data = {"case_id": CASE, "plan_id": PLAN, "component_id": "c2", "tranche_seq": seq, "vendor_id": vendor,
            "delivered_at": "2026-11-02T11:00:00Z"}
    if invoice_amount is not None:
        data["invoice"] = {"number": number, "amount": {"amount": invoice_amount, "currency": currency}}
    return data


def approve(bank: Bank, plan: dict | None = None):
    ledger = new_ledger()
    run(bank, ledger, ledger.approve, approved(plan or contract_plan()))
    return ledger


def test_a_released_in_kind_tranche_is_a_purchase_order_to_its_registered_vendor(vendors):
    bank = with_vendors(vendors)
    ledger = approve(bank)
    tranche = ledger.tranches[key("c2", 1)]
    assert (tranche.status, tranche.payee, tranche.pay_via) == ("ordered", f"vendor:{VENDOR}", "sgbci_ci")
    ordered = [d for t, d in statuses(ledger) if t == INKIND_ORDERED]
    assert ordered[0]["purchase_order"].startswith("PO-") and ordered[0]["vendor_id"] == VENDOR
    assert ordered[0]["amount"] == {"amount": "472289", "currency": "XOF"}


def test_an_unknown_vendor_holds_the_tranche_saying_why(vendors):
    bank = with_vendors(vendors)
    plan = contract_plan()
    plan["components"][1]["vendor_id"] = "V-NOWHERE-1"
    ledger = approve(bank, plan)
    tranche = ledger.tranches[key("c2", 1)]
    assert tranche.status == "planned" and tranche.hold_reason == "vendor_unknown"
    held = [d for t, d in statuses(ledger) if t == TRANCHE_HELD]
    assert held[0]["reason"] == "vendor_unknown" and "V-NOWHERE-1" in held[0]["reasons"][0]["message"]


def test_a_matching_invoice_owes_the_vendor_and_the_grant_completes_only_once_it_is_paid(vendors):
    bank = with_vendors(vendors)
    plan = contract_plan()
    plan["components"][1]["tranches"] = [{"seq": 1, "share_percent": 100, "release": "on_approval"}]
    ledger = approve(bank, plan)
    cash, goods = key("c1", 1), key("c2", 1)
    run(bank, ledger, ledger.payment_sent, cash, "T-1")
    run(bank, ledger, ledger.payment_settled, cash)
    statuses(ledger)
    ctx = run(bank, ledger, ledger.confirm_delivery, delivery("1200.00"))
    tranche = ledger.tranches[goods]
    assert tranche.status == "delivered" and tranche.payout_minor == 787_148 and moves(ctx) == []
    assert [t for t, _ in statuses(ledger)] == [INKIND_DELIVERED]  # delivered, not completed: the vendor waits
    assert bank.invoices == {(VENDOR, "INV-2026-4410"): ref("c2", 1)}

    tranche.status = "sending"  # what the dispatcher's claim does: the vendor's bank transfer is instructed
    run(bank, ledger, ledger.payment_sent, goods, "pay_1")
    ctx = run(bank, ledger, ledger.payment_settled, goods)
    assert (f"settle:{ref('c2', 1)}", f"payable:vendor:{VENDOR}:XOF", f"paid:vendor:{VENDOR}:XOF", "XOF",
            787_148, POSTED) in moves(ctx)
    assert GRANT_COMPLETED in [t for t, _ in statuses(ledger)]
    assert ledger.notices == [n for n in ledger.notices if n["params"]["component_id"] == "c1"]


def test_an_invoice_below_the_order_pays_the_invoice_and_returns_the_rest_to_the_budget(vendors):
    bank = with_vendors(vendors)
    ledger = approve(bank)
    before = bank.available()
    ctx = run(bank, ledger, ledger.confirm_delivery, delivery("700.00"))
    tranche = ledger.tranches[key("c2", 1)]
    # 700.00 EUR at the peg is XOF 459,170 (459169.9); the order was XOF 472,289.
    assert tranche.status == "delivered" and tranche.payout_minor == 459_170
    r = ref("c2", 1)
    assert moves(ctx) == [
        (f"rest-fx-out:{r}", f"payable:vendor:{VENDOR}:XOF", "fx:XOF", "XOF", 13_119, POSTED),
        (f"rest-fx-in:{r}", "fx:EUR", RETURNED, "EUR", 2_000, POSTED),
        (f"return-rest:{r}", RETURNED, BUDGET, "EUR", 2_000, POSTED),
    ]
    assert bank.available() == before + 2_000


@pytest.mark.parametrize(("invoice", "code"), [
    (delivery("999999", "XOF"), "invoice_exceeds_order"),
    (delivery("720.00", vendor="V-DKR-004"), "vendor_mismatch"),
    (delivery(None), "invoice_missing"),
    (delivery("720.00", "USD"), "invoice_currency_mismatch"),
])
def test_a_mismatch_is_held_for_finance_with_its_reason_and_a_corrected_invoice_releases_it(vendors, invoice, code):
    bank = with_vendors(vendors)
    ledger = approve(bank)
    statuses(ledger)
    ctx = run(bank, ledger, ledger.confirm_delivery, invoice)
    tranche = ledger.tranches[key("c2", 1)]
    assert tranche.status == "ordered" and tranche.hold_reason == "invoice_mismatch" and moves(ctx) == []
    [(type_, data)] = statuses(ledger)
    assert type_ == TRANCHE_HELD and code in [r["code"] for r in data["reasons"]]
    [exception] = ledger.exceptions
    assert exception["kind"] == "invoice_mismatch" and exception["case_id"] == CASE
    ledger.exceptions.clear()

    run(bank, ledger, ledger.confirm_delivery, delivery("720.00"))
    assert tranche.status == "delivered" and tranche.hold_reason is None


def test_an_invoice_number_is_paid_once_per_vendor(vendors):
    bank = with_vendors(vendors)
    ledger = approve(bank)
    run(bank, ledger, ledger.verify_milestone, {"case_id": CASE, "plan_id": PLAN, "milestone": "business_established"})
    run(bank, ledger, ledger.confirm_delivery, delivery("720.00"))
    statuses(ledger)
    run(bank, ledger, ledger.confirm_delivery, delivery("480.00", seq=2, number="inv-2026-4410"))
    second = ledger.tranches[key("c2", 2)]
    assert second.status == "ordered" and second.hold_reason == "invoice_mismatch"
    [(_, data)] = statuses(ledger)
    assert [r["code"] for r in data["reasons"]] == ["invoice_duplicate"]
