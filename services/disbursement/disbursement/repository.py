"""Disbursement's schema. Rows of a case are locked in case_id order (facts, then tranches) by
every writer, so the handler, the dispatcher and the settlement poller never deadlock for long."""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg
from reintegra import jsonfast

from disbursement.domain.case import CaseLedger
from disbursement.domain.ledger import Facts, Tranche, TrancheKey

# The first four columns are the tranche's identity (the primary key); the others are updated in place.
_TRANCHE_KEY_COLUMNS = ("case_id", "plan_id", "component_id", "seq")
_TRANCHE_COLUMNS = (
    *_TRANCHE_KEY_COLUMNS, "modality", "category", "currency", "amount_minor",
    "release", "vendor_id", "status", "reference", "transfer_id", "failure_reason", "traceparent", "tracestate",
)


async def load_ledgers(conn: asyncpg.Connection, case_ids: Iterable[str]) -> dict[str, CaseLedger]:
    """Load and lock the ledgers of these cases (missing ones start empty)."""
    ids = sorted(set(case_ids))
    facts_rows = await conn.fetch(
        "SELECT case_id, facts FROM case_facts WHERE case_id = ANY($1::text[]) ORDER BY case_id FOR UPDATE", ids
    )
    tranche_rows = await conn.fetch(
        f"SELECT {', '.join(_TRANCHE_COLUMNS)} FROM tranches WHERE case_id = ANY($1::text[]) "
        "ORDER BY case_id, plan_id, component_id, seq FOR UPDATE",
        ids,
    )
    ledgers = {case_id: CaseLedger(case_id, Facts(), {}) for case_id in ids}
    for row in facts_rows:
        ledgers[row["case_id"]].facts = Facts.from_json(jsonfast.loads(row["facts"]))
    for row in tranche_rows:
        tranche = Tranche(**dict(row))
        ledgers[row["case_id"]].tranches[tranche.key] = tranche
    return ledgers


async def save_ledgers(conn: asyncpg.Connection, ledgers: Iterable[CaseLedger]) -> None:
    ledgers = list(ledgers)
    facts = [(ledger.case_id, jsonfast.dumps_text(ledger.facts.to_json())) for ledger in ledgers if ledger.facts_changed]
    if facts:
        await conn.execute(
            """
            INSERT INTO case_facts (case_id, facts) SELECT * FROM unnest($1::text[], $2::jsonb[])
            ON CONFLICT (case_id) DO UPDATE SET facts = excluded.facts, updated_at = now()
            """,
            [f[0] for f in facts], [f[1] for f in facts],
        )
    tranches = [ledger.tranches[k] for ledger in ledgers for k in sorted(ledger.changed)]
    if tranches:
        columns = [[getattr(t, c) for t in tranches] for c in _TRANCHE_COLUMNS]
        types = ["text", "text", "text", "int", "text", "text", "text", "bigint",
                 "text", "text", "text", "text", "text", "text", "text", "text"]
        unnest_args = ", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(types))
        updates = ", ".join(f"{c} = excluded.{c}" for c in _TRANCHE_COLUMNS[len(_TRANCHE_KEY_COLUMNS):])
        await conn.execute(
            f"""
            INSERT INTO tranches ({', '.join(_TRANCHE_COLUMNS)}, next_attempt_at)
            SELECT u.*, CASE WHEN u.status = 'released' THEN now() END
            FROM unnest({unnest_args}) AS u({', '.join(_TRANCHE_COLUMNS)})
            ON CONFLICT (case_id, plan_id, component_id, seq) DO UPDATE SET {updates}, updated_at = now(),
                next_attempt_at = CASE WHEN excluded.status = 'released' THEN now() ELSE tranches.next_attempt_at END
            """,
            *columns,
        )


async def claim_payments_to_send(conn: asyncpg.Connection, limit: int, resend_after_s: float) -> list[asyncpg.Record]:
    """Released cash tranches, plus 'sending' ones whose outcome was never recorded (a crash between
    the provider call and our commit): sending again is safe, the reference is idempotent."""
    return await conn.fetch(
        """
        UPDATE tranches t SET status = 'sending', next_attempt_at = now() + make_interval(secs => $2), updated_at = now()
        FROM (
            SELECT case_id, plan_id, component_id, seq FROM tranches
            WHERE status IN ('released', 'sending') AND modality = 'cash' AND next_attempt_at <= now()
            ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED
        ) due, case_facts f
        WHERE t.case_id = due.case_id AND t.plan_id = due.plan_id AND t.component_id = due.component_id
          AND t.seq = due.seq AND f.case_id = t.case_id
        RETURNING t.case_id, t.plan_id, t.component_id, t.seq, t.reference, t.amount_minor, t.currency,
                  t.traceparent, t.tracestate, f.facts -> 'grant' -> 'payout' AS payout
        """,
        limit,
        resend_after_s,
    )


async def tranche_keys_by_reference(
    conn: asyncpg.Connection, references: list[str]
) -> dict[str, tuple[str, TrancheKey]]:
    """reference → (case_id, tranche key)."""
    rows = await conn.fetch(
        "SELECT reference, case_id, plan_id, component_id, seq FROM tranches WHERE reference = ANY($1::text[])",
        references,
    )
    return {r["reference"]: (r["case_id"], (r["plan_id"], r["component_id"], r["seq"])) for r in rows}


async def provider_cursor(conn: asyncpg.Connection, provider: str) -> int:
    return await conn.fetchval("SELECT cursor FROM provider_cursor WHERE provider = $1", provider) or 0


async def save_provider_cursor(conn: asyncpg.Connection, provider: str, cursor: int) -> None:
    await conn.execute(
        "INSERT INTO provider_cursor (provider, cursor) VALUES ($1, $2) "
        "ON CONFLICT (provider) DO UPDATE SET cursor = excluded.cursor",
        provider, cursor,
    )
