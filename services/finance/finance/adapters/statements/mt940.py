"""SWIFT MT940 statements, one statement per file, read with the mt-940 library (5.1.1, pinned).

The library is lenient where finance cannot be, and its errors say nowhere: it moves 30 February to
the 28th (that fix-up is switched off here), merges a :61: without a transaction type into the one
before it (refused here), and raises bare errors, so each tag is read under a guard naming its line.
Our references and the providers' transfer ids are longer than the 16 characters :61: gives them,
so the whole values are read from :86: (/EREF/..., /TXID/...) when it has them."""

from __future__ import annotations

import logging
import re
from datetime import date
from decimal import InvalidOperation
from typing import Any

import mt940

from finance.domain.statements import CREDIT, DEBIT, ParsedStatement, StatementFormatError, StatementLine

from .amounts import currency_code, minor_from_decimal

# The library logs an unreadable field whole (names, accounts) at ERROR; the refusal says where without them.
logging.getLogger("mt940.tags").setLevel(logging.CRITICAL)

_TAG = re.compile(r"^:(\d{2}[A-Z]?|NS):", re.MULTILINE)
_LAYOUT = {
    "61": "YYMMDD[MMDD] D|C|RD|RC amount type(NTRF...) reference[//bank reference]",
    "60F": "D|C YYMMDD currency amount", "60M": "D|C YYMMDD currency amount",
    "62F": "D|C YYMMDD currency amount", "62M": "D|C YYMMDD currency amount", "28C": "number[/sequence]",
}
_REQUIRED = (("20", ("20",), "transaction reference"), ("25", ("25", "25P"), "account"),
             ("28C", ("28C",), "statement number"), ("60F", ("60F", "60M"), "opening balance"),
             ("62F", ("62F", "62M"), "closing balance"))
# RD reverses a debit (money comes back in), RC a credit (money leaves).
_DIRECTION = {"D": DEBIT, "C": CREDIT, "RD": CREDIT, "RC": DEBIT}


def _decode(data: bytes) -> str:
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise StatementFormatError(f"line {line}", f"not UTF-8 text (byte {exc.start + 1} of the file)") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _why(tag: str, exc: Exception) -> str:
    if isinstance(exc, RuntimeError):
        return f"not a valid :{tag}: field ({_LAYOUT.get(tag, 'see the MT940 layout')})"
    if isinstance(exc, InvalidOperation):
        return "the amount is not a number (digits and one decimal comma)"
    return f"unreadable ({exc})"


class _Reader(mt940.models.Transactions):
    """The library's parser with each tag read under a guard that names its line in the file (it
    hooks _process_match, where the library reads one tag)."""

    def __init__(self, text: str) -> None:
        super().__init__(processors={"pre_statement": []}, options=mt940.Options.all())
        # The library drops blank lines and "-" before reading: its line i is the file's kept[i].
        self._kept = [n for n, raw in enumerate(text.split("\n"), start=1) if self.strip([raw])]
        self.entry_lines: list[int] = []

    def _process_match(self, match: re.Match[str], i: int, valid_matches: list[re.Match[str]], data: str) -> None:
        line, tag = self._kept[data.count("\n", 0, match.start())], match.group("full_tag")
        try:
            super()._process_match(match, i, valid_matches, data)
        except Exception as exc:  # noqa: BLE001 - the library raises bare errors: refused with the tag's line
            raise StatementFormatError(f"line {line}, :{tag}:", _why(tag, exc)) from None
        if tag == "61":
            if not self.transactions[-1].data.get("id"):
                raise StatementFormatError(f"line {line}, :61:", "no transaction type after the amount (NTRF, "
                                           "NMSC, ...)")
            self.entry_lines.append(line)


def _check_layout(text: str) -> dict[str, list[int]]:
    """The line of each tag; refused unless the statement has each required tag once, in order."""
    where: dict[str, list[int]] = {}
    for m in _TAG.finditer(text):
        where.setdefault(m.group(1), []).append(text.count("\n", 0, m.start()) + 1)
    if not where:
        raise StatementFormatError("line 1", "not an MT940 statement: no field (:20:, :25:, :60F:, :61:, :62F:)")
    first, last = min(min(lines) for lines in where.values()), text.rstrip("\n").count("\n") + 1
    for name, tags, what in _REQUIRED:
        lines = sorted(n for tag in tags for n in where.get(tag, []))
        if not lines:
            raise StatementFormatError(f"line {last}" if name == "62F" else f"line {first}", f"no :{name}: ({what})"
                                       + (": the file is cut short" if name == "62F" else ""))
        if len(lines) > 1:
            raise StatementFormatError(f"line {lines[1]}", f"a second :{name}: ({what}); one statement per file")
    entries = where.get("61", [])
    if entries and entries[0] < min(where.get("60F", []) + where.get("60M", [])):
        raise StatementFormatError(f"line {entries[0]}, :61:", "an entry before the opening balance")
    if entries and entries[-1] > min(where.get("62F", []) + where.get("62M", [])):
        raise StatementFormatError(f"line {entries[-1]}, :61:", "an entry after the closing balance")
    return where


def _balance(reader: _Reader, kind: str, line: int, tag: str, currency: str | None) -> tuple[int, date, str]:
    balance = reader.data.get(f"final_{kind}_balance") or reader.data.get(f"intermediate_{kind}_balance")
    location = f"line {line}, :{tag}:"
    code = currency_code(balance.amount.currency, location)
    if currency and code != currency:
        raise StatementFormatError(location, f"{code}; the opening balance is in {currency}")
    return minor_from_decimal(balance.amount.amount, code, location), balance.date, code


def parse_mt940(data: bytes) -> ParsedStatement:
    text = _decode(data)
    where = _check_layout(text)
    reader = _Reader(text)
    reader.parse(text)
    if len(reader.transactions) != len(reader.entry_lines):
        raise StatementFormatError(f"line {where['20'][0]}", f"{len(reader.entry_lines)} :61: entries read as "
                                   f"{len(reader.transactions)}")
    open_tag = "60F" if "60F" in where else "60M"
    close_tag = "62F" if "62F" in where else "62M"
    opening, start, currency = _balance(reader, "opening", where[open_tag][0], open_tag, None)
    closing, end, _ = _balance(reader, "closing", where[close_tag][0], close_tag, currency)
    lines = tuple(_entry(t.data, n, line, currency) for n, (t, line) in
                  enumerate(zip(reader.transactions, reader.entry_lines, strict=True), start=1))
    net = sum(x.amount_minor if x.direction == CREDIT else -x.amount_minor for x in lines)
    if opening + net != closing:
        raise StatementFormatError(f"line {where[close_tag][0]}, :{close_tag}:", f"the opening balance {opening} "
                                   f"and the entries ({net:+}) give {opening + net}, not the closing balance {closing}")
    return ParsedStatement("mt940", reader.data.get("transaction_reference"), reader.data.get("account_identification"),
                           currency, _day(start), _day(end), opening, closing, lines)


def _entry(data: dict[str, Any], n: int, line: int, currency: str) -> StatementLine:
    location = f"line {line}, :61:"
    mark = (data.get("status") or "").upper()
    amount = abs(minor_from_decimal(data["amount"].amount, currency, location))
    if amount == 0:
        raise StatementFormatError(location, "the amount is 0")
    # :86: continues over lines of 65 characters: its /KEY/value fields run on across them.
    details = "".join((data.get("transaction_details") or "").splitlines())
    value_date = _day(data["date"])
    return StatementLine(
        location=f":61: {n} (line {line})", booking_date=_day(data.get("entry_date")) or value_date,
        value_date=value_date, provider_ref=_field(details, "TXID") or _reference(data.get("bank_reference")),
        reference=(_reference(data.get("customer_reference")) or _field(details, "EREF")
                   or _reference(data.get("end_to_end_reference")) or _reference(data.get("extra_details"))),
        amount_minor=amount, currency=currency, direction=_DIRECTION[mark], reversal=mark.startswith("R"),
        counterparty=_field(details, "BENM") or _field(details, "ORDP") or _reference(data.get("applicant_name")),
        status="BOOK")  # an MT940 statement lists booked entries only


def _day(value: date | None) -> date | None:
    return date(value.year, value.month, value.day) if value else None  # the library's Date subclass, made plain


def _field(details: str, key: str) -> str | None:
    found = re.search(rf"/{key}/([^/]+)", details)
    return _reference(found.group(1)) if found else None


def _reference(value: str | None) -> str | None:
    value = (value or "").strip()
    return None if not value or value.upper() in ("NONREF", "NOTPROVIDED") else value
