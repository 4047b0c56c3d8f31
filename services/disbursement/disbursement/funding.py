"""Grants waiting for budget are reserved, in approval order, once finance raises the budget; tranches
waiting for an exchange rate are released once finance loads it. A background loop of the service:
any instance may run it, every step re-reads under the same locks as the batch handler."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime

import asyncpg
from reintegra import outbox
from reintegra.service import ServiceRuntime

from disbursement import ledger_repository, rates_store, repository
from disbursement.money_context import money_context
from disbursement.publishing import drain

log = logging.getLogger(__name__)

QUEUE_BATCH = 200
WAITING_BATCH = 200
INTERVAL_S = 1.0
ACTOR = "disbursement"


async def fund_held_grants(conn: asyncpg.Connection, programme: str) -> int:
    """Reserve the programme's held grants from the head of its queue while the budget covers them
    (strictly in order: a grant never passes one approved before it). Returns how many."""
    async with conn.transaction():
        heads = [r["case_id"] for r in await conn.fetch(
            "SELECT case_id FROM budget_holds WHERE programme = $1 ORDER BY queued_seq LIMIT $2", programme, QUEUE_BATCH)]
        if not heads:
            return 0
        ledgers = await repository.load_ledgers(conn, heads)  # cases first, then the budget: the handler's order
        ctx = await money_context(conn, ledgers.values())
        queue = await conn.fetch(
            "SELECT case_id, queued_seq FROM budget_holds WHERE programme = $1 ORDER BY queued_seq LIMIT $2",
            programme, QUEUE_BATCH)
        funded, stale, messages = 0, [], []
        for row in queue:
            ledger = ledgers.get(row["case_id"])
            if ledger is None:
                break  # queued after we looked: its turn comes next time
            if ledger.budget_hold() is None:
                stale.append(row["case_id"])
                continue
            ledger.act(f"budget:{programme}:available", ACTOR)
            if not ledger.fund_held():
                break
            funded += 1
            messages += drain(ledger, f"funded:{row['case_id']}:{row['queued_seq']}")
        if stale:
            await conn.execute("DELETE FROM budget_holds WHERE case_id = ANY($1::text[])", stale)
        # In queue order, so that the audit trail shows them funded in that order.
        in_order = [ledgers[r["case_id"]] for r in queue if r["case_id"] in ledgers]
        messages += await repository.save_ledgers(conn, [ledger for ledger in in_order if ledger.changed])
        messages += await ledger_repository.apply(conn, ctx.books)
        await outbox.add(conn, messages)
        return funded


async def release_waiting_for_rates(conn: asyncpg.Connection) -> int:
    """Tranches waiting for a rate that finance has now loaded (priced, reserved or released), and due
    tranches whose payout grew with a floating rate beyond their reserve (released once the budget has it)."""
    rows = await conn.fetch(
        """
        SELECT case_id, currency, coalesce(payout_currency, programme_currency) AS target, hold_reason
        FROM tranches
        WHERE hold_reason IS NOT NULL
          AND (hold_reason = 'exchange_rate_missing' OR (status = 'planned' AND hold_reason = 'budget_exhausted'))
        LIMIT 2000
        """)
    if not rows:
        return 0
    rates, today = await rates_store.load_rate_book(conn), datetime.now(UTC).date()
    movable = sorted({r["case_id"] for r in rows if r["hold_reason"] == "budget_exhausted" or (
        r["target"] and rates.rate(r["currency"].strip(), r["target"].strip(), today) is not None)})
    if not movable:
        return 0
    async with conn.transaction():
        ledgers = await repository.load_ledgers(conn, movable[:WAITING_BATCH])
        ctx = await money_context(conn, ledgers.values())
        messages = []
        for ledger in ledgers.values():
            ledger.act("rates:loaded", ACTOR)
            ledger.retry_waiting()
            messages += drain(ledger, f"rates:{uuid.uuid4()}")
        messages += await repository.save_ledgers(conn, ledgers.values())
        messages += await ledger_repository.apply(conn, ctx.books)
        await outbox.add(conn, messages)
        return len(ledgers)


async def run_budget_waiter(runtime: ServiceRuntime) -> None:
    while True:
        try:
            async with runtime.db.acquire() as conn:
                programmes = [r["programme"] for r in await conn.fetch("SELECT DISTINCT programme FROM budget_holds")]
                for programme in programmes:
                    while await fund_held_grants(conn, programme) >= QUEUE_BATCH:
                        pass
                await release_waiting_for_rates(conn)
        except (asyncpg.PostgresError, OSError) as exc:
            log.warning("budget and rate waiter: %s; trying again in %.0f s", exc, INTERVAL_S)
        await asyncio.sleep(INTERVAL_S)
