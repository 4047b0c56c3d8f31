"""The console's navigation: each entry is shown to the roles that may open it (the routes check
the roles again; hiding a link is not access control)."""

from __future__ import annotations

from dataclasses import dataclass

from reintegra.auth import ADMIN, FINANCE_APPROVER, FINANCE_VIEWER, REVIEWER, Principal

FINANCE_ROLES = (FINANCE_VIEWER, FINANCE_APPROVER)


@dataclass(frozen=True)
class NavEntry:
    label_key: str  # message key, e.g. "nav.reports"
    path: str
    roles: tuple[str, ...]

    def is_current(self, path: str) -> bool:
        return path == self.path or path.startswith(self.path.rstrip("/") + "/")


NAV: tuple[NavEntry, ...] = (
    NavEntry("nav.reconciliation", "/runs", FINANCE_ROLES),
    NavEntry("nav.exceptions", "/exceptions", FINANCE_ROLES),
    NavEntry("nav.reports", "/reports", FINANCE_ROLES),
    NavEntry("nav.reviews", "/reviews", (REVIEWER,)),
    NavEntry("nav.users", "/users", (ADMIN,)),
)


def visible_entries(principal: Principal | None) -> list[NavEntry]:
    if principal is None:
        return []
    return [entry for entry in NAV if principal.has_any_role(*entry.roles)]
