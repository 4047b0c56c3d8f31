"""The ledger's tables: locks limited accounts, then applies what `Books` decided.

Lock order, the same for every writer so that concurrent transactions cannot deadlock: the
cases' rows (case_id order), then accounts in id order. Budget accounts ("budget:...") sort
before every other kind, so locking them early (to check limits) and the rest at the end keeps
one global order. Account rows are locked FOR NO KEY UPDATE, which does not conflict with the
share locks other transactions' foreign keys take when they insert transfers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import asyncpg
from reintegra.errors import PermanentError
from reintegra.events import new_event
from reintegra.handling import derived_id
from reintegra.outbox import OutboxMessage, cloud_event_message
from reintegra.topics import LEDGER_POSTINGS

from disbursement.domain.ledger import Account, Balance, Books, Transfer

SOURCE = "urn:reintegra:disbursement:ledger"
POSTINGS_EVENT = "reintegra.ledger.postings.v1"
POSTINGS_PER_EVENT = 250

_TRANSFER_COLUMNS = ("id", "debit_account", "credit_account", "currency", "amount_minor", "phase", "pending_id",
                     "kind", "programme", "case_id", "reference", "conversion_id", "rate", "cause", "actor")
_TRANSFER_TYPES = ("text", "text", "text", "text", "bigint", "text", "text",
                   "text", "text", "text", "text", "text", "text", "text", "text")


class TransferConflict(PermanentError):
    """An idempotency key already used by a transfer with other content."""

    def __init__(self, transfer_id: str) -> None:
        super().__init__("transfer_id_reused", f"transfer {transfer_id} exists with other content: refused")


def _row(t: Transfer) -> tuple:
    return (t.id, t.debit, t.credit, t.currency, t.amount, t.phase, t.pending_id, t.kind, t.programme,
            t.case_id, t.reference, t.conversion_id, t.rate, t.cause, t.actor)


def _content_of_row(r: asyncpg.Record) -> tuple:
    return (r["debit_account"], r["credit_account"], r["currency"].strip(), r["amount_minor"], r["phase"],
            r["pending_id"], r["kind"], r["programme"], r["case_id"], r["reference"], r["conversion_id"], r["rate"])


async def _insert_accounts(conn: asyncpg.Connection, accounts: Iterable[Account]) -> None:
    accounts = sorted(accounts, key=lambda a: a.id)
    if not accounts:
        return
    await conn.execute(
        """
        INSERT INTO ledger_accounts (id, currency, kind, programme, debits_must_not_exceed_credits)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bool[])
        ON CONFLICT (id) DO NOTHING
        """,
        [a.id for a in accounts], [a.currency for a in accounts], [a.kind for a in accounts],
        [a.programme for a in accounts], [a.limited for a in accounts],
    )


async def lock_accounts(conn: asyncpg.Connection, accounts: Iterable[Account], books: Books | None = None) -> Books:
    """Create the accounts if missing, lock them in id order and load their balances."""
    books = books or Books()
    accounts = {a.id: a for a in accounts if a.id not in books.balances}
    if not accounts:
        return books
    await _insert_accounts(conn, accounts.values())
    rows = await conn.fetch(
        """
        SELECT id, currency, kind, programme, debits_must_not_exceed_credits AS limited,
               debits_pending, debits_posted, credits_pending, credits_posted
        FROM ledger_accounts WHERE id = ANY($1::text[]) ORDER BY id FOR NO KEY UPDATE
        """,
        sorted(accounts),
    )
    for r in rows:
        books.load(Account(r["id"], r["currency"].strip(), r["kind"], r["programme"], r["limited"]),
                   Balance(r["debits_pending"], r["debits_posted"], r["credits_pending"], r["credits_posted"]))
    return books


async def programmes_with_holds(conn: asyncpg.Connection, programmes: Iterable[str]) -> set[str]:
    rows = await conn.fetch("SELECT DISTINCT programme FROM budget_holds WHERE programme = ANY($1::text[])",
                            sorted(set(programmes)))
    return {r["programme"] for r in rows}


async def apply(conn: asyncpg.Connection, books: Books) -> list[OutboxMessage]:
    """Write what the books decided; return the posting events (one per account touched, its
    postings numbered in order). A transfer already stored with the same content changes nothing."""
    if not books.transfers:
        return []
    await _insert_accounts(conn, (books.accounts[a] for a in books.opened))
    # Every account this transaction touches, locked in id order before anything else: inserting the
    # transfers then only takes the foreign keys' share locks on rows already held. (NO KEY UPDATE:
    # it does not conflict with other transactions' foreign-key checks, which FOR UPDATE would.)
    touched = sorted({account for t in books.transfers for account in (t.debit, t.credit)})
    await conn.execute("SELECT 1 FROM ledger_accounts WHERE id = ANY($1::text[]) ORDER BY id FOR NO KEY UPDATE",
                       touched)
    inserted = await _insert_transfers(conn, books.transfers)
    postings = [p for p in books.postings if p.transfer_id in inserted]
    changes: dict[str, Balance] = {}
    for p in postings:
        change = changes.setdefault(p.account, Balance())
        resolved = p.phase in ("post_pending", "void_pending")
        posted = p.amount if p.phase in ("posted", "post_pending") else 0
        pending = p.amount if p.phase == "pending" else (-p.pending_amount if resolved else 0)
        if p.side == "debit":
            change.add(Balance(debits_pending=pending, debits_posted=posted))
        else:
            change.add(Balance(credits_pending=pending, credits_posted=posted))
    ids = sorted(changes)
    counts = {a: 0 for a in ids}
    for p in postings:
        counts[p.account] += 1
    # (Rows already locked in id order above: an UPDATE ... FROM alone would lock them in whatever
    # order its join runs.)
    rows = await conn.fetch(
        """
        UPDATE ledger_accounts a SET
            debits_pending = a.debits_pending + c.dp, debits_posted = a.debits_posted + c.dpo,
            credits_pending = a.credits_pending + c.cp, credits_posted = a.credits_posted + c.cpo,
            last_seq = a.last_seq + c.n
        FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::int[])
             AS c(id, dp, dpo, cp, cpo, n)
        WHERE a.id = c.id
        RETURNING a.id, a.last_seq, a.currency
        """,
        ids, [changes[a].debits_pending for a in ids], [changes[a].debits_posted for a in ids],
        [changes[a].credits_pending for a in ids], [changes[a].credits_posted for a in ids], [counts[a] for a in ids],
    )
    first_seq = {r["id"]: r["last_seq"] - counts[r["id"]] + 1 for r in rows}
    transfers = {t.id: t for t in books.transfers}
    by_account: dict[str, list[dict]] = {}
    for p in postings:
        seq = first_seq[p.account] + len(by_account.get(p.account, ()))
        t = transfers[p.transfer_id]
        entry = {"seq": seq, "transfer_id": p.transfer_id, "idempotency_key": p.transfer_id, "side": p.side,
                 "phase": p.phase, "amount_minor": p.amount, "currency": p.currency, "kind": t.kind,
                 "counter_account": t.credit if p.side == "debit" else t.debit,
                 "programme": t.programme, "case_id": t.case_id, "reference": t.reference}
        if t.pending_id:
            entry["pending_id"], entry["pending_amount_minor"] = t.pending_id, p.pending_amount
        if t.conversion_id:
            entry["conversion_id"], entry["rate"] = t.conversion_id, t.rate
        by_account.setdefault(p.account, []).append(entry)
    messages = []
    for account_id in ids:
        entries = by_account.get(account_id) or []
        account = books.accounts[account_id]
        # A batch can post thousands of times to one account: a few hundred postings per event keeps
        # every event far below the broker's message size limit.
        for first in range(0, len(entries), POSTINGS_PER_EVENT):
            chunk = entries[first:first + POSTINGS_PER_EVENT]
            data = {"account": account_id, "kind": account.kind, "currency": account.currency,
                    "programme": account.programme, "postings": chunk}
            event = new_event(POSTINGS_EVENT, SOURCE, account_id, data,
                              event_id=derived_id("ledger", account_id, str(chunk[0]["seq"])))
            messages.append(cloud_event_message(LEDGER_POSTINGS, event))
    return messages


async def _insert_transfers(conn: asyncpg.Connection, transfers: Sequence[Transfer]) -> set[str]:
    rows = [_row(t) for t in transfers]
    columns = list(zip(*rows, strict=True))
    unnest_args = ", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(_TRANSFER_TYPES))
    names = ", ".join(_TRANSFER_COLUMNS)
    inserted = {r["id"] for r in await conn.fetch(
        f"""
        INSERT INTO ledger_transfers ({names})
        SELECT {names} FROM unnest({unnest_args}) WITH ORDINALITY AS t({names}, ord) ORDER BY ord
        ON CONFLICT (id) DO NOTHING RETURNING id
        """,
        *[list(c) for c in columns],
    )}
    existing = [t for t in transfers if t.id not in inserted]
    if existing:
        stored = {r["id"]: r for r in await conn.fetch(
            f"SELECT {names} FROM ledger_transfers WHERE id = ANY($1::text[])", [t.id for t in existing])}
        for t in existing:
            if _content_of_row(stored[t.id]) != t.content():
                raise TransferConflict(t.id)
    return inserted
