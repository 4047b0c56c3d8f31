"""Disbursement's payment instructions, provider reports and payment exceptions (its own schema).

An instruction is written, with its frozen request, in the transaction that claims the tranche,
so it is committed before any provider call; a call's result is recorded later, and only under
the lease (`lease_token`) the call was made with, so two dispatchers can never both record.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from reintegra import jsonfast
from reintegra.errors import TransientError
from reintegra.events import new_event
from reintegra.handling import derived_id
from reintegra.outbox import OutboxMessage, cloud_event_message
from reintegra.topics import PAYMENT_EXCEPTIONS

ACTIVE_STATES = ("sending", "unknown", "pending")
SOURCE = "urn:reintegra:disbursement"
EXCEPTION_RAISED = "reintegra.payment.exception.raised.v1"


@dataclass(frozen=True)
class Work:
    """One provider call to make: send (a fresh instruction), check (outcome unknown: ask before
    any resend) or poll (accepted, waiting for its settlement)."""

    action: str  # send | check | poll
    reference: str
    provider: str
    case_id: str
    key: tuple[str, str, int]
    request: dict[str, Any] | None
    lease_token: uuid.UUID
    past_deadline: bool
    traceparent: str | None
    tracestate: str | None
    refusal: tuple[str, str] | None = None  # (reason, message) when the payee could not be frozen


async def claim_new_tranches(conn: asyncpg.Connection, provider: str, limit: int) -> list[asyncpg.Record]:
    """Released cash tranches routed to this provider, locked (others skip them), with the payout
    and contact they are paid to. The caller freezes each and calls `add_instructions`."""
    return await conn.fetch(
        """
        SELECT t.case_id, t.plan_id, t.component_id, t.seq, t.reference, t.attempt, t.modality, t.vendor_id,
               t.status,
               coalesce(t.payout_minor, t.amount_minor) AS payout_minor,
               coalesce(t.payout_currency, t.currency) AS payout_currency, t.traceparent, t.tracestate,
               f.facts -> 'grant' -> 'payout' AS payout, f.facts -> 'grant' -> 'contact' AS contact
        FROM tranches t JOIN case_facts f ON f.case_id = t.case_id
        WHERE ((t.status = 'released' AND t.modality = 'cash') OR (t.status = 'delivered' AND t.modality = 'in_kind'))
          AND t.next_attempt_at <= now()
          -- routed when released; a cash tranche released before providers were routed goes by its payout
          AND (t.pay_via = $1 OR (t.pay_via IS NULL AND t.modality = 'cash'
                                  AND f.facts -> 'grant' -> 'payout' ->> 'provider' = $1))
        ORDER BY t.next_attempt_at
        LIMIT $2
        FOR UPDATE OF t SKIP LOCKED
        """,
        provider, limit,
    )


async def add_instructions(conn: asyncpg.Connection, rows: Sequence[dict[str, Any]], deadline_s: float,
                           lease_s: float) -> None:
    """Record instructions (state `sending`, leased to the caller) and mark their tranches `sending`,
    with the payout each was frozen with; each claim is an audited transition."""
    if not rows:
        return
    cols = ("reference", "tranche_reference", "attempt", "previous_reference", "case_id", "plan_id",
            "component_id", "seq", "payee_kind", "provider", "amount_minor", "currency", "request", "lease_token",
            "traceparent", "tracestate")
    types = ("text", "text", "int", "text", "text", "text", "text", "int", "text", "text", "bigint", "text",
             "jsonb", "uuid", "text", "text")
    values = [[r[c] if c != "request" or r[c] is None else jsonfast.dumps_text(r[c]) for r in rows] for c in cols]
    unnest = ", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(types))
    n = len(cols)
    await conn.execute(
        f"""
        INSERT INTO payment_instructions ({', '.join(cols)}, state, next_attempt_at, deadline_at)
        SELECT u.*, 'sending', now() + make_interval(secs => ${n + 1}), now() + make_interval(secs => ${n + 2})
        FROM unnest({unnest}) AS u({', '.join(cols)})
        ON CONFLICT (reference) DO NOTHING
        """,
        *values, lease_s, deadline_s,
    )
    await conn.execute(
        """
        UPDATE tranches t SET status = 'sending', sent_payout = u.payout, updated_at = now()
        FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::jsonb[]) AS u(case_id, plan_id, component_id, seq, payout)
        WHERE t.case_id = u.case_id AND t.plan_id = u.plan_id AND t.component_id = u.component_id AND t.seq = u.seq
        """,
        [r["case_id"] for r in rows], [r["plan_id"] for r in rows], [r["component_id"] for r in rows],
        [r["seq"] for r in rows], [jsonfast.dumps_text(r["payout"]) for r in rows],
    )
    await conn.execute(
        """
        INSERT INTO tranche_transitions (case_id, plan_id, component_id, seq, from_status, to_status, reason,
                                         cause, actor)
        SELECT case_id, plan_id, component_id, seq, from_status, 'sending', NULL, 'send:' || reference, 'disbursement'
        FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::text[], $6::text[])
             AS c(case_id, plan_id, component_id, seq, reference, from_status)
        """,
        [r["case_id"] for r in rows], [r["plan_id"] for r in rows], [r["component_id"] for r in rows],
        [r["seq"] for r in rows], [r["reference"] for r in rows], [r["from_status"] for r in rows],
    )


async def claim_due_instructions(conn: asyncpg.Connection, provider: str, limit: int,
                                 lease_s: float) -> list[Work]:
    """Instructions whose next step is due: `sending`/`unknown` → check, `pending` → poll. Each is
    leased: nobody else takes it until the lease ends, and only this lease can record its result."""
    rows = await conn.fetch(
        """
        UPDATE payment_instructions i
        SET lease_token = gen_random_uuid(), next_attempt_at = now() + make_interval(secs => $3), updated_at = now()
        FROM (SELECT reference FROM payment_instructions
              WHERE provider = $1 AND state IN ('sending', 'unknown', 'pending') AND next_attempt_at <= now()
              ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED) due
        WHERE i.reference = due.reference
        RETURNING i.reference, i.provider, i.case_id, i.plan_id, i.component_id, i.seq, i.state, i.request,
                  i.lease_token, i.deadline_at <= now() AS past_deadline, i.traceparent, i.tracestate
        """,
        provider, limit, lease_s,
    )
    return [Work("poll" if r["state"] == "pending" else "check", r["reference"], r["provider"], r["case_id"],
                 (r["plan_id"], r["component_id"], r["seq"]),
                 jsonfast.loads(r["request"]) if r["request"] else None, r["lease_token"], r["past_deadline"],
                 r["traceparent"], r["tracestate"]) for r in rows]


async def lock_instructions(conn: asyncpg.Connection, references: Iterable[str]) -> dict[str, asyncpg.Record]:
    rows = await conn.fetch(
        "SELECT * FROM payment_instructions WHERE reference = ANY($1::text[]) ORDER BY reference FOR UPDATE",
        sorted(set(references)),
    )
    return {r["reference"]: r for r in rows}


async def update_instruction(conn: asyncpg.Connection, reference: str, **changes: Any) -> None:
    changes["updated_at"] = None  # set below with now()
    assignments, args = [], [reference]
    for column, value in changes.items():
        if column == "updated_at":
            assignments.append("updated_at = now()")
        elif column == "retry_in_s":
            args.append(value)
            assignments.append(f"next_attempt_at = now() + make_interval(secs => ${len(args)})")
        elif column in ("sends", "lookups"):
            args.append(value)
            assignments.append(f"{column} = {column} + ${len(args)}")
        else:
            args.append(value)
            assignments.append(f"{column} = ${len(args)}")
    await conn.execute(f"UPDATE payment_instructions SET {', '.join(assignments)} WHERE reference = $1", *args)


async def add_provider_events(conn: asyncpg.Connection, events: Sequence[dict[str, Any]]) -> list[int]:
    """Store reports; one already stored (same provider, transfer id and status) is ignored.
    Returns the ids of the new ones."""
    if not events:
        return []
    cols = ("provider", "transfer_id", "status", "reference", "amount_minor", "currency", "reason",
            "pickup_code", "via")
    types = ("text", "text", "text", "text", "bigint", "text", "text", "text", "text")
    unnest = ", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(types))
    rows = await conn.fetch(
        f"""
        INSERT INTO provider_events ({', '.join(cols)})
        SELECT * FROM unnest({unnest}) AS u({', '.join(cols)})
        ON CONFLICT (provider, transfer_id, status) DO NOTHING
        RETURNING id
        """,
        *[[e.get(c) for e in events] for c in cols],
    )
    return [r["id"] for r in rows]


async def add_provider_events_keyed(conn: asyncpg.Connection,
                                    events: Sequence[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """Like add_provider_events; returns the (provider, transfer id, status) of the new ones (the
    same report twice in one call is stored once)."""
    unique = list({(e["provider"], e["transfer_id"], e["status"]): e for e in events}.values())
    ids = await add_provider_events(conn, unique)
    if not ids:
        return set()
    rows = await conn.fetch("SELECT provider, transfer_id, status FROM provider_events WHERE id = ANY($1::bigint[])",
                            ids)
    return {(r["provider"], r["transfer_id"], r["status"]) for r in rows}


async def claim_unapplied_events(conn: asyncpg.Connection, limit: int,
                                 ids: Sequence[int] | None = None) -> list[asyncpg.Record]:
    if ids is not None:
        return await conn.fetch(
            "SELECT * FROM provider_events WHERE id = ANY($1::bigint[]) AND applied_at IS NULL "
            "ORDER BY id FOR UPDATE SKIP LOCKED", list(ids))
    return await conn.fetch(
        "SELECT * FROM provider_events WHERE applied_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED", limit)


async def mark_events_applied(conn: asyncpg.Connection, outcomes: dict[int, str]) -> None:
    if outcomes:
        await conn.execute(
            "UPDATE provider_events e SET applied_at = now(), outcome = u.outcome "
            "FROM unnest($1::bigint[], $2::text[]) AS u(id, outcome) WHERE e.id = u.id",
            list(outcomes), list(outcomes.values()),
        )


async def set_aside(conn: asyncpg.Connection, provider: str, via: str, error: str, raw: str) -> None:
    await conn.execute(
        "INSERT INTO provider_entries_set_aside (provider, via, error, raw) VALUES ($1, $2, $3, $4)",
        provider, via, error[:2000], raw[:100_000],
    )


async def raise_exceptions(conn: asyncpg.Connection, exceptions: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Record exceptions for finance; one already raised (same dedupe key) is not raised again.
    Returns the new ones."""
    if not exceptions:
        return []
    rows = await conn.fetch(
        """
        INSERT INTO payment_exceptions (kind, provider, reference, case_id, details, dedupe_key)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::text[])
        ON CONFLICT (dedupe_key) DO NOTHING
        RETURNING id, kind, provider, reference, case_id, details, raised_at
        """,
        [e["kind"] for e in exceptions], [e.get("provider") for e in exceptions],
        [e.get("reference") for e in exceptions], [e.get("case_id") for e in exceptions],
        [jsonfast.dumps_text(e["details"]) for e in exceptions], [e["dedupe_key"] for e in exceptions],
    )
    return [{**dict(r), "details": jsonfast.loads(r["details"]), "raised_at": r["raised_at"].isoformat()}
            for r in rows]


def exception_messages(raised: Sequence[dict[str, Any]]) -> list[OutboxMessage]:
    messages = []
    for item in raised:
        subject = item["case_id"] or item["provider"] or "unknown"
        data = {"exception_id": item["id"], "kind": item["kind"], "provider": item["provider"],
                "reference": item["reference"], "case_id": item["case_id"], "details": item["details"],
                "raised_at": item["raised_at"]}
        event = new_event(EXCEPTION_RAISED, SOURCE, subject, data,
                          event_id=derived_id("payment-exception", str(item["id"])))
        messages.append(cloud_event_message(PAYMENT_EXCEPTIONS, event))
    return messages


async def save_invoices(conn: asyncpg.Connection, matched: Sequence[tuple[str, str, str, str]]) -> None:
    """Record matched invoices; one matched meanwhile for another tranche (two instances racing)
    makes the transaction fail and retry, and the retry sees it as a duplicate."""
    if not matched:
        return
    clash = await conn.fetchval(
        """
        WITH new AS (
            INSERT INTO vendor_invoices (vendor_id, invoice_number, case_id, reference)
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
            ON CONFLICT (vendor_id, invoice_number) DO NOTHING RETURNING vendor_id, invoice_number)
        SELECT count(*) FROM unnest($1::text[], $2::text[], $4::text[]) AS m(vendor_id, invoice_number, reference)
        JOIN vendor_invoices v USING (vendor_id, invoice_number)
        WHERE v.reference <> m.reference AND (m.vendor_id, m.invoice_number) NOT IN (SELECT * FROM new)
        """,
        [m[0] for m in matched], [m[1] for m in matched], [m[2] for m in matched], [m[3] for m in matched],
    )
    if clash:
        raise TransientError("an invoice was matched for another tranche at the same time: retrying")


async def matched_invoices(conn: asyncpg.Connection, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    keys = sorted(set(keys))
    if not keys:
        return {}
    rows = await conn.fetch(
        "SELECT vendor_id, invoice_number, reference FROM vendor_invoices v "
        "JOIN unnest($1::text[], $2::text[]) AS k(vendor_id, invoice_number) USING (vendor_id, invoice_number)",
        [k[0] for k in keys], [k[1] for k in keys])
    return {(r["vendor_id"], r["invoice_number"]): r["reference"] for r in rows}
