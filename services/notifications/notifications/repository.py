"""Notifications' schema: the notices. Runs inside the caller's transaction."""

from __future__ import annotations

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


async def claim_pending(conn: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT notice_id, case_id, language, phone, body, traceparent, tracestate FROM notices
        WHERE status = 'pending' ORDER BY created_at LIMIT $1 FOR UPDATE SKIP LOCKED
        """,
        limit,
    )


async def mark_sent(conn: asyncpg.Connection, notice_ids: list[str]) -> None:
    await conn.execute(
        "UPDATE notices SET status = 'sent', sent_at = now() WHERE notice_id = ANY($1::text[])", notice_ids
    )
