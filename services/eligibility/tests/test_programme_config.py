"""Programmes are configuration, validated strictly at start-up (issue 6).

A typo must stop the service, naming the file and the key path; each programme's version is a
content hash of its settings.
"""

from __future__ import annotations

import copy
import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from eligibility.app import DEFAULT_PROGRAMMES, load_programmes
from eligibility.domain.programmes import ProgrammeConfigError, programmes_from_config
from eligibility_support import LY, MA
from reintegra.money import Money

SOURCE = "/etc/reintegra/programmes-test.yaml"
SHIPPED_TEXT = DEFAULT_PROGRAMMES.read_text(encoding="utf-8")
SHIPPED = yaml.safe_load(SHIPPED_TEXT)


def eur(amount: str) -> Money:
    return Money.parse(amount, "EUR")


# --- the shipped programmes, as the spec defines them ------------------------------------------


MA_EXPECTED = {
    "code": MA, "host_country": "MA", "currency": "EUR",
    "opens_on": date(2026, 1, 1), "closes_on": date(2027, 12, 31),
    "origin_countries": frozenset({"CI", "SN", "GN", "ML", "CM", "NG", "BF", "GM", "GH"}),
    "return_to_origin_required": True, "arrival_window_days": 365, "adult_age": 18,
    "adult_ceiling": eur("1800.00"), "minor_ceiling": eur("2800.00"),
    "top_up": eur("500.00"), "top_up_when": frozenset({"victim_of_trafficking", "medical_condition", "disability"}),
    "cash_max_percent": 30, "cash_up_to": eur("400.00"),
    "categories": frozenset({"immediate_needs", "business_startup", "vocational_training", "education", "medical",
                             "housing", "psychosocial"}),
    "review_vulnerabilities": frozenset({"unaccompanied_minor"}),
    "second_approval_above": eur("1500.00"),
    "budget": eur("2000000.00"),
}
LY_EXPECTED = {
    "code": LY, "host_country": "LY", "currency": "EUR",
    "origin_countries": frozenset({"NG", "GH", "GM", "SN", "ML"}),
    "return_to_origin_required": True,
    "adult_ceiling": eur("1500.00"), "minor_ceiling": eur("2500.00"),
    "cash_max_percent": 20, "cash_up_to": eur("300.00"),
    "categories": frozenset({"immediate_needs", "business_startup", "vocational_training", "education", "medical",
                             "psychosocial"}),
    "review_vulnerabilities": frozenset({"unaccompanied_minor"}),
    "budget": eur("750000.00"),
}


@pytest.mark.parametrize(("code", "field", "expected"),
                         [(MA, k, v) for k, v in MA_EXPECTED.items()] + [(LY, k, v) for k, v in LY_EXPECTED.items()],
                         ids=lambda v: v if isinstance(v, str) else None)
def test_shipped_programme_settings(code, field, expected):
    assert getattr(load_programmes(None)[code], field) == expected


def test_shipped_file_has_exactly_the_two_programmes():
    assert set(load_programmes(None)) == {MA, LY}


def test_ly_does_not_fund_housing():
    assert "housing" not in load_programmes(None)[LY].categories


# --- versions: a content hash ---------------------------------------------------------------------


def test_the_two_shipped_programmes_have_different_versions():
    progs = load_programmes(None)
    assert progs[MA].version != progs[LY].version
    for p in progs.values():
        assert re.fullmatch(r"sha256:[0-9a-f]{16}", p.version), p.version


def test_same_content_gives_the_same_version_on_every_load():
    assert {c: p.version for c, p in load_programmes(None).items()} == \
        {c: p.version for c, p in load_programmes(None).items()}


def test_same_content_in_another_layout_gives_the_same_version(tmp_path: Path):
    """Comments, key order and quoting are not content."""
    rewritten = tmp_path / "programmes.yaml"
    reordered = {"programmes": {code: dict(reversed(list(spec.items())))
                                for code, spec in reversed(list(SHIPPED["programmes"].items()))}}
    rewritten.write_text(yaml.safe_dump(reordered, sort_keys=False, default_flow_style=True), encoding="utf-8")
    assert {c: p.version for c, p in load_programmes(rewritten).items()} == \
        {c: p.version for c, p in load_programmes(None).items()}


def test_a_programme_version_does_not_depend_on_the_other_programmes():
    alone = programmes_from_config({"programmes": {MA: copy.deepcopy(SHIPPED["programmes"][MA])}})
    assert alone[MA].version == load_programmes(None)[MA].version


def _set(doc: dict, path: str, value: Any) -> None:
    *parents, last = path.split("/")
    node = doc
    for part in parents:
        node = node[part]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value


_DELETE = object()

# (key under programmes.MA-AVRR-2026, another valid value)
CHANGES = [
    ("name", "Morocco AVRR 2026 (rev)"),
    ("host_country", "TN"),
    ("currency", "USD"),
    ("opens_on", date(2026, 1, 2)),
    ("closes_on", date(2027, 12, 30)),
    ("budget", "2000000.01"),
    ("origin_countries", ["CI", "SN", "GN", "ML", "CM", "NG", "BF", "GM", "GH", "TG"]),
    ("return_to_origin_required", False),
    ("arrival_window_days", 366),
    ("adult_age", 21),
    ("ceilings/adult", "1800.01"),
    ("ceilings/minor", "2799.99"),
    ("top_up/amount", "500.01"),
    ("top_up/when_any", ["victim_of_trafficking", "medical_condition"]),
    ("top_up", _DELETE),
    ("cash_share/max_percent", 31),
    ("cash_share/or_up_to", "400.01"),
    ("categories", ["immediate_needs", "business_startup"]),
    ("review_vulnerabilities", ["unaccompanied_minor", "elderly"]),
    ("second_approval_above", "1500.01"),
]


@pytest.mark.parametrize(("key", "value"), CHANGES, ids=[k for k, _ in CHANGES])
def test_any_change_gives_another_version(key, value):
    doc = copy.deepcopy(SHIPPED)
    _set(doc["programmes"][MA], key, value)
    changed = programmes_from_config(doc, source=SOURCE)
    shipped = load_programmes(None)
    assert changed[MA].version != shipped[MA].version
    assert changed[LY].version == shipped[LY].version


# --- strict validation: every mistake names the file and the key path --------------------------


P = f"programmes.{MA}"

# (id, key under the MA programme (or None for the document), value, key path the message names)
BAD = [
    # unknown keys
    ("unknown_programme_key", "ceiling", {"adult": "1800.00"}, f"{P}.ceiling"),
    ("unknown_nested_key", "cash_share/max_pct", 30, f"{P}.cash_share.max_pct"),
    ("unknown_top_up_key", "top_up/once", True, f"{P}.top_up.once"),
    # missing keys
    ("missing_minor_ceiling", "ceilings/minor", _DELETE, f"{P}.ceilings.minor"),
    ("missing_currency", "currency", _DELETE, f"{P}.currency"),
    ("missing_second_approval", "second_approval_above", _DELETE, f"{P}.second_approval_above"),
    # wrong types: amounts are strings, flags are booleans, counts are integers
    ("amount_as_float", "ceilings/adult", 1800.0, f"{P}.ceilings.adult"),
    ("amount_as_int", "budget", 2000000, f"{P}.budget"),
    ("top_up_amount_as_number", "top_up/amount", 500, f"{P}.top_up.amount"),
    ("cash_allowance_as_number", "cash_share/or_up_to", 400, f"{P}.cash_share.or_up_to"),
    ("second_approval_as_number", "second_approval_above", 1500.0, f"{P}.second_approval_above"),
    ("bool_as_string", "return_to_origin_required", "true", f"{P}.return_to_origin_required"),
    ("bool_as_int", "return_to_origin_required", 1, f"{P}.return_to_origin_required"),
    ("percent_as_string", "cash_share/max_percent", "30", f"{P}.cash_share.max_percent"),
    ("percent_as_float", "cash_share/max_percent", 30.5, f"{P}.cash_share.max_percent"),
    ("percent_as_bool", "cash_share/max_percent", True, f"{P}.cash_share.max_percent"),
    ("window_as_string", "arrival_window_days", "365", f"{P}.arrival_window_days"),
    ("adult_age_as_float", "adult_age", 18.0, f"{P}.adult_age"),
    ("origins_as_string", "origin_countries", "CI", f"{P}.origin_countries"),
    ("ceilings_as_string", "ceilings", "1800.00", f"{P}.ceilings"),
    ("date_as_garbage", "opens_on", "next spring", f"{P}.opens_on"),
    ("date_as_timestamp_int", "opens_on", 1767225600, f"{P}.opens_on"),
    ("date_as_bool", "closes_on", True, f"{P}.closes_on"),
    # impossible values
    ("closes_before_opens", "closes_on", date(2025, 12, 31), f"{P}.closes_on"),
    ("percent_over_100", "cash_share/max_percent", 101, f"{P}.cash_share.max_percent"),
    ("percent_negative", "cash_share/max_percent", -1, f"{P}.cash_share.max_percent"),
    ("window_negative", "arrival_window_days", -1, f"{P}.arrival_window_days"),
    ("unknown_review_vulnerability", "review_vulnerabilities", ["unaccompanied_minor", "homeless"],
     f"{P}.review_vulnerabilities"),
    ("unknown_top_up_vulnerability", "top_up/when_any", ["disability", "orphan"], f"{P}.top_up.when_any"),
    ("unknown_category", "categories", ["immediate_needs", "livestock"], f"{P}.categories"),
    ("unknown_currency", "currency", "ZZZ", f"{P}.currency"),
    ("lowercase_currency", "currency", "eur", f"{P}.currency"),
    ("fund_code_currency", "currency", "XAU", f"{P}.currency"),
    ("lowercase_country", "host_country", "ma", f"{P}.host_country"),
    ("three_letter_origin", "origin_countries", ["CI", "SEN"], f"{P}.origin_countries"),
    ("amount_too_precise", "ceilings/adult", "1800.001", f"{P}.ceilings.adult"),
    ("amount_zero", "ceilings/minor", "0.00", f"{P}.ceilings.minor"),
    ("amount_negative", "top_up/amount", "-500.00", f"{P}.top_up.amount"),
    ("amount_words", "budget", "two million", f"{P}.budget"),
    ("no_origins", "origin_countries", [], f"{P}.origin_countries"),
    ("no_categories", "categories", [], f"{P}.categories"),
    ("top_up_for_nobody", "top_up/when_any", [], f"{P}.top_up.when_any"),
    # duplicate list entries
    ("duplicate_origin", "origin_countries", ["CI", "SN", "CI"], f"{P}.origin_countries"),
    ("duplicate_category", "categories", ["housing", "medical", "housing"], f"{P}.categories"),
    ("duplicate_review_vulnerability", "review_vulnerabilities", ["unaccompanied_minor", "unaccompanied_minor"],
     f"{P}.review_vulnerabilities"),
    ("duplicate_top_up_vulnerability", "top_up/when_any", ["disability", "medical_condition", "disability"],
     f"{P}.top_up.when_any"),
]


@pytest.mark.parametrize(("key", "value", "path"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_programme_setting_is_refused_naming_file_and_key_path(key, value, path):
    doc = copy.deepcopy(SHIPPED)
    _set(doc["programmes"][MA], key, value)
    with pytest.raises(ProgrammeConfigError) as caught:
        programmes_from_config(doc, source=SOURCE)
    message = str(caught.value)
    assert message.startswith(f"{SOURCE}: "), message
    assert re.search(re.escape(path) + r"(\.\d+)?:", message), message


@pytest.mark.parametrize(("doc", "path"), [
    (None, None),
    ([], None),
    ({}, "programmes"),
    ({"programmes": {}}, "programmes"),
    ({"programmes": None}, "programmes"),
    ({"programmes": [MA]}, "programmes"),
    ({"programmes": {MA: None}}, f"programmes.{MA}"),
    ({**SHIPPED, "defaults": {}}, "defaults"),
], ids=["none", "list", "empty", "no_programmes", "programmes_null", "programmes_list", "programme_null",
        "unknown_top_level_key"])
def test_bad_document_shape_is_refused(doc, path):
    with pytest.raises(ProgrammeConfigError) as caught:
        programmes_from_config(doc, source=SOURCE)
    message = str(caught.value)
    assert message.startswith(f"{SOURCE}: ")
    if path:
        assert f"{path}:" in message or f"{path}." in message, message


def test_a_valid_change_still_loads():
    """The table above refuses for the reason it names, not because the base document is bad."""
    programmes_from_config(copy.deepcopy(SHIPPED), source=SOURCE)


# --- the file as loaded at start-up (YAML text) -----------------------------------------------------


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "programmes.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) >= 1, old
    return text.replace(old, new, 1)


@pytest.mark.parametrize(("old", "new", "path"), [
    ('      adult: "1800.00"', "      adult: 1800.00", f"{P}.ceilings.adult"),
    ('    budget: "2000000.00"', "    budget: 2000000", f"{P}.budget"),
    ("    return_to_origin_required: true ", '    return_to_origin_required: "true" ', f"{P}.return_to_origin_required"),
    ("    return_to_origin_required: true ", "    return_to_origin_required: yes please ",
     f"{P}.return_to_origin_required"),
    ("      max_percent: 30", '      max_percent: "30"', f"{P}.cash_share.max_percent"),
    ("      max_percent: 30", "      max_percent: 130", f"{P}.cash_share.max_percent"),
    ("    closes_on: 2027-12-31", "    closes_on: 2025-12-31", f"{P}.closes_on"),
    ("    currency: EUR ", "    currency: EURO ", f"{P}.currency"),
    ("      when_any: [victim_of_trafficking,", "      when_any: [victim_of_trafficking, victim_of_trafficking,",
     f"{P}.top_up.when_any"),
    ("    review_vulnerabilities: [unaccompanied_minor]", "    review_vulnerabilities: [unaccompanied_minors]",
     f"{P}.review_vulnerabilities"),
], ids=["amount_unquoted", "budget_unquoted", "bool_quoted", "bool_garbage", "percent_quoted", "percent_130",
        "closes_before_opens", "currency_four_letters", "duplicate_when_any", "vulnerability_typo"])
def test_loading_a_bad_file_names_the_file_and_the_key_path(tmp_path, old, new, path):
    config = _write(tmp_path, _replace_once(SHIPPED_TEXT, old, new))
    with pytest.raises(ProgrammeConfigError) as caught:
        load_programmes(config)
    message = str(caught.value)
    assert message.startswith(f"{config}: "), message
    assert path in message, message


DUPLICATE_KEY = ("      max_percent: 30\n", "      max_percent: 30\n      max_percent: 40\n")


def test_a_duplicate_yaml_key_is_refused_naming_the_file_and_the_key(tmp_path):
    config = _write(tmp_path, _replace_once(SHIPPED_TEXT, *DUPLICATE_KEY))
    with pytest.raises(ProgrammeConfigError) as caught:
        load_programmes(config)
    message = str(caught.value)
    assert message.startswith(f"{config}: ") and "max_percent" in message, message


def test_a_duplicate_yaml_key_is_refused_naming_the_key_path(tmp_path):
    config = _write(tmp_path, _replace_once(SHIPPED_TEXT, *DUPLICATE_KEY))
    with pytest.raises(ProgrammeConfigError) as caught:
        load_programmes(config)
    assert f"{P}.cash_share.max_percent" in str(caught.value)


def test_a_duplicate_programme_is_refused(tmp_path):
    ly_block = SHIPPED_TEXT[SHIPPED_TEXT.index("  LY-AVRR-2026:"):]
    config = _write(tmp_path, SHIPPED_TEXT + "\n" + ly_block)
    with pytest.raises(ProgrammeConfigError) as caught:
        load_programmes(config)
    assert str(caught.value).startswith(f"{config}: ") and LY in str(caught.value)


def test_a_file_that_is_not_yaml_is_refused(tmp_path):
    config = _write(tmp_path, "programmes:\n  MA: [unclosed\n")
    with pytest.raises(ProgrammeConfigError) as caught:
        load_programmes(config)
    assert str(caught.value).startswith(f"{config}: ")


def test_a_missing_file_is_refused(tmp_path):
    missing = tmp_path / "nowhere.yaml"
    with pytest.raises(ProgrammeConfigError) as caught:
        load_programmes(missing)
    assert str(caught.value).startswith(f"{missing}: ")


def test_dates_may_be_yaml_dates_or_iso_strings(tmp_path):
    text = _replace_once(SHIPPED_TEXT, "    opens_on: 2026-01-01", '    opens_on: "2026-01-01"')
    progs = load_programmes(_write(tmp_path, text))
    assert progs[MA].opens_on == date(2026, 1, 1)
