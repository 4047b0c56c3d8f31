"""The ledger's tables against a real Postgres (`disbursement.ledger_repository`).

What the pure rules (`test_ledger_domain.py`) cannot show: that concurrent transactions, each in
its own connection, never overdraw a budget nor deadlock; that a transfer id is an idempotency key
across transactions; that the posting events number each account's postings 1, 2, ... without gaps;
and that the database itself refuses what the ledger forbids (immutable transfers, the budget
limit, a second resolution of a pending transfer) even when the domain is bypassed.

Each test gets a database of its own, migrated to the current schema.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from disbursement import ledger_repository
from disbursement.domain.ledger import (
    PENDING,
    POST_PENDING,
    POSTED,
    VOID_PENDING,
    Account,
    Balance,
    Books,
    ExceedsAvailable,
    Transfer,
    budget_account,
    commitment_account,
    funding_account,
    paid_account,
    payable_account,
    trading_account,
)
from disbursement.ledger_repository import TransferConflict, apply, lock_accounts
from reintegra import jsonfast, outbox
from reintegra.db import apply_migrations_async
from reintegra.topics import LEDGER_POSTINGS

MIGRATIONS = Path(ledger_repository.__file__).parent / "migrations"
SCHEMA = "disbursement"
EUR, XOF = "EUR", "XOF"


# --- fixtures and helpers -------------------------------------------------------------------
@pytest.fixture(scope="module")
def server_url(tmp_path_factory):
    """One Postgres for the module (DATABASE_URL when set), as in test_disbursement_repository.py."""
    from reintegra_stack.embedded import start_postgres

    postgres = start_postgres(tmp_path_factory.mktemp("ledger-postgres"))
    try:
        yield postgres.url
    finally:
        postgres.stop()


@pytest.fixture
async def db(server_url):
    """A fresh database with schema `disbursement` migrated; its URL."""
    name = f"ledger_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))
    await apply_migrations_async(url, SCHEMA, MIGRATIONS)
    try:
        yield url
    finally:
        admin = await asyncpg.connect(server_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def connect(url: str) -> asyncpg.Connection:
    return await asyncpg.connect(url, server_settings={"search_path": SCHEMA})


@pytest.fixture
async def conn(db):
    connection = await connect(db)
    try:
        yield connection
    finally:
        await connection.close()


async def fund(conn: asyncpg.Connection, programme: str, amount: int, currency: str = EUR) -> str:
    """Put `amount` on the programme's budget (from its funding account), as budget_admin does."""
    budget, funding = budget_account(programme, currency), funding_account(programme, currency)
    transfer_id = f"fund:{programme}:{uuid.uuid4().hex[:8]}"
    async with conn.transaction():
        books = await lock_accounts(conn, [budget, funding])
        books.transfer(Transfer(transfer_id, funding.id, budget.id, currency, amount, kind="fund", programme=programme))
        await outbox.add(conn, await apply(conn, books))
    return transfer_id


async def accounts(conn: asyncpg.Connection) -> dict[str, asyncpg.Record]:
    rows = await conn.fetch("SELECT id, currency, debits_pending, debits_posted, credits_pending, credits_posted, "
                            "last_seq, credits_posted - debits_posted - debits_pending AS available "
                            "FROM ledger_accounts")
    return {r["id"]: r for r in rows}


def sums(row: asyncpg.Record) -> tuple[int, int, int, int]:
    return row["debits_pending"], row["debits_posted"], row["credits_pending"], row["credits_posted"]


async def posting_events(conn: asyncpg.Connection) -> list[tuple[bytes, dict]]:
    """The posting events in the outbox, in the order the relay publishes them: (key, event)."""
    rows = await conn.fetch("SELECT key, value FROM outbox WHERE topic = $1 ORDER BY seq", LEDGER_POSTINGS)
    return [(r["key"], jsonfast.loads(r["value"])) for r in rows]


async def counts(conn: asyncpg.Connection) -> tuple[int, int]:
    return (await conn.fetchval("SELECT count(*) FROM ledger_transfers"),
            await conn.fetchval("SELECT count(*) FROM outbox"))


async def assert_ledger_consistent(conn: asyncpg.Connection) -> None:
    """Every account's four sums and last_seq are what the stored transfers add up to, and per
    currency the debits equal the credits (posted, and pending)."""
    transfers = await conn.fetch("SELECT id, debit_account, credit_account, currency, amount_minor, phase, pending_id "
                                 "FROM ledger_transfers ORDER BY seq")
    amount_of = {t["id"]: t["amount_minor"] for t in transfers}
    expected: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])  # dp, dpo, cp, cpo
    legs: Counter[str] = Counter()
    for t in transfers:
        debit, credit, amount = expected[t["debit_account"]], expected[t["credit_account"]], t["amount_minor"]
        legs[t["debit_account"]] += 1
        legs[t["credit_account"]] += 1
        if t["phase"] == POSTED:
            debit[1] += amount
            credit[3] += amount
        elif t["phase"] == PENDING:
            debit[0] += amount
            credit[2] += amount
        else:
            pending_amount = amount_of[t["pending_id"]]
            debit[0] -= pending_amount
            credit[2] -= pending_amount
            if t["phase"] == POST_PENDING:
                debit[1] += amount
                credit[3] += amount
            else:
                assert t["phase"] == VOID_PENDING
    stored = await accounts(conn)
    assert {a: sums(r) for a, r in stored.items()} == {a: tuple(expected[a]) for a in stored}
    assert {a: r["last_seq"] for a, r in stored.items()} == {a: legs[a] for a in stored}
    assert set(expected) <= set(stored)
    per_currency: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for r in stored.values():
        for i, value in enumerate(sums(r)):
            per_currency[r["currency"].strip()][i] += value
    for currency, (dp, dpo, cp, cpo) in per_currency.items():
        assert (dpo, dp) == (cpo, cp), f"{currency}: debits {dpo} posted, {dp} pending; credits {cpo}, {cp}"


# --- 1. concurrency: the budget never goes below zero --------------------------------------
async def test_concurrent_reserves_never_take_the_budget_below_zero(db, conn):
    programme = "CONC-2026"
    budget, commitment = budget_account(programme, EUR), commitment_account(programme, EUR)
    await fund(conn, programme, 10_000)
    connections = [await connect(db) for _ in range(40)]
    start = asyncio.Event()

    async def reserve(i: int, c: asyncpg.Connection) -> bool:
        await start.wait()
        async with c.transaction():
            books = await lock_accounts(c, [budget])
            books.open(commitment)
            try:
                books.transfer(Transfer(f"reserve:{i}", budget.id, commitment.id, EUR, 300, PENDING,
                                        kind="reserve", programme=programme))
            except ExceedsAvailable:
                return False  # commit nothing
            await outbox.add(c, await apply(c, books))
            return True

    try:
        tasks = [asyncio.create_task(reserve(i, c)) for i, c in enumerate(connections)]
        start.set()
        results = await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
    finally:
        await asyncio.gather(*(c.close() for c in connections))

    assert results.count(True) == 33
    stored = await accounts(conn)
    assert stored[budget.id]["available"] == 100
    assert sums(stored[budget.id]) == (9_900, 0, 0, 10_000)
    assert sums(stored[commitment.id]) == (0, 0, 9_900, 0)
    assert await conn.fetchval("SELECT count(*) FROM ledger_transfers WHERE kind = 'reserve'") == 33
    # The budget's postings, numbered in the order the reserves took its lock.
    budget_seqs = [p["seq"] for key, e in await posting_events(conn) if key == budget.id.encode()
                   for p in e["data"]["postings"]]
    assert budget_seqs == list(range(1, 35)) and stored[budget.id]["last_seq"] == 34
    await assert_ledger_consistent(conn)


# --- 2. no deadlocks, whatever order the accounts come in ----------------------------------
BUDGETS = [f"DL-{c}" for c in "ABCDEF"]
POOL = "DL-POOL"
UNLIMITED = [commitment_account(POOL, EUR), trading_account(EUR), trading_account(XOF),
             payable_account("x", XOF), paid_account("x", XOF)]


def task_transfers(i: int, rng: random.Random, budgets: list[Account]) -> list[tuple[str, Transfer, int | None]]:
    """One transaction's moves among two budgets and the unlimited accounts, shuffled; the
    resolutions of its own pending transfers come after them. (operation, transfer, amount posted)."""
    a, b = budgets
    commitment, fx_eur, fx_xof, payable, paid = (x.id for x in UNLIMITED)
    reserve = Transfer(f"t{i}:reserve", a.id, commitment, EUR, rng.randint(10, 99), PENDING, kind="reserve")
    doomed = Transfer(f"t{i}:reserve-voided", b.id, commitment, EUR, rng.randint(10, 99), PENDING, kind="reserve")
    xof = rng.randint(1000, 9999)
    moves = [("transfer", reserve, None), ("transfer", doomed, None),
             ("transfer", Transfer(f"t{i}:release", b.id, commitment, EUR, rng.randint(10, 99), kind="release"), None),
             ("transfer", Transfer(f"t{i}:leg-eur", commitment, fx_eur, EUR, rng.randint(1, 9), kind="convert"), None),
             ("transfer", Transfer(f"t{i}:leg-xof", fx_xof, payable, XOF, xof, kind="convert"), None),
             ("transfer", Transfer(f"t{i}:settle", payable, paid, XOF, xof // 2, kind="settle"), None)]
    rng.shuffle(moves)
    resolutions = [("post", reserve, rng.randint(1, reserve.amount)), ("void", doomed, None)]
    rng.shuffle(resolutions)
    return moves + resolutions


@pytest.mark.parametrize("unlimited_accounts", ["locked", "opened"])
async def test_overlapping_transactions_in_any_order_do_not_deadlock(db, conn, unlimited_accounts):
    """Mode `locked`: every account goes through lock_accounts (in a shuffled order). Mode `opened`: only
    the budgets are locked, the other accounts are opened, as the services do (money_context)."""
    rng = random.Random(f"ledger-deadlocks-{unlimited_accounts}")
    for programme in BUDGETS:
        await fund(conn, programme, 1_000_000)
    connections = [await connect(db) for _ in range(30)]
    start = asyncio.Event()
    deadlocks: list[int] = []

    async def run(i: int, c: asyncpg.Connection, accounts: list[Account], moves: list) -> None:
        await start.wait()
        try:
            async with c.transaction():
                if unlimited_accounts == "locked":
                    books = await lock_accounts(c, accounts)
                else:
                    books = await lock_accounts(c, [a for a in accounts if a.limited])
                    for account in accounts:
                        if not account.limited:
                            books.open(account)
                for operation, transfer, amount in moves:
                    if operation == "transfer":
                        books.transfer(transfer)
                    elif operation == "post":
                        books.post(transfer, f"{transfer.id}:post", amount, kind="release")
                    else:
                        books.void(transfer, f"{transfer.id}:void", kind="void")
                await outbox.add(c, await apply(c, books))
        except asyncpg.exceptions.DeadlockDetectedError:
            deadlocks.append(i)

    tasks = []
    for i, c in enumerate(connections):
        budgets = [budget_account(p, EUR) for p in rng.sample(BUDGETS, 2)]
        accounts = budgets + UNLIMITED
        rng.shuffle(accounts)
        tasks.append(asyncio.create_task(run(i, c, accounts, task_transfers(i, rng, budgets))))
    try:
        start.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
    finally:
        await asyncio.gather(*(c.close() for c in connections))

    await assert_ledger_consistent(conn)
    assert not deadlocks, f"{len(deadlocks)} of 30 transactions aborted by a deadlock: {sorted(deadlocks)}"
    assert await conn.fetchval("SELECT count(*) FROM ledger_transfers") == len(BUDGETS) + 30 * 8


class MeetAfterWritingTransfers:
    """A connection that, once its transaction has written its transfers, waits a moment for the other
    transaction to have written its own: the race above, made certain (else a matter of timing)."""

    def __init__(self, conn: asyncpg.Connection, arrived: list[str], both: asyncio.Event) -> None:
        self._conn, self._arrived, self._both, self._met = conn, arrived, both, False

    def __getattr__(self, name: str):
        return getattr(self._conn, name)

    async def _after(self, query: str) -> None:
        if not self._met and "INSERT INTO ledger_transfers" in query:
            self._met = True
            self._arrived.append(query)
            if len(self._arrived) == 2:
                self._both.set()
            try:  # the other may be waiting for this one's locks: go on after a moment anyway
                await asyncio.wait_for(self._both.wait(), timeout=0.5)
            except TimeoutError:
                pass

    async def fetch(self, query: str, *args, **kwargs):
        rows = await self._conn.fetch(query, *args, **kwargs)
        await self._after(query)
        return rows

    async def execute(self, query: str, *args, **kwargs):
        status = await self._conn.execute(query, *args, **kwargs)
        await self._after(query)
        return status


async def test_two_transactions_without_a_budget_in_common_writing_at_once_do_not_deadlock(db, conn):
    """Two grants of different programmes reserved and released at the same moment: each transaction
    locks its own budget only and opens the shared commitment and payable accounts."""
    commitment, payable = commitment_account(POOL, EUR), payable_account("x", EUR)
    for programme in ("RACE-A", "RACE-B"):
        await fund(conn, programme, 1_000)
    async with conn.transaction():  # the shared accounts exist already (else the first to open them goes first)
        await lock_accounts(conn, [commitment, payable])
    connections = [await connect(db) for _ in range(2)]
    arrived: list[str] = []
    both = asyncio.Event()

    async def reserve_and_release(programme: str, c: asyncpg.Connection) -> None:
        budget = budget_account(programme, EUR)
        async with c.transaction():
            books = await lock_accounts(c, [budget])
            books.open(commitment)
            books.open(payable)
            books.transfer(Transfer(f"reserve:{programme}", budget.id, commitment.id, EUR, 100, PENDING, kind="reserve"))
            books.transfer(Transfer(f"owe:{programme}", commitment.id, payable.id, EUR, 40, kind="owe"))
            await outbox.add(c, await apply(MeetAfterWritingTransfers(c, arrived, both), books))

    try:
        outcomes = await asyncio.wait_for(asyncio.gather(
            reserve_and_release("RACE-A", connections[0]), reserve_and_release("RACE-B", connections[1]),
            return_exceptions=True), timeout=20)
    finally:
        await asyncio.gather(*(c.close() for c in connections))
    await assert_ledger_consistent(conn)
    assert outcomes == [None, None], f"refused: {[repr(o) for o in outcomes if o is not None]}"
    assert sums((await accounts(conn))[commitment.id]) == (0, 80, 200, 0)


# --- 3. idempotency across transactions -----------------------------------------------------
async def test_a_transfer_id_is_an_idempotency_key_across_transactions(conn):
    programme = "IDEM-2026"
    budget, commitment = budget_account(programme, EUR), commitment_account(programme, EUR)
    await fund(conn, programme, 1_000)
    reserve = Transfer("reserve:IDEM-1", budget.id, commitment.id, EUR, 300, PENDING, kind="reserve",
                       programme=programme, case_id="MA-2026-000001", reference="REF-1", cause="event-1", actor="a")

    async def transaction(*operations) -> list[outbox.OutboxMessage]:
        """Fresh books (they know nothing of earlier transactions), the operations, apply, commit."""
        async with conn.transaction():
            books = await lock_accounts(conn, [budget])
            books.open(commitment)
            for operation in operations:
                operation(books)
            messages = await apply(conn, books)
            await outbox.add(conn, messages)
            return messages

    assert len(await transaction(lambda b: b.transfer(reserve))) == 2  # budget and commitment
    before, before_counts = await accounts(conn), await counts(conn)
    assert before[budget.id]["available"] == 700

    # The same transfer again (a redelivery: cause and actor may differ): nothing changes.
    assert await transaction(lambda b: b.transfer(replace(reserve, cause="event-2", actor="b"))) == []
    assert await accounts(conn) == before and await counts(conn) == before_counts

    # The same id with another amount: refused, and nothing of that transaction stays.
    with pytest.raises(TransferConflict):
        await transaction(lambda b: b.transfer(replace(reserve, amount=250)))
    assert await accounts(conn) == before and await counts(conn) == before_counts

    # Posted once (200 of 300; the rest released) ...
    assert len(await transaction(lambda b: b.post(reserve, "post:IDEM-1", 200, kind="release"))) == 2
    after_post, after_post_counts = await accounts(conn), await counts(conn)
    assert after_post[budget.id]["available"] == 800
    assert sums(after_post[budget.id]) == (0, 200, 0, 1_000)
    # ... the same post again is a no-op ...
    assert await transaction(lambda b: b.post(reserve, "post:IDEM-1", 200, kind="release")) == []
    assert await accounts(conn) == after_post and await counts(conn) == after_post_counts
    # ... and a second resolution under another id, which fresh books cannot know to refuse, is
    # refused by the database (ledger_pending_resolved_once).
    for second in (lambda b: b.post(reserve, "post:IDEM-1:again", 300, kind="release"),
                   lambda b: b.void(reserve, "void:IDEM-1", kind="void")):
        with pytest.raises(asyncpg.UniqueViolationError) as refused:
            await transaction(second)
        assert refused.value.constraint_name == "ledger_pending_resolved_once"
    assert await accounts(conn) == after_post and await counts(conn) == after_post_counts
    await assert_ledger_consistent(conn)


# --- 4. posting events ----------------------------------------------------------------------
async def test_posting_events_number_each_accounts_postings_without_gaps(conn):
    programme = "SEQ-2026"
    budget, commitment = budget_account(programme, EUR), commitment_account(programme, EUR)
    payable = payable_account("orange_money_ci", EUR)
    fund_id = await fund(conn, programme, 1_000)

    def reserve(n: int, amount: int) -> Transfer:
        return Transfer(f"reserve:SEQ-{n}", budget.id, commitment.id, EUR, amount, PENDING, kind="reserve",
                        programme=programme)

    async def transaction(*operations) -> None:
        async with conn.transaction():
            books = await lock_accounts(conn, [budget])
            books.open(commitment)
            books.open(payable)
            for operation in operations:
                operation(books)
            await outbox.add(conn, await apply(conn, books))

    await transaction(lambda b: b.transfer(reserve(1, 100)))
    # Several postings to the same accounts in one transaction.
    await transaction(lambda b: b.transfer(reserve(2, 100)), lambda b: b.transfer(reserve(3, 50)),
                      lambda b: b.post(reserve(1, 100), "post:SEQ-1", 80, kind="release"))
    # A transfer already stored next to a new one: the repeat takes no number.
    await transaction(lambda b: b.transfer(reserve(2, 100)), lambda b: b.void(reserve(3, 50), "void:SEQ-3", kind="void"))
    await transaction(lambda b: b.transfer(Transfer("owe:SEQ-1", commitment.id, payable.id, EUR, 80, kind="owe")))
    # Only repeats: no event at all.
    await transaction(lambda b: b.transfer(reserve(1, 100)), lambda b: b.transfer(reserve(2, 100)))

    events = await posting_events(conn)
    stored = await accounts(conn)
    transfers = {r["id"]: r for r in await conn.fetch("SELECT * FROM ledger_transfers")}
    seqs: dict[str, list[int]] = defaultdict(list)
    for key, event in events:
        account = event["data"]["account"]
        assert key == account.encode() and event["subject"] == account
        assert event["type"] == ledger_repository.POSTINGS_EVENT
        for posting in event["data"]["postings"]:
            seqs[account].append(posting["seq"])
            assert posting["idempotency_key"] == posting["transfer_id"]
            transfer = transfers[posting["transfer_id"]]
            assert transfer[f"{posting['side']}_account"] == account
            assert transfer["phase"] == posting["phase"] and transfer["amount_minor"] == posting["amount_minor"]
    assert dict(seqs) == {a: list(range(1, r["last_seq"] + 1)) for a, r in stored.items()}
    assert {a: r["last_seq"] for a, r in stored.items()} == {
        budget.id: 6, funding_account(programme, EUR).id: 1, commitment.id: 6, payable.id: 1}
    assert len({e["id"] for _, e in events}) == len(events) == 2 * 5  # 2 accounts per transaction, none for the last
    assert events[0][1]["data"]["postings"][0]["idempotency_key"] == fund_id
    await assert_ledger_consistent(conn)


# --- 5. and 6. what the database itself refuses ----------------------------------------------
async def test_transfers_cannot_be_updated_or_deleted(conn):
    fund_id = await fund(conn, "IMMUTABLE-2026", 1_000)
    for statement in ("UPDATE ledger_transfers SET amount_minor = 1 WHERE id = $1",
                      "UPDATE ledger_transfers SET actor = 'someone else' WHERE id = $1",
                      "DELETE FROM ledger_transfers WHERE id = $1"):
        with pytest.raises(asyncpg.RaiseError, match="immutable"):
            await conn.execute(statement, fund_id)
    row = await conn.fetchrow("SELECT amount_minor FROM ledger_transfers WHERE id = $1", fund_id)
    assert row["amount_minor"] == 1_000


async def test_the_database_refuses_a_budget_below_zero(conn):
    programme = "CHECK-2026"
    budget, commitment = budget_account(programme, EUR), commitment_account(programme, EUR)
    await fund(conn, programme, 1_000)
    overdrafts = ("UPDATE ledger_accounts SET debits_posted = debits_posted + 1001 WHERE id = $1",
                  "UPDATE ledger_accounts SET debits_pending = debits_pending + 1001 WHERE id = $1",
                  "UPDATE ledger_accounts SET debits_posted = 600, debits_pending = 401 WHERE id = $1",
                  "UPDATE ledger_accounts SET credits_posted = 999, debits_posted = 1000 WHERE id = $1")
    for statement in overdrafts:
        with pytest.raises(asyncpg.CheckViolationError) as refused:
            await conn.execute(statement, budget.id)
        assert refused.value.constraint_name == "available_never_negative"
    # Down to exactly zero is allowed.
    await conn.execute("UPDATE ledger_accounts SET debits_posted = 600, debits_pending = 400 WHERE id = $1", budget.id)
    await conn.execute("UPDATE ledger_accounts SET debits_posted = 0, debits_pending = 0 WHERE id = $1", budget.id)

    # Books that believe in money the budget does not have: apply is refused by the same constraint.
    with pytest.raises(asyncpg.CheckViolationError) as refused:
        async with conn.transaction():
            books = Books()
            books.load(budget, Balance(credits_posted=10**9))
            books.open(commitment)
            books.transfer(Transfer("reserve:CHECK-1", budget.id, commitment.id, EUR, 1_001, PENDING, kind="reserve"))
            await apply(conn, books)
    assert refused.value.constraint_name == "available_never_negative"
    stored = await accounts(conn)
    assert stored[budget.id]["available"] == 1_000
    assert await conn.fetchval("SELECT count(*) FROM ledger_transfers WHERE id = 'reserve:CHECK-1'") == 0
    # The limit is the budget's alone: the funding account's debits exceed its credits by design.
    assert sums(stored[funding_account(programme, EUR).id]) == (0, 1_000, 0, 0)
    await assert_ledger_consistent(conn)
