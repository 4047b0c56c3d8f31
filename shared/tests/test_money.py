from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from reintegra.money import CurrencyMismatch, Money, MoneyError, UnknownCurrency, minor_units


def test_minor_units_follow_iso4217():
    assert minor_units("EUR") == 2
    assert minor_units("XOF") == 0
    assert minor_units("GNF") == 0
    assert minor_units("KWD") == 3


@pytest.mark.parametrize("code", ["XXQ", "eur", "", "EURO", "XAU", "XXX", None, 978])
def test_unknown_currencies(code):
    with pytest.raises(UnknownCurrency) as exc:
        minor_units(code)
    assert exc.value.code == "unknown_currency"


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [("1200.00", "EUR", 120000), ("1200", "EUR", 120000), ("0.5", "EUR", 50), ("0.01", "EUR", 1),
     ("150000", "XOF", 150000), ("007", "GNF", 7), ("1.234", "KWD", 1234)],
)
def test_parse_valid(amount, currency, minor):
    assert Money.parse(amount, currency) == Money(minor, currency)


@pytest.mark.parametrize(
    ("amount", "currency", "code"),
    [
        (1200, "EUR", "amount_not_string"),
        (12.5, "EUR", "amount_not_string"),
        (None, "EUR", "amount_not_string"),
        ("", "EUR", "amount_not_decimal"),
        ("1,5", "EUR", "amount_not_decimal"),
        ("-5", "EUR", "amount_not_decimal"),
        ("+5", "EUR", "amount_not_decimal"),
        ("1e3", "EUR", "amount_not_decimal"),
        (" 5", "EUR", "amount_not_decimal"),
        ("5.", "EUR", "amount_not_decimal"),
        (".5", "EUR", "amount_not_decimal"),
        ("NaN", "EUR", "amount_not_decimal"),
        ("١٠٠", "EUR", "amount_not_decimal"),
        ("0", "EUR", "amount_not_positive"),
        ("0.00", "EUR", "amount_not_positive"),
        ("1.234", "EUR", "too_many_fraction_digits"),
        ("100.5", "XOF", "too_many_fraction_digits"),
        ("100.0", "XOF", "too_many_fraction_digits"),
        ("1" * 30, "EUR", "amount_too_large"),
        ("1" * 5000, "XOF", "amount_too_large"),
        ("10", "XXQ", "unknown_currency"),
    ],
)
def test_parse_invalid(amount, currency, code):
    with pytest.raises(MoneyError) as exc:
        Money.parse(amount, currency)
    assert exc.value.code == code


def test_to_contract_uses_exactly_the_currency_digits():
    assert Money(120000, "EUR").to_contract() == {"amount": "1200.00", "currency": "EUR"}
    assert Money(5, "EUR").to_contract() == {"amount": "0.05", "currency": "EUR"}
    assert Money(150000, "XOF").to_contract() == {"amount": "150000", "currency": "XOF"}
    assert Money(1234, "KWD").to_contract() == {"amount": "1.234", "currency": "KWD"}
    assert Money(-150, "EUR").to_contract() == {"amount": "-1.50", "currency": "EUR"}


def test_arithmetic_and_ordering_within_one_currency():
    a, b = Money.parse("300.00", "EUR"), Money.parse("1200.00", "EUR")
    assert a + b == Money(150000, "EUR")
    assert b - a == Money(90000, "EUR")
    assert a - b == Money(-90000, "EUR")
    assert Money.zero("EUR") + a == a
    assert a < b and b >= a and max(a, b) == b
    assert a.amount == Decimal("300.00")
    assert str(a) == "300.00 EUR"


def test_mixing_currencies_is_an_error():
    with pytest.raises(CurrencyMismatch):
        Money(1, "EUR") + Money(1, "XOF")
    with pytest.raises(CurrencyMismatch):
        Money(1, "EUR") - Money(1, "XOF")
    with pytest.raises(CurrencyMismatch):
        _ = Money(1, "EUR") < Money(1, "XOF")
    assert Money(1, "EUR") != Money(1, "XOF")


def test_construction_refuses_non_int_and_unknown_currency():
    with pytest.raises(MoneyError):
        Money(1.5, "EUR")  # type: ignore[arg-type]
    with pytest.raises(MoneyError):
        Money(True, "EUR")  # type: ignore[arg-type]
    with pytest.raises(UnknownCurrency):
        Money(1, "XXQ")


def test_money_is_immutable_and_hashable():
    m = Money(1, "EUR")
    with pytest.raises(AttributeError):
        m.minor = 2  # type: ignore[misc]
    assert {m, Money(1, "EUR")} == {m}


@given(minor=st.integers(min_value=1, max_value=2**63 - 1), currency=st.sampled_from(["EUR", "XOF", "KWD", "USD"]))
def test_contract_round_trip(minor, currency):
    money = Money(minor, currency)
    contract = money.to_contract()
    assert Money.parse(contract["amount"], contract["currency"]) == money


@given(st.text(max_size=30), st.sampled_from(["EUR", "XOF", "XXQ"]))
def test_parse_raises_only_money_errors(amount, currency):
    try:
        Money.parse(amount, currency)
    except MoneyError:
        pass
