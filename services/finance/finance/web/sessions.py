"""Server-side console sessions in ``finance.console_sessions``, their id in a signed cookie.

The id is 32 random bytes; the row keeps only its SHA-256, the cookie carries the id signed with
the console secret (itsdangerous), so a forged or truncated cookie is refused without a query.
Every request re-reads the user (one UPDATE … FROM auth.users): a disabled user, a session idle
for longer than the idle timeout, or older than its absolute lifetime stops working at once, and
the row is deleted with the reviewer token it carried revoked.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg
from itsdangerous import BadSignature, Signer
from reintegra.auth import IssuedToken, Principal, UnknownTokenError, revoke_token

from .sealing import seal, unseal

VIA_SESSION = "session"
SESSION_ID_BYTES = 32

_SESSION_COLUMNS = """s.id_hash, s.created_at, s.last_seen_at, s.expires_at, s.csrf_secret, s.locale,
                      s.review_token_id, s.review_token_sealed,
                      u.id AS user_id, u.username, u.display_name, u.roles, u.upstream_ids"""

_TOUCH = f"""
    UPDATE finance.console_sessions s SET last_seen_at = now()
    FROM auth.users u
    WHERE s.id_hash = $1 AND u.id = s.user_id AND NOT u.disabled
      AND s.expires_at > now() AND s.last_seen_at > now() - make_interval(secs => $2)
    RETURNING {_SESSION_COLUMNS}
"""

_INSERT = """
    INSERT INTO finance.console_sessions
        (id_hash, user_id, expires_at, csrf_secret, locale, review_token_id, review_token_sealed)
    VALUES ($1, $2, now() + make_interval(secs => $3), $4, $5, $6, $7)
    RETURNING created_at, last_seen_at, expires_at
"""

_ENDED = """
    DELETE FROM finance.console_sessions s
    WHERE s.expires_at <= now() OR s.last_seen_at <= now() - make_interval(secs => $1)
       OR NOT EXISTS (SELECT 1 FROM auth.users u WHERE u.id = s.user_id AND NOT u.disabled)
    RETURNING s.review_token_id
"""


@dataclass(frozen=True)
class ConsoleSession:
    id_hash: str
    principal: Principal
    csrf_secret: str
    locale: str | None
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    review_token_id: int | None = None
    _review_token_sealed: bytes | None = field(default=None, repr=False)
    _session_id: bytes = field(default=b"", repr=False)

    @property
    def review_token(self) -> str | None:
        """The review API token issued at sign-in (reviewers only), or None."""
        return unseal(self._session_id, self._review_token_sealed)


def hash_session_id(session_id: bytes) -> str:
    return hashlib.sha256(session_id).hexdigest()


class SessionStore:
    def __init__(self, pool: asyncpg.Pool, secret: bytes, *, idle_s: int, lifetime_s: int) -> None:
        self.pool = pool
        self.idle_s = idle_s
        self.lifetime_s = lifetime_s
        self._signer = Signer(secret, salt="reintegra.finance.console.session", digest_method=hashlib.sha256)

    # ------------------------------------------------------------------ cookie value
    def _cookie_value(self, session_id: bytes) -> str:
        return self._signer.sign(base64.urlsafe_b64encode(session_id).rstrip(b"=")).decode("ascii")

    def _session_id(self, cookie_value: str | None) -> bytes | None:
        if not cookie_value or len(cookie_value) > 200:
            return None
        try:
            encoded = self._signer.unsign(cookie_value.encode("ascii"))
            session_id = base64.urlsafe_b64decode(encoded + b"=" * (-len(encoded) % 4))
        except (BadSignature, ValueError, UnicodeEncodeError):
            return None
        return session_id if len(session_id) == SESSION_ID_BYTES else None

    # ------------------------------------------------------------------ lifecycle
    async def start(self, conn: asyncpg.Connection | asyncpg.Pool, principal: Principal, *,
                    locale: str | None, review_token: IssuedToken | None = None) -> tuple[str, ConsoleSession]:
        """A new session (a new id: sign-in never reuses one) and its cookie value."""
        session_id = secrets.token_bytes(SESSION_ID_BYTES)
        id_hash = hash_session_id(session_id)
        csrf_secret = secrets.token_urlsafe(32)
        sealed = seal(session_id, review_token.token) if review_token else None
        token_id = review_token.token_id if review_token else None
        row = await conn.fetchrow(_INSERT, id_hash, principal.user_id, float(self.lifetime_s), csrf_secret,
                                  locale, token_id, sealed)
        session = ConsoleSession(
            id_hash=id_hash, principal=principal, csrf_secret=csrf_secret, locale=locale,
            created_at=row["created_at"], last_seen_at=row["last_seen_at"], expires_at=row["expires_at"],
            review_token_id=token_id, _review_token_sealed=sealed, _session_id=session_id)
        return self._cookie_value(session_id), session

    async def load(self, cookie_value: str | None) -> ConsoleSession | None:
        """The live session the cookie names, marked seen; None otherwise (an ended one is removed)."""
        session_id = self._session_id(cookie_value)
        if session_id is None:
            return None
        id_hash = hash_session_id(session_id)
        row = await self.pool.fetchrow(_TOUCH, id_hash, float(self.idle_s))
        if row is None:
            await self._delete(id_hash)
            return None
        principal = Principal(
            user_id=row["user_id"], username=row["username"], display_name=row["display_name"],
            roles=frozenset(row["roles"]), upstream_ids=frozenset(row["upstream_ids"]), via=VIA_SESSION)
        return ConsoleSession(
            id_hash=id_hash, principal=principal, csrf_secret=row["csrf_secret"], locale=row["locale"],
            created_at=row["created_at"], last_seen_at=row["last_seen_at"], expires_at=row["expires_at"],
            review_token_id=row["review_token_id"], _review_token_sealed=row["review_token_sealed"],
            _session_id=session_id)

    async def end(self, cookie_value: str | None) -> bool:
        """Sign-out: the session the cookie names is deleted and its review token revoked."""
        session_id = self._session_id(cookie_value)
        return session_id is not None and await self._delete(hash_session_id(session_id))

    async def end_for_user(self, conn: asyncpg.Connection | asyncpg.Pool, user_id: int) -> int:
        rows = await conn.fetch(
            "DELETE FROM finance.console_sessions WHERE user_id = $1 RETURNING review_token_id", user_id)
        await self._revoke(conn, [r["review_token_id"] for r in rows])
        return len(rows)

    async def set_locale(self, session: ConsoleSession, locale: str) -> None:
        await self.pool.execute("UPDATE finance.console_sessions SET locale = $2 WHERE id_hash = $1",
                                session.id_hash, locale)

    async def sweep(self) -> int:
        """Delete every ended session (idle, expired, user disabled) and revoke its review token."""
        rows = await self.pool.fetch(_ENDED, float(self.idle_s))
        await self._revoke(self.pool, [r["review_token_id"] for r in rows])
        return len(rows)

    async def _delete(self, id_hash: str) -> bool:
        token_ids = await self.pool.fetch(
            "DELETE FROM finance.console_sessions WHERE id_hash = $1 RETURNING review_token_id", id_hash)
        await self._revoke(self.pool, [r["review_token_id"] for r in token_ids])
        return bool(token_ids)

    @staticmethod
    async def _revoke(conn: asyncpg.Connection | asyncpg.Pool, token_ids: list[int | None]) -> None:
        for token_id in token_ids:
            if token_id is not None:
                with contextlib.suppress(UnknownTokenError):
                    await revoke_token(conn, token_id)
