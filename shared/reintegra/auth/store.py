"""Users and API tokens in Postgres (schema ``auth``). Every function takes an asyncpg connection
or pool and runs one statement per step, so it can join the caller's transaction; checks of the
input happen before any I/O (``identifiers``, ``roles``, ``passwords``)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from .errors import DuplicateUserError, UnknownTokenError, UnknownUserError, UserDisabledError
from .identifiers import check_token_name, check_username, clean_display_name, clean_upstream_ids
from .passwords import check_password, check_password_rules, hash_password
from .principal import VIA_PASSWORD, VIA_TOKEN, Principal
from .roles import parse_roles
from .tokens import looks_like_token, new_token, token_hash

Executor = asyncpg.Connection | asyncpg.Pool


@dataclass(frozen=True)
class TokenRecord:
    token_id: int
    username: str
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class UserRecord:
    user_id: int
    username: str
    display_name: str
    roles: frozenset[str]
    upstream_ids: tuple[str, ...]
    has_password: bool
    disabled: bool
    created_at: datetime
    updated_at: datetime
    tokens: tuple[TokenRecord, ...] = ()


@dataclass(frozen=True)
class IssuedToken:
    token_id: int
    username: str
    name: str
    token: str  # the only time it exists outside the caller: show it once, never store it

    def __repr__(self) -> str:  # keeps the token out of logs and tracebacks
        return f"IssuedToken(token_id={self.token_id}, username={self.username!r}, name={self.name!r})"


_USER_COLUMNS = """u.id, u.username, u.display_name, u.roles, u.upstream_ids, u.disabled,
                   u.password_hash IS NOT NULL AS has_password, u.created_at, u.updated_at"""


def _user(row: asyncpg.Record, tokens: Iterable[TokenRecord] = ()) -> UserRecord:
    return UserRecord(
        user_id=row["id"], username=row["username"], display_name=row["display_name"],
        roles=frozenset(row["roles"]), upstream_ids=tuple(row["upstream_ids"]),
        has_password=row["has_password"], disabled=row["disabled"],
        created_at=row["created_at"], updated_at=row["updated_at"], tokens=tuple(tokens),
    )


def _token(row: asyncpg.Record) -> TokenRecord:
    return TokenRecord(
        token_id=row["id"], username=row["username"], name=row["name"], created_at=row["created_at"],
        last_used_at=row["last_used_at"], revoked_at=row["revoked_at"],
    )


def _principal(row: asyncpg.Record, via: str) -> Principal:
    return Principal(
        user_id=row["id"], username=row["username"], display_name=row["display_name"],
        roles=frozenset(row["roles"]), upstream_ids=frozenset(row["upstream_ids"]), via=via,
    )


# --------------------------------------------------------------------------- users


async def create_user(
    conn: Executor,
    username: str,
    roles: Iterable[str],
    *,
    password: str | None = None,
    display_name: str | None = None,
    upstream_ids: Iterable[str] = (),
) -> UserRecord:
    """A new user; without a password they can only use API tokens. DuplicateUserError when the
    username exists, whatever its case."""
    username = check_username(username)
    parsed_roles = parse_roles(roles)
    cleaned_ids = clean_upstream_ids(upstream_ids)
    name = clean_display_name(display_name, username)
    password_hash = None
    if password is not None:
        check_password_rules(password)  # before the thread hop: a refusal costs nothing
        password_hash = await asyncio.to_thread(hash_password, password)
    try:
        row = await conn.fetchrow(
            f"""INSERT INTO auth.users AS u (username, display_name, password_hash, roles, upstream_ids)
                VALUES ($1, $2, $3, $4::text[], $5::text[])
                RETURNING {_USER_COLUMNS}""",
            username, name, password_hash, sorted(parsed_roles), cleaned_ids,
        )
    except asyncpg.UniqueViolationError:
        raise DuplicateUserError(f"user {username!r} already exists (usernames ignore case)") from None
    return _user(row)


async def disable_user(conn: Executor, username: str) -> UserRecord:
    """Disabled users can neither log in nor use their tokens. Idempotent."""
    row = await conn.fetchrow(
        f"""UPDATE auth.users AS u
            SET disabled = true, updated_at = CASE WHEN u.disabled THEN u.updated_at ELSE now() END
            WHERE lower(u.username) = lower($1)
            RETURNING {_USER_COLUMNS}""",
        username,
    )
    if row is None:
        raise UnknownUserError(f"no user named {username!r}")
    return _user(row)


async def list_users(conn: Executor) -> list[UserRecord]:
    """Every user, by username, with all their tokens (revoked ones too), oldest first."""
    users = await conn.fetch(f"SELECT {_USER_COLUMNS} FROM auth.users AS u ORDER BY lower(u.username)")
    token_rows = await conn.fetch(
        """SELECT t.id, u.username, t.user_id, t.name, t.created_at, t.last_used_at, t.revoked_at
           FROM auth.api_tokens t JOIN auth.users u ON u.id = t.user_id ORDER BY t.id"""
    )
    tokens_of: dict[int, list[TokenRecord]] = defaultdict(list)
    for row in token_rows:
        tokens_of[row["user_id"]].append(_token(row))
    return [_user(row, tokens_of[row["id"]]) for row in users]


async def verify_password(conn: Executor, username: str, password: str) -> Principal | None:
    """The user when the password is theirs and they are not disabled, else None. As slow for an
    unknown username as for a known one, so the answer's timing does not reveal which exist."""
    row = None
    if isinstance(username, str) and len(username) <= 64:
        row = await conn.fetchrow(
            "SELECT * FROM auth.users WHERE lower(username) = lower($1)", username
        )
    check = await asyncio.to_thread(check_password, row["password_hash"] if row else None, password)
    if row is None or not check.matches or row["disabled"]:
        return None
    if check.upgraded_hash is not None:
        # Compare-and-set: a password changed meanwhile must not be overwritten by the old one.
        await conn.execute(
            "UPDATE auth.users SET password_hash = $2, updated_at = now() WHERE id = $1 AND password_hash = $3",
            row["id"], check.upgraded_hash, row["password_hash"],
        )
    return _principal(row, VIA_PASSWORD)


# --------------------------------------------------------------------------- tokens

# One statement, so that it works on a pool as well as inside the caller's transaction.
_ISSUE = """
    WITH target AS (SELECT id, username, disabled FROM auth.users WHERE lower(username) = lower($1)),
         issued AS (INSERT INTO auth.api_tokens (user_id, name, token_hash)
                    SELECT id, $2, $3 FROM target WHERE NOT disabled
                    RETURNING id)
    SELECT target.username, target.disabled, (SELECT id FROM issued) AS token_id FROM target
"""


async def issue_api_token(conn: Executor, username: str, name: str) -> IssuedToken:
    """A new token for ``username``, with its id (to revoke it later)."""
    name = check_token_name(name)
    token = new_token()
    row = await conn.fetchrow(_ISSUE, username, name, token_hash(token))
    if row is None:
        raise UnknownUserError(f"no user named {username!r}")
    if row["disabled"]:
        raise UserDisabledError(f"user {row['username']!r} is disabled; no token issued")
    return IssuedToken(token_id=row["token_id"], username=row["username"], name=name, token=token)


async def issue_token(conn: Executor, username: str, name: str) -> str:
    """A new API token (``rgt_…``) for ``username``; only its hash is stored, so show it once."""
    return (await issue_api_token(conn, username, name)).token


async def revoke_token(conn: Executor, token_id: int) -> TokenRecord:
    """Idempotent: revoking a revoked token keeps its first revocation time."""
    row = await conn.fetchrow(
        """UPDATE auth.api_tokens t SET revoked_at = coalesce(t.revoked_at, now())
           FROM auth.users u
           WHERE t.id = $1 AND u.id = t.user_id
           RETURNING t.id, u.username, t.name, t.created_at, t.last_used_at, t.revoked_at""",
        token_id,
    )
    if row is None:
        raise UnknownTokenError(f"no API token with id {token_id}")
    return _token(row)


async def authenticate_token(conn: Executor, token: str) -> Principal | None:
    """The token's user, or None for an unknown or revoked token or a disabled user. Marks the
    token used (last_used_at)."""
    if not isinstance(token, str) or not looks_like_token(token):
        return None
    row = await conn.fetchrow(
        """UPDATE auth.api_tokens t SET last_used_at = now()
           FROM auth.users u
           WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND u.id = t.user_id AND NOT u.disabled
           RETURNING u.id, u.username, u.display_name, u.roles, u.upstream_ids""",
        token_hash(token),
    )
    return _principal(row, VIA_TOKEN) if row is not None else None
