"""Money as integer minor units of an ISO 4217 currency.

Amounts cross the contract as decimal strings ("1200.00"); inside Reintegra they are
integers of the currency's minor unit, so no arithmetic ever touches a float.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import total_ordering

from iso4217 import Currency

# Minor-unit digits per code, read once. Codes without minor units (XAU, XDR, XXX, ...)
# are funds or test codes, not something a beneficiary can be paid in, so they are unknown.
_MINOR_UNITS: dict[str, int] = {c.code: c.exponent for c in Currency if c.exponent is not None}

# ASCII digits only ("١٠٠" is not an amount); no sign, exponent, spaces, or bare dot.
_DECIMAL = re.compile(r"([0-9]+)(?:\.([0-9]+))?", re.ASCII)

# Minor units are stored as BIGINT downstream.
MAX_MINOR = 2**63 - 1
_MAX_INTEGER_DIGITS = len(str(MAX_MINOR))


class MoneyError(ValueError):
    """An amount or currency that is not acceptable; `code` is the contract reason code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class UnknownCurrency(MoneyError):
    def __init__(self, message: str = "is not an ISO 4217 currency with minor units") -> None:
        super().__init__("unknown_currency", message)


class CurrencyMismatch(MoneyError):
    def __init__(self, left: str, right: str) -> None:
        super().__init__("currency_mismatch", f"cannot combine {left} with {right}")


def is_known_currency(currency: object) -> bool:
    return isinstance(currency, str) and currency in _MINOR_UNITS


def minor_units(currency: str) -> int:
    """Fraction digits of `currency` (EUR 2, XOF 0, GNF 0); UnknownCurrency otherwise."""
    try:
        return _MINOR_UNITS[currency]
    except (KeyError, TypeError):
        raise UnknownCurrency() from None


@total_ordering
@dataclass(frozen=True, slots=True)
class Money:
    minor: int
    currency: str

    def __post_init__(self) -> None:
        # bool is an int subclass; True cents is a bug, not money.
        if type(self.minor) is not int:
            raise MoneyError("wrong_type", "minor units must be an int")
        minor_units(self.currency)

    @classmethod
    def parse(cls, amount: object, currency: object) -> Money:
        """A contract amount: a decimal string > 0 with at most the currency's fraction digits."""
        whole, fraction = check_amount_text(amount)
        digits = minor_units(currency)  # type: ignore[arg-type]
        if len(fraction) > digits:
            raise MoneyError(
                "too_many_fraction_digits",
                f"{currency} allows at most {digits} fraction digit{'s' if digits != 1 else ''}",
            )
        if len(whole.lstrip("0")) > _MAX_INTEGER_DIGITS:
            raise MoneyError("amount_too_large", "amount is too large")
        minor = int(whole) * 10**digits + int(fraction.ljust(digits, "0") or "0")
        if minor > MAX_MINOR:
            raise MoneyError("amount_too_large", "amount is too large")
        return cls(minor, currency)  # type: ignore[arg-type]

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    @property
    def amount(self) -> Decimal:
        return Decimal(self.minor).scaleb(-minor_units(self.currency))

    def format_amount(self) -> str:
        """The amount with exactly the currency's fraction digits: "1200.00", "150000"."""
        digits = minor_units(self.currency)
        sign = "-" if self.minor < 0 else ""
        whole, fraction = divmod(abs(self.minor), 10**digits)
        return f"{sign}{whole}.{fraction:0{digits}d}" if digits else f"{sign}{whole}"

    def to_contract(self) -> dict[str, str]:
        return {"amount": self.format_amount(), "currency": self.currency}

    def __str__(self) -> str:
        return f"{self.format_amount()} {self.currency}"

    def _same_currency(self, other: Money) -> None:
        if self.currency != other.currency:
            raise CurrencyMismatch(self.currency, other.currency)

    def __add__(self, other: object) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        self._same_currency(other)
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: object) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        self._same_currency(other)
        return Money(self.minor - other.minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.minor, self.currency)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._same_currency(other)
        return self.minor < other.minor


def check_amount_text(amount: object) -> tuple[str, str]:
    """Whole and fraction digits of a positive decimal string ("12.50" -> ("12", "50")).

    Checks what can be checked without knowing the currency, so a bad currency
    does not hide a bad amount.
    """
    if not isinstance(amount, str):
        raise MoneyError("amount_not_string", 'amount must be a decimal string, e.g. "1200.00"')
    match = _DECIMAL.fullmatch(amount)
    if match is None:
        raise MoneyError("amount_not_decimal", 'amount must be a decimal string like "1200.00"')
    whole, fraction = match.group(1), match.group(2) or ""
    if not (whole + fraction).strip("0"):
        raise MoneyError("amount_not_positive", "amount must be greater than zero")
    return whole, fraction


def split_minor(total_minor: int, shares_percent: Sequence[Decimal | int | str]) -> list[int]:
    """Largest-remainder apportionment: each part is total × share rounded to a minor unit, and the
    parts sum exactly to the total (the contract's rule). Ties go to the earlier tranche."""
    if len(shares_percent) == 1 and str(shares_percent[0]) in ("100", "100.0", "100.00"):
        return [total_minor]  # the common one-tranche component, without Decimal arithmetic
    shares = [Decimal(str(s)) for s in shares_percent]
    # Scale every share to an integer so all arithmetic is exact integer arithmetic: Decimal's
    # 28 digits would round away the remainders of long amounts, and Fractions are slow.
    decimals = max(-min(s.as_tuple().exponent for s in shares), 0)
    scaled = [int(s.scaleb(decimals)) for s in shares]
    whole = 100 * 10**decimals
    if sum(scaled) != whole:
        raise ValueError(f"shares must sum to 100, got {sum(shares)}")
    parts, remainders = zip(*(divmod(total_minor * share, whole) for share in scaled), strict=True)
    parts = list(parts)
    leftover = total_minor - sum(parts)
    by_remainder = sorted(range(len(shares)), key=lambda i: (-remainders[i], i))
    for i in by_remainder[:leftover]:
        parts[i] += 1
    return parts
