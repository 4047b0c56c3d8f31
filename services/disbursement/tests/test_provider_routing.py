"""Routing a payout to the provider that pays it (domain/providers.py, pure)."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest
from disbursement.domain import providers as providers_module
from disbursement.domain.providers import (
    PAYOUT_MISSING,
    PROVIDER_KIND_MISMATCH,
    PROVIDER_UNKNOWN,
    ProviderDirectory,
    ProviderInfo,
    Route,
    iban_country,
)

OM_CI = ProviderInfo("orange_money_ci", "mobile_money", "CI", "XOF")
WAVE_SN = ProviderInfo("wave_sn", "mobile_money", "SN", "XOF")
SGBCI = ProviderInfo("sgbci_ci", "bank_transfer", "CI", "XOF")
CBAO = ProviderInfo("cbao_sn", "bank_transfer", "SN", "XOF")
ECOBANK_SN = ProviderInfo("ecobank_sn", "bank_transfer", "SN", "XOF")  # a second bank in SN, declared after CBAO
EXPRESS = ProviderInfo("express_union_cm", "cash_pickup", "CM", "XAF")
DIRECTORY = ProviderDirectory([OM_CI, WAVE_SN, CBAO, SGBCI, ECOBANK_SN, EXPRESS])

CI_IBAN = "CI93CI0080111301134291200589"
SN_IBAN = "SN08SN0100152000048500003035"


@pytest.mark.parametrize(("payout", "country", "routed"), [
    ({"method": "mobile_money", "provider": "orange_money_ci", "msisdn": "+2250701020304"}, "CI", OM_CI),
    ({"method": "mobile_money", "provider": "wave_sn"}, "CI", WAVE_SN),  # named: the country does not matter
    ({"method": "mobile_money", "provider": "wave_sn"}, None, WAVE_SN),
    ({"method": "cash_pickup", "provider": "express_union_cm"}, "CM", EXPRESS),
    ({"method": "bank_transfer", "provider": "sgbci_ci", "account_number": SN_IBAN}, "SN", SGBCI),  # named wins
    ({"method": "bank_transfer", "account_number": SN_IBAN}, "CI", CBAO),  # the IBAN's country, not the case's
    ({"method": "bank_transfer", "iban": CI_IBAN}, "SN", SGBCI),
    ({"method": "bank_transfer", "account_number": "ci93 ci00 8011 1301 1342 9120 0589"}, None, SGBCI),
    ({"method": "bank_transfer", "account_number": "CI93-CI00-8011-1301-1342-9120-0589"}, None, SGBCI),
    ({"method": "bank_transfer", "account_number": "0011223344", "bank_code": "CI008"}, "CI", SGBCI),
    ({"method": "bank_transfer", "account_number": "0011223344"}, "SN", CBAO),  # the first declared of two
    ({"method": "bank_transfer"}, "SN", CBAO),
    ({"method": "bank_transfer", "provider": None, "account_number": SN_IBAN}, None, CBAO),
    ({"method": "bank_transfer", "provider": "", "account_number": SN_IBAN}, None, CBAO),
    ({"method": "bank_transfer", "provider": "ecobank_sn"}, "SN", ECOBANK_SN),
])
def test_a_payout_is_routed_to_its_provider(payout, country, routed):
    assert DIRECTORY.route(payout, country) == Route(routed, None, "")


@pytest.mark.parametrize(("payout", "country", "reason", "named"), [
    ({"method": "mobile_money", "provider": "flooz_ci"}, "CI", PROVIDER_UNKNOWN, "flooz_ci"),
    ({"method": "mobile_money", "provider": "cbao_sn"}, "SN", PROVIDER_KIND_MISMATCH, "cbao_sn"),
    ({"method": "mobile_money", "provider": "express_union_cm"}, "CM", PROVIDER_KIND_MISMATCH, "express_union_cm"),
    ({"method": "mobile_money", "msisdn": "+2250701020304"}, "CI", PROVIDER_UNKNOWN, "mobile_money"),
    ({"method": "mobile_money", "provider": 42}, "CI", PROVIDER_UNKNOWN, "42"),
    ({"method": "mobile_money", "provider": ["wave_sn"]}, "SN", PROVIDER_UNKNOWN, "wave_sn"),
    ({"method": "cash_pickup", "provider": "western_union"}, "CM", PROVIDER_UNKNOWN, "western_union"),
    ({"method": "cash_pickup", "provider": "wave_sn"}, "SN", PROVIDER_KIND_MISMATCH, "wave_sn"),
    ({"method": "cash_pickup"}, "CM", PROVIDER_UNKNOWN, "cash_pickup"),
    ({"method": "bank_transfer", "provider": "wave_sn"}, "SN", PROVIDER_KIND_MISMATCH, "wave_sn"),
    ({"method": "bank_transfer", "provider": "bicis_sn"}, "SN", PROVIDER_UNKNOWN, "bicis_sn"),
    ({"method": "bank_transfer", "account_number": "0011223344"}, "GN", PROVIDER_UNKNOWN, "GN"),
    ({"method": "bank_transfer", "account_number": "GN8210000000000000000000000"}, "CI", PROVIDER_UNKNOWN, "GN"),
    ({"method": "bank_transfer", "account_number": "0011223344"}, None, PROVIDER_UNKNOWN, "no country"),
    ({"method": "carrier_pigeon", "provider": "wave_sn"}, "SN", PROVIDER_UNKNOWN, "carrier_pigeon"),
])
def test_a_payout_that_cannot_be_routed_says_why_naming_what(payout, country, reason, named):
    route = DIRECTORY.route(payout, country)
    assert route.provider is None and route.reason == reason
    assert named in route.message


def test_an_unknown_provider_lists_the_known_ones():
    message = DIRECTORY.route({"method": "mobile_money", "provider": "flooz_ci"}, "CI").message
    assert "wave_sn" in message and "orange_money_ci" in message
    empty = ProviderDirectory([]).route({"method": "mobile_money", "provider": "flooz_ci"}, "CI")
    assert empty.reason == PROVIDER_UNKNOWN and "none" in empty.message


@pytest.mark.parametrize("payout", [None, {}, {"provider": "wave_sn"}, {"method": None}, {"method": ""}, "wave_sn",
                                    ["mobile_money"]])
def test_no_payout_or_no_method_is_a_missing_payout(payout):
    route = DIRECTORY.route(payout, "SN")
    assert (route.provider, route.reason) == (None, PAYOUT_MISSING) and route.message


def test_routing_does_not_depend_on_the_order_of_the_arguments_but_on_declaration():
    later_first = ProviderDirectory([ECOBANK_SN, CBAO])
    assert later_first.route({"method": "bank_transfer"}, "SN").provider == ECOBANK_SN
    duplicate = ProviderDirectory([CBAO, dataclasses.replace(CBAO, country="CI")])  # the first of a name counts
    assert duplicate.get("cbao_sn") == CBAO


@pytest.mark.parametrize(("value", "country"), [
    (CI_IBAN, "CI"), (SN_IBAN, "SN"), ("sn08 sn01 0015 2000 0485 0000 3035", "SN"), ("DE89370400440532013000", "DE"),
    ("0011223344", None), ("CI93", None), ("CIXX" + "1" * 20, None), ("12" + "3" * 20, None), ("", None),
    (None, None), (12345, None),
])
def test_the_country_of_an_iban_shaped_account(value, country):
    assert iban_country(value) == country


def test_the_directory_answers_by_name():
    assert "wave_sn" in DIRECTORY and "flooz_ci" not in DIRECTORY
    assert DIRECTORY.get("wave_sn") == WAVE_SN and DIRECTORY.get(None) is None and DIRECTORY.get("x") is None
    assert DIRECTORY.names() == sorted(p.name for p in DIRECTORY)


def test_providers_and_routes_are_frozen_values():
    with pytest.raises(dataclasses.FrozenInstanceError):
        WAVE_SN.name = "other"  # type: ignore[misc]
    route = DIRECTORY.route({"method": "mobile_money", "provider": "wave_sn"}, "SN")
    with pytest.raises(dataclasses.FrozenInstanceError):
        route.provider = None  # type: ignore[misc]
    assert hash(route) == hash(Route(WAVE_SN))


def test_the_routing_module_is_pure():
    tree = ast.parse(Path(providers_module.__file__).read_text(encoding="utf-8"))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert not imported & {"aiohttp", "asyncpg", "faststream", "os", "pathlib", "io", "yaml", "socket"}
    calls = {node.func.id for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
    assert "open" not in calls
