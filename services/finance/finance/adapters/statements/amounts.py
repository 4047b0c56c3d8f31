"""Amounts and currencies as statements write them, into exact minor units (never a float)."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from reintegra.money import is_known_currency, minor_units

from finance.domain.statements import StatementFormatError

_NUMBER = re.compile(r"^[0-9]+(\.[0-9]+)?$")


def currency_code(text: str | None, location: str) -> str:
    code = (text or "").strip().upper()
    if not is_known_currency(code):
        raise StatementFormatError(location, f"{text!r} is not an ISO 4217 currency")
    return code


def minor_amount(text: str | None, currency: str, location: str, *, decimal_separator: str = ".",
                 thousands_separator: str = "", allow_zero: bool = False) -> int:
    """'150000' (XOF) -> 150000; '12.50' (EUR) -> 1250. More decimals than the currency has, a sign,
    letters or nothing at all are refused, saying where."""
    raw = (text or "").strip()
    cleaned = raw
    for space in (thousands_separator, "\u202f", "\xa0") if thousands_separator else ():
        cleaned = cleaned.replace(space, "")
    if decimal_separator != ".":
        cleaned = cleaned.replace(decimal_separator, ".")
    if not _NUMBER.match(cleaned):
        raise StatementFormatError(location, f"{raw!r} is not an amount (digits, at most one decimal separator)")
    digits = minor_units(currency)
    whole, _, fraction = cleaned.partition(".")
    if len(fraction.rstrip("0")) > digits:
        raise StatementFormatError(location, f"{raw} has more decimals than {currency} allows ({digits})")
    try:
        minor = int(Decimal(cleaned).scaleb(digits))
    except InvalidOperation as exc:
        raise StatementFormatError(location, f"{raw!r} is not an amount") from exc
    if minor <= 0 and not allow_zero:
        raise StatementFormatError(location, f"the amount is {raw}: a statement line moves more than nothing")
    return minor
