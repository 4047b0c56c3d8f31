"""The roles a user can hold. None implies another: ``admin`` manages users but does not review
or approve (segregation of duties), so every check names the roles it accepts."""

from __future__ import annotations

from collections.abc import Iterable

from .errors import UnknownRoleError

REVIEWER = "reviewer"
FINANCE_VIEWER = "finance_viewer"
FINANCE_APPROVER = "finance_approver"
ADMIN = "admin"

ROLES: tuple[str, ...] = (REVIEWER, FINANCE_VIEWER, FINANCE_APPROVER, ADMIN)


def parse_roles(roles: Iterable[str], *, allow_empty: bool = False) -> frozenset[str]:
    """The roles as a set, or UnknownRoleError naming the first one that does not exist.

    Matching is exact: a role spelt differently is a typo, and a typo in an authorisation rule
    must fail loudly rather than grant or deny by accident."""
    if isinstance(roles, str):  # "reviewer" would otherwise be read as seven one-letter roles
        roles = (roles,)
    parsed = frozenset(roles)
    for role in sorted(parsed):
        if role not in ROLES:
            raise UnknownRoleError(f"unknown role {role!r}; the roles are {', '.join(ROLES)}")
    if not parsed and not allow_empty:
        raise UnknownRoleError(f"at least one role is needed; the roles are {', '.join(ROLES)}")
    return parsed
