"""Payout countries and currencies, the rate book, exact conversion and converted tranches (pure)."""

from __future__ import annotations

import dataclasses
from datetime import date
from decimal import Decimal
from fractions import Fraction

import pytest
from disbursement.domain.currency import (
    PEGGED_PER_EUR,
    LoadedRate,
    LockedRate,
    RateBook,
    convert,
    converted_tranche,
    converted_tranches,
    currency_of_country,
    payout_country,
    rate_from_text,
)
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from reintegra.contract.tranches import TrancheAmount, component_tranches
from reintegra.money import Money, MoneyError, minor_units

DAY = date(2026, 11, 15)


def mobile(msisdn=None, provider=None):
    payout = {"method": "mobile_money"}
    if msisdn is not None:
        payout["msisdn"] = msisdn
    if provider is not None:
        payout["provider"] = provider
    return payout


def bank(account_number=None, bank_code=None):
    payout = {"method": "bank_transfer"}
    if account_number is not None:
        payout["account_number"] = account_number
    if bank_code is not None:
        payout["bank_code"] = bank_code
    return payout


def component(amount: str, currency: str, shares, releases=None) -> dict:
    releases = releases or ["on_approval"] + [f"milestone:m{i}" for i in range(1, len(shares))]
    return {"amount": {"amount": amount, "currency": currency},
            "tranches": [{"seq": i + 1, "share_percent": str(s), "release": r}
                         for i, (s, r) in enumerate(zip(shares, releases, strict=True))]}


# --------------------------------------------------------------------------------------------
# payout_country
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("msisdn", "country"), [
    ("+2250701020304", "CI"), ("+2250709998877", "CI"), ("+221771234567", "SN"), ("+237671234567", "CM"),
    ("+224621234567", "GN"), ("+22376123456", "ML"), ("+22670123456", "BF"), ("+2348031234567", "NG"),
    ("+2203012345", "GM"), ("+233241234567", "GH"), ("+212612345678", "MA"),
    ("+225 07 01 02 03 04", "CI"),  # spaces are tolerated
])
def test_mobile_money_country_is_the_msisdn_region(msisdn, country):
    assert payout_country(mobile(msisdn, "orange_money_sn"), "FR") == country  # msisdn wins over the rest


@pytest.mark.parametrize(("provider", "country"), [
    ("orange_money_ci", "CI"), ("mtn_momo_ci", "CI"), ("wave_sn", "SN"), ("orange_money_cm", "CM"),
    ("orange_money_gn", "GN"), ("mtn-momo-gh", "GH"), ("ORANGE_MONEY_ML", "ML"),
])
def test_mobile_money_without_a_usable_msisdn_uses_the_provider_suffix(provider, country):
    assert payout_country(mobile(None, provider), None) == country
    assert payout_country(mobile("not a number", provider), None) == country
    assert payout_country(mobile("+22501", provider), None) == country  # too short to be a number
    assert payout_country(mobile("+80012345678", provider), None) == country  # non-geographic
    assert payout_country(mobile("2250701020304", provider), None) == country  # not E.164 (no +)


@pytest.mark.parametrize("provider", ["orange_money", "wave", "mtn_momo_uk", "momo_xx", "orange_money_civ", "", "_"])
def test_a_provider_without_a_real_country_suffix_falls_back_to_the_case(provider):
    assert payout_country(mobile(None, provider), "GN") == "GN"
    assert payout_country(mobile(None, provider), None) is None


def test_shared_calling_code_needs_a_valid_number():
    assert payout_country(mobile("+12025550123"), None) == "US"
    assert payout_country(mobile("+18765550123"), None) == "JM"
    assert payout_country(mobile("+12005550123"), "SN") == "SN"  # +1 200 is no country's range


@pytest.mark.parametrize(("iban", "country"), [
    ("CI93CI0080111301134291200589", "CI"), ("SN08SN0100152000048500003035", "SN"),
    ("MA64011519000001205000534921", "MA"), ("FR1420041010050500013M02606", "FR"),
    ("fr14 2004 1010 0505 0001 3m02 606", "FR"),  # spaces and case are tolerated
    ("GB29NWBK60161331926819", "GB"),
])
def test_bank_transfer_country_is_the_iban_country(iban, country):
    assert payout_country(bank(iban, "SGSNSNDA"), "ML") == country  # the IBAN wins over the BIC


@pytest.mark.parametrize(("bic", "country"), [
    ("SGCICIAB", "CI"), ("SGSNSNDA", "SN"), ("ECOCCMCX", "CM"), ("ECOCGNCNXXX", "GN"), ("bmcemamc", "MA"),
])
def test_bank_transfer_without_an_iban_uses_the_bic_country(bic, country):
    assert payout_country(bank("0123456789", bic), "FR") == country
    assert payout_country(bank("CI93CI0080111301134291200580", bic), None) == country  # wrong check digits
    assert payout_country(bank("XX93CI0080111301134291200589", bic), None) == country  # no country XX
    assert payout_country(bank(None, bic), None) == country


@pytest.mark.parametrize("bank_code", ["CI131", "SN01", "SGCIXXAB", "SGCI12AB", "SGCICIABX", "SGCICIA", "", None, 42])
def test_bank_transfer_without_iban_or_bic_falls_back_to_the_case(bank_code):
    assert payout_country(bank("0123", bank_code), "CI") == "CI"
    assert payout_country(bank(987654321, bank_code), None) is None


def test_cash_pickup_uses_the_provider_suffix_else_the_case():
    assert payout_country({"method": "cash_pickup", "provider": "western_union_gn"}, "CI") == "GN"
    assert payout_country({"method": "cash_pickup", "provider": "ria"}, "CI") == "CI"
    assert payout_country({"method": "cash_pickup", "msisdn": "+221771234567"}, "ci") == "CI"  # msisdn not read


@pytest.mark.parametrize("payout", [None, {}, {"method": "cheque"}, {"method": None}, "mobile_money", 42, []])
def test_no_usable_payout_falls_back_to_the_case_country(payout):
    assert payout_country(payout, "SN") == "SN"
    assert payout_country(payout, " sn ") == "SN"
    assert payout_country(payout, None) is None


@pytest.mark.parametrize("case_country", ["XX", "UK", "EU", "CIV", "C", "", "12", 225, None])
def test_a_case_country_that_is_no_country_gives_none(case_country):
    assert payout_country(None, case_country) is None
    assert payout_country(mobile(None, "wave"), case_country) is None


# --------------------------------------------------------------------------------------------
# currency_of_country
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("country", "currency"), [
    ("CI", "XOF"), ("SN", "XOF"), ("ML", "XOF"), ("BF", "XOF"), ("CM", "XAF"), ("GN", "GNF"), ("NG", "NGN"),
    ("GM", "GMD"), ("GH", "GHS"), ("MA", "MAD"), ("FR", "EUR"), ("ci", "XOF"),
])
def test_currency_of_country(country, currency):
    assert currency_of_country(country) == currency


@pytest.mark.parametrize("country", [None, "", "XX", "UK", "EU", "CIV", 225, "AQ"])
def test_no_currency_for_what_is_no_country_or_has_no_tender(country):
    assert currency_of_country(country) is None


def test_payout_to_currency_end_to_end():
    assert currency_of_country(payout_country(mobile("+224621234567", "orange_money_gn"), "CI")) == "GNF"
    assert currency_of_country(payout_country(bank("0123", "ECOCCMCX"), None)) == "XAF"


# --------------------------------------------------------------------------------------------
# LockedRate text and rate_from_text
# --------------------------------------------------------------------------------------------

GNF = LoadedRate("GNF", date(2026, 11, 1), Decimal("10250.5"), "BCRG fixing")
GHS = LoadedRate("GHS", date(2026, 10, 1), Decimal("16.25"), "BoG")
BOOK = RateBook([GNF, GHS])


@pytest.mark.parametrize(("frm", "to", "text", "exact", "source", "effective"), [
    ("EUR", "EUR", "1", Fraction(1), "same_currency", None),
    ("GNF", "GNF", "1", Fraction(1), "same_currency", None),
    ("EUR", "XOF", "655.957", Fraction(655957, 1000), "peg", None),
    ("EUR", "XAF", "655.957", Fraction(655957, 1000), "peg", None),
    ("XOF", "EUR", "1/655.957", Fraction(1000, 655957), "peg", None),
    ("XOF", "XAF", "655.957/655.957", Fraction(1), "peg", None),
    ("EUR", "GNF", "10250.5", Fraction(20501, 2), "rates:GNF@2026-11-01", date(2026, 11, 1)),
    ("GNF", "EUR", "1/10250.5", Fraction(2, 20501), "rates:GNF@2026-11-01", date(2026, 11, 1)),
    ("XOF", "GNF", "10250.5/655.957", Fraction(10250500, 655957), "rates:GNF@2026-11-01", date(2026, 11, 1)),
    ("GHS", "GNF", "10250.5/16.25", Fraction(410020, 650), "rates:GHS@2026-10-01,GNF@2026-11-01", date(2026, 11, 1)),
])
def test_locked_rates(frm, to, text, exact, source, effective):
    rate = BOOK.rate(frm, to, DAY)
    assert rate is not None
    assert (rate.from_currency, rate.to_currency) == (frm, to)
    assert (rate.text, rate.exact, rate.source, rate.effective_date) == (text, exact, source, effective)
    assert rate_from_text(rate.text) == rate.exact


def test_rate_text_has_no_exponent_nor_trailing_zeros():
    book = RateBook([LoadedRate("NGN", date(2026, 1, 1), Decimal("1.6E+3"), "x"),
                     LoadedRate("GHS", date(2026, 1, 1), Decimal("16.2500"), "x")])
    assert book.rate("EUR", "NGN", DAY).text == "1600"
    assert book.rate("GHS", "EUR", DAY).text == "1/16.25"


def test_locked_rate_is_frozen():
    rate = BOOK.rate("EUR", "XOF", DAY)
    with pytest.raises(dataclasses.FrozenInstanceError):
        rate.source = "guess"  # type: ignore[misc]
    assert PEGGED_PER_EUR == {"XOF": Decimal("655.957"), "XAF": Decimal("655.957")}


@pytest.mark.parametrize("text", ["", "0", "1/0", "0/5", "1/", "/2", "1//2", "-1", "1e3", "1,5", " 1", "1.", ".5",
                                  "١", "1/2/3", None, 1])
def test_rate_from_text_refuses_what_is_no_rate(text):
    with pytest.raises(ValueError):
        rate_from_text(text)


def test_rate_from_text_is_exact():
    assert rate_from_text("655.957") == Fraction(655957, 1000)
    assert rate_from_text("1/3") == Fraction(1, 3)
    assert rate_from_text("0.000000000001/655.957") == Fraction(1, 655957 * 10**9)


# --------------------------------------------------------------------------------------------
# RateBook
# --------------------------------------------------------------------------------------------


def test_the_latest_effective_date_on_or_before_the_day_applies():
    book = RateBook([LoadedRate("GNF", date(2026, 11, 1), Decimal("10250.5"), "a"),
                     LoadedRate("GNF", date(2026, 12, 1), Decimal("10300"), "b"),
                     LoadedRate("GNF", date(2026, 11, 15), Decimal("10275.25"), "c")])
    assert book.rate("EUR", "GNF", date(2026, 10, 31)) is None  # before the first: no rate, no guess
    assert book.rate("EUR", "GNF", date(2026, 11, 1)).text == "10250.5"
    assert book.rate("EUR", "GNF", date(2026, 11, 14)).text == "10250.5"
    assert book.rate("EUR", "GNF", date(2026, 11, 15)).source == "rates:GNF@2026-11-15"
    assert book.rate("EUR", "GNF", date(2026, 11, 30)).text == "10275.25"
    assert book.rate("EUR", "GNF", date(2030, 1, 1)).text == "10300"
    assert book.rate("EUR", "GNF", date(2030, 1, 1)).effective_date == date(2026, 12, 1)
    assert book.loaded_rate("GNF", date(2026, 11, 20)).source == "c"
    assert book.currencies() == ["GNF"]


def test_missing_rates_are_none():
    assert RateBook().rate("EUR", "GNF", DAY) is None
    assert RateBook().rate("GNF", "XOF", DAY) is None
    assert BOOK.rate("NGN", "GNF", DAY) is None  # one side missing
    assert BOOK.rate("EUR", "NGN", DAY) is None
    assert BOOK.rate("EUR", "XXX", DAY) is None  # no minor units: not a currency Reintegra knows
    assert BOOK.rate("EUR", "ABC", DAY) is None
    assert BOOK.rate("ABC", "ABC", DAY) is None


def test_pegs_need_no_loaded_rate_and_loaded_rows_cannot_move_them():
    book = RateBook([LoadedRate("XOF", date(2020, 1, 1), Decimal("700"), "wrong"),
                     LoadedRate("EUR", date(2020, 1, 1), Decimal("2"), "wrong")])
    assert book.rate("EUR", "XOF", date(1999, 1, 1)).text == "655.957"
    assert book.rate("XAF", "EUR", DAY).exact == Fraction(1000, 655957)
    assert book.currencies() == []


def test_two_values_for_one_currency_and_date_are_refused():
    with pytest.raises(ValueError, match="two rates"):
        RateBook([GNF, dataclasses.replace(GNF, per_eur=Decimal("10250.6"))])
    assert RateBook([GNF, dataclasses.replace(GNF, source="again")]).currencies() == ["GNF"]


# --------------------------------------------------------------------------------------------
# convert
# --------------------------------------------------------------------------------------------


def eur_to(currency: str, per_eur: str | None = None) -> LockedRate:
    book = RateBook([LoadedRate(currency, date(2026, 1, 1), Decimal(per_eur), "t")] if per_eur else [])
    rate = book.rate("EUR", currency, DAY)
    assert rate is not None
    return rate


def test_known_conversions():
    xof = eur_to("XOF")
    assert convert(Money.parse("300.00", "EUR"), xof) == Money(196787, "XOF")  # 196787.1
    assert convert(Money.parse("100.00", "EUR"), xof) == Money(65596, "XOF")  # 65595.7 rounds up
    assert convert(Money.parse("0.01", "EUR"), xof) == Money(7, "XOF")  # 6.55957
    assert convert(Money(196787, "XOF"), BOOK.rate("XOF", "EUR", DAY)) == Money.parse("300.00", "EUR")  # 299.99986
    assert convert(Money(65596, "XOF"), BOOK.rate("XOF", "EUR", DAY)) == Money.parse("100.00", "EUR")
    assert convert(Money.parse("1200.00", "EUR"), eur_to("GNF", "10250.5")) == Money(12300600, "GNF")
    assert convert(Money.parse("0.03", "EUR"), eur_to("GNF", "10250.5")) == Money(308, "GNF")  # 307.515
    assert convert(Money(150000, "XOF"), BOOK.rate("XOF", "GNF", DAY)) == Money(2344018, "GNF")  # 2344017.977
    assert convert(Money(150000, "XOF"), BOOK.rate("XOF", "XAF", DAY)) == Money(150000, "XAF")


def test_half_up_ties():
    # 0.05 EUR at 10.5 NGN per EUR is 0.525 NGN = 52.5 kobo: up to 53; 0.01 EUR is 10.5 kobo: up to 11.
    ngn = eur_to("NGN", "10.5")
    assert convert(Money(5, "EUR"), ngn) == Money(53, "NGN")
    assert convert(Money(1, "EUR"), ngn) == Money(11, "NGN")
    # 1.00 EUR at 2.5 GNF (no minor unit) is 2.5 GNF: up to 3; 3.00 EUR is 7.5: up to 8.
    gnf = eur_to("GNF", "2.5")
    assert convert(Money.parse("1.00", "EUR"), gnf) == Money(3, "GNF")
    assert convert(Money.parse("3.00", "EUR"), gnf) == Money(8, "GNF")
    assert convert(Money.parse("1.00", "EUR"), eur_to("GNF", "2.4999999999")) == Money(2, "GNF")
    # negative amounts round half away from zero, the mirror image
    assert convert(Money(-1, "EUR"), ngn) == Money(-11, "NGN")


def test_convert_refuses_a_rate_for_another_currency():
    with pytest.raises(ValueError, match="cannot convert"):
        convert(Money(100, "XOF"), eur_to("XOF"))


def test_convert_refuses_amounts_too_large_for_storage():
    with pytest.raises(MoneyError):
        convert(Money(2**62, "EUR"), eur_to("GNF", "1000000000"))


def test_same_currency_conversion_is_the_identity():
    same = BOOK.rate("GNF", "GNF", DAY)
    assert convert(Money(12345, "GNF"), same) == Money(12345, "GNF")


# --------------------------------------------------------------------------------------------
# converted_tranches
# --------------------------------------------------------------------------------------------


def test_converted_tranches_split_the_converted_component():
    plan = component("1000.00", "EUR", ["33.33", "33.33", "33.34"])
    tranches = converted_tranches(plan, eur_to("XOF"))
    # 655957 XOF: 218630.4681 + 218630.4681 + 218696.0638; the one left over goes to the largest
    # remainder, the earlier of two equal ones.
    assert tranches == [TrancheAmount(1, "on_approval", Money(218631, "XOF")),
                        TrancheAmount(2, "milestone:m1", Money(218630, "XOF")),
                        TrancheAmount(3, "milestone:m2", Money(218696, "XOF"))]
    assert sum(t.amount.minor for t in tranches) == convert(Money.parse("1000.00", "EUR"), eur_to("XOF")).minor
    assert converted_tranche(plan, 3, eur_to("XOF")) == Money(218696, "XOF")
    with pytest.raises(KeyError):
        converted_tranche(plan, 4, eur_to("XOF"))


def test_converted_tranches_are_in_seq_order_whatever_the_order_given():
    plan = component("300.00", "EUR", [60, 40])
    plan["tranches"].reverse()
    assert [t.seq for t in converted_tranches(plan, eur_to("XOF"))] == [1, 2]
    assert [t.amount for t in converted_tranches(plan, eur_to("XOF"))] == [Money(118072, "XOF"), Money(78715, "XOF")]


def test_same_currency_tranches_are_the_contract_tranches():
    plan = component("1200.00", "EUR", ["12.5", "37.5", "50"])
    assert converted_tranches(plan, BOOK.rate("EUR", "EUR", DAY)) == component_tranches(plan)


def test_a_component_in_another_currency_than_the_rate_is_refused():
    with pytest.raises(ValueError):
        converted_tranches(component("150000", "XOF", [100]), eur_to("XOF"))


# --- properties ------------------------------------------------------------------------------

CURRENCIES = ["EUR", "XOF", "XAF", "GNF", "NGN", "GHS", "GMD"]


@st.composite
def shares(draw) -> list[str]:
    """1 to 5 shares summing to exactly 100: whole percents or hundredths of a percent."""
    count = draw(st.integers(1, 5))
    unit = draw(st.sampled_from([1, 100]))  # 1: whole percents, 100: two decimals
    total = 100 * unit
    cuts = sorted(draw(st.lists(st.integers(1, total - 1), min_size=count - 1, max_size=count - 1, unique=True)))
    parts = [b - a for a, b in zip([0, *cuts], [*cuts, total], strict=True)]
    return [str(p) if unit == 1 else str(Decimal(p).scaleb(-2)) for p in parts]


per_eur_values = st.builds(
    lambda digits, exponent: Decimal(digits).scaleb(-exponent),
    st.integers(1, 10**12), st.integers(0, 12)).filter(lambda d: Decimal("0.000001") <= d <= 10**9)


@st.composite
def rates(draw) -> LockedRate:
    frm, to = draw(st.sampled_from(CURRENCIES)), draw(st.sampled_from(CURRENCIES))
    loaded = [LoadedRate(c, date(2026, 1, 1), draw(per_eur_values), "prop")
              for c in sorted({frm, to}) if c not in ("EUR", "XOF", "XAF")]
    rate = RateBook(loaded).rate(frm, to, DAY)
    assert rate is not None
    return rate


@settings(max_examples=500, deadline=None)
@given(rate=rates(), minor=st.integers(1, 10**12), parts=shares())
def test_converted_tranches_sum_exactly_and_stay_within_a_minor_unit(rate, minor, parts):
    source = Money(minor, rate.from_currency)
    exact_total = minor * rate.exact * Fraction(10) ** (minor_units(rate.to_currency) - minor_units(rate.from_currency))
    assume(exact_total < 2**62)
    plan = component(source.format_amount(), rate.from_currency, parts)
    tranches = converted_tranches(plan, rate)
    total = convert(source, rate)

    assert abs(total.minor - exact_total) <= Fraction(1, 2)  # rounded to the nearest minor unit
    assert sum(t.amount.minor for t in tranches) == total.minor  # the tranches sum exactly
    assert [t.seq for t in tranches] == list(range(1, len(parts) + 1))
    for tranche, share in zip(tranches, parts, strict=True):
        assert tranche.amount.currency == rate.to_currency
        assert type(tranche.amount.minor) is int and tranche.amount.minor >= 0
        exact_share = total.minor * Fraction(Decimal(share)) / 100
        assert abs(tranche.amount.minor - exact_share) < 1  # within one minor unit of its exact share
        assert abs(tranche.amount.minor - exact_total * Fraction(Decimal(share)) / 100) < Fraction(3, 2)
        assert converted_tranche(plan, tranche.seq, rate) == tranche.amount
        if minor_units(rate.to_currency) == 0:
            assert "." not in tranche.amount.format_amount()  # zero-decimal currencies: never fractions


@settings(max_examples=300, deadline=None)
@given(rate=rates(), minor=st.integers(0, 10**12))
def test_convert_is_exact_half_up(rate, minor):
    exact = minor * rate.exact * Fraction(10) ** (minor_units(rate.to_currency) - minor_units(rate.from_currency))
    assume(exact < 2**62)
    converted = convert(Money(minor, rate.from_currency), rate).minor
    assert converted - Fraction(1, 2) <= exact < converted + Fraction(1, 2)  # halves go up
    assert rate_from_text(rate.text) == rate.exact
