"""Disbursement's schema. Rows of a case are locked in case_id order (facts, then tranches) by
every writer, so the handler, the dispatcher and the settlement poller never deadlock for long."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

import asyncpg
from reintegra import jsonfast
from reintegra.locks import lock_subjects
from reintegra.outbox import OutboxMessage

from disbursement import payment_store
from disbursement.domain.case import CaseLedger
from disbursement.domain.tranche import Facts, Tranche

# The first four columns are the tranche's identity (the primary key); the others are updated in place.
_TRANCHE_KEY_COLUMNS = ("case_id", "plan_id", "component_id", "seq")
_TRANCHE_COLUMNS = (
    *_TRANCHE_KEY_COLUMNS, "modality", "category", "currency", "amount_minor",
    "release", "vendor_id", "status", "reference", "transfer_id", "failure_reason", "traceparent", "tracestate",
    "component_minor", "component_shares", "programme_code", "programme_currency", "programme_minor", "payout_currency", "payout_minor",
    "rate", "programme_rate", "rate_source", "rate_date", "payee", "hold_reason", "reserve_id",
    "attempt", "sent_payout", "pay_via",
)
_TRANCHE_TYPES = (
    "text", "text", "text", "int", "text", "text", "text", "bigint",
    "text", "text", "text", "text", "text", "text", "text", "text",
    "bigint", "text", "text", "text", "bigint", "text", "bigint",
    "text", "text", "text", "date", "text", "text", "text",
    "int", "jsonb", "text",
)
_CHAR_COLUMNS = ("currency", "programme_currency", "payout_currency")


async def load_ledgers(conn: asyncpg.Connection, case_ids: Iterable[str]) -> dict[str, CaseLedger]:
    """Load and lock the ledgers of these cases (missing ones start empty)."""
    ids = sorted(set(case_ids))
    await lock_subjects(conn, "disbursement-case", ids)  # also the cases without a ledger yet
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
        values = dict(row)
        for column in _CHAR_COLUMNS:  # char(3)
            if values[column] is not None:
                values[column] = values[column].strip()
        if values["rate_date"] is not None:
            values["rate_date"] = values["rate_date"].isoformat()
        if values["sent_payout"] is not None:
            values["sent_payout"] = jsonfast.loads(values["sent_payout"])
        tranche = Tranche(**values)
        ledgers[row["case_id"]].tranches[tranche.key] = tranche
    return ledgers


async def save_ledgers(conn: asyncpg.Connection, ledgers: Iterable[CaseLedger]) -> list[OutboxMessage]:
    """Save what changed; returns the outbox messages of the payment exceptions raised (add them)."""
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
        date_index = _TRANCHE_COLUMNS.index("rate_date")
        columns[date_index] = [date.fromisoformat(d) if d else None for d in columns[date_index]]
        payout_index = _TRANCHE_COLUMNS.index("sent_payout")
        columns[payout_index] = [jsonfast.dumps_text(p) if p is not None else None for p in columns[payout_index]]
        unnest_args = ", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(_TRANCHE_TYPES))
        updates = ", ".join(f"{c} = excluded.{c}" for c in _TRANCHE_COLUMNS[len(_TRANCHE_KEY_COLUMNS):])
        await conn.execute(
            f"""
            INSERT INTO tranches ({', '.join(_TRANCHE_COLUMNS)}, next_attempt_at)
            SELECT u.*, CASE WHEN u.status IN ('released', 'delivered') THEN now() END
            FROM unnest({unnest_args}) AS u({', '.join(_TRANCHE_COLUMNS)})
            ON CONFLICT (case_id, plan_id, component_id, seq) DO UPDATE SET {updates}, updated_at = now(),
                -- due to be paid: a released cash tranche, a delivered (matched) in-kind one
                next_attempt_at = CASE WHEN excluded.status IN ('released', 'delivered') AND tranches.status <> excluded.status
                                       THEN now() ELSE tranches.next_attempt_at END
            """,
            *columns,
        )
    await _save_budget_holds(conn, ledgers)
    await _save_transitions(conn, ledgers)
    ctx = next((ledger.money for ledger in ledgers if ledger.money is not None), None)
    if ctx is not None and ctx.new_invoices:
        await payment_store.save_invoices(conn, ctx.new_invoices)
        ctx.new_invoices.clear()
    exceptions = [e for ledger in ledgers for e in ledger.exceptions]
    for ledger in ledgers:
        ledger.exceptions.clear()
    return payment_store.exception_messages(await payment_store.raise_exceptions(conn, exceptions))


async def _save_transitions(conn: asyncpg.Connection, ledgers: list[CaseLedger]) -> None:
    rows = [(ledger.case_id, *key, before, after, reason, cause or "unknown", actor or "disbursement")
            for ledger in ledgers for key, before, after, reason, cause, actor in ledger.transitions]
    for ledger in ledgers:
        ledger.transitions.clear()
    if not rows:
        return
    await conn.execute(
        """
        INSERT INTO tranche_transitions (case_id, plan_id, component_id, seq, from_status, to_status, reason,
                                         cause, actor)
        SELECT case_id, plan_id, component_id, seq, from_status, to_status, reason, cause, actor
        FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::text[], $6::text[], $7::text[],
                    $8::text[], $9::text[]) WITH ORDINALITY
             AS t(case_id, plan_id, component_id, seq, from_status, to_status, reason, cause, actor, ord)
        ORDER BY ord
        """,
        *[list(c) for c in zip(*rows, strict=True)],
    )


async def _save_budget_holds(conn: asyncpg.Connection, ledgers: list[CaseLedger]) -> None:
    """One queue row per grant waiting for budget; a grant keeps its place when its amount changes."""
    # Only grants whose tranches were or became held: most batches touch none.
    touched = [ledger for ledger in ledgers
               if any("held" in (before, after) for _key, before, after, *_ in ledger.transitions)]
    held = [(ledger.case_id, *hold) for ledger in sorted(touched, key=lambda ledger: ledger.hold_order)
            if (hold := ledger.budget_hold()) is not None]
    released = [ledger.case_id for ledger in touched if ledger.budget_hold() is None]
    if released:
        await conn.execute("DELETE FROM budget_holds WHERE case_id = ANY($1::text[])", released)
    if held:
        # In the order the grants were held in this batch (their approval order).
        await conn.execute(
            """
            INSERT INTO budget_holds (case_id, programme, currency, amount_minor)
            SELECT case_id, programme, currency, amount_minor
            FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) WITH ORDINALITY
                 AS h(case_id, programme, currency, amount_minor, ord)
            ORDER BY ord
            ON CONFLICT (case_id) DO UPDATE SET amount_minor = excluded.amount_minor
            """,
            *[list(c) for c in zip(*held, strict=True)],
        )
