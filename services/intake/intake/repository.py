"""Intake's schema: cases and parked events. Every function runs inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import asyncpg
from reintegra import jsonfast

from intake.domain.routing import CaseStatus


@dataclass(frozen=True)
class ParkedEvent:
    case_id: str
    source: str
    event_id: str
    type: str
    data: dict[str, Any]
    traceparent: str | None
    tracestate: str | None


async def load_case_statuses(conn: asyncpg.Connection, case_ids: Iterable[str]) -> dict[str, CaseStatus]:
    rows = await conn.fetch("SELECT case_id, status FROM cases WHERE case_id = ANY($1::text[])", list(case_ids))
    return {r["case_id"]: CaseStatus(r["status"]) for r in rows}


async def insert_cases(conn: asyncpg.Connection, cases: list[tuple[str, str, str, CaseStatus]]) -> None:
    """(case_id, source, program_code, status) rows for newly registered cases."""
    if cases:
        await conn.execute(
            """
            INSERT INTO cases (case_id, source, program_code, status)
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
            """,
            [c[0] for c in cases], [c[1] for c in cases], [c[2] for c in cases], [c[3].value for c in cases],
        )


async def update_statuses(conn: asyncpg.Connection, statuses: dict[str, CaseStatus]) -> None:
    if statuses:
        await conn.execute(
            """
            UPDATE cases SET status = u.status, updated_at = now()
            FROM unnest($1::text[], $2::text[]) AS u(case_id, status)
            WHERE cases.case_id = u.case_id
            """,
            list(statuses), [s.value for s in statuses.values()],
        )


async def take_parked(conn: asyncpg.Connection, case_ids: Iterable[str]) -> dict[str, list[ParkedEvent]]:
    """Remove and return the events parked for these cases, oldest first."""
    rows = await conn.fetch(
        """
        DELETE FROM parked_events WHERE case_id = ANY($1::text[])
        RETURNING id, case_id, source, event_id, type, data, traceparent, tracestate
        """,
        list(case_ids),
    )
    parked: dict[str, list[ParkedEvent]] = {}
    for r in sorted(rows, key=lambda r: r["id"]):
        parked.setdefault(r["case_id"], []).append(
            ParkedEvent(r["case_id"], r["source"], r["event_id"], r["type"], jsonfast.loads(r["data"]),
                        r["traceparent"], r["tracestate"])
        )
    return parked


async def park(conn: asyncpg.Connection, events: list[ParkedEvent]) -> None:
    if events:
        await conn.execute(
            """
            INSERT INTO parked_events (case_id, source, event_id, type, data, traceparent, tracestate)
            SELECT c, s, e, t, d, tp, ts
            FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::text[], $7::text[])
                 WITH ORDINALITY AS p(c, s, e, t, d, tp, ts, ord)
            ORDER BY ord
            """,
            [e.case_id for e in events], [e.source for e in events], [e.event_id for e in events],
            [e.type for e in events], [jsonfast.dumps_text(e.data) for e in events],
            [e.traceparent for e in events], [e.tracestate for e in events],
        )


async def parked_older_than(conn: asyncpg.Connection, seconds: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT case_id, source, event_id, type, parked_at FROM parked_events
        WHERE parked_at < now() - make_interval(secs => $1) ORDER BY parked_at
        """,
        seconds,
    )
