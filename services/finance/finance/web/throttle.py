"""Login throttling from ``finance.login_attempts``, so every console instance counts the same.

A username (as typed, lowercased, whether or not it exists) is locked for ``lockout_s`` once it
collected ``per_user`` failures within ``window_s`` since its last successful sign-in; a client
IP likewise after ``per_ip`` failures (a success does not clear those: one valid account must not
reset a guesser's count). Refused attempts while locked are not failures, so a lock ends on time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

MAX_KEY_LENGTH = 100

# The latest failure that completed `limit` failures within the window; the lock runs from it.
_LOCK_END = """
    WITH failures AS (
        SELECT at, lag(at, $2::int - 1) OVER (ORDER BY at) AS first_of_limit
        FROM finance.login_attempts
        WHERE {column} = $1 AND NOT succeeded
          AND at > now() - make_interval(secs => $3::float8 + $4::float8)
          {since_success}
    )
    SELECT max(at) + make_interval(secs => $4) FROM failures
    WHERE first_of_limit IS NOT NULL AND at - first_of_limit <= make_interval(secs => $3)
"""
_SINCE_SUCCESS = """AND at > (SELECT coalesce(max(at), '-infinity') FROM finance.login_attempts
                             WHERE username_key = $1 AND succeeded)"""


@dataclass(frozen=True)
class ThrottleLimits:
    window_s: int = 15 * 60
    lockout_s: int = 15 * 60
    per_user: int = 5
    per_ip: int = 20


@dataclass(frozen=True)
class Lock:
    until: datetime
    by: str  # "username" | "ip"

    def minutes_left(self, now: datetime) -> int:
        return max(1, -(-int((self.until - now).total_seconds()) // 60))


def username_key(username: str) -> str:
    return (username or "").strip().lower()[:MAX_KEY_LENGTH]


class LoginThrottle:
    def __init__(self, limits: ThrottleLimits) -> None:
        self.limits = limits

    async def serialise(self, conn: asyncpg.Connection, key: str) -> None:
        """Inside the caller's transaction: attempts on one username are checked one at a time, so
        parallel guesses cannot all pass the check before any is recorded."""
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('reintegra-console-login:' || $1))", key)

    async def lock(self, conn: asyncpg.Connection, key: str, remote: str) -> Lock | None:
        """The lock in force for this username or client IP, if any."""
        window, lockout = float(self.limits.window_s), float(self.limits.lockout_s)
        by_user = await conn.fetchval(_LOCK_END.format(column="username_key", since_success=_SINCE_SUCCESS),
                                      key, self.limits.per_user, window, lockout)
        by_ip = await conn.fetchval(_LOCK_END.format(column="remote", since_success=""),
                                    remote, self.limits.per_ip, window, lockout)
        now = await conn.fetchval("SELECT now()")
        locks = [Lock(until, by) for until, by in ((by_user, "username"), (by_ip, "ip")) if until and until > now]
        return max(locks, key=lambda lock: lock.until) if locks else None

    async def record(self, conn: asyncpg.Connection, key: str, remote: str, succeeded: bool) -> None:
        await conn.execute(
            "INSERT INTO finance.login_attempts (username_key, remote, succeeded) VALUES ($1, $2, $3)",
            key, remote, succeeded)

    async def prune(self, conn: asyncpg.Connection | asyncpg.Pool) -> None:
        """Attempts older than any window that could still count them."""
        keep_s = float(self.limits.window_s + self.limits.lockout_s)
        await conn.execute("DELETE FROM finance.login_attempts WHERE at < now() - make_interval(secs => $1)", keep_s)
