"""SWIFT MT940 statements, read with the mt-940 library.

Our references and the providers' transfer ids are longer than the 16 characters MT940 allows in
:61:, so both are read whole from the :86: field (/EREF/..., /TXID/...), else from the :61:
supplementary line and the bank reference (after //)."""

from __future__ import annotations

import re
from decimal import Decimal

import mt940

from finance.domain.statements import CREDIT, DEBIT, ParsedStatement, StatementFormatError, StatementLine

from .amounts import currency_code

_TAG = re.compile(r"^:(\d{2}[A-Z]?):", re.MULTILINE)
_EREF = re.compile(r"/EREF/([^/\n]+)")
_TXID = re.compile(r"/TXID/([^/\n]+)")
_REFERENCE = re.compile(r"\bRG-[0-9a-fA-F]{8,}(?:-\d+)?\b")


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise StatementFormatError(f"line {line}", "not UTF-8 text") from None


def _tag_lines(text: str) -> list[tuple[str, int]]:
    return [(m.group(1), text.count("\n", 0, m.start()) + 1) for m in _TAG.finditer(text)]


def _require(tags: list[tuple[str, int]], text: str) -> None:
    names = [t for t, _ in tags]
    last_line = text.count("\n") + 1
    if not names:
        raise StatementFormatError("line 1", "no MT940 field (:20:, :25:, :60F:, ...)")
    for needed, what in (("20", "transaction reference"), ("25", "account"), ("28C", "statement number")):
        if needed not in names:
            raise StatementFormatError("line 1", f"no :{needed}: ({what})")
    if not {"60F", "60M"} & set(names):
        raise StatementFormatError("line 1", "no :60F: opening balance")
    if not {"62F", "62M"} & set(names):
        raise StatementFormatError(f"line {last_line}", "no :62F: closing balance: the file is cut short")


def _minor(amount, currency: str, location: str) -> int:
    from reintegra.money import minor_units

    value = Decimal(str(amount.amount))
    scaled = value.scaleb(minor_units(currency))
    if scaled != scaled.to_integral_value():
        raise StatementFormatError(location, f"{value} has more decimals than {currency} allows")
    return int(scaled)


def parse_mt940(data: bytes) -> ParsedStatement:
    text = _text(data).replace("\r\n", "\n")
    tags = _tag_lines(text)
    _require(tags, text)
    try:
        statement = mt940.models.Transactions()
        statement.parse(text)
    except Exception as exc:  # noqa: BLE001 - the library raises bare errors: reported with a location
        raise StatementFormatError("line ?", f"unreadable MT940: {exc}") from None
    lines_of_61 = [line for tag, line in tags if tag == "61"]
    if len(lines_of_61) != len(statement.transactions):
        raise StatementFormatError(f"line {lines_of_61[len(statement.transactions)] if len(lines_of_61) > len(statement.transactions) else '?'}",
                                   "a :61: entry could not be read")
    opening = statement.data.get("final_opening_balance") or statement.data.get("intermediate_opening_balance")
    closing = statement.data.get("final_closing_balance") or statement.data.get("intermediate_closing_balance")
    currency = currency_code(getattr(opening.amount, "currency", None) if opening else None, "line 1, :60F:")
    lines = tuple(_entry(t.data, n, line, currency) for n, (t, line) in
                  enumerate(zip(statement.transactions, lines_of_61, strict=True), start=1))
    opening_minor = _minor(opening.amount, currency, ":60F:") if opening else None
    closing_minor = _minor(closing.amount, currency, ":62F:") if closing else None
    if opening_minor is not None and closing_minor is not None:
        net = sum(x.amount_minor if x.direction == CREDIT else -x.amount_minor for x in lines)
        if opening_minor + net != closing_minor:
            closing_line = next(line for tag, line in tags if tag in ("62F", "62M"))
            raise StatementFormatError(f"line {closing_line}, :62F:", f"the opening balance {opening_minor} and "
                                       f"the entries ({net:+}) do not give the closing balance {closing_minor}")
    days = [x.booking_date for x in lines]
    return ParsedStatement("mt940", statement.data.get("transaction_reference"),
                           statement.data.get("account_identification"), currency, min(days, default=None),
                           max(days, default=None), opening_minor, closing_minor, lines)


def _entry(data: dict, n: int, line: int, statement_currency: str) -> StatementLine:
    location = f":61: {n} (line {line})"
    mark = (data.get("status") or "").upper()
    if mark not in ("D", "C", "RD", "RC"):
        raise StatementFormatError(location, f"{mark!r} is not a debit/credit mark (D, C, RD, RC)")
    currency = currency_code(data.get("currency") or statement_currency, location)
    amount = abs(_minor(data["amount"], currency, location))
    if amount == 0:
        raise StatementFormatError(location, "the amount is 0")
    # RD reverses a debit (money comes back), RC a credit.
    direction = DEBIT if mark in ("D", "RC") else CREDIT
    details = data.get("transaction_details") or ""
    extra = data.get("extra_details") or ""
    eref = _EREF.search(details)
    reference = (eref.group(1).strip() if eref else None) or _first_reference(extra, details) or \
        _none_if_empty(data.get("customer_reference"))
    booked = data.get("date")
    txid = _TXID.search(details)  # the whole id: the bank reference of :61: holds 16 characters at most
    provider_ref = txid.group(1).strip() if txid else _none_if_empty(data.get("bank_reference"))
    return StatementLine(location=location, booking_date=booked and _as_date(booked), value_date=None,
                         provider_ref=provider_ref, reference=reference,
                         amount_minor=amount, currency=currency, direction=direction, reversal=mark.startswith("R"),
                         counterparty=_benm(details), status="BOOK")


def _as_date(value):
    from datetime import date

    return date(value.year, value.month, value.day)


def _first_reference(*texts: str) -> str | None:
    for text in texts:
        found = _REFERENCE.search(text or "")
        if found:
            return found.group(0)
    return None


def _none_if_empty(value: str | None) -> str | None:
    value = (value or "").strip()
    return None if not value or value.upper() == "NONREF" else value


def _benm(details: str) -> str | None:
    found = re.search(r"/BENM/([^/\n]+)", details)
    return found.group(1).strip() if found else None
