"""Finance's schema: the views it builds from events (postings, payments, disbursement's exceptions).

Statements, runs and the exceptions workflow live in ``statement_store`` and ``exception_store``.
Every function runs inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg
from reintegra import jsonfast
from reintegra.money import minor_units

# How far a payment has gone: a status event never moves it back (a re-delivered older event,
# or one re-published after a crash, arrives after newer ones).
STATUS_RANK = {"held": 0, "released": 1, "sent": 2, "settled": 3, "failed": 3, "cancelled": 3}


@dataclass(frozen=True)
class PaymentUpdate:
    reference: str
    case_id: str
    status: str
    at: datetime
    data: dict[str, Any]
    reason: str | None = None


async def insert_postings(conn: asyncpg.Connection, rows: Sequence[tuple]) -> None:
    """Rows in the column order below; a posting already stored (same account and seq) is skipped."""
    if not rows:
        return
    columns = list(zip(*rows, strict=True))
    await conn.execute(
        """
        INSERT INTO ledger_postings (account, seq, account_kind, account_currency, account_programme, transfer_id,
            side, phase, amount_minor, currency, kind, counter_account, programme, case_id, reference, pending_id,
            pending_amount_minor, conversion_id, rate, posted_at)
        SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
            $8::text[], $9::bigint[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[],
            $16::text[], $17::bigint[], $18::text[], $19::text[], $20::timestamptz[])
        ON CONFLICT (account, seq) DO NOTHING
        """,
        *[list(c) for c in columns],
    )


def posting_rows(data: dict[str, Any], at: datetime) -> list[tuple]:
    """The rows of one `reintegra.ledger.postings.v1` event."""
    return [
        (data["account"], p["seq"], data["kind"], data["currency"], data.get("programme"), p["transfer_id"],
         p["side"], p["phase"], p["amount_minor"], p["currency"], p.get("kind") or "", p.get("counter_account"),
         p.get("programme"), p.get("case_id"), p.get("reference"), p.get("pending_id"),
         p.get("pending_amount_minor"), p.get("conversion_id"), p.get("rate"), at)
        for p in data["postings"]
    ]


async def apply_payment_updates(conn: asyncpg.Connection, updates: Sequence[PaymentUpdate]) -> None:
    """Create or advance each payment, in order; never backwards (STATUS_RANK)."""
    if not updates:
        return
    existing = {r["reference"]: dict(r) for r in await conn.fetch(
        "SELECT * FROM payments WHERE reference = ANY($1::text[]) FOR UPDATE", list({u.reference for u in updates}))}
    for u in updates:
        row = existing.get(u.reference) or _new_payment(u)
        if STATUS_RANK.get(u.status, 0) < STATUS_RANK.get(row["status"], 0) and u.status != "held":
            continue
        _fill(row, u)
        if u.status == "held":
            row["status_reason"] = u.reason  # a hold is a note on the payment, not a step back
        else:
            row["status"], row["status_reason"] = u.status, u.reason
            if u.status in _TIMED and not row.get(f"{u.status}_at"):
                row[f"{u.status}_at"] = u.at
        row["last_event_at"] = max(row["last_event_at"], u.at)
        existing[u.reference] = row
    await _save_payments(conn, list(existing.values()))


_TIMED = ("released", "sent", "settled", "failed")
_COLUMNS = ("reference", "case_id", "plan_id", "component_id", "tranche_seq", "modality", "category", "provider",
            "vendor_id", "programme", "amount_minor", "currency", "programme_amount_minor", "programme_currency",
            "status", "status_reason", "released_at", "sent_at", "settled_at", "failed_at", "last_event_at")
_TYPES = ("text", "text", "text", "text", "int", "text", "text", "text", "text", "text", "bigint", "text", "bigint",
          "text", "text", "text", "timestamptz", "timestamptz", "timestamptz", "timestamptz", "timestamptz")


def _new_payment(u: PaymentUpdate) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(_COLUMNS)
    row.update(reference=u.reference, case_id=u.case_id, status="held", last_event_at=u.at)
    return row


def _fill(row: dict[str, Any], u: PaymentUpdate) -> None:
    d = u.data
    amount = d.get("amount") or {}
    programme_amount = d.get("programme_amount") or {}
    for column, value in (
        ("plan_id", d.get("plan_id")), ("component_id", d.get("component_id")),
        ("tranche_seq", d.get("tranche_seq")), ("modality", d.get("modality")), ("category", d.get("category")),
        ("provider", d.get("provider")), ("vendor_id", d.get("vendor_id")), ("programme", d.get("programme_code")),
        ("currency", amount.get("currency")),
        ("programme_currency", programme_amount.get("currency")),
    ):
        if value is not None:
            row[column] = value
    if amount.get("amount") is not None:
        row["amount_minor"] = minor_of(amount)
    if programme_amount.get("amount") is not None:
        row["programme_amount_minor"] = minor_of(programme_amount)


def minor_of(money: dict[str, Any]) -> int:
    """A contract amount ({"amount": "196787", "currency": "XOF"}) in minor units, exactly."""
    return int(Decimal(str(money["amount"])).scaleb(minor_units(money["currency"])))


async def _save_payments(conn: asyncpg.Connection, rows: list[dict[str, Any]]) -> None:
    rows = [r for r in rows if r.get("amount_minor") is not None and r.get("currency") and r.get("modality")]
    if not rows:
        return
    names = ", ".join(_COLUMNS)
    args = ", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(_TYPES))
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in _COLUMNS[1:])
    await conn.execute(
        f"""
        INSERT INTO payments ({names}) SELECT * FROM unnest({args})
        ON CONFLICT (reference) DO UPDATE SET {updates}, updated_at = now()
        """,
        *[[r[c] for r in rows] for c in _COLUMNS],
    )


# Disbursement's exception kinds, as the finance queue names them.
DISBURSEMENT_KINDS = {
    "outcome_unresolved": "payment_outcome_unresolved",
    "amount_mismatch": "settlement_mismatch",
    "duplicate_at_provider": "second_transfer",
    "settled_after_failure": "status_after_final",
    "reversed_after_settlement": "status_after_final",
}


def disbursement_exception(data: dict[str, Any]) -> dict[str, Any]:
    """A `reintegra.payment.exception.raised.v1` as a row of the finance queue."""
    details = dict(data.get("details") or {})
    details["disbursement_kind"] = data["kind"]
    details["disbursement_exception_id"] = data.get("exception_id")
    instructed = details.get("instructed") or {}
    return {
        "kind": DISBURSEMENT_KINDS.get(data["kind"], data["kind"]), "source": "disbursement",
        "provider": data.get("provider"), "reference": data.get("reference"), "case_id": data.get("case_id"),
        "amount_minor": instructed.get("amount_minor"), "currency": instructed.get("currency"),
        "details": details, "dedupe_key": f"disbursement:{data.get('exception_id')}",
    }


async def insert_exceptions(conn: asyncpg.Connection, items: Sequence[dict[str, Any]], actor: str) -> list[int]:
    """New exceptions in state `open`, with their first history entry; ones raised before are skipped.
    Returns the ids of the new ones."""
    if not items:
        return []
    rows = await conn.fetch(
        """
        INSERT INTO exceptions (kind, source, provider, reference, case_id, amount_minor, currency, details, state,
                                dedupe_key)
        SELECT k, s, p, r, c, a, cur, d::jsonb, 'open', key
        FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[],
                    $8::text[], $9::text[]) AS t(k, s, p, r, c, a, cur, d, key)
        ON CONFLICT (dedupe_key) DO NOTHING
        RETURNING id
        """,
        [i["kind"] for i in items], [i["source"] for i in items], [i.get("provider") for i in items],
        [i.get("reference") for i in items], [i.get("case_id") for i in items],
        [i.get("amount_minor") for i in items], [i.get("currency") for i in items],
        [jsonfast.dumps_text(i.get("details") or {}) for i in items], [i["dedupe_key"] for i in items],
    )
    ids = [r["id"] for r in rows]
    if ids:
        await conn.execute(
            """
            INSERT INTO exception_events (exception_id, actor, action, from_state, to_state, reason)
            SELECT unnest($1::bigint[]), $2, 'raise', NULL, 'open', NULL
            """,
            ids, actor,
        )
    return ids


async def record_decision_outcome(conn: asyncpg.Connection, decision_id: int, outcome: str, message: str,
                                  actor: str) -> None:
    """Disbursement's answer to a decision, kept on the decision and in the exception's history."""
    row = await conn.fetchrow(
        "UPDATE decisions SET outcome = $2, outcome_at = now() WHERE id = $1 AND outcome IS NULL "
        "RETURNING exception_id", decision_id, outcome)
    if row is None:
        return
    state = await conn.fetchval("SELECT state FROM exceptions WHERE id = $1", row["exception_id"])
    await conn.execute(
        "INSERT INTO exception_events (exception_id, actor, action, from_state, to_state, reason, details) "
        "VALUES ($1, $2, $3, $4, $4, $5, $6::text::jsonb)",
        row["exception_id"], actor, f"decision_{outcome}", state, message,
        jsonfast.dumps_text({"decision_id": decision_id}),
    )
