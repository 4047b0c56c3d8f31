"""Password rules and argon2id hashing (argon2-cffi). Pure CPU work: callers on an event loop run
these in a thread (see ``store``), because one hash takes tens of milliseconds by design."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from .errors import PasswordRuleError

MIN_PASSWORD_LENGTH = 12
# argon2 reads all of it; a cap keeps a login form from being used to burn CPU with megabytes.
MAX_PASSWORD_LENGTH = 1024

# argon2-cffi's defaults (RFC 9106's low-memory profile, argon2id). When they change, or are
# changed here, stored hashes are upgraded at the next successful login (needs_rehash).
HASHER = PasswordHasher()


def check_password_rules(password: str) -> None:
    if not isinstance(password, str):
        raise PasswordRuleError("the password must be text")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise PasswordRuleError(f"the password is too short: at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise PasswordRuleError(f"the password is too long: at most {MAX_PASSWORD_LENGTH} characters")


def hash_password(password: str) -> str:
    check_password_rules(password)
    return HASHER.hash(password)


@dataclass(frozen=True)
class PasswordCheck:
    matches: bool
    upgraded_hash: str | None = None  # set when the stored hash used other parameters


def check_password(stored_hash: str | None, password: str) -> PasswordCheck:
    """Compare ``password`` with ``stored_hash``. Without a stored hash (unknown user, token-only
    user) a hash is still computed, so the answer takes as long whether or not the user exists."""
    if not isinstance(password, str):
        password = ""
    if stored_hash is None or len(password) > MAX_PASSWORD_LENGTH:
        _spend_one_verification(password[:MAX_PASSWORD_LENGTH])
        return PasswordCheck(matches=False)
    try:
        HASHER.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return PasswordCheck(matches=False)
    upgraded = HASHER.hash(password) if HASHER.check_needs_rehash(stored_hash) else None
    return PasswordCheck(matches=True, upgraded_hash=upgraded)


@cache
def _dummy_hash() -> str:
    return HASHER.hash("not a password: used to spend time on unknown users")


def _spend_one_verification(password: str) -> None:
    try:
        HASHER.verify(_dummy_hash(), password)
    except VerificationError:
        pass
