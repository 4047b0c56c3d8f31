"""Who a payout is paid through (pure): the providers of this deployment and the routing rules.

Mobile money and cash pickup name their provider (`payout.provider`); a bank transfer may name one,
otherwise it goes through the deployment's first bank in the account's country (its IBAN's, else
the payout country). A payout that names no provider Reintegra pays through is held, saying why.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

PROVIDER_UNKNOWN = "provider_unknown"
PROVIDER_KIND_MISMATCH = "provider_kind_mismatch"
PAYOUT_MISSING = "payout_missing"
KINDS = ("mobile_money", "bank_transfer", "cash_pickup")
# An IBAN's shape, enough to read its country: two letters, two check digits, then the account.
_IBAN = re.compile(r"^([A-Z]{2})[0-9]{2}[A-Z0-9]{11,30}$")


@dataclass(frozen=True, slots=True)
class ProviderInfo:
    name: str
    kind: str  # mobile_money | bank_transfer | cash_pickup
    country: str
    currency: str


@dataclass(frozen=True, slots=True)
class Route:
    provider: ProviderInfo | None
    reason: str | None = None
    message: str = ""


def iban_country(value: object) -> str | None:
    """The country of an IBAN-shaped account number (spaces and dashes allowed), else None."""
    if not isinstance(value, str):
        return None
    match = _IBAN.match(re.sub(r"[\s-]", "", value).upper())
    return match.group(1) if match else None


class ProviderDirectory:
    def __init__(self, providers: Iterable[ProviderInfo]) -> None:
        self._by_name: dict[str, ProviderInfo] = {}
        for provider in providers:  # declaration order: the first bank of a country is its default
            self._by_name.setdefault(provider.name, provider)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self):
        return iter(self._by_name.values())

    def get(self, name: str | None) -> ProviderInfo | None:
        return self._by_name.get(name) if isinstance(name, str) else None

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def route(self, payout: Mapping[str, Any] | None, country: str | None) -> Route:
        if not isinstance(payout, Mapping) or not payout.get("method"):
            return Route(None, PAYOUT_MISSING, "the grant has no payout to pay the cash through")
        method, named = payout["method"], payout.get("provider")
        if method not in KINDS:
            return Route(None, PROVIDER_UNKNOWN, f"payout method {method!r} is not one Reintegra pays by")
        if named:
            return self._named(method, named)
        if method != "bank_transfer":
            return Route(None, PROVIDER_UNKNOWN, f"a {method} payout must name its provider")
        where = iban_country(payout.get("account_number")) or iban_country(payout.get("iban")) or country
        bank = next((p for p in self._by_name.values() if p.kind == "bank_transfer" and p.country == where), None)
        if bank is None:
            if not where:
                return Route(None, PROVIDER_UNKNOWN, "the bank transfer names no bank and no country to find one in")
            return Route(None, PROVIDER_UNKNOWN, f"no bank Reintegra pays through serves accounts in {where}")
        return Route(bank)

    def _named(self, method: str, named: object) -> Route:
        provider = self.get(named) if isinstance(named, str) else None
        if provider is None:
            return Route(None, PROVIDER_UNKNOWN, f"provider {named} is not a provider Reintegra pays through "
                         f"(known: {', '.join(self.names()) or 'none'})")
        if provider.kind != method:
            return Route(None, PROVIDER_KIND_MISMATCH, f"provider {named} pays by {provider.kind}, not by {method}")
        return Route(provider)
