"""The review queue as the HTTP API and CLI see it: list, show, and a reviewer's action.

Each function runs inside the caller's transaction on a connection whose search_path is the
eligibility schema. `apply_review_action` locks the case file and the person's identities in
the same order as the batch handler, then writes the decision, the audit row and the outbox
events together: an approval flows on exactly like an automatic one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg
from reintegra import jsonfast
from reintegra.events import utc_now_iso
from reintegra.handling import derived_id

from eligibility import repository
from eligibility.domain.identities import identity_hashes
from eligibility.domain.process import Context
from eligibility.domain.programmes import Programme
from eligibility.domain.review import Reviewer, ReviewRefused, act_on_review
from eligibility.handlers import lock_identities_of, outbox_messages, save_effects

__all__ = ["ReviewRefused", "apply_review_action", "get_review", "list_reviews"]

OPEN_STATUSES = ("open", "awaiting_second_approval")
STATUSES = OPEN_STATUSES + ("approved", "rejected", "superseded", "withdrawn")


def _review_dict(row: asyncpg.Record) -> dict[str, Any]:
    def js(value: Any) -> Any:
        return jsonfast.loads(value) if isinstance(value, str) else value

    return {
        "case_id": row["case_id"], "plan_id": row["plan_id"], "program_code": row["program_code"],
        "programme_version": row["programme_version"], "status": row["status"], "kind": row["kind"],
        "reasons": js(row["reasons"]), "facts": js(row["facts"]), "plan_total": js(row["plan_total"]),
        "programme_total": js(row["programme_total"]), "second_approval_needed": row["second_approval_needed"],
        "opened_at": row["opened_at"].isoformat(), "updated_at": row["updated_at"].isoformat(),
    }


async def list_reviews(conn: asyncpg.Connection, *, status: str | None = None, limit: int = 100) -> list[dict]:
    if status is not None and status not in STATUSES:
        raise ReviewRefused("invalid_status", f"status must be one of {', '.join(STATUSES)}", 422)
    wanted = list(OPEN_STATUSES) if status is None else [status]
    rows = await conn.fetch(
        "SELECT * FROM reviews WHERE status = ANY($1::text[]) ORDER BY opened_at, case_id LIMIT $2",
        wanted, max(1, min(limit, 1000)),
    )
    return [_review_dict(r) for r in rows]


async def get_review(conn: asyncpg.Connection, case_id: str) -> dict | None:
    row = await conn.fetchrow("SELECT * FROM reviews WHERE case_id = $1", case_id)
    if row is None:
        return None
    review = _review_dict(row)
    actions = await conn.fetch(
        "SELECT actor, action, outcome, comment, programme_version, at FROM review_actions "
        "WHERE case_id = $1 ORDER BY id", case_id,
    )
    review["actions"] = [{**dict(a), "at": a["at"].isoformat()} for a in actions]
    state = await conn.fetchval("SELECT state FROM case_files WHERE case_id = $1", case_id)
    case = jsonfast.loads(state) if state else {}
    held = case.get("review") or {}
    review["rules"] = held.get("rules") or []  # every rule's result when the case was held
    plan = dict(held.get("plan") or {})
    plan.pop("upstream_event", None)
    if plan.get("payout"):  # the method is enough to review; the account stays out of the queue
        plan["payout"] = {"method": plan["payout"].get("method"), "provider": plan["payout"].get("provider")}
    review["plan"] = plan
    hashes = identity_hashes(case.get("accepted"))
    others = await repository.approved_cases(conn, hashes)
    review["other_approved_cases"] = sorted({c for cases in others.values() for c in cases} - {case_id})
    return review


async def apply_review_action(conn: asyncpg.Connection, case_id: str, action: str, reviewer: Reviewer, comment: str,
                              programmes: Mapping[str, Programme]) -> dict:
    files = await repository.lock_case_files(conn, [case_id])
    case = files.get(case_id)
    if case is None or case.review is None:
        raise ReviewRefused("no_such_review", f"case {case_id} has no review", 404)
    ctx = Context(programmes, await lock_identities_of(conn, set(identity_hashes(case.accepted))))
    n_actions = await conn.fetchval("SELECT count(*) FROM review_actions WHERE case_id = $1", case_id)
    emitted = act_on_review(case, action, reviewer, comment, ctx, utc_now_iso())
    # Ids derived from the case and the action's position: a retried transaction publishes the same ids.
    seed = derived_id("review", case_id, str(n_actions))
    await save_effects(conn, [case], [emitted], ctx.identities, outbox_messages(case_id, emitted, seed))
    review = await get_review(conn, case_id)
    assert review is not None
    return review
