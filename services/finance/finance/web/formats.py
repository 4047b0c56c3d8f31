"""Numbers, money and dates in the reader's locale (Babel), and as Jinja filters.

Money is formatted exactly from minor units: the amount is never a float, and the number of
decimals is the currency's ISO 4217 minor unit (``reintegra.money``), not CLDR's, so nothing is
rounded away (fr: ``12 345,50 €``; XOF has no decimals: ``262 383 F CFA``).
"""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from babel import Locale
from babel.dates import format_date as babel_format_date
from babel.dates import format_skeleton, get_timezone
from babel.numbers import format_decimal, parse_pattern
from jinja2 import Environment, pass_context
from jinja2.runtime import Context
from reintegra.money import MoneyError, minor_units

from .i18n import DEFAULT_LOCALE

UTC = get_timezone("UTC")


def format_money(amount_minor: int, currency: str, locale: str) -> str:
    """``amount_minor`` units of ``currency``'s minor unit, e.g. (1234550, "EUR", "fr") -> 12 345,50 €."""
    digits = minor_units(currency)
    return _format_amount(Decimal(int(amount_minor)).scaleb(-digits), currency, digits, locale)


def format_decimal_money(amount: str | Decimal, currency: str, locale: str) -> str:
    """A decimal amount as the contract writes it ({"amount": "1500.00", "currency": "EUR"})."""
    digits = minor_units(currency)
    value = Decimal(str(amount))
    if value != value.quantize(Decimal(1).scaleb(-digits)):
        raise MoneyError("too_precise", f"{amount} has more decimals than {currency} allows")
    return _format_amount(value, currency, digits, locale)


def _format_amount(value: Decimal, currency: str, digits: int, locale: str) -> str:
    babel_locale = Locale.parse(locale)
    pattern = parse_pattern(babel_locale.currency_formats["standard"].pattern)
    pattern.frac_prec = (digits, digits)
    return pattern.apply(value, babel_locale, currency=currency, currency_digits=False)


def format_number(value: int | Decimal | str, locale: str) -> str:
    return format_decimal(Decimal(str(value)), locale=locale, decimal_quantization=False)


def _as_datetime(value: datetime | str) -> datetime:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def format_datetime(value: datetime | str, locale: str) -> str:
    """The day (medium) and the time on 24 hours, in UTC, said so: "2 déc. 2026 22:25 UTC"."""
    moment = _as_datetime(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return f"{babel_format_date(moment, format='medium', locale=locale)} " \
           f"{format_skeleton('Hm', moment, tzinfo=UTC, locale=locale)} UTC"


def format_fact(value: object) -> str:
    """An upstream fact as text: a list of words joined, a structure as compact JSON."""
    if isinstance(value, list | tuple) and all(isinstance(v, str | int | float) for v in value):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return "" if value is None else str(value)


def format_date(value: date | datetime | str, locale: str) -> str:
    day = date.fromisoformat(value[:10]) if isinstance(value, str) else value
    return babel_format_date(day, format="medium", locale=locale)


# --------------------------------------------------------------------------- Jinja filters
def _locale(context: Context) -> str:
    return context.get("locale") or DEFAULT_LOCALE


def _safely(format_one, fallback):
    """A value that cannot be formatted is shown as received, never a failed page."""
    try:
        return format_one()
    except (ArithmeticError, InvalidOperation, MoneyError, TypeError, ValueError):
        return fallback


@pass_context
def money_filter(context: Context, amount_minor: int, currency: str) -> str:
    return _safely(lambda: format_money(amount_minor, currency, _locale(context)), f"{amount_minor} {currency}")


@pass_context
def amount_filter(context: Context, money: dict | None) -> str:
    """{{ review.plan_total | amount }} for {"amount": "1500.00", "currency": "EUR"}."""
    if not money:
        return ""
    return _safely(lambda: format_decimal_money(money["amount"], money["currency"], _locale(context)),
                   f"{money.get('amount')} {money.get('currency')}")


@pass_context
def number_filter(context: Context, value) -> str:
    return _safely(lambda: format_number(value, _locale(context)), str(value))


@pass_context
def datetime_filter(context: Context, value) -> str:
    return "" if value is None else _safely(lambda: format_datetime(value, _locale(context)), str(value))


@pass_context
def date_filter(context: Context, value) -> str:
    return "" if value is None else _safely(lambda: format_date(value, _locale(context)), str(value))


def install_filters(env: Environment) -> None:
    env.filters.update(money=money_filter, amount=amount_filter, number=number_filter,
                       datetime=datetime_filter, date=date_filter, fact=format_fact)
