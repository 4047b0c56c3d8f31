"""Notifications' schema: the notices. `insert_notices` runs inside the caller's transaction; the
sender's `claim_due` and `record_results` are each one short transaction of their own."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True)
class Notice:
    notice_id: str
    case_id: str
    kind: str
    language: str
    phone: str | None
    body: str
    traceparent: str | None
    tracestate: str | None


async def insert_notices(conn: asyncpg.Connection, notices: list[Notice]) -> None:
    if notices:
        await conn.execute(
            """
            INSERT INTO notices (notice_id, case_id, kind, language, phone, body, status, traceparent, tracestate)
            SELECT n, c, k, l, p, b, CASE WHEN p IS NULL THEN 'undeliverable' ELSE 'pending' END, tp, ts
            FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])
                 AS x(n, c, k, l, p, b, tp, ts)
            ON CONFLICT (notice_id) DO NOTHING
            """,
            *[[getattr(n, f) for n in notices] for f in
              ("notice_id", "case_id", "kind", "language", "phone", "body", "traceparent", "tracestate")],
        )


async def claim_due(conn: asyncpg.Connection, limit: int, lease_s: float, max_attempts: int) -> list[asyncpg.Record]:
    """Lease up to `limit` notices due to be sent: pending ones past their backoff, and sending
    ones whose lease expired (their sender stopped before recording). Each gets a fresh lease
    token, `lease_until` (now + `lease_s`) and one more attempt; only that token can record its
    result. A notice whose lease expired on its last allowed attempt is failed instead. One short
    transaction: commit before calling the gateway."""
    async with conn.transaction():
        await conn.execute(
            """
            UPDATE notices
            SET status = 'failed', lease_token = NULL, lease_until = NULL,
                last_error = 'lease expired ' || attempts || ' time(s): the sender stopped before recording'
            WHERE notice_id IN (SELECT notice_id FROM notices
                                WHERE status = 'sending' AND next_attempt_at <= now() AND lease_until <= now()
                                  AND attempts >= $1
                                FOR UPDATE SKIP LOCKED)
            """,
            max_attempts,
        )
        return await conn.fetch(
            """
            UPDATE notices n
            SET status = 'sending', lease_token = gen_random_uuid(),
                lease_until = now() + make_interval(secs => $2), next_attempt_at = now() + make_interval(secs => $2),
                attempts = n.attempts + 1,
                last_error = CASE WHEN n.status = 'sending' THEN 'lease expired' ELSE n.last_error END
            FROM (SELECT notice_id FROM notices
                  WHERE status IN ('pending', 'sending') AND next_attempt_at <= now()
                    AND (status = 'pending' OR lease_until <= now())
                  ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED) due
            WHERE n.notice_id = due.notice_id
            RETURNING n.notice_id, n.case_id, n.language, n.phone, n.body, n.traceparent, n.tracestate,
                      n.lease_token, n.attempts
            """,
            limit, lease_s,
        )


@dataclass(frozen=True)
class Recorded:
    """What became of one leased notice: `status` sent | rejected | pending | failed."""

    notice_id: str
    lease_token: uuid.UUID
    status: str
    error: str | None = None
    retry_in_s: float | None = None  # pending: when to try again


async def record_results(conn: asyncpg.Connection, results: list[Recorded]) -> set[str]:
    """Write each result, only under the lease it was sent with (a stale lease writes nothing).
    Returns the ids written."""
    if not results:
        return set()
    rows = await conn.fetch(
        """
        UPDATE notices n
        SET status = r.status,
            sent_at = CASE WHEN r.status = 'sent' THEN now() ELSE n.sent_at END,
            last_error = CASE WHEN r.status = 'sent' THEN n.last_error ELSE r.error END,
            next_attempt_at = CASE WHEN r.status = 'pending' THEN now() + make_interval(secs => r.retry_in_s)
                                   ELSE n.next_attempt_at END,
            lease_token = NULL, lease_until = NULL
        FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::float8[])
             AS r(notice_id, lease_token, status, error, retry_in_s)
        WHERE n.notice_id = r.notice_id AND n.status = 'sending' AND n.lease_token = r.lease_token
        RETURNING n.notice_id
        """,
        [r.notice_id for r in results], [r.lease_token for r in results], [r.status for r in results],
        [r.error for r in results], [r.retry_in_s for r in results],
    )
    return {row["notice_id"] for row in rows}
