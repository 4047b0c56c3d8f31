"""Payout currencies and exchange rates, pure (no I/O).

- `payout_country` finds the country a payout lands in (the msisdn's region, the provider's country
  suffix, the IBAN's or BIC's country, else the case's country); `currency_of_country` its legal
  tender (CLDR through Babel).
- A `RateBook` answers "how many units of B per unit of A on this day": EUR, XOF and XAF from the
  treaty peg (655.957 XOF or XAF per EUR), every other currency from the rate finance loaded with
  the latest effective date on or before the day, cross rates through EUR. A missing rate is None,
  never a guess.
- `convert` is exact (Fractions) and rounds half up to the target currency's minor unit;
  `converted_tranches` converts a plan component whole, then splits it over its tranches with the
  largest-remainder method, so the tranches sum exactly to the converted component.

A `LockedRate` keeps both sides of the rate (units per EUR of each currency) and writes itself as
text ("1", "655.957", "1/655.957", "10250.5/655.957") that `rate_from_text` reads back exactly.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache
from typing import Any

import phonenumbers
import pycountry
from babel.numbers import get_territory_currencies
from reintegra.contract.tranches import TrancheAmount
from reintegra.money import MAX_MINOR, Money, MoneyError, is_known_currency, minor_units, split_minor

EUR = "EUR"
# Fixed by treaty (the CFA francs of UEMOA and CEMAC): never loaded, never changed.
PEGGED_PER_EUR: dict[str, Decimal] = {"XOF": Decimal("655.957"), "XAF": Decimal("655.957")}
_FIXED_PER_EUR: dict[str, Decimal] = {EUR: Decimal(1), **PEGGED_PER_EUR}

SAME_CURRENCY = "same_currency"
PEG = "peg"

# --------------------------------------------------------------------------- payout country

_IBAN = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}", re.ASCII)
# ISO 9362: 4 party (bank) characters, 2 country letters, 2 location characters, optional 3 branch.
_BIC = re.compile(r"[A-Z0-9]{4}([A-Z]{2})[A-Z0-9]{2}(?:[A-Z0-9]{3})?", re.ASCII)
_ALPHA_2 = re.compile(r"[A-Z]{2}", re.ASCII)


def _country(code: object) -> str | None:
    """`code` as an ISO 3166-1 alpha-2 country that exists ("ci" -> "CI"), else None."""
    if not isinstance(code, str):
        return None
    code = code.strip().upper()
    if not _ALPHA_2.fullmatch(code):
        return None
    return code if pycountry.countries.get(alpha_2=code) is not None else None


def _msisdn_country(msisdn: object) -> str | None:
    """The country of an E.164 number."""
    if not isinstance(msisdn, str) or not msisdn.strip().startswith("+"):
        return None
    return _parsed_msisdn_country(msisdn)


@lru_cache(maxsize=65536)  # parsing a number is the costliest step of locking a payout
def _parsed_msisdn_country(msisdn: str) -> str | None:
    try:
        number = phonenumbers.parse(msisdn.strip(), None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):  # too short or too long for its country
        return None
    # The region whose numbering plan the number fits; for a calling code only one country uses
    # (+225 is CI) that country even for a range the metadata does not know yet; +1 needs a valid number.
    region = phonenumbers.region_code_for_number(number)
    return _country(region)


def _provider_country(provider: object) -> str | None:
    """The provider name's two-letter country suffix: "orange_money_ci" -> CI, "wave-sn" -> SN."""
    if not isinstance(provider, str):
        return None
    suffix = re.split(r"[_\-.\s]", provider.strip())[-1]
    return _country(suffix) if len(suffix) == 2 else None


def _iban_country(account_number: object) -> str | None:
    if not isinstance(account_number, str):
        return None
    iban = re.sub(r"[\s-]", "", account_number).upper()
    if not _IBAN.fullmatch(iban):
        return None
    rearranged = iban[4:] + iban[:4]
    if int("".join(str(int(c, 36)) for c in rearranged)) % 97 != 1:  # ISO 13616 check digits
        return None
    return _country(iban[:2])


def _bic_country(bank_code: object) -> str | None:
    if not isinstance(bank_code, str):
        return None
    match = _BIC.fullmatch(bank_code.strip().upper())
    return _country(match.group(1)) if match else None


def payout_country(payout: Mapping[str, Any] | None, case_country: str | None) -> str | None:
    """The ISO 3166 alpha-2 country a payout lands in; None when nothing names a real country.

    mobile_money: the msisdn's country, else the provider's suffix; bank_transfer: the IBAN's country
    (check digits verified), else the BIC's; cash_pickup: the provider's suffix. Otherwise (or when
    those say nothing) `case_country`, the case's arrival or origin country."""
    found: str | None = None
    if isinstance(payout, Mapping):
        method = payout.get("method")
        if method == "mobile_money":
            found = _msisdn_country(payout.get("msisdn")) or _provider_country(payout.get("provider"))
        elif method == "bank_transfer":
            found = _iban_country(payout.get("account_number")) or _bic_country(payout.get("bank_code"))
        elif method == "cash_pickup":
            found = _provider_country(payout.get("provider"))
    return found or _country(case_country)


def currency_of_country(country: str | None) -> str | None:
    """The country's legal tender today (CLDR via Babel), among the ISO 4217 currencies Reintegra
    knows; None for an unknown country or one without such a currency."""
    return _currency_of_country(country) if isinstance(country, str) else None


@lru_cache(maxsize=1024)
def _currency_of_country(country: str) -> str | None:
    country = _country(country)
    if country is None:
        return None
    try:
        currencies = get_territory_currencies(country, tender=True)
    except (KeyError, ValueError, LookupError):
        return None
    return next((c for c in currencies if is_known_currency(c)), None)


# --------------------------------------------------------------------------- rates


@dataclass(frozen=True, slots=True)
class LoadedRate:
    """A rate finance loaded: `per_eur` units of `currency` for one euro, from `effective_date` on."""

    currency: str
    effective_date: date
    per_eur: Decimal
    source: str


def _plain(value: Decimal) -> str:
    """A Decimal without an exponent and without trailing zeros: 655.957, 10250.5, 1000."""
    return format(value.normalize(), "f")


@dataclass(frozen=True, slots=True)
class LockedRate:
    """Units of `to_currency` per unit of `from_currency` = to_per_eur / from_per_eur, exactly."""

    from_currency: str
    to_currency: str
    to_per_eur: Decimal
    from_per_eur: Decimal
    source: str  # same_currency | peg | rates:GNF@2026-11-01[,GHS@2026-10-01]
    effective_date: date | None  # the latest effective date of the loaded rows used; None for pegs

    @property
    def exact(self) -> Fraction:
        return Fraction(self.to_per_eur) / Fraction(self.from_per_eur)

    @property
    def text(self) -> str:
        """The rate as stored with a tranche or a conversion; `rate_from_text` reads it back exactly."""
        if self.from_currency == self.to_currency:
            return "1"
        if self.from_currency == EUR:
            return _plain(self.to_per_eur)
        if self.to_currency == EUR:
            return f"1/{_plain(self.from_per_eur)}"
        return f"{_plain(self.to_per_eur)}/{_plain(self.from_per_eur)}"


_DECIMAL_TEXT = r"[0-9]+(?:\.[0-9]+)?"
_RATE_TEXT = re.compile(rf"({_DECIMAL_TEXT})(?:/({_DECIMAL_TEXT}))?", re.ASCII)


def rate_from_text(text: str) -> Fraction:
    """The exact rate of a `LockedRate.text` ("1", "655.957", "1/655.957", "10250.5/655.957")."""
    match = _RATE_TEXT.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"not a rate: {text!r} (expected N, 1/N or N/M with decimal N and M)")
    numerator = Fraction(Decimal(match.group(1)))
    denominator = Fraction(Decimal(match.group(2))) if match.group(2) is not None else Fraction(1)
    if numerator == 0 or denominator == 0:
        raise ValueError(f"not a rate: {text!r} (a rate is greater than zero)")
    return numerator / denominator


class RateBook:
    """The rates known in one transaction. EUR, XOF and XAF are fixed; loaded rows for them are
    ignored (the database refuses them anyway)."""

    def __init__(self, loaded: Iterable[LoadedRate] = ()) -> None:
        by_currency: dict[str, dict[date, LoadedRate]] = {}
        for rate in loaded:
            if rate.currency in _FIXED_PER_EUR:
                continue
            rows = by_currency.setdefault(rate.currency, {})
            known = rows.get(rate.effective_date)
            if known is not None and known.per_eur != rate.per_eur:
                raise ValueError(f"two rates for {rate.currency} from {rate.effective_date}: "
                                 f"{known.per_eur} and {rate.per_eur}")
            rows[rate.effective_date] = rate
        self._dates = {c: sorted(rows) for c, rows in by_currency.items()}
        self._rows = {c: [rows[d] for d in self._dates[c]] for c, rows in by_currency.items()}

    def currencies(self) -> list[str]:
        """The currencies with at least one loaded rate, sorted."""
        return sorted(self._rows)

    def loaded_rate(self, currency: str, on: date) -> LoadedRate | None:
        """The loaded rate in force on `on`: the latest effective date on or before it."""
        dates = self._dates.get(currency)
        if not dates:
            return None
        i = bisect.bisect_right(dates, on)
        return self._rows[currency][i - 1] if i else None

    def _per_eur(self, currency: str, on: date) -> tuple[Decimal, LoadedRate | None] | None:
        if currency in _FIXED_PER_EUR:
            return _FIXED_PER_EUR[currency], None
        loaded = self.loaded_rate(currency, on)
        return (loaded.per_eur, loaded) if loaded is not None else None

    def rate(self, from_currency: str, to_currency: str, on: date) -> LockedRate | None:
        """Units of `to_currency` per unit of `from_currency` on `on`; None when a rate is missing."""
        if not (is_known_currency(from_currency) and is_known_currency(to_currency)):
            return None
        if from_currency == to_currency:
            return LockedRate(from_currency, to_currency, Decimal(1), Decimal(1), SAME_CURRENCY, None)
        source_side, target_side = self._per_eur(from_currency, on), self._per_eur(to_currency, on)
        if source_side is None or target_side is None:
            return None
        (from_per_eur, from_row), (to_per_eur, to_row) = source_side, target_side
        rows = [row for row in (from_row, to_row) if row is not None]
        if not rows:
            return LockedRate(from_currency, to_currency, to_per_eur, from_per_eur, PEG, None)
        source = "rates:" + ",".join(f"{row.currency}@{row.effective_date.isoformat()}" for row in rows)
        return LockedRate(from_currency, to_currency, to_per_eur, from_per_eur, source,
                          max(row.effective_date for row in rows))


# --------------------------------------------------------------------------- conversion


def round_half_up(value: Fraction) -> int:
    """To the nearest integer, halves away from zero (ROUND_HALF_UP)."""
    magnitude = (abs(value.numerator) * 2 + value.denominator) // (2 * value.denominator)
    return magnitude if value >= 0 else -magnitude


@lru_cache(maxsize=4096)
def _ratio(to_per_eur: Decimal, from_per_eur: Decimal) -> tuple[int, int]:
    ratio = Fraction(to_per_eur) / Fraction(from_per_eur)
    return ratio.numerator, ratio.denominator


def convert(money: Money, rate: LockedRate) -> Money:
    """`money` in `rate.to_currency`, exactly, rounded half up to that currency's minor unit."""
    if rate.from_currency != money.currency:
        raise ValueError(f"a rate from {rate.from_currency} cannot convert {money.currency}")
    if rate.from_currency == rate.to_currency:
        return money
    # Integer arithmetic on the exact ratio (Fractions are slow on the hot path); the same result as
    # round_half_up(money.minor * rate.exact * 10 ** shift).
    numerator, denominator = _ratio(rate.to_per_eur, rate.from_per_eur)
    shift = minor_units(rate.to_currency) - minor_units(money.currency)
    if shift >= 0:
        numerator *= 10**shift
    else:
        denominator *= 10**-shift
    exact = money.minor * numerator
    minor = (abs(exact) * 2 + denominator) // (2 * denominator)
    minor = minor if exact >= 0 else -minor
    if abs(minor) > MAX_MINOR:
        raise MoneyError("amount_too_large", f"{money} is too large once converted to {rate.to_currency}")
    return Money(minor, rate.to_currency)


def converted_tranches(component: Mapping[str, Any], rate: LockedRate) -> list[TrancheAmount]:
    """The component converted whole into `rate.to_currency`, then split over its tranches' shares
    (largest remainder): the tranches sum exactly to the converted component. In seq order."""
    total = convert(Money.parse(component["amount"]["amount"], component["amount"]["currency"]), rate)
    specs = sorted(component["tranches"], key=lambda t: int(t["seq"]))
    parts = split_minor(total.minor, [str(t["share_percent"]) for t in specs])
    return [TrancheAmount(int(spec["seq"]), spec["release"], Money(minor, total.currency))
            for spec, minor in zip(specs, parts, strict=True)]


def converted_tranche(component: Mapping[str, Any], seq: int, rate: LockedRate) -> Money:
    """Tranche `seq` of `converted_tranches(component, rate)`; KeyError when the component has none."""
    for tranche in converted_tranches(component, rate):
        if tranche.seq == seq:
            return tranche.amount
    raise KeyError(f"the component has no tranche {seq}")
