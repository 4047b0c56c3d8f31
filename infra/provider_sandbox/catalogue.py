"""The providers the sandbox serves, read from a YAML catalogue (the shipped one by default)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from .money import exponent

DIALECTS = ("momo", "bank", "pickup")


class Credentials(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    api_user: str
    api_key: str
    subscription_key: str
    callback_secret: str

    @classmethod
    def defaults(cls, name: str) -> dict[str, str]:
        return {
            "api_user": f"sandbox-user-{name}",
            "api_key": f"sandbox-key-{name}",
            "subscription_key": f"sandbox-subscription-{name}",
            "callback_secret": f"sandbox-callback-{name}",
        }


class Account(BaseModel):
    """The programme's account at the provider: an IBAN, or another identifier."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    iban: str | None = None
    id: str | None = None

    @model_validator(mode="after")
    def _one_identifier(self) -> Account:
        if (self.iban is None) == (self.id is None):
            raise ValueError("an account has exactly one of iban or id")
        return self

    @property
    def identifier(self) -> str:
        return self.iban or self.id or ""


class Provider(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{1,63}$")
    kind: Literal["mobile_money", "bank_transfer", "cash_pickup"]
    dialect: Literal["momo", "bank", "pickup"]
    country: str = Field(pattern=r"^[A-Z]{2}$")
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    credentials: Credentials
    account: Account
    float_minor: int = Field(ge=0)

    @model_validator(mode="after")
    def _known_currency(self) -> Provider:
        exponent(self.currency)  # raises for a code that is not ISO 4217
        return self


def load_catalogue(path: Path | None = None, float_minor: int | None = None) -> dict[str, Provider]:
    """Providers by name. `float_minor` overrides the catalogue's float for every provider."""
    if path is None:
        text = resources.files(__package__).joinpath("providers.yaml").read_text(encoding="utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    document = yaml.safe_load(text) or {}
    default_float = float_minor if float_minor is not None else int(document.get("float_minor", 1_000_000_000))
    providers: dict[str, Provider] = {}
    for entry in document.get("providers", []):
        name = entry.get("name", "")
        credentials = {**Credentials.defaults(name), **(entry.get("credentials") or {})}
        account = entry.get("account") or {"id": f"SANDBOX-{name.upper()}"}
        provider = Provider.model_validate(
            {"float_minor": default_float, **entry, "credentials": credentials, "account": account}
            | ({"float_minor": float_minor} if float_minor is not None else {})
        )
        if provider.name in providers:
            raise ValueError(f"provider {provider.name!r} is listed twice")
        providers[provider.name] = provider
    if not providers:
        raise ValueError("the provider catalogue lists no provider")
    return providers
