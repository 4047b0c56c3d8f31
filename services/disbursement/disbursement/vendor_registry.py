"""Loading the vendor registry (`vendors.yaml`, or the file REINTEGRA_VENDORS_CONFIG names).

The file is checked whole when it is loaded, so a typo in an IBAN stops the service at start
instead of bouncing a vendor's payment weeks later; an error names the vendor and the field.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pycountry
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from reintegra.contract.upstream import Category
from reintegra.money import is_known_currency
from schwifty import BIC, IBAN
from schwifty.exceptions import SchwiftyException

from disbursement.domain.vendors import Vendor, VendorBank, VendorDirectory

VENDORS_FILE = Path(__file__).parent / "vendors.yaml"
VENDORS_ENV = "REINTEGRA_VENDORS_CONFIG"


class VendorConfigError(ValueError):
    """The registry file cannot be used; the message says which file, vendor and field."""


class _Bank(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, strict=True)

    account_holder: str = Field(min_length=1)
    iban: str | None = None
    account_number: str | None = Field(None, min_length=1)
    bank_code: str | None = Field(None, min_length=1)
    bic: str | None = None
    provider: str | None = Field(None, min_length=1)

    @field_validator("iban")
    @classmethod
    def _valid_iban(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return IBAN(value).compact  # stored without spaces: the form banks' APIs take
        except SchwiftyException as exc:
            raise ValueError(f"{value!r} is not a valid IBAN ({exc})") from None

    @field_validator("bic")
    @classmethod
    def _valid_bic(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(BIC(value))
        except SchwiftyException as exc:
            raise ValueError(f"{value!r} is not a valid BIC ({exc})") from None

    @model_validator(mode="after")
    def _one_account(self) -> _Bank:
        domestic = self.account_number is not None or self.bank_code is not None
        if self.iban is not None and domestic:
            raise ValueError("give an iban, or an account_number with a bank_code, not both")
        if self.iban is None and not (self.account_number and self.bank_code):
            raise ValueError("an iban, or an account_number with a bank_code, is required")
        return self


class _Vendor(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, strict=True)

    vendor_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    name: str = Field(min_length=1)
    country: str
    currency: str
    categories: list[Category] = Field(min_length=1)
    bank: _Bank
    active: bool = True

    @field_validator("country")
    @classmethod
    def _known_country(cls, value: str) -> str:
        if len(value) != 2 or not value.isupper() or pycountry.countries.get(alpha_2=value) is None:
            raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 country code (e.g. CI)")
        return value

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        if not is_known_currency(value):
            raise ValueError(f"{value!r} is not an ISO 4217 currency with minor units (e.g. XOF)")
        return value

    @field_validator("categories")
    @classmethod
    def _no_repeats(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a category is listed twice")
        return value

    @model_validator(mode="after")
    def _account_in_the_vendors_country(self) -> _Vendor:
        # A local supplier's account abroad is far more likely a copy-paste slip than the truth.
        if self.bank.iban is not None and self.bank.iban[:2] != self.country:
            raise ValueError(f"bank.iban is an account in {self.bank.iban[:2]}, the vendor is in {self.country}")
        return self

    def to_domain(self) -> Vendor:
        bank = self.bank
        return Vendor(
            vendor_id=self.vendor_id, name=self.name, country=self.country, currency=self.currency,
            categories=tuple(self.categories), active=self.active,
            bank=VendorBank(account_holder=bank.account_holder, iban=bank.iban, account_number=bank.account_number,
                            bank_code=bank.bank_code, bic=bank.bic, provider=bank.provider),
        )


class _Registry(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    vendors: list[_Vendor]


def vendors_path(path: Path | None = None, env: Mapping[str, str] | None = None) -> Path:
    """The file to read: `path`, else REINTEGRA_VENDORS_CONFIG, else the shipped `vendors.yaml`."""
    if path is not None:
        return Path(path)
    configured = (os.environ if env is None else env).get(VENDORS_ENV)
    return Path(configured) if configured else VENDORS_FILE


def load_vendor_directory(path: Path | None = None, env: Mapping[str, str] | None = None) -> VendorDirectory:
    source = vendors_path(path, env)
    try:
        raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    except OSError as exc:
        raise VendorConfigError(f"{source}: cannot read the vendor registry ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise VendorConfigError(f"{source}: not valid YAML ({exc})") from None
    try:
        registry = _Registry.model_validate(raw)
    except ValidationError as exc:
        raise VendorConfigError(f"{source}: " + "; ".join(_describe(error, raw) for error in exc.errors())) from None
    duplicates = _duplicates([v.vendor_id for v in registry.vendors])
    if duplicates:
        raise VendorConfigError(f"{source}: vendor {', '.join(duplicates)} is listed more than once")
    return VendorDirectory(v.to_domain() for v in registry.vendors)


def _describe(error: Mapping[str, Any], raw: Any) -> str:
    """One pydantic error as "vendor V-ABJ-017: bank.iban: <why>" (the vendor by id when it has one)."""
    location = list(error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    if len(location) < 2 or location[0] != "vendors" or not isinstance(location[1], int):
        return f"{'.'.join(map(str, location)) or 'the file'}: {message}"
    index, field = location[1], ".".join(map(str, location[2:]))
    entry = raw["vendors"][index]
    vendor_id = entry.get("vendor_id") if isinstance(entry, Mapping) else None
    who = f"vendor {vendor_id}" if isinstance(vendor_id, str) and vendor_id else f"vendor #{index + 1}"
    return f"{who}: {field}: {message}" if field else f"{who}: {message}"


def _duplicates(ids: list[str]) -> list[str]:
    return sorted(i for i, count in Counter(ids).items() if count > 1)
