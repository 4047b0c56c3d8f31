"""Intake's schema: cases, parked events and refused registrations. Every function runs inside the
caller's transaction, and each touches one table with one statement for a whole batch."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

import asyncpg
from reintegra import jsonfast
from reintegra.locks import lock_subjects

from intake.domain.routing import CaseStatus, KnownCase


@dataclass(frozen=True)
class ParkedEvent:
    case_id: str
    source: str
    event_id: str
    type: str
    data: dict[str, Any]
    traceparent: str | None
    tracestate: str | None


@dataclass(frozen=True)
class RegistrationRefusal:
    """The last refused case.registered of a case that is not registered."""

    case_id: str
    source: str
    event_id: str | None


async def load_cases(conn: asyncpg.Connection, case_ids: Collection[str]) -> tuple[dict[str, KnownCase], set[str]]:
    """The registered cases among these, and the others whose registration was refused: one round trip."""
    if not case_ids:
        return {}, set()
    await lock_subjects(conn, "intake-case", case_ids)  # until commit: nobody decides on these cases beside us
    rows = await conn.fetch(
        """
        SELECT case_id, source, status FROM cases WHERE case_id = ANY($1::text[])
        UNION ALL
        SELECT case_id, NULL, NULL FROM registration_refusals WHERE case_id = ANY($1::text[])
        """,
        list(case_ids),
    )
    known = {r["case_id"]: KnownCase(r["source"], CaseStatus(r["status"])) for r in rows if r["status"] is not None}
    refused = {r["case_id"] for r in rows if r["status"] is None and r["case_id"] not in known}
    return known, refused


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


async def load_parked(
    conn: asyncpg.Connection, take: Collection[str], read: Collection[str]
) -> tuple[dict[str, list[ParkedEvent]], dict[str, list[ParkedEvent]]]:
    """The events parked for cases, oldest first: removed for `take` (they are released now), left
    in place for `read`. One statement for both."""
    if not take and not read:
        return {}, {}
    rows = await conn.fetch(
        """
        WITH taken AS (
            DELETE FROM parked_events WHERE case_id = ANY($1::text[])
            RETURNING id, case_id, source, event_id, type, data, traceparent, tracestate
        )
        SELECT true AS taken, * FROM taken
        UNION ALL
        SELECT false, id, case_id, source, event_id, type, data, traceparent, tracestate
        FROM parked_events WHERE case_id = ANY($2::text[])
        """,
        list(take), [c for c in read if c not in take],
    )
    taken: dict[str, list[ParkedEvent]] = {}
    kept: dict[str, list[ParkedEvent]] = {}
    for r in sorted(rows, key=lambda r: r["id"]):
        (taken if r["taken"] else kept).setdefault(r["case_id"], []).append(
            ParkedEvent(r["case_id"], r["source"], r["event_id"], r["type"], jsonfast.loads(r["data"]),
                        r["traceparent"], r["tracestate"])
        )
    return taken, kept


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


async def save_registration_refusals(conn: asyncpg.Connection, refusals: Iterable[RegistrationRefusal]) -> None:
    rows = list(refusals)
    if rows:
        await conn.execute(
            """
            INSERT INTO registration_refusals (case_id, source, event_id)
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
            ON CONFLICT (case_id) DO UPDATE
                SET source = excluded.source, event_id = excluded.event_id, refused_at = now()
            """,
            [r.case_id for r in rows], [r.source for r in rows], [r.event_id for r in rows],
        )


async def clear_registration_refusals(conn: asyncpg.Connection, case_ids: Collection[str]) -> None:
    if case_ids:
        await conn.execute("DELETE FROM registration_refusals WHERE case_id = ANY($1::text[])", list(case_ids))


async def parked_older_than(conn: asyncpg.Connection, seconds: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT case_id, source, event_id, type, parked_at FROM parked_events
        WHERE parked_at < now() - make_interval(secs => $1) ORDER BY parked_at
        """,
        seconds,
    )
