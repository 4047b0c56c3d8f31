"""Amounts on the wire: decimal strings in major units, checked against the ISO 4217 exponent."""

from __future__ import annotations

import re
from decimal import Decimal
from functools import cache

import iso4217

MAX_MINOR = 10**15
_DECIMAL = re.compile(r"^(0|[1-9][0-9]*)(?:\.([0-9]+))?$")


@cache
def exponent(currency: str) -> int:
    """Minor-unit digits of `currency` (EUR 2, XOF 0); ValueError for an unknown code."""
    try:
        digits = iso4217.Currency(currency).exponent
    except (ValueError, KeyError) as exc:
        raise ValueError(f"unknown ISO 4217 currency {currency!r}") from exc
    return digits or 0  # funds and metals have no exponent: whole units only


def parse_major(text: str, currency: str) -> int:
    """`"12.50"` EUR → 1250 minor units. Refuses signs, exponents, and excess fraction digits."""
    match = _DECIMAL.match(text)
    if match is None:
        raise ValueError("amount must be a positive decimal string such as '15000' or '12.50'")
    digits = exponent(currency)
    fraction = match.group(2) or ""
    if len(fraction) > digits:
        raise ValueError(f"{currency} allows {digits} fraction digit(s), got {len(fraction)}")
    minor = int(match.group(1)) * 10**digits + int(fraction.ljust(digits, "0") or 0)
    if not 0 < minor < MAX_MINOR:
        raise ValueError("amount must be greater than zero and below 10^15 minor units")
    return minor


def format_major(minor: int, currency: str) -> str:
    """1250 EUR → `"12.50"`; 15000 XOF → `"15000"`."""
    digits = exponent(currency)
    return f"{Decimal(minor).scaleb(-digits):.{digits}f}"
