"""The exceptions queue in Postgres: each action locks the exception, asks the workflow
(finance.domain.exceptions) whether it is allowed, then writes the new state, one history entry
and, on an approval, the decision and its event for disbursement, in one transaction."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
from reintegra import jsonfast, outbox
from reintegra.events import new_event
from reintegra.handling import derived_id
from reintegra.outbox import cloud_event_message
from reintegra.topics import FINANCE_DECISIONS

from finance.domain import exceptions as wf

SOURCE = "urn:reintegra:finance"
DECISION_TYPES = {wf.WRITE_OFF: "reintegra.finance.write_off.approved.v1",
                  wf.REPAY: "reintegra.finance.repay.approved.v1"}


class ExceptionNotFound(LookupError):
    pass


def _request_from(value: Any) -> wf.Request | None:
    if not value:
        return None
    data = jsonfast.loads(value) if isinstance(value, str | bytes) else value
    return wf.Request(data["kind"], data["requested_by"], datetime.fromisoformat(data["requested_at"]),
                      data["reason"], data.get("amount_minor"))


def _request_json(request: wf.Request | None) -> str | None:
    if request is None:
        return None
    return jsonfast.dumps_text({"kind": request.kind, "requested_by": request.requested_by,
                                "requested_at": request.requested_at.isoformat(), "reason": request.reason,
                                "amount_minor": request.amount_minor})


def state_of(row: asyncpg.Record) -> wf.ExceptionState:
    return wf.ExceptionState(
        id=str(row["id"]), kind=row["kind"], state=row["state"], reference=row["reference"],
        case_id=row["case_id"], provider=row["provider"], amount_minor=row["amount_minor"],
        currency=row["currency"].strip() if row["currency"] else None, request=_request_from(row["request"]),
        assignee=row["assignee"])


async def act(conn: asyncpg.Connection, exception_id: int, action: wf.Action, actor: str,
              *, expected_version: int | None = None) -> wf.Transition:
    """Take `action` on the exception as `actor`, in the caller's transaction. WorkflowError when the
    workflow refuses; ExceptionNotFound; a stale `expected_version` (someone acted meanwhile) is a
    WorkflowError("stale", ...) so nobody approves what they did not see."""
    row = await conn.fetchrow("SELECT * FROM exceptions WHERE id = $1 FOR UPDATE", exception_id)
    if row is None:
        raise ExceptionNotFound(f"no exception {exception_id}")
    if expected_version is not None and row["version"] != expected_version:
        raise wf.WorkflowError("stale", "the exception changed since you opened it; look at it again")
    transition = wf.apply(state_of(row), action, actor, datetime.now(UTC))
    await _save(conn, exception_id, transition)
    return transition


async def auto_resolve(conn: asyncpg.Connection, dedupe_key: str, actor: str, reason: str) -> int:
    """Resolve the open exception with this key, if any (e.g. a late line matched a missing payment).
    `actor` says which part of the system did it; returns 1 when one was resolved."""
    row = await conn.fetchrow("SELECT * FROM exceptions WHERE dedupe_key = $1 FOR UPDATE", dedupe_key)
    if row is None or row["state"] in wf.FINAL_STATES:
        return 0
    transition = wf.apply(state_of(row), wf.Action(wf.AUTO_RESOLVE, f"{reason} ({actor})"), wf.SYSTEM,
                          datetime.now(UTC))
    await _save(conn, row["id"], transition)
    return 1


async def _save(conn: asyncpg.Connection, exception_id: int, transition: wf.Transition) -> None:
    state, entry = transition.state, transition.entry
    await conn.execute(
        "UPDATE exceptions SET state = $2, request = $3::text::jsonb, assignee = $4, version = version + 1, "
        "updated_at = now() WHERE id = $1",
        exception_id, state.state, _request_json(state.request), state.assignee)
    details = {k: v for k, v in (("amount_minor", entry.amount_minor), ("request_kind", entry.request_kind))
               if v is not None}
    await conn.execute(
        "INSERT INTO exception_events (exception_id, at, actor, action, from_state, to_state, reason, details) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8::text::jsonb)",
        exception_id, entry.at, entry.actor, entry.action, entry.from_state, entry.to_state, entry.reason,
        jsonfast.dumps_text(details))
    if transition.decision is not None:
        await _decide(conn, exception_id, transition.decision)


async def _decide(conn: asyncpg.Connection, exception_id: int, d: wf.Decision) -> None:
    payload = {"exception_id": exception_id, "exception_kind": d.exception_kind, "reference": d.reference,
               "case_id": d.case_id, "provider": d.provider, "amount_minor": d.amount_minor, "currency": d.currency,
               "reason": d.reason, "requested_by": d.requested_by, "approved_by": d.approved_by,
               "approved_at": d.approved_at.isoformat()}
    decision_id = await conn.fetchval(
        "INSERT INTO decisions (exception_id, kind, reference, case_id, payload) VALUES ($1, $2, $3, $4, "
        "$5::text::jsonb) RETURNING id", exception_id, d.kind, d.reference, d.case_id, jsonfast.dumps_text(payload))
    event = new_event(DECISION_TYPES[d.kind], SOURCE, d.case_id or "finance", {"decision_id": decision_id, **payload},
                      event_id=derived_id("finance-decision", str(decision_id)))
    # The message keeps the current trace (the console request's span): the decision's journey is one trace.
    await outbox.add(conn, [cloud_event_message(FINANCE_DECISIONS, event)])


async def list_exceptions(conn: asyncpg.Connection, *, states: list[str] | None = None, kind: str | None = None,
                          provider: str | None = None, limit: int = 200) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT * FROM exceptions
        WHERE ($1::text[] IS NULL OR state = ANY($1)) AND ($2::text IS NULL OR kind = $2)
          AND ($3::text IS NULL OR provider = $3)
        ORDER BY (state IN ('resolved', 'written_off', 'repay_approved')), id DESC LIMIT $4
        """, states, kind, provider, limit)


async def get_exception(conn: asyncpg.Connection, exception_id: int) -> tuple[asyncpg.Record, list[asyncpg.Record],
                                                                            asyncpg.Record | None]:
    row = await conn.fetchrow("SELECT * FROM exceptions WHERE id = $1", exception_id)
    if row is None:
        raise ExceptionNotFound(f"no exception {exception_id}")
    history = await conn.fetch("SELECT * FROM exception_events WHERE exception_id = $1 ORDER BY id", exception_id)
    decision = await conn.fetchrow("SELECT * FROM decisions WHERE exception_id = $1", exception_id)
    return row, history, decision


async def queue_counts(conn: asyncpg.Connection) -> dict[str, int]:
    rows = await conn.fetch("SELECT state, count(*) AS n FROM exceptions GROUP BY state")
    return {r["state"]: r["n"] for r in rows}
