"""Finance's views against a real Postgres: payments built from status events (never moving back),
postings stored once, disbursement's exceptions raised once, all through the inbox."""

from __future__ import annotations

from types import SimpleNamespace

import asyncpg
import pytest
from finance import handlers
from finance.schema import MIGRATIONS
from reintegra.events import encode, new_event
from reintegra.topics import CASE_STATUS, LEDGER_POSTINGS, PAYMENT_EXCEPTIONS
from scratch_schemas import scratch_pool

CASE = "MA-2026-000777"
REF = "RG-00112233445566778899aabb"


def record(topic: str, event: dict, offset: int = 0):
    return SimpleNamespace(topic=topic, partition=0, offset=offset, key=event["subject"].encode(),
                           value=encode(event), headers=[], timestamp=1_767_000_000_000)


def status(type_suffix: str, status_name: str, event_id: str, time: str, **extra) -> dict:
    data = {"case_id": CASE, "status": status_name, "plan_id": "P1", "component_id": "c1", "tranche_seq": 1,
            "modality": "cash", "category": "immediate_needs", "reference": REF,
            "amount": {"amount": "196787", "currency": "XOF"},
            "programme_amount": {"amount": "300.00", "currency": "EUR"},
            "programme_code": "AVRR-MA-CI-2026", "provider": "orange_money_ci", **extra}
    return new_event(f"reintegration.{type_suffix}.v1", "urn:reintegra:disbursement", CASE, data,
                     event_id=event_id, time=time)


@pytest.fixture
async def pool(infra):
    async with scratch_pool(infra.database_url, "finance", MIGRATIONS) as pool:
        yield pool


async def apply(pool, handler, records):
    async with pool.acquire() as conn, conn.transaction():
        await handler(conn, records)


async def test_a_payment_advances_and_an_older_status_delivered_late_does_not_move_it_back(pool):
    released = status("tranche.released", "tranche_released", "e1", "2026-12-01T08:00:00Z")
    sent = status("payment.sent", "payment_sent", "e2", "2026-12-01T08:00:05Z")
    settled = status("payment.settled", "payment_settled", "e3", "2026-12-01T09:30:00Z")
    await apply(pool, handlers.handle_status_batch, [record(CASE_STATUS, e) for e in (released, sent, settled)])
    # sent again (a re-published copy with another id) after settled: the payment stays settled
    late = status("payment.sent", "payment_sent", "e2-copy", "2026-12-01T08:00:05Z")
    await apply(pool, handlers.handle_status_batch, [record(CASE_STATUS, late)])
    row = await pool.fetchrow("SELECT * FROM payments WHERE reference = $1", REF)
    assert row["status"] == "settled"
    assert row["provider"] == "orange_money_ci" and row["programme"] == "AVRR-MA-CI-2026"
    assert (row["amount_minor"], row["currency"].strip()) == (196787, "XOF")
    assert row["programme_amount_minor"] == 30000
    assert row["sent_at"].isoformat() == "2026-12-01T08:00:05+00:00"
    assert row["settled_at"].isoformat() == "2026-12-01T09:30:00+00:00"


async def test_statuses_that_concern_no_payment_cost_no_inbox_row(pool):
    accepted = new_event("reintegration.case.accepted.v1", "urn:reintegra:intake", CASE,
                         {"case_id": CASE, "status": "case_accepted"}, event_id="a1")
    await apply(pool, handlers.handle_status_batch, [record(CASE_STATUS, accepted)])
    assert await pool.fetchval("SELECT count(*) FROM inbox") == 0
    assert await pool.fetchval("SELECT count(*) FROM payments") == 0


async def test_a_duplicate_status_event_is_applied_once(pool):
    failed = status("payment.failed", "payment_failed", "f1", "2026-12-01T08:00:05Z", reason="unregistered number")
    await apply(pool, handlers.handle_status_batch, [record(CASE_STATUS, failed), record(CASE_STATUS, failed, 1)])
    row = await pool.fetchrow("SELECT status, status_reason FROM payments WHERE reference = $1", REF)
    assert (row["status"], row["status_reason"]) == ("failed", "unregistered number")


async def test_postings_are_stored_once_per_account_and_seq(pool):
    data = {"account": "budget:AVRR-MA-CI-2026", "kind": "budget", "currency": "EUR", "programme": "AVRR-MA-CI-2026",
            "postings": [{"seq": 1, "transfer_id": "open:AVRR", "side": "credit", "phase": "posted",
                          "amount_minor": 5_000_000, "currency": "EUR", "kind": "open",
                          "counter_account": "funding:AVRR-MA-CI-2026", "programme": "AVRR-MA-CI-2026",
                          "case_id": None, "reference": None}]}
    first = new_event("reintegra.ledger.postings.v1", "urn:reintegra:disbursement", data["account"], data,
                      event_id="p1")
    again = new_event("reintegra.ledger.postings.v1", "urn:reintegra:disbursement", data["account"], data,
                      event_id="p1-replayed-by-another-transaction")
    await apply(pool, handlers.handle_postings_batch, [record(LEDGER_POSTINGS, first), record(LEDGER_POSTINGS, again)])
    rows = await pool.fetch("SELECT account, seq, amount_minor FROM ledger_postings")
    assert [tuple(r) for r in rows] == [("budget:AVRR-MA-CI-2026", 1, 5_000_000)]


async def test_disbursement_exceptions_enter_the_queue_once_with_their_history(pool):
    data = {"exception_id": 41, "kind": "outcome_unresolved", "provider": "mtn_momo_ci", "reference": REF,
            "case_id": CASE, "details": {"message": "no outcome by the deadline",
                                         "instructed": {"amount_minor": 196787, "currency": "XOF"}},
            "raised_at": "2026-12-01T14:00:00Z"}
    event = new_event(handlers.EXCEPTION_RAISED, "urn:reintegra:disbursement", CASE, data, event_id="x41")
    replay = new_event(handlers.EXCEPTION_RAISED, "urn:reintegra:disbursement", CASE, data, event_id="x41-again")
    await apply(pool, handlers.handle_exceptions_batch, [record(PAYMENT_EXCEPTIONS, event)])
    await apply(pool, handlers.handle_exceptions_batch, [record(PAYMENT_EXCEPTIONS, replay)])
    rows = await pool.fetch("SELECT id, kind, source, state, amount_minor, currency FROM exceptions")
    assert [(r["kind"], r["source"], r["state"], r["amount_minor"], r["currency"]) for r in rows] == [
        ("payment_outcome_unresolved", "disbursement", "open", 196787, "XOF")]
    history = await pool.fetch("SELECT action, to_state FROM exception_events WHERE exception_id = $1", rows[0]["id"])
    assert [tuple(h) for h in history] == [("raise", "open")]
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await pool.execute("DELETE FROM exception_events")
