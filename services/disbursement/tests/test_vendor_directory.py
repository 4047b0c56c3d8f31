"""The vendor registry: the shipped file, loading and its errors, and which plan may order from whom."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from disbursement.domain.vendors import Vendor, VendorBank, VendorDirectory
from disbursement.vendor_registry import (
    VENDORS_ENV,
    VENDORS_FILE,
    VendorConfigError,
    load_vendor_directory,
    vendors_path,
)
from reintegra.contract.upstream import Category
from schwifty import IBAN

CATEGORIES = set(Category.__args__)
SHIPPED = yaml.safe_load(VENDORS_FILE.read_text(encoding="utf-8"))


def bank(**changes) -> VendorBank:
    return VendorBank(**{"account_holder": "Atelier SARL", "iban": "CI70CI0080100120451730084127",
                         "bic": "SGCICIAB", "provider": "sgbci_ci", **changes})


def vendor(vendor_id: str = "V-1", *, categories=("business_startup",), active: bool = True) -> Vendor:
    return Vendor(vendor_id, "Atelier", "CI", "XOF", tuple(categories), bank(), active)


def write(tmp_path: Path, data) -> Path:
    path = tmp_path / "vendors.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def shipped_with(**changes) -> dict:
    """The shipped registry with the first vendor (V-ABJ-017) changed; `bank` changes merge into its bank."""
    data = copy.deepcopy(SHIPPED)
    first = data["vendors"][0]
    for key, value in changes.items():
        if key == "bank":
            first["bank"] = {k: v for k, v in {**first["bank"], **value}.items() if v is not None}
        elif value is None:
            first.pop(key, None)
        else:
            first[key] = value
    return data


def load_error(tmp_path: Path, data) -> str:
    with pytest.raises(VendorConfigError) as info:
        load_vendor_directory(write(tmp_path, data))
    return str(info.value)


# --- the shipped registry ---------------------------------------------------------------------------


def test_the_shipped_registry_loads():
    directory = load_vendor_directory()
    assert len(directory) == len(SHIPPED["vendors"]) >= 5
    assert [v.vendor_id for v in directory] == [v["vendor_id"] for v in SHIPPED["vendors"]]


def test_the_contracts_vendor_is_a_tailoring_supplier_in_abidjan_paid_through_sgbci():
    vendor = load_vendor_directory().get("V-ABJ-017")
    assert vendor is not None and vendor.active
    assert (vendor.country, vendor.currency) == ("CI", "XOF")
    assert vendor.categories == ("business_startup", "vocational_training")
    assert vendor.bank.provider == "sgbci_ci" and vendor.bank.account_holder
    assert IBAN(vendor.bank.iban).country_code == "CI"


def test_the_demo_vendors():
    directory = load_vendor_directory()
    dakar = directory.get("V-DKR-004")
    assert dakar is not None and (dakar.country, dakar.bank.provider) == ("SN", "cbao_sn")
    assert any("medical" in v.categories for v in directory)
    assert any(v.categories == ("vocational_training", "education") for v in directory)
    assert [v.vendor_id for v in directory if not v.active] == ["V-ABJ-008"]
    assert any(v.bank.iban is None and v.bank.account_number and v.bank.bank_code for v in directory)


@pytest.mark.parametrize("entry", SHIPPED["vendors"], ids=lambda e: e["vendor_id"])
def test_every_shipped_iban_is_valid_and_in_the_vendors_country(entry):
    iban = entry["bank"].get("iban")
    if iban is None:
        assert entry["bank"]["account_number"] and entry["bank"]["bank_code"]
        return
    parsed = IBAN(iban)  # raises on a bad checksum, length or country format
    assert parsed.compact == iban and parsed.country_code == entry["country"]


def test_every_shipped_vendor_supplies_contract_categories_through_a_provider_of_its_country():
    for vendor in load_vendor_directory():
        assert vendor.categories and set(vendor.categories) <= CATEGORIES
        assert vendor.bank.provider and vendor.bank.provider.endswith("_" + vendor.country.lower())


# --- which plan may order from whom ------------------------------------------------------------------


def test_check_accepts_an_active_vendor_for_a_category_it_supplies():
    directory = VendorDirectory([vendor(categories=("business_startup", "medical"))])
    assert directory.check("V-1", "medical") == (None, "")
    assert directory.get("V-1") == vendor(categories=("business_startup", "medical"))


@pytest.mark.parametrize("vendor_id", ["V-404", "", None])
def test_check_refuses_an_unknown_vendor(vendor_id):
    code, message = VendorDirectory([vendor()]).check(vendor_id, "business_startup")
    assert code == "vendor_unknown"
    assert (vendor_id in message) if vendor_id else message == "the component names no vendor"


def test_check_refuses_an_inactive_vendor_whatever_the_category():
    directory = VendorDirectory([vendor(active=False)])
    assert directory.check("V-1", "business_startup")[0] == "vendor_inactive"
    assert directory.check("V-1", "medical")[0] == "vendor_inactive"
    assert directory.get("V-1") is not None  # still known: earlier orders name it


def test_check_refuses_a_category_the_vendor_does_not_supply():
    code, message = VendorDirectory([vendor(categories=("business_startup", "vocational_training"))]).check(
        "V-1", "medical")
    assert code == "vendor_category_mismatch"
    assert message == "vendor V-1 (Atelier) supplies business_startup, vocational_training, not medical"


def test_the_shipped_registry_answers_for_the_contracts_plan():
    directory = load_vendor_directory()
    assert directory.check("V-ABJ-017", "business_startup") == (None, "")
    assert directory.check("V-ABJ-017", "medical")[0] == "vendor_category_mismatch"
    assert directory.check("V-ABJ-008", "housing")[0] == "vendor_inactive"
    assert directory.check("V-XYZ-000", "housing")[0] == "vendor_unknown"


def test_a_directory_refuses_a_vendor_listed_twice():
    with pytest.raises(ValueError, match="V-1"):
        VendorDirectory([vendor(), vendor()])


def test_a_bank_account_needs_a_holder_and_an_account():
    assert bank(iban=None, account_number="0100204773120886609", bank_code="SN012").iban is None
    with pytest.raises(ValueError, match="account holder"):
        bank(account_holder=" ")
    with pytest.raises(ValueError, match="IBAN"):
        bank(iban=None, account_number="0100204773120886609")


# --- where the file comes from --------------------------------------------------------------------------


def test_the_path_is_the_argument_else_the_environment_else_the_shipped_file(tmp_path):
    other = tmp_path / "other.yaml"
    assert vendors_path(None, {}) == VENDORS_FILE
    assert vendors_path(None, {VENDORS_ENV: str(other)}) == other
    assert vendors_path(tmp_path / "x.yaml", {VENDORS_ENV: str(other)}) == tmp_path / "x.yaml"
    assert vendors_path(None, {VENDORS_ENV: ""}) == VENDORS_FILE


def test_the_environment_names_another_registry(tmp_path, monkeypatch):
    data = shipped_with()
    data["vendors"] = data["vendors"][:1]
    path = write(tmp_path, data)
    assert [v.vendor_id for v in load_vendor_directory(env={VENDORS_ENV: str(path)})] == ["V-ABJ-017"]
    monkeypatch.setenv(VENDORS_ENV, str(path))
    assert len(load_vendor_directory()) == 1


def test_an_iban_written_with_spaces_is_stored_compact(tmp_path):
    path = write(tmp_path, shipped_with(bank={"iban": "CI70 CI00 8010 0120 4517 3008 4127", "bic": "sgcici ab"}))
    vendor = load_vendor_directory(path).get("V-ABJ-017")
    assert vendor.bank.iban == "CI70CI0080100120451730084127" and vendor.bank.bic == "SGCICIAB"


# --- bad files -------------------------------------------------------------------------------------


def test_a_missing_file_is_named(tmp_path):
    missing = tmp_path / "nowhere.yaml"
    with pytest.raises(VendorConfigError, match="nowhere.yaml: cannot read"):
        load_vendor_directory(missing)


def test_a_file_that_is_not_yaml_is_named(tmp_path):
    assert "not valid YAML" in load_error(tmp_path, "vendors: [\n  - {vendor_id: V-1")


@pytest.mark.parametrize("text", ["", "- V-1\n", "vendors: 3\n", "vendor:\n  - {}\n"])
def test_a_file_without_a_list_of_vendors_is_refused(tmp_path, text):
    assert load_error(tmp_path, text).startswith(str(tmp_path / "vendors.yaml"))


@pytest.mark.parametrize(("changes", "field", "why"), [
    ({"bank": {"iban": "CI71CI0080100120451730084127"}}, "bank.iban", "not a valid IBAN"),
    ({"bank": {"iban": "CI70CI00801001"}}, "bank.iban", "not a valid IBAN"),
    ({"bank": {"iban": "SN39SN0120100103628190451264"}}, "", "bank.iban is an account in SN, the vendor is in CI"),
    ({"bank": {"bic": "SG"}}, "bank.bic", "not a valid BIC"),
    ({"bank": {"iban": None}}, "bank", "an iban, or an account_number with a bank_code, is required"),
    ({"bank": {"iban": None, "account_number": "0100204773120886609"}}, "bank", "is required"),
    ({"bank": {"account_number": "0100204773120886609", "bank_code": "CI008"}}, "bank", "not both"),
    ({"bank": {"account_holder": ""}}, "bank.account_holder", "at least 1 character"),
    ({"bank": {"routing": "x"}}, "bank.routing", "Extra inputs are not permitted"),
    ({"country": "CIV"}, "country", "not an ISO 3166-1 alpha-2 country code"),
    ({"country": "ZZ"}, "country", "not an ISO 3166-1 alpha-2"),
    ({"country": "ci"}, "country", "not an ISO 3166-1 alpha-2"),
    ({"currency": "FCFA"}, "currency", "not an ISO 4217 currency"),
    ({"categories": ["tailoring"]}, "categories.0", "Input should be"),
    ({"categories": []}, "categories", "at least 1 item"),
    ({"categories": ["medical", "medical"]}, "categories", "listed twice"),
    ({"active": "yes"}, "active", "valid boolean"),
    ({"name": None}, "name", "Field required"),
])
def test_an_error_names_the_vendor_and_the_field(tmp_path, changes, field, why):
    message = load_error(tmp_path, shipped_with(**changes))
    prefix = f"vendor V-ABJ-017: {field}: " if field else "vendor V-ABJ-017: "
    assert prefix in message and why in message, message
    assert "Value error," not in message


def test_an_account_number_written_as_a_yaml_number_is_refused(tmp_path):
    # Unquoted digits are an integer to YAML (leading zeros gone, or octal): never guessed back into text.
    text = VENDORS_FILE.read_text(encoding="utf-8").replace('"0100204773120886609"', "0100204773120")
    assert "vendor V-DKR-012: bank.account_number: Input should be a valid string" in load_error(tmp_path, text)


def test_a_vendor_without_an_id_is_named_by_its_position(tmp_path):
    message = load_error(tmp_path, shipped_with(vendor_id=None))
    assert "vendor #1: vendor_id: Field required" in message


def test_a_bad_vendor_id_is_refused(tmp_path):
    assert "vendor V ABJ: vendor_id: String should match pattern" in load_error(tmp_path, shipped_with(vendor_id="V ABJ"))


def test_every_error_of_the_file_is_reported(tmp_path):
    data = shipped_with(currency="FCFA")
    data["vendors"][1]["country"] = "XX"
    message = load_error(tmp_path, data)
    assert "vendor V-ABJ-017: currency:" in message and "vendor V-DKR-004: country:" in message


def test_a_vendor_id_listed_twice_is_refused(tmp_path):
    data = shipped_with()
    data["vendors"].append(copy.deepcopy(data["vendors"][0]))
    assert "vendor V-ABJ-017 is listed more than once" in load_error(tmp_path, data)
