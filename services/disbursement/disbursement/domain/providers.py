"""Who a payout is paid through (pure): the providers of this deployment and the routing rules.

Mobile money and cash pickup name their provider (`payout.provider`); a bank transfer may name one,
otherwise it goes through the deployment's bank in the account's country (its IBAN's, else the
payout country). A payout that names no provider Reintegra pays through is held, saying why.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

PROVIDER_UNKNOWN = "provider_unknown"
PROVIDER_KIND_MISMATCH = "provider_kind_mismatch"
PAYOUT_MISSING = "payout_missing"
KINDS = ("mobile_money", "bank_transfer", "cash_pickup")


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


def _iban_country(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    compact = value.replace(" ", "").upper()
    if len(compact) >= 15 and compact[:2].isalpha() and compact[2:4].isdigit():
        return compact[:2]
    return None


class ProviderDirectory:
    def __init__(self, providers: Iterable[ProviderInfo]) -> None:
        self._by_name = {p.name: p for p in providers}

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def get(self, name: str | None) -> ProviderInfo | None:
        return self._by_name.get(name) if name else None

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def route(self, payout: Mapping[str, Any] | None, country: str | None) -> Route:
        if not payout or not payout.get("method"):
            return Route(None, PAYOUT_MISSING, "the grant has no payout to pay the cash through")
        method, named = payout["method"], payout.get("provider")
        if method not in KINDS:
            return Route(None, PROVIDER_UNKNOWN, f"payout method {method!r} is not one Reintegra pays by")
        if named:
            provider = self._by_name.get(named)
            if provider is None:
                return Route(None, PROVIDER_UNKNOWN, f"provider {named} is not a provider Reintegra pays through "
                             f"(known: {', '.join(self.names()) or 'none'})")
            if provider.kind != method:
                return Route(None, PROVIDER_KIND_MISMATCH,
                             f"provider {named} pays by {provider.kind}, not by {method}")
            return Route(provider)
        if method != "bank_transfer":
            return Route(None, PROVIDER_UNKNOWN, f"a {method} payout must name its provider")
        where = _iban_country(payout.get("account_number")) or _iban_country(payout.get("iban")) or country
        banks = [p for p in self._by_name.values() if p.kind == "bank_transfer" and p.country == where]
        if not banks:
            return Route(None, PROVIDER_UNKNOWN, f"no bank Reintegra pays through serves accounts in {where}")
        return Route(sorted(banks, key=lambda p: p.name)[0])
