"""The vendors in-kind components are ordered from, and whether a plan may order from one (pure).

A vendor is paid by bank transfer after a three-way match (see `three_way_match`), so it carries
its bank account and the bank provider the transfer goes through. Loading and validating the
registry file (IBAN checksums included) is `disbursement.vendor_registry`'s job.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

VENDOR_UNKNOWN = "vendor_unknown"
VENDOR_INACTIVE = "vendor_inactive"
VENDOR_CATEGORY_MISMATCH = "vendor_category_mismatch"


@dataclass(frozen=True, slots=True)
class VendorBank:
    """Where a vendor is paid: an IBAN, or (where banks have none) an account number with its bank code."""

    account_holder: str
    iban: str | None = None
    account_number: str | None = None
    bank_code: str | None = None
    bic: str | None = None
    provider: str | None = None  # the bank provider to pay through (sgbci_ci, cbao_sn); None: routed by country

    def __post_init__(self) -> None:
        # A bank transfer without a creditor name or account is refused by every bank: fail at load, not at payment.
        if not self.account_holder.strip():
            raise ValueError("a vendor's bank account needs an account holder")
        if self.iban is None and not (self.account_number and self.bank_code):
            raise ValueError("a vendor's bank account needs an IBAN, or an account number and a bank code")


@dataclass(frozen=True, slots=True)
class Vendor:
    vendor_id: str
    name: str
    country: str  # ISO 3166-1 alpha-2
    currency: str  # ISO 4217, what the vendor invoices and is paid in
    categories: tuple[str, ...]  # the plan categories it supplies
    bank: VendorBank
    active: bool = True


class VendorDirectory:
    """The vendors known to this deployment, by id."""

    def __init__(self, vendors: Iterable[Vendor]) -> None:
        by_id: dict[str, Vendor] = {}
        for vendor in vendors:
            if vendor.vendor_id in by_id:
                raise ValueError(f"vendor {vendor.vendor_id} is listed twice")
            by_id[vendor.vendor_id] = vendor
        self._by_id = by_id

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[Vendor]:
        return iter(self._by_id.values())

    def get(self, vendor_id: str | None) -> Vendor | None:
        return self._by_id.get(vendor_id) if vendor_id is not None else None

    def check(self, vendor_id: str | None, category: str) -> tuple[str | None, str]:
        """(reason code, message) why a component of `category` cannot be ordered from the vendor,
        or (None, "") when it can."""
        vendor = self.get(vendor_id)
        if vendor is None:
            return VENDOR_UNKNOWN, (f"vendor {vendor_id} is not registered" if vendor_id
                                    else "the component names no vendor")
        if not vendor.active:
            return VENDOR_INACTIVE, f"vendor {vendor_id} ({vendor.name}) no longer takes orders"
        if category not in vendor.categories:
            return (VENDOR_CATEGORY_MISMATCH,
                    f"vendor {vendor_id} ({vendor.name}) supplies {', '.join(vendor.categories)}, not {category}")
        return None, ""
