"""What can go wrong when managing users and tokens: each error's message is fit to show as is."""

from __future__ import annotations


class AuthError(Exception):
    """A refused request to manage users or tokens (the CLI prints the message and exits 2)."""


class UnknownRoleError(AuthError, ValueError):
    pass


class InvalidUserDataError(AuthError, ValueError):
    """A username, display name, upstream id or token name that cannot be stored."""


class PasswordRuleError(AuthError, ValueError):
    pass


class DuplicateUserError(AuthError):
    pass


class UnknownUserError(AuthError, LookupError):
    pass


class UserDisabledError(AuthError):
    pass


class UnknownTokenError(AuthError, LookupError):
    pass
