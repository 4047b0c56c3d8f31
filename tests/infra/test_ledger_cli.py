"""``reintegra ledger check`` and ``reintegra budget`` as an operator runs them (a subprocess, DATABASE_URL
set), on databases of their own: the check looks at the whole schema, and these tests break the
ledger on purpose, so none of it may touch the session's shared database.

A module database gets the migrations and a valid ledger (built with ``Books`` and
``ledger_repository.apply``, the tranche rows inserted directly, one per status); every test
works on a copy of it (CREATE DATABASE ... TEMPLATE), so one corruption never meets another.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import disbursement
import pytest
from disbursement import ledger_repository
from disbursement.budget_admin import BudgetRefused, check_raise, fund_transfer, fund_transfer_id
from disbursement.domain.ledger import (
    PENDING,
    Balance,
    Books,
    Transfer,
    budget_account,
    commitment_account,
    funding_account,
    paid_account,
    payable_account,
    returned_account,
    trading_account,
)
from disbursement.ledger_check import CHECKS, CheckResult, LedgerReport, check_ledger, format_report, ledger_summary
from reintegra import outbox
from reintegra.money import Money
from reintegra.topics import LEDGER_POSTINGS

ACTOR = f"cli:{pwd.getpwuid(os.geteuid()).pw_name}"
PROGRAMME = "MA-AVRR-2026"
XOF_PER_EUR = Decimal("655.957")
CHECK_NAMES = [c.name for c in CHECKS]


# --------------------------------------------------------------------------- running the CLI


def reintegra(*args: str, database_url: str | None,
              extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REINTEGRA_STATE_DIR")}
    env.update(COLUMNS="400", NO_COLOR="1", TERM="dumb", PYTHONIOENCODING="utf-8", **(extra_env or {}))
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    return subprocess.run([sys.executable, "-m", "reintegra_stack.cli", *args], capture_output=True, text=True,
                          encoding="utf-8", env=env, timeout=120)


def assert_refused(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("error: ")
    for word in words:
        assert word in result.stderr, result.stderr


def failed_checks(result: subprocess.CompletedProcess) -> set[str]:
    """The checks the report marks ✗ (each check's line starts with its mark and its name)."""
    return {m.group(1) for m in re.finditer(r"^✗ (\S+)", result.stdout, re.MULTILINE)}


def check_fails(database_url: str, *expected: str) -> str:
    """`reintegra ledger check` exits 1, exactly the expected checks fail; returns the output."""
    result = reintegra("ledger", "check", database_url=database_url)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert failed_checks(result) == set(expected), result.stdout
    assert f"checks failed ({', '.join(n for n in CHECK_NAMES if n in expected)})" in result.stdout
    return result.stdout


# --------------------------------------------------------------------------- databases


def database_url_for(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def connect(url: str) -> asyncpg.Connection:
    return await asyncpg.connect(url, server_settings={"search_path": "disbursement"})


async def run_sql(url: str, sql: str, *args) -> list[asyncpg.Record]:
    conn = await connect(url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


def apply_all_migrations(url: str) -> None:
    from reintegra.auth import apply_auth_migrations_blocking
    from reintegra.db import apply_migrations

    apply_migrations(url, "disbursement", Path(disbursement.__file__).parent / "migrations")
    apply_auth_migrations_blocking(url)


@dataclass(frozen=True)
class TemplateDatabase:
    name: str
    url: str
    server_url: str  # where CREATE DATABASE is run


@pytest.fixture(scope="module")
async def template_db(infra) -> AsyncIterator[TemplateDatabase]:
    name = f"ledger_test_{uuid.uuid4().hex[:12]}"
    await admin(infra.database_url, f'CREATE DATABASE "{name}"')
    url = database_url_for(infra.database_url, name)
    try:
        await asyncio.to_thread(apply_all_migrations, url)
        conn = await connect(url)
        try:
            await build_valid_ledger(conn)
        finally:
            await conn.close()
        # Nobody (autovacuum included) may be connected to a template while it is copied.
        await admin(infra.database_url, f'ALTER DATABASE "{name}" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false')
        yield TemplateDatabase(name, url, infra.database_url)
    finally:
        with contextlib.suppress(asyncpg.PostgresError):  # when it was never made a template
            await admin(infra.database_url, f'ALTER DATABASE "{name}" WITH IS_TEMPLATE false')
        await admin(infra.database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def db(template_db: TemplateDatabase) -> AsyncIterator[str]:
    """A fresh copy of the valid ledger, for one test."""
    name = f"{template_db.name}_{uuid.uuid4().hex[:6]}"
    await admin(template_db.server_url, f'CREATE DATABASE "{name}" TEMPLATE "{template_db.name}"')
    try:
        yield database_url_for(template_db.server_url, name)
    finally:
        await admin(template_db.server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --------------------------------------------------------------------------- a valid ledger


@dataclass(frozen=True)
class Tr:
    """A tranche in the ledger: programme amount p (EUR), payout amount x in `payout` through `payee`."""

    case_id: str
    status: str
    p: int
    payout: str
    payee: str
    modality: str = "cash"

    @property
    def reference(self) -> str:
        return f"RG-{self.case_id}"

    @property
    def x(self) -> int:
        if self.payout == "EUR":
            return self.p
        return int((Decimal(self.p) / 100 * XOF_PER_EUR).quantize(Decimal(1), ROUND_HALF_UP))

    @property
    def rate(self) -> str:
        return "1" if self.payout == "EUR" else str(XOF_PER_EUR)


CASH, VENDOR = "orange_money_ci", "vendor:V-ABJ-017"
TRANCHES = [
    Tr("HELD", "held", 50_000, "XOF", CASH),
    Tr("PLANNED", "planned", 20_000, "XOF", CASH),
    Tr("REPRICED", "planned", 11_000, "XOF", CASH),  # first reserved for 10_000, voided, reserved again
    Tr("RELEASED", "released", 15_000, "XOF", CASH),
    Tr("SENT", "sent", 15_000, "XOF", CASH),
    Tr("SETTLED", "settled", 15_000, "XOF", CASH),
    Tr("FAILED", "failed", 15_000, "XOF", CASH),
    Tr("VOIDED", "cancelled", 12_000, "XOF", CASH),
    Tr("ORDERED", "ordered", 30_000, "EUR", VENDOR, "in_kind"),
    Tr("DELIVERED", "delivered", 30_000, "EUR", VENDOR, "in_kind"),
    Tr("RETURNED", "cancelled", 30_000, "EUR", VENDOR, "in_kind"),
    Tr("NEVER", "cancelled", 8_000, "XOF", CASH),
]
BY_CASE = {t.case_id: t for t in TRANCHES}
FUNDED = 1_000_000
RESERVED = 20_000 + 11_000
MOVED_OUT = 4 * 15_000 + 3 * 30_000
RETURNED = 30_000  # the cancelled kit; the failed payment's 15,000 wait in the commitment for a re-issue
WAITING = 15_000
AVAILABLE = FUNDED + RETURNED - MOVED_OUT - RESERVED


def reserve_of(t: Tr, version: str = "", amount: int | None = None) -> Transfer:
    return Transfer(f"reserve:{t.reference}{version}", f"budget:{PROGRAMME}", f"commitment:{PROGRAMME}", "EUR",
                    t.p if amount is None else amount, PENDING, kind="reserve", programme=PROGRAMME,
                    case_id=t.case_id, reference=t.reference)


def common(t: Tr) -> dict:
    return {"programme": PROGRAMME, "case_id": t.case_id, "reference": t.reference, "cause": "test", "actor": "test"}


def reserve(books: Books, t: Tr) -> None:
    books.transfer(reserve_of(t))


def release(books: Books, t: Tr) -> None:
    books.post(reserve_of(t), f"release:{t.reference}", kind="release")
    payable = books.open(payable_account(t.payee, t.payout)).id
    if t.payout == "EUR":
        books.transfer(Transfer(f"owe:{t.reference}", f"commitment:{PROGRAMME}", payable, "EUR", t.x, kind="owe",
                                **common(t)))
        return
    fx_eur, fx_x = books.open(trading_account("EUR")).id, books.open(trading_account(t.payout)).id
    conversion = {"conversion_id": t.reference, "rate": t.rate, "kind": "convert"}
    books.transfer(Transfer(f"fx-out:{t.reference}", f"commitment:{PROGRAMME}", fx_eur, "EUR", t.p,
                            **conversion, **common(t)))
    books.transfer(Transfer(f"fx-in:{t.reference}", fx_x, payable, t.payout, t.x, **conversion, **common(t)))


def settle(books: Books, t: Tr, transfer_id: str | None = None) -> None:
    books.open(payable_account(t.payee, t.payout))
    paid = books.open(paid_account(t.payee, t.payout)).id
    books.transfer(Transfer(transfer_id or f"settle:{t.reference}", f"payable:{t.payee}:{t.payout}", paid, t.payout,
                            t.x, kind="settle", **common(t)))


def give_back(books: Books, t: Tr) -> None:
    returned = books.open(returned_account(PROGRAMME, "EUR")).id
    payable = books.open(payable_account(t.payee, t.payout)).id
    if t.payout == "EUR":
        books.transfer(Transfer(f"return-out:{t.reference}", payable, returned, "EUR", t.x, kind="return",
                                **common(t)))
    else:
        fx_eur, fx_x = books.open(trading_account("EUR")).id, books.open(trading_account(t.payout)).id
        conversion = {"conversion_id": f"return:{t.reference}", "rate": t.rate, "kind": "convert"}
        books.transfer(Transfer(f"return-fx-out:{t.reference}", payable, fx_x, t.payout, t.x, **conversion,
                                **common(t)))
        books.transfer(Transfer(f"return-fx-in:{t.reference}", fx_eur, returned, "EUR", t.p, **conversion,
                                **common(t)))
    books.transfer(Transfer(f"return:{t.reference}", returned, f"budget:{PROGRAMME}", "EUR", t.p, kind="return",
                            **common(t)))


def unpay(books: Books, t: Tr) -> None:
    """A payment that failed for good: its payout goes back to the commitment, to wait for a re-issue."""
    payable = books.open(payable_account(t.payee, t.payout)).id
    commitment = f"commitment:{PROGRAMME}"
    if t.payout == "EUR":
        books.transfer(Transfer(f"unpay:{t.reference}", payable, commitment, "EUR", t.x, kind="unpay", **common(t)))
        return
    fx_eur, fx_x = books.open(trading_account("EUR")).id, books.open(trading_account(t.payout)).id
    conversion = {"conversion_id": f"unpay:{t.reference}", "rate": t.rate, "kind": "convert"}
    books.transfer(Transfer(f"unpay-fx-out:{t.reference}", payable, fx_x, t.payout, t.x, **conversion, **common(t)))
    books.transfer(Transfer(f"unpay-fx-in:{t.reference}", fx_eur, commitment, "EUR", t.p, **conversion, **common(t)))


async def step(conn: asyncpg.Connection, *moves) -> None:
    """One transaction, as the service makes them: lock the budget, move, apply, outbox."""
    async with conn.transaction():
        books = await ledger_repository.lock_accounts(conn, [budget_account(PROGRAMME, "EUR")])
        books.open(commitment_account(PROGRAMME, "EUR"))
        for move in moves:
            move(books)
        await outbox.add(conn, await ledger_repository.apply(conn, books))


def fund_opening(books: Books) -> None:
    funding = books.open(funding_account(PROGRAMME, "EUR")).id
    books.transfer(Transfer(f"fund:{PROGRAMME}:opening", funding, f"budget:{PROGRAMME}", "EUR", FUNDED, kind="fund",
                            programme=PROGRAMME, cause="test", actor="test"))


async def insert_tranche(conn: asyncpg.Connection, t: Tr) -> None:
    released = t.status not in ("held", "planned") and t.case_id not in ("VOIDED", "NEVER")
    await conn.execute(
        """
        INSERT INTO tranches (case_id, component_id, seq, plan_id, modality, category, currency, amount_minor,
                              release, status, reference, programme_code, programme_currency, programme_minor,
                              payout_currency, payout_minor, rate, rate_source, payee, reserve_id)
        VALUES ($1, 'c1', 1, 'plan-1', $2, 'business', 'EUR', $3, 'on_approval', $4, $5, $6, 'EUR', $3,
                $7, $8, $9, $10, $11, $12)
        """,
        t.case_id, t.modality, t.p, t.status, t.reference, PROGRAMME, t.payout,
        t.x if released else None, t.rate if released else None, "test" if released else None, t.payee,
        None if t.case_id in ("HELD", "NEVER") else f"reserve:{t.reference}" + (":r2" if t.case_id == "REPRICED" else ""))


async def build_valid_ledger(conn: asyncpg.Connection) -> None:
    await step(conn, fund_opening)
    for t in TRANCHES:
        await insert_tranche(conn, t)
    b = BY_CASE
    await conn.execute("INSERT INTO budget_holds (case_id, programme, currency, amount_minor) VALUES ($1, $2, 'EUR', $3)",
                       "HELD", PROGRAMME, b["HELD"].p)
    repriced = b["REPRICED"]
    await step(conn, lambda books: books.transfer(reserve_of(repriced, amount=10_000)))
    await step(conn, lambda books: books.void(reserve_of(repriced, amount=10_000), "void:RG-REPRICED", kind="void"),
               lambda books: books.transfer(reserve_of(repriced, ":r2")))
    reserved = [t for t in TRANCHES if t.case_id not in ("HELD", "NEVER", "REPRICED")]
    await step(conn, *[lambda books, t=t: reserve(books, t) for t in reserved])
    released = [t for t in reserved if t.case_id not in ("PLANNED", "VOIDED")]
    await step(conn, *[lambda books, t=t: release(books, t) for t in released])
    await step(conn, lambda books: books.void(reserve_of(b["VOIDED"]), "void:RG-VOIDED", kind="void"))
    await step(conn, lambda books: settle(books, b["SETTLED"]))
    await step(conn, lambda books: unpay(books, b["FAILED"]), lambda books: give_back(books, b["RETURNED"]))
    # A tranche from before the ledger: no programme amount, counted only.
    await conn.execute(
        """
        INSERT INTO tranches (case_id, component_id, seq, plan_id, modality, category, currency, amount_minor,
                              release, status, reference)
        VALUES ('OLD', 'c1', 1, 'plan-0', 'cash', 'business', 'XOF', 100000, 'on_approval', 'settled', 'RG-OLD')
        """)


async def consistent_transfer(conn: asyncpg.Connection, transfer_id: str, debit: str, credit: str, currency: str,
                              amount: int, kind: str, *, phase: str = "posted", reference: str | None = None) -> None:
    """A transfer written straight into the tables, balances and counters updated to match (so only the
    invariant the test is about breaks)."""
    posted, pending = (amount, 0) if phase == "posted" else (0, amount)
    await conn.execute(
        "INSERT INTO ledger_transfers (id, debit_account, credit_account, currency, amount_minor, phase, kind, "
        "programme, reference) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        transfer_id, debit, credit, currency, amount, phase, kind, PROGRAMME, reference)
    await conn.execute("UPDATE ledger_accounts SET debits_posted = debits_posted + $2, "
                       "debits_pending = debits_pending + $3, last_seq = last_seq + 1 WHERE id = $1",
                       debit, posted, pending)
    await conn.execute("UPDATE ledger_accounts SET credits_posted = credits_posted + $2, "
                       "credits_pending = credits_pending + $3, last_seq = last_seq + 1 WHERE id = $1",
                       credit, posted, pending)


# --------------------------------------------------------------------------- the valid ledger passes


async def test_a_valid_ledger_passes_every_check(db) -> None:
    result = reintegra("ledger", "check", database_url=db)
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert failed_checks(result) == set()
    for name in CHECK_NAMES:
        assert re.search(rf"^✓ {re.escape(name)} ", result.stdout, re.MULTILINE), (name, result.stdout)
    assert "Ledger OK: all 11 checks passed." in result.stdout
    assert re.search(r"✓ tranche-states\s+12 tranches in the ledger", result.stdout), result.stdout
    assert "1 tranche(s) without a programme amount" in result.stdout
    assert re.search(r"✓ conversions\s+5 conversions", result.stdout)  # 4 releases in XOF, 1 return

    conn = await connect(db)
    try:
        report = await check_ledger(conn)
        assert report.ok, format_report(report)
        assert report.result("paid-once").checked == 1
        assert report.result("commitments").checked == 3  # the programme; EUR and XOF payables
        summary = await ledger_summary(conn)
    finally:
        await conn.close()
    [programme] = summary["programmes"]
    assert programme == {
        "programme": PROGRAMME, "currency": "EUR", "funded_minor": FUNDED, "reserved_minor": RESERVED,
        "moved_out_minor": MOVED_OUT, "returned_minor": RETURNED, "available_minor": AVAILABLE,
        "paid_minor": 15_000, "held_grants": 1, "held_minor": 50_000}
    x = BY_CASE["SENT"].x
    currencies = {c["currency"]: c for c in summary["currencies"]}
    assert currencies["XOF"]["payable_minor"] == 2 * x and currencies["XOF"]["paid_minor"] == x
    assert currencies["EUR"]["payees"] == [{"payee": VENDOR, "payable_minor": 60_000, "paid_minor": 0}]


async def test_the_check_sees_one_snapshot_inside_a_callers_transaction(db) -> None:
    conn = await connect(db)
    try:
        transaction = conn.transaction()
        await transaction.start()
        await conn.execute("UPDATE ledger_accounts SET credits_posted = credits_posted + 1 "
                           "WHERE id = 'paid:orange_money_ci:XOF'")
        report = await check_ledger(conn)  # runs in the caller's transaction: sees its change
        assert set(report.failed) == {"currency-balance", "account-sums"}
        await transaction.rollback()
        assert (await check_ledger(conn)).ok
    finally:
        await conn.close()
    assert reintegra("ledger", "check", database_url=db).returncode == 0


# --------------------------------------------------------------------------- corruptions on purpose


async def test_an_account_sum_bumped_by_one(db) -> None:
    await run_sql(db, "UPDATE ledger_accounts SET credits_posted = credits_posted + 1 "
                      "WHERE id = 'paid:orange_money_ci:XOF'")
    out = check_fails(db, "currency-balance", "account-sums")
    assert "paid:orange_money_ci:XOF: credits_posted is" in out
    assert "XOF: posted debits" in out and "(off by -1)" in out


async def test_a_transfer_inserted_without_touching_balances(db) -> None:
    await run_sql(db, "INSERT INTO ledger_transfers (id, debit_account, credit_account, currency, amount_minor, "
                      "phase, kind, programme) VALUES ('fund:MA-AVRR-2026:sneaky', 'funding:MA-AVRR-2026', "
                      "'budget:MA-AVRR-2026', 'EUR', 500, 'posted', 'fund', 'MA-AVRR-2026')")
    out = check_fails(db, "account-sums", "posting-counters")
    assert f"budget:{PROGRAMME}: credits_posted is {FUNDED + RETURNED} but its transfers add up to " \
           f"{FUNDED + RETURNED + 500}" in out
    assert f"funding:{PROGRAMME}: last_seq is 1 but 2 transfers touch it" in out


async def test_a_budget_below_zero_available(db) -> None:
    conn = await connect(db)
    try:
        await conn.execute("ALTER TABLE ledger_accounts DROP CONSTRAINT available_never_negative")
        await consistent_transfer(conn, "overdraw", f"budget:{PROGRAMME}", f"funding:{PROGRAMME}", "EUR",
                                  AVAILABLE + 100, "fund")
    finally:
        await conn.close()
    out = check_fails(db, "budget-limits", "database-guards")
    assert f"budget:{PROGRAMME}: available is -100" in out
    assert "constraint available_never_negative is missing" in out


async def test_a_tranche_settled_twice(db) -> None:
    t = BY_CASE["SETTLED"]
    conn = await connect(db)
    try:
        await consistent_transfer(conn, f"settle-again:{t.reference}", f"payable:{CASH}:XOF", f"paid:{CASH}:XOF",
                                  "XOF", t.x, "settle", reference=t.reference)
    finally:
        await conn.close()
    out = check_fails(db, "paid-once", "commitments")
    assert f"{t.reference} is paid 2 times (settle:{t.reference}, settle-again:{t.reference})" in out


async def test_a_tranche_marked_settled_without_a_settle_transfer(db) -> None:
    t = BY_CASE["SENT"]
    await run_sql(db, "UPDATE tranches SET status = 'settled' WHERE reference = $1", t.reference)
    out = check_fails(db, "tranche-states", "commitments")
    assert f"{t.reference} (case SENT, settled): no settle:{t.reference}" in out
    assert "XOF: payable accounts hold" in out


async def test_a_commitment_that_does_not_match_the_planned_tranches(db) -> None:
    """A reserve nobody's tranche made: the books balance, the tranches do not know it."""
    conn = await connect(db)
    try:
        await consistent_transfer(conn, "reserve:ghost", f"budget:{PROGRAMME}", f"commitment:{PROGRAMME}", "EUR",
                                  700, "reserve", phase="pending")
    finally:
        await conn.close()
    out = check_fails(db, "commitments")
    assert (f"programme {PROGRAMME}: commitment:{PROGRAMME} holds {RESERVED + WAITING + 700} EUR but its 3 planned "
            f"or failed tranche(s) hold {RESERVED + WAITING}") in out


async def test_a_planned_tranche_whose_reserve_was_voided(db) -> None:
    t = BY_CASE["PLANNED"]
    await step_on(db, lambda books: books.void(reserve_of(t), f"void:{t.reference}", kind="void"))
    out = check_fails(db, "tranche-states", "commitments")
    assert f"{t.reference} (case PLANNED, planned): no pending reserve (reserve:{t.reference} was voided)" in out


async def test_a_conversion_with_one_leg_and_a_reserve_posted_twice(db) -> None:
    conn = await connect(db)
    try:
        await conn.execute("DROP INDEX ledger_pending_resolved_once")
        await conn.execute("ALTER TABLE ledger_transfers DISABLE TRIGGER ledger_transfers_immutable")
        await conn.execute("UPDATE ledger_transfers SET conversion_id = NULL WHERE id = 'fx-in:RG-SENT'")
        t = BY_CASE["ORDERED"]
        await conn.execute(
            "INSERT INTO ledger_transfers (id, debit_account, credit_account, currency, amount_minor, phase, "
            "pending_id, kind, programme) VALUES ('release-again', $1, $2, 'EUR', $3, 'post_pending', $4, "
            "'release', $5)", f"budget:{PROGRAMME}", f"commitment:{PROGRAMME}", t.p + 1, f"reserve:{t.reference}",
            PROGRAMME)
    finally:
        await conn.close()
    out = check_fails(db, "conversions", "pending-resolution", "account-sums", "posting-counters",
                      "tranche-states", "database-guards")
    assert out.count("RG-ORDERED (case ORDERED, ordered): its reserves were posted 2 times") == 1
    assert "conversion RG-SENT (fx-out:RG-SENT): has 1 legs, not 2" in out
    assert "transfer fx-in:RG-SENT is a conversion (kind convert) without a conversion_id" in out
    assert "pending transfer reserve:RG-ORDERED is resolved 2 times (release:RG-ORDERED, release-again)" in out
    assert "transfer release-again: posts 30001, more than the 30000 pending on reserve:RG-ORDERED" in out
    assert "trigger ledger_transfers_immutable (BEFORE UPDATE OR DELETE, enabled) is missing" in out
    assert "unique index ledger_pending_resolved_once is missing" in out


async def test_transfers_in_the_wrong_currency(db) -> None:
    conn = await connect(db)
    try:
        await consistent_transfer(conn, "odd", f"payable:{CASH}:XOF", f"paid:{CASH}:XOF", "EUR", 5, "adjust")
    finally:
        await conn.close()
    out = check_fails(db, "transfer-accounts", "commitments")  # the XOF accounts still balance each other
    assert f"transfer odd: is in EUR but debits payable:{CASH}:XOF, an account in XOF" in out


async def step_on(url: str, *moves) -> None:
    conn = await connect(url)
    try:
        await step(conn, *moves)
    finally:
        await conn.close()


def test_the_queries_can_be_printed() -> None:
    result = reintegra("ledger", "check", "--sql", database_url=None)
    assert result.returncode == 0, result.stderr
    for name in CHECK_NAMES:
        assert f"-- {name}: " in result.stdout
    assert '"disbursement".ledger_transfers' in result.stdout


# --------------------------------------------------------------------------- budget raise and show


async def audit_rows(url: str, transfer_id_or_key: str) -> list[tuple[str, str, dict]]:
    rows = await run_sql(url, "SELECT actor, outcome, detail FROM auth.audit WHERE action = 'budget.raise' "
                              "AND (detail->>'transfer_id' = $1 OR detail->>'key' = $1) ORDER BY id", transfer_id_or_key)
    return [(r["actor"], r["outcome"], json.loads(r["detail"])) for r in rows]


async def test_raise_a_budget_and_run_it_again(db) -> None:
    outbox_before = len(await run_sql(db, "SELECT 1 FROM outbox"))
    raised = reintegra("budget", "raise", PROGRAMME, "2500.00", "--currency", "EUR", "--reason", "ECHO top-up",
                       "--key", "echo-2026-03", database_url=db)
    assert raised.returncode == 0, (raised.stdout, raised.stderr)
    transfer_id = f"fund:{PROGRAMME}:echo-2026-03"
    assert f"transfer {transfer_id}: budget:{PROGRAMME} raised by 2500.00 EUR" in raised.stdout
    assert f"available: {Money(AVAILABLE + 250_000, 'EUR')}" in raised.stdout

    [stored] = await run_sql(db, "SELECT * FROM ledger_transfers WHERE id = $1", transfer_id)
    assert (stored["debit_account"], stored["credit_account"], stored["amount_minor"], stored["phase"],
            stored["kind"], stored["cause"], stored["actor"]) == (
        f"funding:{PROGRAMME}", f"budget:{PROGRAMME}", 250_000, "posted", "fund", "ECHO top-up", ACTOR)
    events = await run_sql(db, "SELECT topic, key, value FROM outbox ORDER BY seq")
    new = events[outbox_before:]
    assert {e["topic"] for e in new} == {LEDGER_POSTINGS}
    accounts = {json.loads(e["value"])["data"]["account"]: json.loads(e["value"])["data"] for e in new}
    assert set(accounts) == {f"budget:{PROGRAMME}", f"funding:{PROGRAMME}"}
    [posting] = accounts[f"budget:{PROGRAMME}"]["postings"]
    assert (posting["transfer_id"], posting["side"], posting["amount_minor"]) == (transfer_id, "credit", 250_000)
    assert await audit_rows(db, transfer_id) == [(ACTOR, "ok", {
        "programme": PROGRAMME, "key": "echo-2026-03", "transfer_id": transfer_id, "reason": "ECHO top-up",
        "amount": "2500.00", "currency": "EUR", "amount_minor": 250_000, "already_applied": False,
        "opened": False, "available_minor": AVAILABLE + 250_000})]

    again = reintegra("budget", "raise", PROGRAMME, "2500.00", "--currency", "EUR", "--reason", "ECHO top-up",
                      "--key", "echo-2026-03", database_url=db)
    assert again.returncode == 0, again.stderr
    assert f"transfer {transfer_id} was already applied by {ACTOR}: nothing changed" in again.stdout
    assert f"available: {Money(AVAILABLE + 250_000, 'EUR')}" in again.stdout
    assert len(await run_sql(db, "SELECT 1 FROM outbox")) == len(events)
    assert [(o, d["already_applied"]) for _, o, d in await audit_rows(db, transfer_id)] == [
        ("ok", False), ("ok", True)]

    other = reintegra("budget", "raise", PROGRAMME, "3000.00", "--currency", "EUR", "--reason", "ECHO top-up",
                      "--key", "echo-2026-03", database_url=db)
    assert_refused(other, "echo-2026-03", "already used", "2500.00 EUR", "3000.00 EUR")
    rows = await audit_rows(db, transfer_id)
    assert [o for _, o, _ in rows] == ["ok", "ok", "refused"]
    assert rows[-1][2]["error"] == "key_reused" and rows[-1][2]["amount"] == "3000.00"
    assert reintegra("ledger", "check", database_url=db).returncode == 0

    shown = reintegra("budget", "show", database_url=db)
    assert shown.returncode == 0, shown.stderr
    [line] = [ln for ln in shown.stdout.splitlines() if PROGRAMME in ln]
    assert re.search(rf"{PROGRAMME}\s.*EUR\s.*{Money(FUNDED + 250_000, 'EUR').format_amount()}\s.*"
                     rf"{Money(RESERVED, 'EUR').format_amount()}\s.*{Money(MOVED_OUT, 'EUR').format_amount()}\s.*"
                     rf"{Money(RETURNED, 'EUR').format_amount()}\s.*{Money(AVAILABLE + 250_000, 'EUR').format_amount()}"
                     r"\s.*1 \(500\.00\)", line), line
    assert any("XOF" in ln and CASH in ln for ln in shown.stdout.splitlines())


async def test_a_raise_opens_a_new_programmes_budget(db) -> None:
    raised = reintegra("budget", "raise", "GN-RETURN-2026", "150000000", "--currency", "GNF", "--reason",
                       "opening by finance", database_url=db)
    assert raised.returncode == 0, raised.stderr
    assert "budget:GN-RETURN-2026 raised by 150000000 GNF (budget opened)" in raised.stdout
    assert "available: 150000000 GNF" in raised.stdout
    [transfer_id] = re.findall(r"transfer (fund:GN-RETURN-2026:\S+):", raised.stdout)
    key = transfer_id.rsplit(":", 1)[1]
    assert uuid.UUID(key)  # a new random key when none is given
    [account] = await run_sql(db, "SELECT currency, kind, debits_must_not_exceed_credits AS limited "
                                  "FROM ledger_accounts WHERE id = 'budget:GN-RETURN-2026'")
    assert (account["currency"], account["kind"], account["limited"]) == ("GNF", "budget", True)
    assert [(o, d["opened"]) for _, o, d in await audit_rows(db, transfer_id)] == [("ok", True)]
    assert reintegra("ledger", "check", database_url=db).returncode == 0


async def test_a_raise_in_another_currency_is_refused_and_audited(db) -> None:
    refused = reintegra("budget", "raise", PROGRAMME, "1000", "--currency", "XOF", "--reason", "wrong",
                        "--key", "xof-1", database_url=db)
    assert_refused(refused, f"budget:{PROGRAMME} is in EUR", "not XOF")
    [(actor, outcome, detail)] = await audit_rows(db, "xof-1")
    assert (actor, outcome, detail["error"], detail["currency"]) == (ACTOR, "refused", "currency_mismatch", "XOF")
    assert await run_sql(db, "SELECT 1 FROM ledger_transfers WHERE id LIKE '%xof-1'") == []
    assert await run_sql(db, "SELECT 1 FROM ledger_accounts WHERE currency = 'XOF' AND programme IS NOT NULL") == []

    # A programme with grants held in EUR but no budget yet cannot be opened in XOF either.
    await run_sql(db, "INSERT INTO budget_holds (case_id, programme, currency, amount_minor) "
                      "VALUES ('NEW-1', 'SN-NEW', 'EUR', 100)")
    assert_refused(reintegra("budget", "raise", "SN-NEW", "5000", "--currency", "XOF", "--reason", "r",
                             database_url=db), "SN-NEW's grants are in EUR")


@pytest.mark.parametrize(("amount", "currency", "words"), [
    ("12,5", "EUR", ["'12,5'", "decimal string"]),
    ("-3", "EUR", ["'-3'", "decimal string"]),
    ("1.234", "EUR", ["'1.234'", "at most 2 fraction digits"]),
    ("0.00", "EUR", ["greater than zero"]),
    ("10.5", "XOF", ["at most 0 fraction digits"]),
    ("10", "EURO", ["ISO 4217"]),
])
def test_bad_amounts_are_refused_before_connecting(amount, currency, words) -> None:
    # No database at all: the amount is refused first ("-3" is an amount, not an unknown option).
    for args in ([PROGRAMME, amount, "--currency", currency, "--reason", "r"],
                 [PROGRAMME, "--currency", currency, "--reason", "r", "--", amount]):
        assert_refused(reintegra("budget", "raise", *args, database_url=None), *words)


async def test_bad_programme_key_or_reason_are_refused_and_audited(db) -> None:
    for args, words in [
        (["bad programme!", "10.00", "--reason", "r"], ["programme 'bad programme!'"]),
        ([PROGRAMME, "10.00", "--reason", "r", "--key", "opening"], ["opening funding"]),
        ([PROGRAMME, "10.00", "--reason", "r", "--key", "a b"], ["key 'a b'"]),
        ([PROGRAMME, "10.00", "--reason", "  "], ["reason is required"]),
    ]:
        assert_refused(reintegra("budget", "raise", *args, "--currency", "EUR", database_url=db), *words)
    rows = await run_sql(db, "SELECT outcome, detail->>'error' AS error FROM auth.audit WHERE action = 'budget.raise' "
                             "ORDER BY id")
    assert [(r["outcome"], r["error"]) for r in rows] == [
        ("refused", "invalid_programme"), ("refused", "reserved_key"), ("refused", "invalid_key"),
        ("refused", "reason_missing")]


def test_without_any_database_it_says_so(tmp_path) -> None:
    for args in (["ledger", "check"], ["budget", "show"], ["budget", "raise", PROGRAMME, "1.00", "--currency", "EUR",
                                                          "--reason", "r"]):
        result = reintegra(*args, database_url=None, extra_env={"REINTEGRA_STATE_DIR": str(tmp_path)})
        assert_refused(result, "DATABASE_URL", "reintegra up")


# --------------------------------------------------------------------------- pure parts


def test_fund_transfer_is_a_posted_transfer_from_funding_to_budget() -> None:
    t = fund_transfer(PROGRAMME, Money(250_000, "EUR"), "k1", reason="top-up", actor="cli:x")
    assert t == Transfer(f"fund:{PROGRAMME}:k1", f"funding:{PROGRAMME}", f"budget:{PROGRAMME}", "EUR", 250_000,
                         kind="fund", programme=PROGRAMME, cause="top-up", actor="cli:x")
    assert fund_transfer_id("P", "k") == "fund:P:k"
    # The same raise with another reason is the same transfer (cause is not content); another amount is not.
    assert t.content() == fund_transfer(PROGRAMME, Money(250_000, "EUR"), "k1", reason="other", actor="y").content()
    assert t.content() != fund_transfer(PROGRAMME, Money(250_001, "EUR"), "k1", reason="top-up", actor="y").content()


def test_fund_transfer_goes_through_the_books() -> None:
    books = Books()
    books.load(budget_account(PROGRAMME, "EUR"), Balance())
    books.open(funding_account(PROGRAMME, "EUR"))
    books.transfer(fund_transfer(PROGRAMME, Money(500, "EUR"), "k", reason="r", actor="a"))
    assert books.available(f"budget:{PROGRAMME}") == 500


@pytest.mark.parametrize(("programme", "amount", "reason", "key", "code"), [
    ("", Money(1, "EUR"), "r", None, "invalid_programme"),
    ("A B", Money(1, "EUR"), "r", None, "invalid_programme"),
    ("P:1", Money(1, "EUR"), "r", None, "invalid_programme"),
    ("P", Money(0, "EUR"), "r", None, "amount_not_positive"),
    ("P", Money(-5, "EUR"), "r", None, "amount_not_positive"),
    ("P", Money(1, "EUR"), "", None, "reason_missing"),
    ("P", Money(1, "EUR"), "x" * 501, None, "reason_too_long"),
    ("P", Money(1, "EUR"), "r", "opening", "reserved_key"),
    ("P", Money(1, "EUR"), "r", "a:b", "invalid_key"),
    ("P", Money(1, "EUR"), "r", "", "invalid_key"),
])
def test_check_raise_refusals(programme, amount, reason, key, code) -> None:
    with pytest.raises(BudgetRefused) as refused:
        check_raise(programme, amount, reason, key)
    assert refused.value.code == code


def test_check_raise_accepts_a_good_raise() -> None:
    check_raise("MA-AVRR-2026", Money(1, "EUR"), "top-up", None)
    check_raise("MA-AVRR-2026", Money(1, "EUR"), "top-up", "echo_2026.03-a")


def test_format_report_lists_every_check_and_its_violations() -> None:
    report = LedgerReport([
        CheckResult("account-sums", "sums match", 12, [], True, 0, "accounts"),
        CheckResult("paid-once", "paid at most once", 3, [f"RG-{i} is paid 2 times" for i in range(20)], False, 25,
                    "settled references", "a note"),
    ])
    text = format_report(report)
    lines = text.splitlines()
    assert lines[1] == "✓ account-sums  12 accounts: sums match"
    assert lines[2] == "✗ paid-once     3 settled references: paid at most once  -- 25 violations"
    assert lines[3].strip() == "(a note)"
    assert lines[4] == "    - RG-0 is paid 2 times" and lines[23] == "    - RG-19 is paid 2 times"
    assert lines[24] == "    ... and 5 more"
    assert lines[-1] == "Ledger BROKEN: 1 of 2 checks failed (paid-once)."
    assert not report.ok and report.failed == ["paid-once"]
    ok = LedgerReport([CheckResult("a", "b", 0, [], True)])
    assert format_report(ok).splitlines()[-1] == "Ledger OK: all 1 checks passed."


def test_check_queries_are_schema_qualified() -> None:
    for check in CHECKS:
        for sql in check.sql("other_schema"):
            if sql:
                assert "{s}" not in sql and "{schema_name}" not in sql
                assert "disbursement" not in sql, check.name
    with pytest.raises(ValueError):
        CHECKS[0].sql('x"; DROP TABLE y; --')
