"""Matching a provider's statement lines with the payments we sent through it (pure).

Every statement line and every expected payment lands in exactly one result:

    matched                  our payment, one debit line with its amount and currency
    amount_mismatch          our payment's reference on a debit line, another amount or currency
    missing_in_statement     sent more than `missing_after_days` days before `as_of`, on no line
    in_flight                sent more recently, on no line yet (not an exception)
    unexpected_in_statement  a debit naming none of our payments (or nothing), or a reversal of a
                             payment no line shows was paid
    duplicate_in_statement   another debit for a payment already shown paid: a second transfer, or the
                             same transfer twice in one file
    reversed                 money back (a credit or a reversal) for a payment shown paid
    seen_in_other_statement  a line another statement already showed (same provider transfer id, amount
                             and currency: statements whose periods overlap), not a second payment
    other_credit             money in naming none of our payments and not a reversal (a float top-up,
                             interest): listed, not an exception

References are compared without surrounding spaces and ignoring case (banks upper-case remittance
text; ours are lower-case hex). What earlier runs settled stands: a payment matched before is not
reported again, its line neither; a later debit for it is a duplicate, a credit a reversal.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from finance.domain.statements import StatementLine

MATCHED = "matched"
AMOUNT_MISMATCH = "amount_mismatch"
MISSING_IN_STATEMENT = "missing_in_statement"
IN_FLIGHT = "in_flight"
UNEXPECTED_IN_STATEMENT = "unexpected_in_statement"
DUPLICATE_IN_STATEMENT = "duplicate_in_statement"
REVERSED = "reversed"
SEEN_IN_OTHER_STATEMENT = "seen_in_other_statement"
OTHER_CREDIT = "other_credit"

EXCEPTION_KINDS = (AMOUNT_MISMATCH, MISSING_IN_STATEMENT, UNEXPECTED_IN_STATEMENT, DUPLICATE_IN_STATEMENT,
                   REVERSED)
# Results are listed in this order: what finance must look at first.
KINDS = (*EXCEPTION_KINDS, MATCHED, IN_FLIGHT, SEEN_IN_OTHER_STATEMENT, OTHER_CREDIT)
# The kinds that say what became of an expected payment: each payment gets exactly one of them.
PAYMENT_KINDS = (MATCHED, AMOUNT_MISMATCH, MISSING_IN_STATEMENT, IN_FLIGHT)

DEBIT, CREDIT = "debit", "credit"


def is_exception(kind: str) -> bool:
    """Whether a result of this kind goes to the exceptions queue."""
    return kind in EXCEPTION_KINDS


@dataclass(frozen=True)
class ExpectedPayment:
    reference: str
    provider: str
    case_id: str | None
    amount_minor: int
    currency: str
    sent_on: date  # the day the provider accepted it
    settled_on: date | None  # the day the provider reported it settled (None: not yet)
    modality: str  # "cash" | "in_kind" (a vendor's bank transfer): matched alike


@dataclass(frozen=True)
class ImportedLine:
    """A statement line as stored: `line_id` is stable across runs (the same line, the same id)."""

    line_id: str
    statement_id: str
    line: StatementLine


@dataclass(frozen=True)
class PriorRuns:
    """What earlier runs settled: `reconciled` maps a payment's reference to the line it was matched
    with (by a run or by hand); `open_findings` are the keys of exceptions earlier runs raised that
    are not closed yet, so this run can say which of them it makes moot."""

    reconciled: Mapping[str, str] = field(default_factory=dict)
    open_findings: Collection[str] = frozenset()


@dataclass(frozen=True, eq=True)
class MatchResult:
    kind: str
    # The same finding gets the same key in every run: `<kind>:<reference>` for what is about a
    # payment (matched, amount_mismatch, missing_in_statement, in_flight), `<kind>:<line_id>` otherwise.
    key: str
    provider: str
    reference: str | None  # the payment's reference; for a line naming none of ours, what the line says
    case_id: str | None
    line_ids: tuple[str, ...]
    statement_ids: tuple[str, ...]
    expected_minor: int | None  # what we sent
    found_minor: int | None  # what the line shows
    currency: str | None  # ours when the payment is known, else the line's
    modality: str | None
    details: Mapping[str, Any] = field(default_factory=dict, hash=False)  # JSON-ready (dates as ISO text)
    resolves: tuple[str, ...] = ()  # keys of earlier open findings this result makes moot

    @property
    def is_exception(self) -> bool:
        return is_exception(self.kind)


@dataclass(frozen=True)
class MatchOutcome:
    provider: str
    as_of: date
    results: tuple[MatchResult, ...]
    counts: Mapping[str, int]  # every kind, zeros included, in KINDS order
    # Settled by earlier runs, so not reported again: the payments' references and their lines.
    reconciled_before: tuple[str, ...] = ()
    lines_reconciled_before: tuple[str, ...] = ()

    @property
    def exceptions(self) -> tuple[MatchResult, ...]:
        return tuple(r for r in self.results if r.is_exception)

    @property
    def resolving(self) -> tuple[MatchResult, ...]:
        """The results that make an earlier open finding moot (a late line for a missing payment)."""
        return tuple(r for r in self.results if r.resolves)

    def of_kind(self, kind: str) -> tuple[MatchResult, ...]:
        return tuple(r for r in self.results if r.kind == kind)


def match(provider: str, expected: Iterable[ExpectedPayment], lines: Iterable[ImportedLine], *,
          as_of: date, missing_after_days: int, prior: PriorRuns | None = None) -> MatchOutcome:
    """Match `provider`'s imported statement lines with the payments we expect it to show.

    The result depends only on the inputs as sets: the same payments and lines in any order give
    the same outcome. ValueError when the inputs contradict themselves (a payment of another provider,
    two payments with one reference, one line id for two different lines)."""
    if missing_after_days < 0:
        raise ValueError("missing_after_days is never negative")
    prior = prior or PriorRuns()
    run = _Run(provider, _payments_by_reference(provider, expected), _ordered_lines(lines), as_of,
               missing_after_days, prior)
    return run.outcome()


# --------------------------------------------------------------------------- internals


def normal_reference(reference: str | None) -> str | None:
    """How references are compared: without surrounding spaces, ignoring case; blank is none."""
    text = (reference or "").strip().casefold()
    return text or None


def _payments_by_reference(provider: str, expected: Iterable[ExpectedPayment]) -> dict[str, ExpectedPayment]:
    payments: dict[str, ExpectedPayment] = {}
    for payment in expected:
        if payment.provider != provider:
            raise ValueError(f"payment {payment.reference} goes through {payment.provider}, not {provider}")
        reference = normal_reference(payment.reference)
        if reference is None:
            raise ValueError("an expected payment without a reference cannot be matched")
        if reference in payments:
            raise ValueError(f"two expected payments have the reference {payment.reference}")
        payments[reference] = payment
    return payments


def _natural(text: str) -> tuple:
    """Sort key putting "line-9" before "line-10"."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text))


def _line_order(item: ImportedLine) -> tuple:
    line = item.line
    # The raw ids last: "a01" and "a1" sort alike naturally, and the order must not depend on the input's.
    return (line.booking_date, line.value_date or line.booking_date, _natural(item.statement_id),
            _natural(item.line_id), item.statement_id, item.line_id)


def _ordered_lines(lines: Iterable[ImportedLine]) -> list[ImportedLine]:
    by_id: dict[str, ImportedLine] = {}
    for item in lines:
        seen = by_id.get(item.line_id)
        if seen is not None and seen != item:
            raise ValueError(f"line id {item.line_id} names two different lines")
        by_id[item.line_id] = item
    return sorted(by_id.values(), key=_line_order)


def _money_back(line: StatementLine) -> bool:
    # A reversal is money back whatever its direction says; so is any credit.
    return line.reversal or line.direction == CREDIT


def _currency(code: str | None) -> str:
    return (code or "").strip().upper()


def _same_money(item: ImportedLine, amount_minor: int, currency: str) -> bool:
    return item.line.amount_minor == amount_minor and _currency(item.line.currency) == _currency(currency)


def _same_transfer(item: ImportedLine, earlier: ImportedLine) -> bool:
    """The same provider transfer shown by two statements whose periods overlap (within one file,
    a line twice is a duplicate: a file does not show one transfer twice)."""
    return (item.line.provider_ref is not None and item.line.provider_ref == earlier.line.provider_ref
            and item.statement_id != earlier.statement_id
            and _same_money(item, earlier.line.amount_minor, earlier.line.currency))


def _line_facts(item: ImportedLine) -> dict[str, Any]:
    line = item.line
    return {"booking_date": line.booking_date.isoformat(),
            "value_date": line.value_date.isoformat() if line.value_date else None,
            "provider_ref": line.provider_ref, "line_reference": line.reference, "direction": line.direction,
            "reversal": line.reversal, "counterparty": line.counterparty, "line_status": line.status,
            "location": line.location}


def _money(amount_minor: int, currency: str) -> dict[str, Any]:
    return {"amount_minor": amount_minor, "currency": _currency(currency)}


class _Run:
    """One matching run; `outcome()` walks our references, then the lines naming none of them."""

    def __init__(self, provider: str, payments: dict[str, ExpectedPayment], lines: list[ImportedLine],
                 as_of: date, missing_after_days: int, prior: PriorRuns) -> None:
        self.provider, self.payments, self.as_of, self.missing_after_days = provider, payments, as_of, missing_after_days
        # Earlier open findings by what they are about (a key is <kind>:<reference or line id>).
        self.findings_about: dict[str, list[str]] = {}
        for finding in sorted(set(prior.open_findings)):
            kind, _, subject = finding.partition(":")
            if kind in KINDS:
                self.findings_about.setdefault(subject, []).append(finding)
        self.position = {item.line_id: i for i, item in enumerate(lines)}
        by_id = {item.line_id: item for item in lines}
        # Earlier matches: the reference (as compared) → the line it was matched with, when imported.
        # (A blank reference names nothing: it must not make lines without one "ours".)
        self.reconciled = {normal_reference(ref): line_id for ref, line_id in prior.reconciled.items()
                           if normal_reference(ref)}
        self.reconciled_as_written = {normal_reference(ref): ref for ref in prior.reconciled}
        self.anchors = {ref: by_id[line_id] for ref, line_id in self.reconciled.items() if line_id in by_id}
        reconciled_lines = set(self.reconciled.values())
        self.lines_reconciled_before = tuple(item.line_id for item in lines if item.line_id in reconciled_lines)
        ours = set(payments) | set(self.reconciled)
        self.debits: dict[str, list[ImportedLine]] = {}
        self.returns: dict[str, list[ImportedLine]] = {}
        self.strangers: list[ImportedLine] = []  # lines naming none of our payments
        for item in lines:
            if item.line_id in reconciled_lines:
                continue
            reference = normal_reference(item.line.reference)
            if reference in ours:
                (self.returns if _money_back(item.line) else self.debits).setdefault(reference, []).append(item)
            else:
                self.strangers.append(item)
        self.results: list[MatchResult] = []

    def outcome(self) -> MatchOutcome:
        reconciled_before = []
        for reference in sorted(set(self.payments) | set(self.reconciled), key=lambda r: (_natural(r), r)):
            payment = self.payments.get(reference)
            debits = self.debits.get(reference, [])
            if reference in self.reconciled:
                if payment is not None:
                    reconciled_before.append(payment.reference)
                paid_by = self.anchors.get(reference)
                shown = [paid_by] if paid_by is not None else []
                self._further_debits(payment, reference, debits, shown, matched_line=self.reconciled[reference])
                self._returns(payment, reference, paid=True, matched_line=self.reconciled[reference])
                continue
            assert payment is not None
            if not debits:
                self._not_shown(payment)
                self._returns(payment, reference, paid=False, matched_line=None)
                continue
            chosen = next((d for d in debits if _same_money(d, payment.amount_minor, payment.currency)), debits[0])
            self._shown(payment, chosen)
            self._further_debits(payment, reference, [d for d in debits if d is not chosen], [chosen],
                                 matched_line=chosen.line_id)
            self._returns(payment, reference, paid=True, matched_line=chosen.line_id)
        for item in self.strangers:
            self._stranger(item)
        self.results.sort(key=self._result_order)
        counts = Counter(r.kind for r in self.results)
        return MatchOutcome(self.provider, self.as_of, tuple(self.results), {kind: counts[kind] for kind in KINDS},
                            tuple(reconciled_before), self.lines_reconciled_before)

    # --- per payment -------------------------------------------------------------------------
    def _shown(self, payment: ExpectedPayment, item: ImportedLine) -> None:
        exact = _same_money(item, payment.amount_minor, payment.currency)
        details = {"expected": _money(payment.amount_minor, payment.currency),
                   "found": _money(item.line.amount_minor, item.line.currency), **_line_facts(item)}
        if not exact:
            details["difference_minor"] = (item.line.amount_minor - payment.amount_minor
                                           if _currency(item.line.currency) == _currency(payment.currency) else None)
        self._add(MATCHED if exact else AMOUNT_MISMATCH, payment, payment.reference, [item], details)

    def _not_shown(self, payment: ExpectedPayment) -> None:
        age = (self.as_of - payment.sent_on).days
        kind = MISSING_IN_STATEMENT if age > self.missing_after_days else IN_FLIGHT
        details = {"expected": _money(payment.amount_minor, payment.currency), "sent_on": payment.sent_on.isoformat(),
                   "settled_on": payment.settled_on.isoformat() if payment.settled_on else None,
                   "days_since_sent": age, "missing_after_days": self.missing_after_days}
        self._add(kind, payment, payment.reference, [], details)

    def _further_debits(self, payment: ExpectedPayment | None, reference: str, debits: list[ImportedLine],
                        shown: list[ImportedLine], matched_line: str) -> None:
        """Debits beyond the one that paid: the same transfer in an overlapping statement, or a duplicate."""
        for item in debits:
            earlier = next((s for s in shown if _same_transfer(item, s)), None)
            details = {"matched_line_id": matched_line, "found": _money(item.line.amount_minor, item.line.currency),
                       **_line_facts(item)}
            if payment is not None:
                details["expected"] = _money(payment.amount_minor, payment.currency)
            if earlier is not None:
                details["same_as_line_id"] = earlier.line_id
                self._add(SEEN_IN_OTHER_STATEMENT, payment, self._reference(payment, reference), [item], details)
                continue
            shown.append(item)
            self._add(DUPLICATE_IN_STATEMENT, payment, self._reference(payment, reference), [item], details)

    def _returns(self, payment: ExpectedPayment | None, reference: str, *, paid: bool,
                 matched_line: str | None) -> None:
        """Money back for one of our payments: a reversal when a line showed it paid, else unexpected."""
        shown: list[ImportedLine] = []
        for item in self.returns.get(reference, []):
            details = {"found": _money(item.line.amount_minor, item.line.currency), **_line_facts(item)}
            if payment is not None:
                details["expected"] = _money(payment.amount_minor, payment.currency)
                details["partial"] = item.line.amount_minor < payment.amount_minor
            earlier = next((s for s in shown if _same_transfer(item, s)), None)
            if earlier is not None:
                details["same_as_line_id"] = earlier.line_id
                self._add(SEEN_IN_OTHER_STATEMENT, payment, self._reference(payment, reference), [item], details)
                continue
            shown.append(item)
            if paid:
                details["matched_line_id"] = matched_line
                self._add(REVERSED, payment, self._reference(payment, reference), [item], details)
            else:
                details["why"] = "money back for a payment no statement line shows paid"
                self._add(UNEXPECTED_IN_STATEMENT, payment, self._reference(payment, reference), [item], details)

    # --- lines naming none of ours -------------------------------------------------------------
    def _stranger(self, item: ImportedLine) -> None:
        details = {"found": _money(item.line.amount_minor, item.line.currency), **_line_facts(item)}
        reference = item.line.reference.strip() if normal_reference(item.line.reference) else None
        if _money_back(item.line) and not item.line.reversal:
            self._add(OTHER_CREDIT, None, reference, [item], details)
            return
        details["why"] = ("a reversal of no payment of ours" if item.line.reversal
                          else "a debit naming none of our payments" if reference
                          else "a debit without a reference")
        self._add(UNEXPECTED_IN_STATEMENT, None, reference, [item], details)

    # --- building results ----------------------------------------------------------------------
    def _reference(self, payment: ExpectedPayment | None, reference: str) -> str:
        """Our reference as we wrote it (the payment's, or the one an earlier run matched)."""
        return payment.reference if payment is not None else self.reconciled_as_written[reference]

    def _add(self, kind: str, payment: ExpectedPayment | None, reference: str | None, items: list[ImportedLine],
             details: dict[str, Any]) -> None:
        about_payment = kind in PAYMENT_KINDS
        line_ids = tuple(i.line_id for i in items)
        key = f"{kind}:{reference if about_payment else line_ids[0]}"
        subjects = ({reference} if about_payment else set()) | set(line_ids)
        if payment is not None:
            currency = _currency(payment.currency)
        else:
            currency = _currency(items[0].line.currency) if items else None
        self.results.append(MatchResult(
            kind=kind, key=key, provider=self.provider, reference=reference,
            case_id=payment.case_id if payment else None, line_ids=line_ids,
            statement_ids=tuple(dict.fromkeys(i.statement_id for i in items)),
            expected_minor=payment.amount_minor if payment else None,
            found_minor=items[0].line.amount_minor if items else None,
            currency=currency, modality=payment.modality if payment else None, details=details,
            resolves=self._moot(key, subjects)))

    def _moot(self, key: str, subjects: set[str | None]) -> tuple[str, ...]:
        """Earlier open findings about the same payment or line that this run sees differently: a late
        line for a missing payment, a line unexpected before its payment was known, a mismatch an
        exact line now replaces."""
        return tuple(sorted({f for subject in subjects if subject is not None
                             for f in self.findings_about.get(subject, ()) if f != key}))

    def _result_order(self, result: MatchResult) -> tuple:
        first_line = min((self.position[i] for i in result.line_ids), default=-1)
        return KINDS.index(result.kind), _natural(result.reference or ""), result.reference or "", first_line
