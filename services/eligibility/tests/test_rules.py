"""Eligibility rules of the shipped programmes, table by table, from the spec (issue 6).

Each case goes through `apply_event` as intake sends it (case.accepted, return.completed,
plan.approved) and the test reads the status upstream gets and the decision record.
"""

from __future__ import annotations

import copy
from decimal import Decimal

import pytest
import yaml
from eligibility.app import DEFAULT_PROGRAMMES
from eligibility.domain.fx import PEGS_ONLY
from eligibility.domain.programmes import programmes_from_config
from eligibility.domain.rules import REVIEW, SKIP, Application, evaluate
from eligibility_support import (
    ALL_RULES,
    APPROVED_T,
    LY,
    MA,
    MINOR_DOB,
    PROGRAMMES,
    REJECTED_T,
    REVIEW_T,
    accepted,
    cash,
    codes,
    component,
    context,
    day_after,
    decide,
    in_kind_plan,
    only_status,
    plan,
    returned,
    rule,
)
from reintegra.money import Money


def judge(accepted_data=None, returned_data=None, plan_data=None):
    """(status type, status data, decision) of a first plan."""
    case, out = decide(accepted_data, returned_data, plan_data)
    type_, data = only_status(out)
    [record] = out.decisions
    return type_, data, record.decision


def ly(**kwargs):
    return accepted(program_code=LY, **kwargs)


def ly_returned(**kwargs):
    return returned(country="NG", **kwargs)


# --- the baseline: the contract's plan is approved under both programmes -------------------------


@pytest.mark.parametrize(("accepted_data", "returned_data"), [(accepted(), returned()), (ly(), ly_returned())],
                         ids=[MA, LY])
def test_the_contract_plan_is_approved(accepted_data, returned_data):
    type_, data, decision = judge(accepted_data, returned_data, plan())
    assert type_ == APPROVED_T
    assert data["status"] == "eligibility_approved"
    assert "reasons" not in data


@pytest.mark.parametrize("code", [MA, LY])
def test_the_decision_records_the_programme_version_and_every_rule(code):
    accepted_data, returned_data = (accepted(), returned()) if code == MA else (ly(), ly_returned())
    type_, data, decision = judge(accepted_data, returned_data, plan())
    assert decision.programme_version == PROGRAMMES[code].version
    assert data["programme_version"] == PROGRAMMES[code].version
    assert {r.rule for r in decision.rules} == ALL_RULES
    assert len(decision.rules) == len(ALL_RULES)
    assert all(r.outcome == "pass" for r in decision.rules)


def test_a_decision_records_every_rule_even_when_several_fail():
    type_, data, decision = judge(accepted(consent=False, host_country="LY", vulnerabilities=["unaccompanied_minor"]),
                                  returned(country="SN"), in_kind_plan("9000.00"))
    assert {r.rule for r in decision.rules} == ALL_RULES
    assert type_ == REJECTED_T
    assert codes(data) == ["consent_missing", "host_country_mismatch", "plan_over_ceiling", "return_country_mismatch",
                           "vulnerability_review"]
    for reason in data["reasons"]:
        assert set(reason) == {"code", "field", "message"} and reason["message"]


# --- programme known and open -------------------------------------------------------------------


def test_an_unknown_programme_is_rejected():
    type_, data, decision = judge(accepted(program_code="XX-AVRR-2099"))
    assert type_ == REJECTED_T
    assert codes(data) == ["programme_unknown"]
    assert rule(decision, "programme_known").outcome == "reject"


@pytest.mark.parametrize(("plan_day", "ok"), [
    ("2025-12-31", False), ("2026-01-01", True), ("2026-07-15", True), ("2027-12-31", True), ("2028-01-01", False),
])
@pytest.mark.parametrize("code", [MA, LY])
def test_the_programme_is_open_on_the_plan_date(code, plan_day, ok):
    accepted_data, country = (accepted(), "CI") if code == MA else (ly(), "NG")
    type_, data, _ = judge(accepted_data, returned(arrival_date=day_after(plan_day, -10), country=country),
                           plan(approved_at=f"{plan_day}T12:00:00Z"))
    assert (type_, codes(data)) == ((APPROVED_T, []) if ok else (REJECTED_T, ["programme_closed"]))


# --- countries ------------------------------------------------------------------------------------


MA_ORIGINS = ["CI", "SN", "GN", "ML", "CM", "NG", "BF", "GM", "GH"]
LY_ORIGINS = ["NG", "GH", "GM", "SN", "ML"]


@pytest.mark.parametrize(("code", "origin", "ok"),
                         [(MA, c, True) for c in MA_ORIGINS] + [(MA, c, False) for c in ("TG", "FR", "LY", "MA")]
                         + [(LY, c, True) for c in LY_ORIGINS] + [(LY, c, False) for c in ("CI", "GN", "CM", "BF")])
def test_origin_countries_covered(code, origin, ok):
    accepted_data = accepted(program_code=code, origin_country=origin)
    type_, data, _ = judge(accepted_data, returned(country=origin), plan())
    assert (type_, codes(data)) == ((APPROVED_T, []) if ok else (REJECTED_T, ["origin_not_covered"]))


@pytest.mark.parametrize(("code", "host", "ok"), [
    (MA, "MA", True), (MA, "LY", False), (MA, "TN", False), (LY, "LY", True), (LY, "MA", False),
])
def test_host_country(code, host, ok):
    accepted_data = accepted(program_code=code, host_country=host)
    type_, data, _ = judge(accepted_data, returned(country=accepted_data["origin_country"]), plan())
    assert (type_, codes(data)) == ((APPROVED_T, []) if ok else (REJECTED_T, ["host_country_mismatch"]))


@pytest.mark.parametrize(("origin", "arrived_in", "ok"), [("CI", "CI", True), ("CI", "SN", False),
                                                          ("SN", "CI", False), ("GH", "GH", True)])
def test_the_return_ends_in_the_origin_country(origin, arrived_in, ok):
    type_, data, _ = judge(accepted(origin_country=origin), returned(country=arrived_in), plan())
    assert (type_, codes(data)) == ((APPROVED_T, []) if ok else (REJECTED_T, ["return_country_mismatch"]))


# --- arrival window -------------------------------------------------------------------------------


@pytest.mark.parametrize(("days_after_arrival", "expected"), [
    (-366, ["plan_before_arrival"]), (-1, ["plan_before_arrival"]), (0, []), (1, []), (364, []), (365, []),
    (366, ["arrival_window_exceeded"]), (700, ["arrival_window_exceeded"]),
])
@pytest.mark.parametrize("code", [MA, LY])
def test_the_plan_is_approved_within_365_days_after_arrival(code, days_after_arrival, expected):
    plan_day = "2027-06-30"
    accepted_data, country = (accepted(), "CI") if code == MA else (ly(), "NG")
    type_, data, _ = judge(accepted_data, returned(arrival_date=day_after(plan_day, -days_after_arrival),
                                                   country=country),
                           plan(approved_at=f"{plan_day}T08:00:00Z"))
    assert (type_, codes(data)) == ((REJECTED_T if expected else APPROVED_T), expected)


def test_the_arrival_window_counts_calendar_days_of_the_plan_date():
    # Arrived 2026-10-03; the plan approved late on 2027-10-03 is day 365, still inside.
    type_, data, _ = judge(accepted(), returned(arrival_date="2026-10-03"), plan(approved_at="2027-10-03T23:59:59Z"))
    assert type_ == APPROVED_T


# --- ceilings by age, with the top-up -------------------------------------------------------------

# (date of birth, plan date, the ceiling without top-up): age on the plan's approved_at date.
AGES = [
    ("1994-03-02", "2026-10-20", "1800.00"),  # adult
    ("2008-10-20", "2026-10-20", "1800.00"),  # the 18th birthday itself counts as 18
    ("2008-10-21", "2026-10-20", "2800.00"),  # 18 tomorrow: still a minor
    ("2008-10-19", "2026-10-20", "1800.00"),
    ("2012-05-05", "2026-10-20", "2800.00"),  # 14
    ("2026-01-15", "2026-10-20", "2800.00"),  # a baby
    ("2008-02-29", "2026-02-28", "2800.00"),  # born on 29 February: not 18 before the day has passed
    ("2008-02-29", "2026-03-01", "1800.00"),  # ... and 18 on 1 March in a year without 29 February
    ("2009-02-28", "2027-02-28", "1800.00"),
    ("2009-03-01", "2027-02-28", "2800.00"),
    ("2009-12-31", "2027-12-31", "1800.00"),
    ("2010-01-01", "2027-12-31", "2800.00"),
]


def _cents(amount: str, delta: int) -> str:
    return str(Decimal(amount) + Decimal(delta) / 100)


@pytest.mark.parametrize(("born", "plan_day", "ceiling"), AGES)
@pytest.mark.parametrize("delta", [-100, 0, 1])
def test_ceiling_by_age_on_the_plan_date(born, plan_day, ceiling, delta):
    total = _cents(ceiling, delta)
    type_, data, decision = judge(accepted(date_of_birth=born), returned(arrival_date=day_after(plan_day, -30)),
                                  in_kind_plan(total, approved_at=f"{plan_day}T10:00:00Z"))
    assert (type_, codes(data)) == ((APPROVED_T, []) if delta <= 0 else (REJECTED_T, ["plan_over_ceiling"]))
    assert decision.ceiling == Money.parse(ceiling, "EUR")


# (vulnerabilities, adult ceiling, minor ceiling) under MA: a single +500 whatever how many apply.
TOP_UPS = [
    ([], "1800.00", "2800.00"),
    (["single_parent"], "1800.00", "2800.00"),
    (["elderly"], "1800.00", "2800.00"),
    (["single_parent", "elderly"], "1800.00", "2800.00"),
    (["victim_of_trafficking"], "2300.00", "3300.00"),
    (["medical_condition"], "2300.00", "3300.00"),
    (["disability"], "2300.00", "3300.00"),
    (["victim_of_trafficking", "disability"], "2300.00", "3300.00"),
    (["medical_condition", "disability"], "2300.00", "3300.00"),
    (["victim_of_trafficking", "medical_condition", "disability"], "2300.00", "3300.00"),
    (["single_parent", "medical_condition"], "2300.00", "3300.00"),
]


@pytest.mark.parametrize(("vulnerabilities", "adult", "minor"), TOP_UPS,
                         ids=["+".join(v) or "none" for v, _, _ in TOP_UPS])
@pytest.mark.parametrize("age", ["adult", "minor"])
@pytest.mark.parametrize("delta", [0, 1])
def test_one_top_up_when_any_top_up_vulnerability_applies(vulnerabilities, adult, minor, age, delta):
    ceiling = adult if age == "adult" else minor
    dob = "1990-01-01" if age == "adult" else MINOR_DOB
    type_, data, decision = judge(accepted(vulnerabilities=vulnerabilities, date_of_birth=dob), returned(),
                                  in_kind_plan(_cents(ceiling, delta)))
    assert (type_, codes(data)) == ((APPROVED_T, []) if delta == 0 else (REJECTED_T, ["plan_over_ceiling"]))
    assert decision.ceiling == Money.parse(ceiling, "EUR")


@pytest.mark.parametrize(("dob", "vulnerabilities", "ceiling"), [
    ("1990-01-01", [], "1500.00"), (MINOR_DOB, [], "2500.00"),
    ("1990-01-01", ["disability", "victim_of_trafficking"], "1500.00"),  # LY has no top-up
    (MINOR_DOB, ["medical_condition"], "2500.00"),
])
@pytest.mark.parametrize("delta", [0, 1])
def test_ly_ceilings(dob, vulnerabilities, ceiling, delta):
    type_, data, _ = judge(ly(date_of_birth=dob, vulnerabilities=vulnerabilities), ly_returned(),
                           in_kind_plan(_cents(ceiling, delta)))
    assert (type_, codes(data)) == ((APPROVED_T, []) if delta == 0 else (REJECTED_T, ["plan_over_ceiling"]))


# (vulnerabilities, plan total, expected): without a date of birth only the highest ceiling can be checked.
NO_DOB = [
    ([], "100.00", REVIEW_T), ([], "1800.01", REVIEW_T), ([], "2800.00", REVIEW_T), ([], "2800.01", REJECTED_T),
    (["disability"], "3300.00", REVIEW_T), (["disability"], "3300.01", REJECTED_T),
]


@pytest.mark.parametrize(("vulnerabilities", "total", "expected"), NO_DOB)
def test_no_date_of_birth_goes_to_review_unless_over_every_ceiling(vulnerabilities, total, expected):
    type_, data, decision = judge(accepted(date_of_birth=None, vulnerabilities=vulnerabilities), returned(),
                                  in_kind_plan(total))
    assert type_ == expected
    assert codes(data) == (["age_unknown"] if expected == REVIEW_T else ["plan_over_ceiling"])
    assert rule(decision, "ceiling").outcome == ("review" if expected == REVIEW_T else "reject")


# --- cash share ----------------------------------------------------------------------------------

# (programme, cash, in kind, ok): cash at most max_percent % of the total or the allowance, whichever is larger.
CASH = [
    # MA: 30 % or 400
    (MA, "400.00", None, True),         # all cash, at the allowance
    (MA, "400.01", None, False),
    (MA, "400.00", "600.00", True),     # 40 % of 1000, within the allowance
    (MA, "400.01", "599.99", False),    # 30 % of 1000 is 300: the allowance (400) is the larger limit
    (MA, "420.00", "980.00", True),     # exactly 30 % of 1400
    (MA, "420.01", "979.99", False),    # one cent over 30 % of 1400.00
    (MA, "420.01", "980.03", True),     # 30 % of 1400.04 is 420.012
    (MA, "540.00", "1260.00", True),    # 30 % of 1800
    (MA, "540.01", "1259.99", False),
    (MA, "100.00", "1700.00", True),
    # LY: 20 % or 300
    (LY, "300.00", None, True),
    (LY, "300.01", None, False),
    (LY, "300.00", "1200.00", True),    # 20 % of 1500
    (LY, "300.01", "1199.99", False),
]


@pytest.mark.parametrize(("code", "cash_amount", "in_kind_amount", "ok"), CASH)
def test_cash_share(code, cash_amount, in_kind_amount, ok):
    components = [cash("c1", cash_amount)] + ([component("c2", in_kind_amount)] if in_kind_amount else [])
    accepted_data, returned_data = (accepted(), returned()) if code == MA else (ly(), ly_returned())
    type_, data, _ = judge(accepted_data, returned_data, plan(components))
    assert (type_, codes(data)) == ((APPROVED_T, []) if ok else (REJECTED_T, ["cash_share_exceeded"]))


def test_ly_cash_share_above_the_allowance_for_a_minor():
    # 20 % of 2500 (a minor's grant) is 500: above the 300 allowance.
    for cash_amount, in_kind_amount, ok in [("500.00", "2000.00", True), ("500.01", "1999.99", False)]:
        type_, data, _ = judge(ly(date_of_birth=MINOR_DOB), ly_returned(),
                               plan([cash("c1", cash_amount), component("c2", in_kind_amount)]))
        assert (type_, codes(data)) == ((APPROVED_T, []) if ok else (REJECTED_T, ["cash_share_exceeded"]))


def test_cash_over_the_share_split_across_components_is_counted_together():
    components = [cash("c1", "250.00"), cash("c2", "250.00", category="education"), component("c3", "500.00")]
    type_, data, _ = judge(accepted(), returned(), plan(components))
    assert (type_, codes(data)) == (REJECTED_T, ["cash_share_exceeded"])


# --- categories -----------------------------------------------------------------------------------

CATEGORIES = ["immediate_needs", "business_startup", "vocational_training", "education", "medical", "housing",
              "psychosocial"]


@pytest.mark.parametrize("category", CATEGORIES)
@pytest.mark.parametrize("code", [MA, LY])
def test_categories(code, category):
    accepted_data, returned_data = (accepted(), returned()) if code == MA else (ly(), ly_returned())
    type_, data, _ = judge(accepted_data, returned_data, plan([component("c1", "1000.00", category=category)]))
    ok = not (code == LY and category == "housing")
    assert (type_, codes(data)) == ((APPROVED_T, []) if ok else (REJECTED_T, ["category_not_allowed"]))


# --- plan consistency, consent ------------------------------------------------------------------------


@pytest.mark.parametrize(("components", "payout", "ok"), [
    ([cash("c1", "300.00")], "default", True),
    ([cash("c1", "300.00")], None, False),                          # cash needs a payout
    ([component("c1", "900.00")], None, True),                      # in kind alone needs none
    ([component("c1", "900.00", vendor_id=None)], "default", False),  # in kind needs a vendor
    ([cash("c1", "300.00"), component("c2", "900.00", vendor_id=None)], "default", False),
    ([cash("c1", "300.00"), component("c2", "900.00")], None, False),
], ids=["cash_payout", "cash_no_payout", "in_kind_no_payout", "in_kind_no_vendor", "mixed_no_vendor",
        "mixed_no_payout"])
def test_plan_consistent(components, payout, ok):
    type_, data, _ = judge(accepted(), returned(), plan(components, payout=payout))
    assert (type_, codes(data)) == ((APPROVED_T, []) if ok else (REJECTED_T, ["plan_inconsistent"]))


@pytest.mark.parametrize("consent", [True, False])
def test_consent(consent):
    type_, data, _ = judge(accepted(consent=consent))
    assert (type_, codes(data)) == ((APPROVED_T, []) if consent else (REJECTED_T, ["consent_missing"]))


# --- vulnerabilities that need a person -----------------------------------------------------------------


@pytest.mark.parametrize(("dob", "total"), [("1990-01-01", "100.00"), (MINOR_DOB, "100.00"), ("1990-01-01", "1800.00"),
                                            (None, "100.00")])
def test_an_unaccompanied_minor_always_goes_to_review(dob, total):
    type_, data, decision = judge(accepted(vulnerabilities=["unaccompanied_minor"], date_of_birth=dob), returned(),
                                  in_kind_plan(total))
    assert type_ == REVIEW_T
    assert "vulnerability_review" in codes(data)
    assert rule(decision, "vulnerability_review").outcome == REVIEW


def test_ly_unaccompanied_minor_goes_to_review():
    type_, data, _ = judge(ly(vulnerabilities=["unaccompanied_minor"]), ly_returned(), plan())
    assert (type_, codes(data)) == (REVIEW_T, ["vulnerability_review"])


@pytest.mark.parametrize("vulnerability", ["victim_of_trafficking", "medical_condition", "disability",
                                           "single_parent", "elderly"])
def test_other_vulnerabilities_need_no_review(vulnerability):
    type_, data, _ = judge(accepted(vulnerabilities=[vulnerability]))
    assert (type_, codes(data)) == (APPROVED_T, [])


def test_a_rejection_wins_over_a_review():
    type_, data, _ = judge(accepted(vulnerabilities=["unaccompanied_minor"]), returned(country="SN"))
    assert type_ == REJECTED_T
    assert codes(data) == ["return_country_mismatch", "vulnerability_review"]


# --- plan amounts in other currencies ------------------------------------------------------------------

# (currency, total, ok): XOF and XAF at 655.957 per EUR, rounded half up to the cent.
# 1180725 XOF = 1800.00366 EUR -> 1800.00; 1180726 XOF = 1800.00518 EUR -> 1800.01 (over the adult ceiling).
PEGGED = [("XOF", "1180725", True), ("XOF", "1180726", False), ("XAF", "1180725", True), ("XAF", "1180726", False),
          ("XOF", "655957", True), ("XOF", "5000000", False)]


@pytest.mark.parametrize(("currency", "total", "ok"), PEGGED)
def test_pegged_currencies_are_checked_on_their_eur_equivalent(currency, total, ok):
    type_, data, decision = judge(accepted(), returned(), plan([component("c1", total, currency=currency)]))
    assert (type_, codes(data)) == ((APPROVED_T, []) if ok else (REJECTED_T, ["plan_over_ceiling"]))
    expected_eur = (Decimal(total) / Decimal("655.957")).quantize(Decimal("0.01"), rounding="ROUND_HALF_UP")
    assert decision.programme_total == Money.parse(str(expected_eur), "EUR")
    assert data["plan_total"] == {"amount": total, "currency": currency}


def test_cash_share_of_a_pegged_plan_is_checked_in_eur():
    # 400 EUR = 262382.8 XOF: 262382 XOF (399.9988 -> 400.00 EUR) passes, 262386 (400.0049 -> 400.00) passes,
    # 262387 (400.0064 -> 400.01) is over the allowance. The in-kind part keeps the total small (30 % < 400).
    for amount, ok in [("262382", True), ("262386", True), ("262387", False)]:
        components = [cash("c1", amount, currency="XOF"), component("c2", "300000", currency="XOF")]
        type_, data, _ = judge(accepted(), returned(), plan(components))
        assert (type_, codes(data)) == ((APPROVED_T, []) if ok else (REJECTED_T, ["cash_share_exceeded"])), amount


@pytest.mark.parametrize(("currency", "total"), [("GNF", "15000000"), ("NGN", "2000000.00"), ("USD", "100.00"),
                                                 ("GHS", "10.00")])
def test_a_currency_without_a_rate_goes_to_review_never_a_guess(currency, total):
    type_, data, decision = judge(accepted(), returned(), plan([component("c1", total, currency=currency)]))
    assert type_ == REVIEW_T
    assert codes(data) == ["exchange_rate_missing"]
    assert rule(decision, "ceiling").outcome == SKIP and rule(decision, "cash_share").outcome == SKIP
    assert decision.programme_total is None
    assert "programme_total" not in data


def test_a_currency_without_a_rate_is_still_rejected_by_other_rules():
    type_, data, _ = judge(accepted(), returned(country="SN"), plan([component("c1", "100", currency="GNF")]))
    assert (type_, codes(data)) == (REJECTED_T, ["exchange_rate_missing", "return_country_mismatch"])


@pytest.mark.parametrize(("minor", "currency", "eur_cents"), [
    (655957, "XOF", 100000), (655957, "XAF", 100000), (1, "XOF", 0), (3, "XOF", 0), (4, "XOF", 1),
    (1180725, "XOF", 180000), (1180726, "XOF", 180001), (6559570, "XAF", 1000000), (12345, "EUR", 12345),
])
def test_rates_convert_half_up_to_the_cent(minor, currency, eur_cents):
    assert PEGS_ONLY.convert(Money(minor, currency), "EUR") == Money(eur_cents, "EUR")


@pytest.mark.parametrize("currency", ["GNF", "NGN", "USD", "GHS", "MAD"])
def test_rates_have_no_guess_for_other_currencies(currency):
    assert PEGS_ONLY.convert(Money(100, currency), "EUR") is None


# --- evaluate() directly: the outcome rule -------------------------------------------------------------


def test_evaluate_unknown_programme_is_rejected_even_with_consent():
    app = Application(accepted(), returned(), plan())
    decision = evaluate(app, None)
    assert decision.outcome == "rejected"
    assert [r["code"] for r in decision.reasons] == ["programme_unknown"]


# --- settings read from the configuration, not hard-coded --------------------------------------------


def _programmes_with(**changes):
    doc = yaml.safe_load(DEFAULT_PROGRAMMES.read_text(encoding="utf-8"))
    spec = copy.deepcopy(doc["programmes"][MA])
    spec.update(changes)
    return programmes_from_config({"programmes": {MA: spec}})


def _judge_with(programmes, accepted_data, returned_data, plan_data):
    _, out = decide(accepted_data, returned_data, plan_data, ctx=context(programmes=programmes))
    type_, data = only_status(out)
    return type_, data


def test_a_return_elsewhere_is_fine_when_the_programme_does_not_require_the_origin():
    progs = _programmes_with(return_to_origin_required=False)
    type_, data = _judge_with(progs, accepted(), returned(country="SN"), plan())
    assert (type_, codes(data)) == (APPROVED_T, [])
    type_, data = _judge_with(PROGRAMMES, accepted(), returned(country="SN"), plan())
    assert (type_, codes(data)) == (REJECTED_T, ["return_country_mismatch"])


def test_the_adult_age_is_the_programmes():
    progs = _programmes_with(adult_age=21)
    # 20 on the plan date: a minor under this programme (2800), an adult under the shipped one (1800).
    born = "2006-01-01"
    type_, _ = _judge_with(progs, accepted(date_of_birth=born), returned(), in_kind_plan("2800.00"))
    assert type_ == APPROVED_T
    type_, data = _judge_with(PROGRAMMES, accepted(date_of_birth=born), returned(), in_kind_plan("2800.00"))
    assert (type_, codes(data)) == (REJECTED_T, ["plan_over_ceiling"])


def test_the_arrival_window_is_the_programmes():
    progs = _programmes_with(arrival_window_days=30)
    type_, _ = _judge_with(progs, accepted(), returned(arrival_date="2026-09-20"), plan())  # day 30
    assert type_ == APPROVED_T
    type_, data = _judge_with(progs, accepted(), returned(arrival_date="2026-09-19"), plan())  # day 31
    assert (type_, codes(data)) == (REJECTED_T, ["arrival_window_exceeded"])
