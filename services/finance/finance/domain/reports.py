"""A programme's finance report for a period (pure): budget, payments, currencies, reconciliation.

Money the ledger holds (budget, reserves, commitments, what is owed and paid per payout currency,
trading positions) comes from its postings; what was sent, settled and reconciled, per provider,
vendor and modality, from the payments. A posting counts in the period by the day it was booked,
a payment by the day it was sent (sent, failed) or settled (paid); balances are those at the end of
the period's last day. Amounts are minor units of the currency they are in; nothing converts.

The ledger's invariants are checked over every posting up to the period's end (the trading and
payee accounts are shared by every programme, so no programme's postings alone can be checked).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import NamedTuple

from reintegra.money import MoneyError, minor_units

from finance.domain.exceptions import FINAL_STATES, REPAY_APPROVED, RESOLVED, WRITTEN_OFF
from finance.domain.ledger_view import (
    CREDIT,
    PAID,
    PAYABLE,
    POST_PENDING,
    POSTED,
    TRADING,
    InvariantResult,
    LedgerPosting,
    balances,
    change_of,
    check_invariants,
    unique_postings,
)

SETTLED, SENT, FAILED = "settled", "sent", "failed"
CASH, IN_KIND = "cash", "in_kind"
FUND = "fund"


@dataclass(frozen=True)
class PaymentRecord:
    """A payment as finance knows it from disbursement's status events."""

    reference: str
    programme: str
    case_id: str | None
    provider: str | None
    vendor_id: str | None  # in kind: the vendor paid
    modality: str  # cash | in_kind
    amount_minor: int  # the payout, in `currency`
    currency: str
    programme_amount_minor: int | None  # what the programme's budget paid, in its currency
    programme_currency: str | None
    status: str  # sent | settled | failed | ...
    sent_on: date | None
    settled_on: date | None
    reconciled: bool = False  # a statement line matched it


@dataclass(frozen=True)
class ExceptionRecord:
    """An exceptions-queue item, as it stands now (its state is today's, not the period end's)."""

    kind: str
    state: str
    reference: str | None
    programme: str | None  # None: the programme of the payment it names
    amount_minor: int | None
    currency: str | None
    raised_on: date


@dataclass(frozen=True)
class BudgetFigures:
    currency: str
    funded_minor: int  # given to the budget up to the period's end
    funded_in_period_minor: int
    returned_minor: int  # came back (failed or cancelled payments, invoices below the order)
    returned_in_period_minor: int
    released_minor: int  # left the budget at release
    released_in_period_minor: int
    reserved_minor: int  # reserved for approved grants, not released yet, at the end
    committed_minor: int  # the commitment account at the end: reserved, or released and not owed yet
    available_minor: int  # funded + returned - released - reserved


@dataclass(frozen=True)
class CurrencyFigures:
    """Per payout currency: what the ledger says the programme owes and paid, and what the payments say."""

    currency: str
    owed_minor: int  # on payable accounts at the end: released, not yet paid
    paid_minor: int  # settled up to the end (the ledger's paid accounts)
    paid_in_period_minor: int
    settled_count: int  # payments settled in the period
    settled_minor: int
    reconciled_count: int  # of those, matched with a statement line
    reconciled_minor: int
    unreconciled_count: int
    unreconciled_minor: int


@dataclass(frozen=True)
class FxPosition:
    currency: str
    programme_position_minor: int  # credits - debits on fx:<currency> by this programme's conversions
    account_balance_minor: int  # the whole fx:<currency> account (every programme)


@dataclass(frozen=True)
class FxDifference:
    """What the programme's trading positions against one payout currency are worth at the conversions'
    own rates, in the programme's currency: the rounding each conversion leaves. Not 0 means
    conversions made or lost money."""

    payout_currency: str
    conversions: int
    difference_minor: int
    unpriced: int  # conversions whose rate or legs could not be read: not in the difference


@dataclass(frozen=True)
class PaymentGroup:
    by: str  # modality | provider | vendor
    key: str
    currency: str  # the payout currency
    sent_count: int  # sent in the period
    sent_minor: int
    paid_count: int  # settled in the period
    paid_minor: int
    paid_programme_minor: int  # the same, in the programme's currency
    failed_count: int
    unreconciled_count: int  # paid in the period, no statement line matched yet
    unreconciled_minor: int


@dataclass(frozen=True)
class ExceptionFigures:
    kind: str
    currency: str | None
    raised_in_period: int
    open_count: int  # not closed now, raised by the period's end
    open_minor: int
    written_off_count: int
    written_off_minor: int
    repay_approved_count: int
    resolved_count: int


@dataclass(frozen=True)
class Report:
    programme: str
    period_start: date
    period_end: date
    programme_currency: str | None
    budget: BudgetFigures | None  # None: the programme has no budget in the ledger yet
    paid_programme_minor: int  # settled in the period, in the programme's currency
    paid_programme_to_date_minor: int
    without_programme_amount: int  # settled payments with no programme amount: not in the two above
    currencies: tuple[CurrencyFigures, ...]
    fx_positions: tuple[FxPosition, ...]
    fx_differences: tuple[FxDifference, ...]
    by_modality: tuple[PaymentGroup, ...]
    by_provider: tuple[PaymentGroup, ...]
    by_vendor: tuple[PaymentGroup, ...]
    counts: dict[str, int]
    exceptions: tuple[ExceptionFigures, ...]
    invariants: tuple[InvariantResult, ...] = ()

    @property
    def ledger_ok(self) -> bool:
        return all(i.ok for i in self.invariants)


def build_report(programme: str, period_start: date, period_end: date, postings: Iterable[LedgerPosting],
                 payments: Iterable[PaymentRecord], reconciliation: Iterable[ExceptionRecord] = ()) -> Report:
    """The report of `programme` for the days `period_start`..`period_end` (both included). `postings`
    are all of the ledger's (every programme's), `payments` any (others are left out), `reconciliation`
    the exceptions queue's items."""
    if period_end < period_start:
        raise ValueError(f"the period ends ({period_end}) before it starts ({period_start})")
    period = _Period(period_start, period_end)
    to_date = unique_postings(postings, until=period_end)
    ours = [p for p in to_date if p.programme == programme]
    own_payments = [p for p in payments if p.programme == programme]
    budget = _budget(programme, to_date, period)
    currency = budget.currency if budget else _programme_currency(programme, to_date, own_payments)
    settled = [p for p in own_payments if p.status == SETTLED and p.settled_on and p.settled_on <= period_end]
    settled_in_period = [p for p in settled if period.holds(p.settled_on)]
    return Report(
        programme=programme, period_start=period_start, period_end=period_end, programme_currency=currency,
        budget=budget,
        paid_programme_minor=sum(p.programme_amount_minor or 0 for p in settled_in_period),
        paid_programme_to_date_minor=sum(p.programme_amount_minor or 0 for p in settled),
        without_programme_amount=sum(1 for p in settled if p.programme_amount_minor is None),
        currencies=_currencies(ours, settled_in_period, period),
        fx_positions=_fx_positions(ours, to_date),
        fx_differences=_fx_differences(ours, currency),
        by_modality=_groups("modality", own_payments, period, lambda p: p.modality),
        by_provider=_groups("provider", own_payments, period, lambda p: p.provider),
        by_vendor=_groups("vendor", own_payments, period, lambda p: p.vendor_id),
        counts=_counts(own_payments, period),
        exceptions=_exceptions(programme, reconciliation, own_payments, period),
        invariants=tuple(check_invariants(to_date)),
    )


# --------------------------------------------------------------------------- the ledger's figures


@dataclass(frozen=True)
class _Period:
    start: date
    end: date

    def holds(self, day: date | None) -> bool:
        return day is not None and self.start <= day <= self.end


def _posted_amount(p: LedgerPosting) -> int:
    return p.amount_minor if p.phase in (POSTED, POST_PENDING) else 0


def _budget(programme: str, to_date: list[LedgerPosting], period: _Period) -> BudgetFigures | None:
    budget_id, commitment_id = f"budget:{programme}", f"commitment:{programme}"
    on_budget = [p for p in to_date if p.account == budget_id]
    if not on_budget:
        return None
    sums = balances(p for p in to_date if p.account in (budget_id, commitment_id))
    budget = sums[budget_id]
    commitment = sums.get(commitment_id)

    credits = [p for p in on_budget if p.side == CREDIT]
    funding = [p for p in credits if p.kind == FUND]
    coming_back = [p for p in credits if p.kind != FUND]  # return, return-rest: every other credit of a budget
    moving_out = [p for p in on_budget if p.side != CREDIT]

    def total(postings: list[LedgerPosting], *, in_period: bool = False) -> int:
        return sum(_posted_amount(p) for p in postings if not in_period or period.holds(p.booked_on))

    return BudgetFigures(
        currency=on_budget[0].account_currency,
        funded_minor=total(funding), funded_in_period_minor=total(funding, in_period=True),
        returned_minor=total(coming_back), returned_in_period_minor=total(coming_back, in_period=True),
        released_minor=budget.debits_posted, released_in_period_minor=total(moving_out, in_period=True),
        reserved_minor=budget.debits_pending,
        committed_minor=commitment.held if commitment else 0,
        available_minor=budget.available,
    )


def _programme_currency(programme: str, to_date: list[LedgerPosting],
                        payments: list[PaymentRecord]) -> str | None:
    for p in to_date:
        if p.account == f"commitment:{programme}":
            return p.account_currency
    return next((p.programme_currency for p in payments if p.programme_currency), None)


def _currencies(ours: list[LedgerPosting], settled_in_period: list[PaymentRecord],
                period: _Period) -> tuple[CurrencyFigures, ...]:
    owed: dict[str, int] = defaultdict(int)
    paid: dict[str, int] = defaultdict(int)
    paid_in_period: dict[str, int] = defaultdict(int)
    for p in ours:
        if p.account_kind == PAYABLE:
            owed[p.currency] += change_of(p).held
        elif p.account_kind == PAID:
            paid[p.currency] += change_of(p).posted_credit
            if period.holds(p.booked_on):
                paid_in_period[p.currency] += change_of(p).posted_credit
    by_currency: dict[str, list[PaymentRecord]] = defaultdict(list)
    for payment in settled_in_period:
        by_currency[payment.currency].append(payment)
    result = []
    for currency in sorted(set(owed) | set(paid) | set(by_currency)):
        settled = by_currency.get(currency, [])
        reconciled = [p for p in settled if p.reconciled]
        unreconciled = [p for p in settled if not p.reconciled]
        result.append(CurrencyFigures(
            currency, owed[currency], paid[currency], paid_in_period[currency],
            len(settled), sum(p.amount_minor for p in settled),
            len(reconciled), sum(p.amount_minor for p in reconciled),
            len(unreconciled), sum(p.amount_minor for p in unreconciled)))
    return tuple(result)


def _fx_positions(ours: list[LedgerPosting], to_date: list[LedgerPosting]) -> tuple[FxPosition, ...]:
    mine: dict[str, int] = defaultdict(int)
    for p in ours:
        if p.account_kind == TRADING:
            mine[p.account] += change_of(p).posted_credit
    whole = balances(p for p in to_date if p.account in mine)
    return tuple(FxPosition(account.removeprefix("fx:"), position, whole[account].posted_credit)
                 for account, position in sorted(mine.items()))


def _fx_differences(ours: list[LedgerPosting], programme_currency: str | None) -> tuple[FxDifference, ...]:
    legs: dict[str, list[LedgerPosting]] = defaultdict(list)
    for p in ours:
        if p.account_kind == TRADING and p.conversion_id:
            legs[p.conversion_id].append(p)
    value: dict[str, Fraction] = defaultdict(Fraction)
    counted: dict[str, int] = defaultdict(int)
    unpriced: dict[str, int] = defaultdict(int)
    for conversion in legs.values():
        home = [p for p in conversion if p.currency == programme_currency]
        away = [p for p in conversion if p.currency != programme_currency]
        payout = away[0].currency if away else "?"
        counted[payout] += 1
        worth = _conversion_worth(home, away, programme_currency)
        if worth is None:
            unpriced[payout] += 1
        else:
            value[payout] += worth
    return tuple(FxDifference(c, counted[c], _round_half_up(value[c]), unpriced[c]) for c in sorted(counted))


def _conversion_worth(home: list[LedgerPosting], away: list[LedgerPosting],
                      programme_currency: str | None) -> Fraction | None:
    """The positions one conversion left on the trading accounts, in programme minor units at its
    rate (payout units per programme unit): the programme leg, plus the payout leg converted back."""
    if len(home) != 1 or len(away) != 1 or programme_currency is None:
        return None
    rate = _rate(away[0].rate)
    try:
        shift = minor_units(programme_currency) - minor_units(away[0].currency)
    except MoneyError:
        return None
    if rate is None:
        return None
    return (change_of(home[0]).posted_credit
            + Fraction(change_of(away[0]).posted_credit) * Fraction(10) ** shift / rate)


def _rate(text: str | None) -> Fraction | None:
    """A conversion's rate as the ledger writes it: "655.957", "1/655.957" or "10250.5/655.957"."""
    try:
        numerator, _, denominator = (text or "").partition("/")
        rate = Fraction(Decimal(numerator)) / Fraction(Decimal(denominator or "1"))
    except (ArithmeticError, ValueError):
        return None
    return rate if rate > 0 else None


def _round_half_up(value: Fraction) -> int:
    magnitude = (abs(value.numerator) * 2 + value.denominator) // (2 * value.denominator)
    return magnitude if value >= 0 else -magnitude


# --------------------------------------------------------------------------- the payments' figures


def _groups(by: str, payments: list[PaymentRecord], period: _Period,
            key_of: Callable[[PaymentRecord], str | None]) -> tuple[PaymentGroup, ...]:
    grouped: dict[tuple[str, str], list[PaymentRecord]] = defaultdict(list)
    for p in payments:
        key = key_of(p)
        if key and (period.holds(p.sent_on) or _paid_in(p, period)):
            grouped[(key, p.currency)].append(p)
    result = []
    for (key, currency), group in sorted(grouped.items()):
        sent = [p for p in group if period.holds(p.sent_on)]
        paid = [p for p in group if _paid_in(p, period)]
        unreconciled = [p for p in paid if not p.reconciled]
        result.append(PaymentGroup(
            by, key, currency, len(sent), sum(p.amount_minor for p in sent), len(paid),
            sum(p.amount_minor for p in paid), sum(p.programme_amount_minor or 0 for p in paid),
            sum(1 for p in sent if p.status == FAILED), len(unreconciled), sum(p.amount_minor for p in unreconciled)))
    return tuple(result)


def _paid_in(p: PaymentRecord, period: _Period) -> bool:
    return p.status == SETTLED and period.holds(p.settled_on)


def _counts(payments: list[PaymentRecord], period: _Period) -> dict[str, int]:
    sent = [p for p in payments if period.holds(p.sent_on)]
    paid = [p for p in payments if _paid_in(p, period)]
    counts = {"payments sent": len(sent), "payments settled": len(paid),
              "payments failed": sum(1 for p in sent if p.status == FAILED),
              "payments reconciled": sum(1 for p in paid if p.reconciled),
              "payments unreconciled": sum(1 for p in paid if not p.reconciled),
              "cases paid": len({p.case_id for p in paid if p.case_id})}
    # What became of the payments sent in the period, by their status now.
    for status in sorted({p.status for p in sent}):
        counts[f"sent, now {status}"] = sum(1 for p in sent if p.status == status)
    return counts


def _exceptions(programme: str, items: Iterable[ExceptionRecord], payments: list[PaymentRecord],
                period: _Period) -> tuple[ExceptionFigures, ...]:
    references = {p.reference for p in payments}
    grouped: dict[tuple[str, str], list[ExceptionRecord]] = defaultdict(list)
    for e in items:
        ours = e.programme == programme if e.programme is not None else e.reference in references
        if ours and e.raised_on <= period.end:
            grouped[(e.kind, e.currency or "")].append(e)
    result = []
    for (kind, currency), group in sorted(grouped.items()):
        open_ = [e for e in group if e.state not in FINAL_STATES]
        written_off = [e for e in group if e.state == WRITTEN_OFF]
        result.append(ExceptionFigures(
            kind, currency or None, sum(1 for e in group if period.holds(e.raised_on)),
            len(open_), sum(e.amount_minor or 0 for e in open_),
            len(written_off), sum(e.amount_minor or 0 for e in written_off),
            sum(1 for e in group if e.state == REPAY_APPROVED), sum(1 for e in group if e.state == RESOLVED)))
    return tuple(result)


# --------------------------------------------------------------------------- export and charts


class ReportRow(NamedTuple):
    """One line of the tabular export (CSV, XLSX): the amount as minor units and as decimal text."""

    section: str
    item: str
    measure: str
    currency: str
    amount_minor: int | None
    amount: str  # "1200.00", "150000"; empty without an amount
    count: int | None
    note: str


REPORT_COLUMNS = ReportRow._fields


def decimal_text(amount_minor: int, currency: str) -> str:
    """Minor units as the currency's decimal text ("-12.50"); the bare integer when the currency is unknown."""
    try:
        digits = minor_units(currency)
    except MoneyError:
        return str(amount_minor)
    sign = "-" if amount_minor < 0 else ""
    whole, fraction = divmod(abs(amount_minor), 10**digits)
    return f"{sign}{whole}.{fraction:0{digits}d}" if digits else f"{sign}{whole}"


def _row(section: str, item: str, measure: str, currency: str | None, amount_minor: int | None,
         count: int | None = None, note: str = "") -> ReportRow:
    text = decimal_text(amount_minor, currency or "") if amount_minor is not None else ""
    return ReportRow(section, item, measure, currency or "", amount_minor, text, count, note)


def report_rows(report: Report) -> list[ReportRow]:
    """The report as rows, section by section, in a fixed order."""
    rows: list[ReportRow] = []
    p, pc = report.programme, report.programme_currency
    if report.budget is not None:
        b = report.budget
        for measure, amount in (("funded", b.funded_minor), ("funded in period", b.funded_in_period_minor),
                                ("returned", b.returned_minor), ("returned in period", b.returned_in_period_minor),
                                ("released", b.released_minor), ("released in period", b.released_in_period_minor),
                                ("reserved", b.reserved_minor), ("committed", b.committed_minor),
                                ("available", b.available_minor)):
            rows.append(_row("budget", p, measure, b.currency, amount))
    rows.append(_row("paid", p, "paid in period", pc, report.paid_programme_minor))
    rows.append(_row("paid", p, "paid to date", pc, report.paid_programme_to_date_minor,
                     note=f"{report.without_programme_amount} settled payment(s) without a programme amount"
                     if report.without_programme_amount else ""))
    for c in report.currencies:
        rows += [_row("payout currency", c.currency, "owed", c.currency, c.owed_minor),
                 _row("payout currency", c.currency, "paid to date", c.currency, c.paid_minor),
                 _row("payout currency", c.currency, "paid in period", c.currency, c.paid_in_period_minor),
                 _row("payout currency", c.currency, "settled payments", c.currency, c.settled_minor, c.settled_count),
                 _row("reconciliation", c.currency, "reconciled", c.currency, c.reconciled_minor, c.reconciled_count),
                 _row("reconciliation", c.currency, "unreconciled", c.currency, c.unreconciled_minor,
                      c.unreconciled_count)]
    for f in report.fx_positions:
        rows += [_row("fx position", f"fx:{f.currency}", "programme position", f.currency, f.programme_position_minor),
                 _row("fx position", f"fx:{f.currency}", "account balance", f.currency, f.account_balance_minor)]
    for d in report.fx_differences:
        rows.append(_row("fx difference", d.payout_currency, "difference", pc, d.difference_minor, d.conversions,
                         f"{d.unpriced} conversion(s) without a readable rate" if d.unpriced else ""))
    for group in (*report.by_modality, *report.by_provider, *report.by_vendor):
        for measure, amount, count in (("sent", group.sent_minor, group.sent_count),
                                       ("paid", group.paid_minor, group.paid_count),
                                       ("unreconciled", group.unreconciled_minor, group.unreconciled_count)):
            rows.append(_row(group.by, group.key, measure, group.currency, amount, count))
        rows.append(_row(group.by, group.key, "paid in programme currency", pc, group.paid_programme_minor))
        rows.append(_row(group.by, group.key, "failed", None, None, group.failed_count))
    for name, count in report.counts.items():
        rows.append(_row("counts", name, "count", None, None, count))
    for e in report.exceptions:
        rows += [_row("exceptions", e.kind, "raised in period", None, None, e.raised_in_period),
                 _row("exceptions", e.kind, "open", e.currency, e.open_minor, e.open_count),
                 _row("exceptions", e.kind, "written off", e.currency, e.written_off_minor, e.written_off_count),
                 _row("exceptions", e.kind, "re-pay approved", None, None, e.repay_approved_count),
                 _row("exceptions", e.kind, "resolved", None, None, e.resolved_count)]
    for i in report.invariants:
        note = i.description if i.ok else "; ".join(i.violations)
        rows.append(_row("ledger invariants", i.name, "ok" if i.ok else "violated", None, None,
                         i.violation_count, note))
    return rows


@dataclass(frozen=True)
class BudgetBurn:
    """One programme's bar: the budget and what became of it, in its currency."""

    programme: str
    currency: str | None
    budget_minor: int  # funded
    reserved_minor: int
    released_minor: int
    returned_minor: int
    paid_minor: int  # settled payments to date, in the programme's currency
    available_minor: int


def budget_burn(*reports: Report) -> list[BudgetBurn]:
    """Budget vs reserved vs paid, per programme (the reports' order)."""
    result = []
    for r in reports:
        b = r.budget
        result.append(BudgetBurn(r.programme, r.programme_currency, b.funded_minor if b else 0,
                                 b.reserved_minor if b else 0, b.released_minor if b else 0,
                                 b.returned_minor if b else 0, r.paid_programme_to_date_minor,
                                 b.available_minor if b else 0))
    return result


class DayPoint(NamedTuple):
    day: date
    count: int
    amounts: dict[str, int]  # per payout currency (a provider can pay in several): minor units


def payments_per_day(payments: Iterable[PaymentRecord], period: Sequence[date]) -> dict[str, list[DayPoint]]:
    """Payments sent per day of `period` (start, end), per provider (in kind without one: vendor:<id>);
    every day of the period is there, zeros included, so a chart's axis is continuous."""
    start, end = period
    if end < start:
        raise ValueError(f"the period ends ({end}) before it starts ({start})")
    days = [start + timedelta(days=n) for n in range((end - start).days + 1)]
    per: dict[str, dict[date, list[PaymentRecord]]] = defaultdict(lambda: defaultdict(list))
    for p in payments:
        if p.sent_on is not None and start <= p.sent_on <= end:
            who = p.provider or (f"vendor:{p.vendor_id}" if p.vendor_id else "unknown")
            per[who][p.sent_on].append(p)
    result = {}
    for who in sorted(per):
        series = []
        for day in days:
            sent = per[who].get(day, [])
            amounts: dict[str, int] = defaultdict(int)
            for p in sent:
                amounts[p.currency] += p.amount_minor
            series.append(DayPoint(day, len(sent), dict(sorted(amounts.items()))))
        result[who] = series
    return result
