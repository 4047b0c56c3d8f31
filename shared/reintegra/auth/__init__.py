"""Users, roles, API tokens and the audit trail, shared by every program that needs a person
behind a request (the eligibility review API, later the finance console, the CLI).

Schema ``auth`` (``apply_auth_migrations``): ``auth.users``, ``auth.api_tokens``, ``auth.audit``.
Pure parts (roles, principal, passwords, tokens, identifiers) are separate from the Postgres
parts (store, audit, migrate) and from FastAPI (``reintegra.auth.http``, imported on its own so
that programs without HTTP do not load FastAPI).
"""

from __future__ import annotations

from .audit import record_audit
from .errors import (
    AuthError,
    DuplicateUserError,
    InvalidUserDataError,
    PasswordRuleError,
    UnknownRoleError,
    UnknownTokenError,
    UnknownUserError,
    UserDisabledError,
)
from .migrate import AUTH_SCHEMA, apply_auth_migrations, apply_auth_migrations_blocking
from .passwords import MIN_PASSWORD_LENGTH
from .principal import VIA_PASSWORD, VIA_TOKEN, Principal
from .roles import ADMIN, FINANCE_APPROVER, FINANCE_VIEWER, REVIEWER, ROLES, parse_roles
from .store import (
    IssuedToken,
    TokenRecord,
    UserRecord,
    authenticate_token,
    create_user,
    disable_user,
    issue_api_token,
    issue_token,
    list_users,
    revoke_token,
    verify_password,
)
from .tokens import TOKEN_PREFIX

__all__ = [
    "ADMIN", "AUTH_SCHEMA", "FINANCE_APPROVER", "FINANCE_VIEWER", "MIN_PASSWORD_LENGTH", "REVIEWER", "ROLES",
    "TOKEN_PREFIX", "VIA_PASSWORD", "VIA_TOKEN",
    "AuthError", "DuplicateUserError", "InvalidUserDataError", "PasswordRuleError", "UnknownRoleError",
    "UnknownTokenError", "UnknownUserError", "UserDisabledError",
    "IssuedToken", "Principal", "TokenRecord", "UserRecord",
    "apply_auth_migrations", "apply_auth_migrations_blocking", "authenticate_token", "create_user",
    "disable_user", "issue_api_token", "issue_token", "list_users", "parse_roles", "record_audit",
    "revoke_token", "verify_password",
]
