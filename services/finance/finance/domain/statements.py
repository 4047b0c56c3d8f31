"""A provider statement as finance reads it, whatever its format (CSV, camt.053, MT940). Pure."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

DEBIT, CREDIT = "debit", "credit"


@dataclass(frozen=True)
class StatementLine:
    location: str  # where it is in its file, for messages: "line 7", "Ntry 3 (line 41)", ":61: 3 (line 12)"
    booking_date: date
    value_date: date | None
    provider_ref: str | None  # the provider's own id of the transfer
    reference: str | None  # our payment reference, when the line carries one
    amount_minor: int  # > 0, in minor units of `currency`
    currency: str
    direction: str  # DEBIT: money left the programme's account (a payment); CREDIT: money came in
    reversal: bool  # the entry reverses an earlier one
    counterparty: str | None
    status: str  # "BOOK", ...

    def __post_init__(self) -> None:
        if self.direction not in (DEBIT, CREDIT):
            raise ValueError(f"direction is {DEBIT} or {CREDIT}, not {self.direction!r}")
        if type(self.amount_minor) is not int or self.amount_minor <= 0:
            raise ValueError(f"a statement line's amount is a positive integer, not {self.amount_minor!r}")


@dataclass(frozen=True)
class ParsedStatement:
    format: str  # "csv" | "camt053" | "mt940"
    statement_id: str | None
    account: str | None
    currency: str | None
    period_start: date | None
    period_end: date | None
    opening_minor: int | None  # signed: a credit balance is positive
    closing_minor: int | None
    lines: tuple[StatementLine, ...]


class StatementFormatError(ValueError):
    """A statement refused as a whole, saying where it is wrong."""

    def __init__(self, location: str, message: str) -> None:
        super().__init__(f"{location}: {message}")
        self.location = location
        self.message = message


def line_key(line: StatementLine, occurrence: int) -> str:
    """A line's identity across formats: the CSV, camt.053 and MT940 of one day give each line the
    same key. Only what every format states in full goes in (not our reference: MT940 may cut it
    short; not the value date or counterparty: CSV layouts may lack them). Two identical lines of
    one file are told apart by their occurrence (1, 2, ...)."""
    if occurrence < 1:
        raise ValueError(f"occurrences count from 1, not {occurrence}")
    parts = (line.provider_ref or "", line.direction, "R" if line.reversal else "", str(line.amount_minor),
             line.currency.upper(), line.booking_date.isoformat(), str(occurrence))
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def line_keys(lines: Iterable[StatementLine]) -> list[str]:
    """The keys of one file's lines, in order, each identical line numbered by its occurrence."""
    seen: Counter[str] = Counter()
    keys = []
    for line in lines:
        first = line_key(line, 1)
        seen[first] += 1
        keys.append(line_key(line, seen[first]))
    return keys
