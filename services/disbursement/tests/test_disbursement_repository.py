"""Disbursement's schema against a real Postgres: tranches keyed by plan, and the migration that
moved rows written before to that key."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest
from disbursement import payment_store, repository
from disbursement.domain.tranche import payment_reference
from reintegra import jsonfast
from reintegra.db import apply_migrations, create_pool
from scratch_schemas import drop_schemas

MIGRATIONS = Path(repository.__file__).parent / "migrations"
CASE = "MA-2026-000123"
PAYOUT = {"method": "mobile_money", "provider": "orange_money_ci", "msisdn": "+2250701020304"}


def plan(plan_id: str, cash: str = "300.00") -> dict:
    return {
        "case_id": CASE, "plan_id": plan_id, "payout": PAYOUT,
        "components": [
            {"component_id": "c1", "modality": "cash", "category": "immediate_needs",
             "amount": {"amount": cash, "currency": "EUR"},
             "tranches": [{"seq": 1, "share_percent": 100, "release": "on_approval"}]},
            {"component_id": "c2", "modality": "in_kind", "category": "business_startup",
             "amount": {"amount": "1200.00", "currency": "EUR"}, "vendor_id": "V-ABJ-017",
             "tranches": [{"seq": 1, "share_percent": 60, "release": "on_approval"},
                          {"seq": 2, "share_percent": 40, "release": "milestone:business_established"}]},
        ],
    }


@pytest.fixture(scope="module")
def database_url(tmp_path_factory):
    from reintegra_stack.embedded import start_postgres

    postgres = start_postgres(tmp_path_factory.mktemp("disbursement-postgres"))
    try:
        yield postgres.url
    finally:
        postgres.stop()


async def test_a_replacement_plan_is_stored_next_to_the_old_plans_tranches(database_url):
    schema = f"disbursement_{uuid.uuid4().hex[:10]}"
    apply_migrations(database_url, schema, MIGRATIONS)
    pool = await create_pool(database_url, schema, max_size=2)
    try:
        async with pool.acquire() as conn, conn.transaction():
            ledger = (await repository.load_ledgers(conn, [CASE]))[CASE]
            ledger.approve({"case_id": CASE, "program_code": "MA-AVRR-2026", "plan": plan("PL-1"), "contact": {}})
            ledger.revise({"case_id": CASE, "plan": plan("PL-2", cash="200.00"), "contact": {}})
            await repository.save_ledgers(conn, [ledger])

        async with pool.acquire() as conn, conn.transaction():
            loaded = (await repository.load_ledgers(conn, [CASE]))[CASE]
            assert {k: (t.status, t.amount_minor) for k, t in loaded.tranches.items()} == {
                ("PL-1", "c1", 1): ("released", 30000), ("PL-1", "c2", 1): ("ordered", 72000),
                ("PL-1", "c2", 2): ("cancelled", 48000),
                ("PL-2", "c1", 1): ("released", 20000), ("PL-2", "c2", 1): ("ordered", 72000),
                ("PL-2", "c2", 2): ("planned", 48000)}
            assert loaded.facts.grant["plan_id"] == "PL-2"

        async with pool.acquire() as conn, conn.transaction():
            claimed = await payment_store.claim_new_tranches(conn, PAYOUT["provider"], 10)
        assert sorted((r["plan_id"], r["component_id"], r["seq"]) for r in claimed) == [
            ("PL-1", "c1", 1), ("PL-2", "c1", 1)]

        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("UPDATE tranches SET status = 'sending' WHERE case_id = $1 AND component_id = 'c1'", CASE)
            ledger = (await repository.load_ledgers(conn, [CASE]))[CASE]
            ledger.payment_sent(("PL-2", "c1", 1), "T-2")
            await repository.save_ledgers(conn, [ledger])
            status = await conn.fetchval(
                "SELECT status FROM tranches WHERE case_id = $1 AND plan_id = 'PL-1' AND component_id = 'c1'", CASE)
            assert status == "sending"  # the other plan's tranche, same component and seq, untouched
    finally:
        await pool.close()
        await drop_schemas(database_url, schema)


async def test_the_migration_keeps_old_rows_and_gives_them_the_grants_current_plan(database_url, tmp_path):
    schema = f"disbursement_{uuid.uuid4().hex[:10]}"
    first_version = tmp_path / "migrations"
    first_version.mkdir()
    shutil.copy(MIGRATIONS / "0100.disbursement-ledger.sql", first_version)
    apply_migrations(database_url, schema, first_version)
    pool = await create_pool(database_url, schema, max_size=2)
    try:
        # As the previous version left a case revised in place from PL-1 to PL-2: the released
        # tranche kept PL-1, the milestone tranche was rewritten with PL-2; milestones were a list.
        facts = {"grant": {"plan_id": "PL-2", "program_code": "MA-AVRR-2026", "payout": PAYOUT, "contact": {}},
                 "milestones": [], "deliveries": {}, "withdrawn": False, "completed": False}
        old_reference = payment_reference(CASE, "PL-1", "c1", 1)
        await pool.execute("INSERT INTO case_facts (case_id, facts) VALUES ($1, $2::jsonb)",
                           CASE, jsonfast.dumps_text(facts))
        await pool.executemany(
            "INSERT INTO tranches (case_id, component_id, seq, plan_id, modality, category, currency, amount_minor, "
            "release, status, reference) VALUES ($1, $2, $3, $4, $5, 'housing', 'EUR', $6, $7, $8, $9)",
            [(CASE, "c1", 1, "PL-1", "cash", 30000, "on_approval", "settled", old_reference),
             (CASE, "c2", 2, "PL-2", "in_kind", 48000, "milestone:m", "planned", payment_reference(CASE, "PL-2", "c2", 2))])
        await pool.close()

        apply_migrations(database_url, schema, MIGRATIONS)
        pool = await create_pool(database_url, schema, max_size=2)
        rows = await pool.fetch("SELECT plan_id, component_id, seq, status, reference FROM tranches ORDER BY 2, 3")
        assert [tuple(r) for r in rows] == [
            ("PL-2", "c1", 1, "settled", old_reference),  # the reference the provider knows is kept
            ("PL-2", "c2", 2, "planned", payment_reference(CASE, "PL-2", "c2", 2))]
        pkey = await pool.fetchval(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'tranches'::regclass AND contype = 'p'")
        assert pkey == "PRIMARY KEY (case_id, plan_id, component_id, seq)"

        # A revision of PL-2 now sees the settled tranche and does not release it again.
        async with pool.acquire() as conn, conn.transaction():
            ledger = (await repository.load_ledgers(conn, [CASE]))[CASE]
            ledger.revise({"case_id": CASE, "plan": plan("PL-2", cash="900.00"), "contact": {}})
            await repository.save_ledgers(conn, [ledger])
            assert ledger.tranches[("PL-2", "c1", 1)].status == "settled"
            assert ("PL-2", "c1", 1) not in ledger.changed
    finally:
        await pool.close()
        await drop_schemas(database_url, schema)
