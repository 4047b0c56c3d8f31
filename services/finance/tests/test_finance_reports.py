"""A programme's report for a period, worked out by hand on a small ledger and its payments.

Programme P (EUR), period March 2026. Ledger (days in brackets), rates in GNF per EUR:

    fund 100 000 [02-20], 50 000 [03-05]; programme Q funded and converting 500 EUR too
    R0  2 000 → 200 GNF momo           reserve [02-01] release [02-02] settle [02-03]
    R1 10 015 → 1 002 GNF momo (rate 10: 1 001.5 rounded up, so the conversion leaves -5 EUR cents)
                                       reserve [02-25] release [03-10] settle [03-12]
    R6  5 000 → 500 GNF momo           reserve [03-28] release [03-29] settle [03-30]
    R7  1 500 EUR vendor V2            reserve [03-01] release [03-02] settle [03-25]
    R4  3 000 EUR vendor V1            reserve [03-17] release [03-18] settle [04-02] (after the period)
    R5  1 000 EUR vendor V1            reserve [02-27] release [03-01] failed and given back [03-22]
    R2  5 000                          reserve [03-03] void [03-20]
    R3  2 000                          reserve [03-15] (still reserved)
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from datetime import date

import pytest
from finance.domain.ledger_view import LedgerPosting
from finance.domain.reports import (
    REPORT_COLUMNS,
    BudgetBurn,
    BudgetFigures,
    CurrencyFigures,
    DayPoint,
    ExceptionFigures,
    ExceptionRecord,
    FxDifference,
    FxPosition,
    PaymentGroup,
    PaymentRecord,
    ReportRow,
    budget_burn,
    build_report,
    decimal_text,
    payments_per_day,
    report_rows,
)

P, Q = "MA-AVRR-2026", "SN-AVRR-2026"
START, END = date(2026, 3, 1), date(2026, 3, 31)
KINDS = {"funding": "funding", "budget": "budget", "commitment": "commitment", "payable": "payable", "paid": "paid",
         "returned": "returned", "fx": "trading"}


def d(month: int, day: int) -> date:
    return date(2026, month, day)


class Ledger:
    """Both legs of each transfer, numbered per account in the order of the days they were booked
    (as the ledger numbers them: a later posting gets a later number)."""

    def __init__(self) -> None:
        self.written: list[LedgerPosting] = []

    @property
    def postings(self) -> list[LedgerPosting]:
        seq: dict[str, int] = defaultdict(int)
        numbered = []
        for p in sorted(self.written, key=lambda p: p.booked_on):
            seq[p.account] += 1
            numbered.append(replace(p, seq=seq[p.account]))
        return numbered

    def transfer(self, tid: str, debit: str, credit: str, amount: int, day: date, *, phase: str = "posted",
                 kind: str, programme: str = P, pending_amount: int = 0, pending_id: str | None = None,
                 conversion_id: str | None = None, rate: str | None = None) -> None:
        for account, side, counter in ((debit, "debit", credit), (credit, "credit", debit)):
            prefix, _, rest = account.partition(":")
            currency = rest.rsplit(":", 1)[-1] if prefix in ("payable", "paid", "fx") else "EUR"
            self.written.append(LedgerPosting(
                account, KINDS[prefix], currency, rest if prefix in ("budget", "commitment", "funding", "returned")
                else None, 0, tid, side, phase, amount, currency, kind, counter, programme,
                f"case-{tid}", tid.partition(":")[2] or None, day, pending_id, pending_amount, conversion_id, rate))

    def fund(self, amount: int, day: date, programme: str = P) -> None:
        self.transfer(f"fund:{programme}:{day}", f"funding:{programme}", f"budget:{programme}", amount, day,
                      kind="fund", programme=programme)

    def reserve(self, ref: str, p: int, day: date) -> None:
        self.transfer(f"reserve:{ref}", f"budget:{P}", f"commitment:{P}", p, day, phase="pending", kind="reserve")

    def void(self, ref: str, p: int, day: date) -> None:
        self.transfer(f"void:{ref}", f"budget:{P}", f"commitment:{P}", p, day, phase="void_pending", kind="void",
                      pending_id=f"reserve:{ref}", pending_amount=p)

    def grant(self, ref: str, p: int, reserved: date, released: date, payee: str, *, x: int | None = None,
              currency: str = "EUR", rate: str | None = None, settled: date | None = None) -> None:
        self.reserve(ref, p, reserved)
        self.transfer(f"release:{ref}", f"budget:{P}", f"commitment:{P}", p, released, phase="post_pending",
                      kind="release", pending_id=f"reserve:{ref}", pending_amount=p)
        payable = f"payable:{payee}:{currency}"
        if currency == "EUR":
            self.transfer(f"owe:{ref}", f"commitment:{P}", payable, p, released, kind="owe")
        else:
            self.transfer(f"fx-out:{ref}", f"commitment:{P}", "fx:EUR", p, released, kind="convert",
                          conversion_id=ref, rate=rate)
            self.transfer(f"fx-in:{ref}", f"fx:{currency}", payable, x, released, kind="convert",
                          conversion_id=ref, rate=rate)
        if settled:
            self.transfer(f"settle:{ref}", payable, f"paid:{payee}:{currency}", x or p, settled, kind="settle")

    def give_back(self, ref: str, p: int, payee: str, day: date) -> None:
        self.transfer(f"return-out:{ref}", f"payable:{payee}:EUR", f"returned:{P}", p, day, kind="return")
        self.transfer(f"return:{ref}", f"returned:{P}", f"budget:{P}", p, day, kind="return")


def ledger() -> Ledger:
    book = Ledger()
    book.fund(100_000, d(2, 20))
    book.fund(50_000, d(3, 5))
    book.grant("R0", 2_000, d(2, 1), d(2, 2), "momo", x=200, currency="GNF", rate="10", settled=d(2, 3))
    book.grant("R1", 10_015, d(2, 25), d(3, 10), "momo", x=1_002, currency="GNF", rate="10", settled=d(3, 12))
    book.grant("R6", 5_000, d(3, 28), d(3, 29), "momo", x=500, currency="GNF", rate="10", settled=d(3, 30))
    book.grant("R7", 1_500, d(3, 1), d(3, 2), "vendor:V2", settled=d(3, 25))
    book.grant("R4", 3_000, d(3, 17), d(3, 18), "vendor:V1", settled=d(4, 2))
    book.grant("R5", 1_000, d(2, 27), d(3, 1), "vendor:V1")
    book.give_back("R5", 1_000, "vendor:V1", d(3, 22))
    book.reserve("R2", 5_000, d(3, 3))
    book.void("R2", 5_000, d(3, 20))
    book.reserve("R3", 2_000, d(3, 15))
    # Another programme sharing the trading accounts.
    book.fund(9_000, d(3, 1), Q)
    book.transfer("fx-out:Q1", f"budget:{Q}", "fx:EUR", 500, d(3, 6), kind="convert", programme=Q,
                  conversion_id="Q1", rate="10")
    book.transfer("fx-in:Q1", "fx:GNF", "payable:momo:GNF", 50, d(3, 6), kind="convert", programme=Q,
                  conversion_id="Q1", rate="10")
    return book


def pay(ref: str, amount: int, currency: str, programme_amount: int | None, status: str, sent: date | None,
        settled: date | None = None, *, provider: str | None = "momo", vendor: str | None = None,
        reconciled: bool = False, programme: str = P) -> PaymentRecord:
    return PaymentRecord(ref, programme, f"case-{ref}", provider, vendor, "in_kind" if vendor else "cash", amount,
                         currency, programme_amount, "EUR", status, sent, settled, reconciled)


PAYMENTS = [
    pay("R0", 200, "GNF", 2_000, "settled", d(2, 2), d(2, 3), reconciled=True),
    pay("R1", 1_002, "GNF", 10_015, "settled", d(3, 10), d(3, 12), reconciled=True),
    pay("R6", 500, "GNF", 5_000, "settled", d(3, 29), d(3, 30)),
    pay("R7", 1_500, "EUR", 1_500, "settled", d(3, 2), d(3, 25), provider="bank_ci", vendor="V2", reconciled=True),
    pay("R4", 3_000, "EUR", 3_000, "settled", d(3, 18), d(4, 2), provider="bank_ci", vendor="V1"),
    pay("R5", 1_000, "EUR", 1_000, "failed", d(3, 2), provider="bank_ci", vendor="V1"),
    pay("Q1", 50, "GNF", 500, "settled", d(3, 7), d(3, 8), programme=Q),
]

EXCEPTIONS = [
    ExceptionRecord("missing_in_statement", "open", "R6", None, 500, "GNF", d(3, 31)),
    ExceptionRecord("amount_mismatch", "written_off", "R1", P, 5, "GNF", d(3, 15)),
    ExceptionRecord("reversed", "repay_approved", "R0", P, 200, "GNF", d(2, 10)),
    ExceptionRecord("invoice_mismatch", "resolved", "R7", P, None, None, d(3, 3)),
    ExceptionRecord("reversed", "open", "Q1", Q, 50, "GNF", d(3, 9)),  # another programme
    ExceptionRecord("missing_in_statement", "open", "R4", None, 3_000, "EUR", d(4, 5)),  # after the period
]


def report(postings=None, payments=PAYMENTS, exceptions=EXCEPTIONS):
    return build_report(P, START, END, ledger().postings if postings is None else postings, payments, exceptions)


# --------------------------------------------------------------------------- the ledger's figures


def test_the_budget_at_the_period_end_and_its_movements_in_the_period():
    assert report().budget == BudgetFigures(
        currency="EUR", funded_minor=150_000, funded_in_period_minor=50_000, returned_minor=1_000,
        returned_in_period_minor=1_000, released_minor=22_515, released_in_period_minor=20_515, reserved_minor=2_000,
        committed_minor=2_000, available_minor=150_000 + 1_000 - 22_515 - 2_000)


def test_paid_per_payout_currency_ledger_and_payments_side_by_side():
    assert report().currencies == (
        CurrencyFigures("EUR", owed_minor=3_000, paid_minor=1_500, paid_in_period_minor=1_500, settled_count=1,
                        settled_minor=1_500, reconciled_count=1, reconciled_minor=1_500, unreconciled_count=0,
                        unreconciled_minor=0),
        CurrencyFigures("GNF", owed_minor=0, paid_minor=1_702, paid_in_period_minor=1_502, settled_count=2,
                        settled_minor=1_502, reconciled_count=1, reconciled_minor=1_002, unreconciled_count=1,
                        unreconciled_minor=500),
    )


def test_paid_in_the_programmes_currency():
    r = report()
    assert (r.programme_currency, r.paid_programme_minor, r.paid_programme_to_date_minor) == ("EUR", 16_515, 18_515)
    assert r.without_programme_amount == 0
    unknown = [replace(PAYMENTS[1], programme_amount_minor=None), *PAYMENTS[2:]]
    r = report(payments=unknown)
    assert (r.paid_programme_minor, r.without_programme_amount) == (6_500, 1)


def test_fx_positions_the_programmes_share_and_the_whole_account():
    assert report().fx_positions == (FxPosition("EUR", 17_015, 17_515), FxPosition("GNF", -1_702, -1_752))


def test_fx_differences_are_the_conversions_rounding_at_their_own_rates():
    assert report().fx_differences == (FxDifference("GNF", conversions=3, difference_minor=-5, unpriced=0),)
    unreadable = [replace(p, rate="ten") if p.conversion_id == "R1" else p for p in ledger().postings]
    assert report(unreadable).fx_differences == (FxDifference("GNF", 3, 0, 1),)


def test_the_ledger_invariants_hold_and_are_reported():
    r = report()
    assert r.ledger_ok and len(r.invariants) == 9
    broken = [p for p in ledger().postings if p.transfer_id != "return:R5" or p.side == "debit"]
    r = report(broken)
    assert not r.ledger_ok
    assert {i.name for i in r.invariants if not i.ok} >= {"transfer-legs", "currency-balance", "posting-sequence"}


# --------------------------------------------------------------------------- the payments' figures


def test_per_modality_provider_and_vendor():
    r = report()
    cash = PaymentGroup("modality", "cash", "GNF", 2, 1_502, 2, 1_502, 15_015, 0, 1, 500)
    in_kind = PaymentGroup("modality", "in_kind", "EUR", 3, 5_500, 1, 1_500, 1_500, 1, 0, 0)
    assert r.by_modality == (cash, in_kind)
    assert r.by_provider == (replace(in_kind, by="provider", key="bank_ci"), replace(cash, by="provider", key="momo"))
    assert r.by_vendor == (PaymentGroup("vendor", "V1", "EUR", 2, 4_000, 0, 0, 0, 1, 0, 0),
                           PaymentGroup("vendor", "V2", "EUR", 1, 1_500, 1, 1_500, 1_500, 0, 0, 0))


def test_counts():
    assert report().counts == {"payments sent": 5, "payments settled": 3, "payments failed": 1,
                               "payments reconciled": 2, "payments unreconciled": 1, "cases paid": 3,
                               "sent, now failed": 1, "sent, now settled": 4}


def test_the_exceptions_of_the_programme_by_kind_and_currency():
    assert report().exceptions == (
        ExceptionFigures("amount_mismatch", "GNF", 1, 0, 0, 1, 5, 0, 0),
        ExceptionFigures("invoice_mismatch", None, 1, 0, 0, 0, 0, 0, 1),
        ExceptionFigures("missing_in_statement", "GNF", 1, 1, 500, 0, 0, 0, 0),
        ExceptionFigures("reversed", "GNF", 0, 0, 0, 0, 0, 1, 0),
    )


def test_a_programme_without_a_budget_yet():
    new = replace(pay("N1", 10, "GNF", 100, "sent", d(3, 3), programme="NEW"), programme_currency="XOF")
    r = build_report("NEW", START, END, ledger().postings, [new])
    assert r.budget is None and r.programme_currency == "XOF" and r.currencies == () and r.fx_positions == ()
    assert r.counts["payments sent"] == 1 and r.ledger_ok


def test_a_period_ending_before_it_starts_is_refused():
    with pytest.raises(ValueError, match="before it starts"):
        build_report(P, END, START, [], [])
    with pytest.raises(ValueError, match="before it starts"):
        payments_per_day([], (END, START))


# --------------------------------------------------------------------------- export and charts


def test_report_rows_carry_minor_units_and_decimal_text():
    rows = report_rows(report())
    assert REPORT_COLUMNS == ("section", "item", "measure", "currency", "amount_minor", "amount", "count", "note")
    assert all(isinstance(row, ReportRow) and len(row) == len(REPORT_COLUMNS) for row in rows)
    assert ReportRow("budget", P, "available", "EUR", 126_485, "1264.85", None, "") in rows
    assert ReportRow("paid", P, "paid in period", "EUR", 16_515, "165.15", None, "") in rows
    assert ReportRow("payout currency", "GNF", "paid in period", "GNF", 1_502, "1502", None, "") in rows
    assert ReportRow("reconciliation", "GNF", "unreconciled", "GNF", 500, "500", 1, "") in rows
    assert ReportRow("fx position", "fx:GNF", "programme position", "GNF", -1_702, "-1702", None, "") in rows
    assert ReportRow("fx difference", "GNF", "difference", "EUR", -5, "-0.05", 3, "") in rows
    assert ReportRow("vendor", "V1", "failed", "", None, "", 1, "") in rows
    assert ReportRow("counts", "payments sent", "count", "", None, "", 5, "") in rows
    assert ReportRow("exceptions", "missing_in_statement", "open", "GNF", 500, "500", 1, "") in rows
    invariants = [row for row in rows if row.section == "ledger invariants"]
    assert len(invariants) == 9 and all(row.measure == "ok" and row.count == 0 for row in invariants)
    sections = list(dict.fromkeys(row.section for row in rows))
    assert sections == ["budget", "paid", "payout currency", "reconciliation", "fx position", "fx difference",
                        "modality", "provider", "vendor", "counts", "exceptions", "ledger invariants"]


def test_a_violated_invariant_row_lists_what_is_wrong():
    broken = [p for p in ledger().postings if not (p.account == f"budget:{P}" and p.seq == 3)]
    rows = [row for row in report_rows(report(broken)) if row.item == "posting-sequence"]
    assert rows == [ReportRow("ledger invariants", "posting-sequence", "violated", "", None, "", 1,
                              f"budget:{P}: posting 3 of 18 not received")]


def test_decimal_text():
    assert decimal_text(120_000, "EUR") == "1200.00" and decimal_text(-5, "EUR") == "-0.05"
    assert decimal_text(150_000, "XOF") == "150000" and decimal_text(7, "KWD") == "0.007"
    assert decimal_text(12, "???") == "12"


def test_budget_burn_per_programme():
    mine = report()
    theirs = build_report(Q, START, END, ledger().postings, PAYMENTS)
    assert budget_burn(mine, theirs) == [
        BudgetBurn(P, "EUR", 150_000, 2_000, 22_515, 1_000, 18_515, 126_485),
        BudgetBurn(Q, "EUR", 9_000, 0, 500, 0, 500, 8_500),
    ]
    assert budget_burn(build_report("NONE", START, END, [], [])) == [BudgetBurn("NONE", None, 0, 0, 0, 0, 0, 0)]


def test_payments_per_day_per_provider_every_day_of_the_period():
    extra = pay("X1", 700, "EUR", 700, "sent", d(3, 10), provider=None, vendor="V9")
    extra_gnf = pay("X2", 9, "XOF", 9, "sent", d(3, 10))
    series = payments_per_day([*PAYMENTS, extra, extra_gnf], (d(3, 9), d(3, 11)))
    assert list(series) == ["momo", "vendor:V9"]  # bank_ci sent nothing in those days
    assert series["momo"] == [DayPoint(d(3, 9), 0, {}), DayPoint(d(3, 10), 2, {"GNF": 1_002, "XOF": 9}),
                              DayPoint(d(3, 11), 0, {})]
    assert series["vendor:V9"][1] == DayPoint(d(3, 10), 1, {"EUR": 700})
    assert len(payments_per_day(PAYMENTS, (START, END))["bank_ci"]) == 31
