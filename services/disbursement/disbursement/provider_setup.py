"""The providers this deployment pays through, loaded once per process from the registry file
(`providers.yaml`, or REINTEGRA_PROVIDERS_CONFIG) and the environment."""

from __future__ import annotations

from functools import lru_cache

from reintegra.settings import Settings, load_settings

from disbursement.adapters.providers.registry import ProviderRegistry
from disbursement.domain.providers import ProviderDirectory
from disbursement.domain.vendors import VendorDirectory
from disbursement.vendor_registry import load_vendor_directory


def registry(settings: Settings | None = None) -> ProviderRegistry:
    settings = settings or load_settings()
    return ProviderRegistry.load(sandbox_url=settings.provider_base_url)


@lru_cache(maxsize=1)
def directory() -> ProviderDirectory:
    """Who can be paid through whom (pure data, for routing tranches when they are released)."""
    return ProviderRegistry.load(sandbox_url=load_settings().provider_base_url).directory()


@lru_cache(maxsize=1)
def vendors() -> VendorDirectory:
    """The vendors in-kind components are ordered from (vendors.yaml, or REINTEGRA_VENDORS_CONFIG)."""
    return load_vendor_directory()
