"""Amounts and currencies as statements write them, into exact minor units (never a float)."""

from __future__ import annotations

import re
from decimal import Decimal

from reintegra.money import MAX_MINOR, is_known_currency, minor_units

from finance.domain.statements import StatementFormatError

# French typography groups thousands with a (narrow) no-break space: one " " in a layout means all three.
_SPACES = (" ", "\u202f", "\xa0")


def currency_code(text: str | None, location: str) -> str:
    code = (text or "").strip().upper()
    if not code:
        raise StatementFormatError(location, "no currency")
    if not is_known_currency(code):
        raise StatementFormatError(location, f"{text!r} is not an ISO 4217 currency")
    return code


def _plain(raw: str, decimal_separator: str, thousands_separator: str) -> str | None:
    """'1 472 289,50' -> '1472289.50'; None when it is not a number written that way."""
    whole, has_fraction, fraction = raw.partition(decimal_separator)
    if thousands_separator:
        separators = _SPACES if thousands_separator in _SPACES else (thousands_separator,)
        groups = re.split("|".join(map(re.escape, separators)), whole)
        # Grouped thousands are groups of three after the first: "1 2 3" is a typo, not 123.
        if len(groups) > 1 and not (1 <= len(groups[0]) <= 3 and all(len(g) == 3 for g in groups[1:])):
            return None
        whole = "".join(groups)
    digits = re.compile(r"[0-9]+", re.ASCII)
    if not digits.fullmatch(whole) or (has_fraction and not digits.fullmatch(fraction)):
        return None
    return f"{whole}.{fraction}" if has_fraction else whole


def minor_amount(text: str | None, currency: str, location: str, *, decimal_separator: str = ".",
                 thousands_separator: str = "", allow_zero: bool = False) -> int:
    """'150000' (XOF) -> 150000; '12.50' (EUR) -> 1250. A sign, letters, more decimals than the
    currency has, or nothing at all are refused, saying where."""
    raw = (text or "").strip()
    plain = _plain(raw, decimal_separator, thousands_separator)
    if plain is None:
        raise StatementFormatError(location, f"{raw!r} is not an amount (unsigned digits, "
                                   f"{decimal_separator!r} before the decimals)")
    digits = minor_units(currency)
    if len(plain.partition(".")[2].rstrip("0")) > digits:
        raise StatementFormatError(location, f"{raw} has more decimals than {currency} allows ({digits})")
    minor = int(Decimal(plain).scaleb(digits))
    if minor == 0 and not allow_zero:
        raise StatementFormatError(location, f"the amount is {raw}: a statement line moves more than nothing")
    if minor > MAX_MINOR:
        raise StatementFormatError(location, f"{raw} {currency} is beyond any account's balance")
    return minor


def minor_from_decimal(value: Decimal, currency: str, location: str) -> int:
    """A library's Decimal (signed) into minor units, refusing fractions of the minor unit."""
    scaled = value.scaleb(minor_units(currency))
    if scaled != scaled.to_integral_value():
        raise StatementFormatError(location, f"{value} has more decimals than {currency} allows "
                                   f"({minor_units(currency)})")
    if abs(scaled) > MAX_MINOR:
        raise StatementFormatError(location, f"{value} {currency} is beyond any account's balance")
    return int(scaled)
