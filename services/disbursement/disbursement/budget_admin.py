"""Finance raising a programme's budget (``reintegra budget raise``), and the budgets at a glance.

A raise is one posted transfer ``fund:{programme}:{key}`` from ``funding:{programme}`` to
``budget:{programme}``, in the budget's currency. The key is the idempotency key: the same key
with the same amount is the same raise (already applied, nothing changes), the same key with
another amount or currency is refused. A programme without a budget account yet gets one, in the
raise's currency. Every raise and every refusal is written to ``auth.audit`` (action
``budget.raise``); the posting events go to the outbox in the same transaction as the transfer.
Grants waiting for budget are then reserved, in approval order, by the service's budget waiter.

The connection must have ``search_path`` set to the service's schema (``disbursement``), as the
service's own connections have.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
from reintegra import outbox
from reintegra.auth import record_audit
from reintegra.money import Money

from disbursement import ledger_check, ledger_repository
from disbursement.domain.ledger import BUDGET, FUNDING, Transfer, budget_account, funding_account

AUDIT_ACTION = "budget.raise"

_PROGRAMME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", re.ASCII)
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", re.ASCII)
OPENING_KEY = "opening"  # fund:{programme}:opening is the service's own first funding
MAX_REASON_LENGTH = 500


class BudgetRefused(Exception):
    """A raise that is not applied; ``code`` says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class RaiseResult:
    transfer_id: str
    programme: str
    amount: Money
    available: Money  # the budget's available amount after the raise
    already_applied: bool  # the same key and amount were applied before: nothing changed now
    opened: bool  # the budget account did not exist before this raise
    applied_by: str | None = None  # who applied the transfer (a re-run: the first run's actor)


@dataclass(frozen=True, slots=True)
class BudgetLine:
    """One programme's budget, every amount in the programme's currency."""

    programme: str
    currency: str
    funded: Money  # raised or opened (fund transfers)
    reserved: Money  # pending reserves of planned tranches
    moved_out: Money  # released to payees (posted reserves)
    returned: Money  # came back from failed or cancelled payments
    available: Money  # funded + returned - moved_out - reserved
    paid: Money  # programme amounts of settled tranches
    held_grants: int  # grants waiting for budget (budget_holds)
    held: Money  # what they need
    has_budget: bool = True  # False: grants are held but no budget account was opened yet


# --------------------------------------------------------------------------- pure rules


def fund_transfer_id(programme: str, key: str) -> str:
    return f"fund:{programme}:{key}"


def check_raise(programme: str, amount: Money, reason: str, key: str | None) -> None:
    """What can be refused without the database: BudgetRefused."""
    if not isinstance(programme, str) or not _PROGRAMME.fullmatch(programme):
        raise BudgetRefused("invalid_programme", f"programme {programme!r}: letters, digits, '.', '_', '-' "
                            "(starting with a letter or digit), at most 64")
    if not isinstance(amount, Money) or amount.minor <= 0:
        raise BudgetRefused("amount_not_positive", f"the amount must be greater than zero, not {amount}")
    if not isinstance(reason, str) or not reason.strip():
        raise BudgetRefused("reason_missing", "a reason is required (what the money is, who decided it)")
    if len(reason) > MAX_REASON_LENGTH:
        raise BudgetRefused("reason_too_long", f"the reason is longer than {MAX_REASON_LENGTH} characters")
    if key is not None:
        if not _KEY.fullmatch(key):
            raise BudgetRefused("invalid_key", f"key {key!r}: letters, digits, '.', '_', '-' "
                                "(starting with a letter or digit), at most 100")
        if key == OPENING_KEY:
            raise BudgetRefused("reserved_key", f"key {OPENING_KEY!r} is the programme's opening funding, "
                                "made by the service: choose another")


def fund_transfer(programme: str, amount: Money, key: str, *, reason: str, actor: str) -> Transfer:
    """The raise as a ledger transfer: posted, funding → budget."""
    return Transfer(fund_transfer_id(programme, key), funding_account(programme, amount.currency).id,
                    budget_account(programme, amount.currency).id, amount.currency, amount.minor,
                    kind="fund", programme=programme, cause=reason, actor=actor)


# --------------------------------------------------------------------------- database


async def raise_budget(conn: asyncpg.Connection, programme: str, amount: Money, *, reason: str, actor: str,
                       key: str | None = None) -> RaiseResult:
    """Add ``amount`` to the programme's budget; refusals raise BudgetRefused and are audited too."""
    detail: dict[str, Any] = {"programme": programme, "key": key, "reason": reason}
    if isinstance(amount, Money):
        detail |= {"amount": amount.format_amount(), "currency": amount.currency, "amount_minor": amount.minor}
    try:
        check_raise(programme, amount, reason, key)
        key = key or str(uuid.uuid4())
        detail |= {"key": key, "transfer_id": fund_transfer_id(programme, key)}
        async with conn.transaction():
            result = await _raise(conn, programme, amount, key, reason=reason, actor=actor)
            await record_audit(conn, actor, AUDIT_ACTION, "ok", {
                **detail, "already_applied": result.already_applied, "opened": result.opened,
                "available_minor": result.available.minor})
        return result
    except BudgetRefused as exc:
        await record_audit(conn, actor, AUDIT_ACTION, "refused", {**detail, "error": exc.code, "message": exc.message})
        raise


async def _raise(conn: asyncpg.Connection, programme: str, amount: Money, key: str, *, reason: str,
                 actor: str) -> RaiseResult:
    budget = budget_account(programme, amount.currency)
    funding = funding_account(programme, amount.currency)
    existed = await conn.fetchval("SELECT currency FROM ledger_accounts WHERE id = $1", budget.id)
    if existed is None:
        await _refuse_other_currency(conn, programme, amount.currency)
    books = await ledger_repository.lock_accounts(conn, [budget, funding])  # opens them when missing
    for account, kind in ((books.accounts[budget.id], BUDGET), (books.accounts[funding.id], FUNDING)):
        if account.currency != amount.currency:
            raise BudgetRefused("currency_mismatch", f"{account.id} is in {account.currency}: "
                                f"raise it in {account.currency}, not {amount.currency}")
        if account.kind != kind or (kind == BUDGET and not account.limited):
            raise BudgetRefused("not_a_budget", f"{account.id} is a {account.kind} account"
                                + (" without a limit" if account.kind == BUDGET else ""))
    books.transfer(fund_transfer(programme, amount, key, reason=reason, actor=actor))
    try:
        messages = await ledger_repository.apply(conn, books)
    except ledger_repository.TransferConflict:
        stored = await conn.fetchrow("SELECT amount_minor, currency FROM ledger_transfers WHERE id = $1",
                                     fund_transfer_id(programme, key))
        raise BudgetRefused("key_reused", f"key {key!r} was already used for a raise of "
                            f"{Money(stored['amount_minor'], stored['currency'].strip())} of {programme}; "
                            f"this one is {amount}: refused (use another key)") from None
    await outbox.add(conn, messages)
    row = await conn.fetchrow(
        """
        SELECT a.credits_posted - a.debits_posted - a.debits_pending AS available, t.actor
        FROM ledger_accounts a, ledger_transfers t WHERE a.id = $1 AND t.id = $2
        """, budget.id, fund_transfer_id(programme, key))
    return RaiseResult(fund_transfer_id(programme, key), programme, amount, Money(row["available"], amount.currency),
                       already_applied=not messages, opened=existed is None, applied_by=row["actor"])


async def _refuse_other_currency(conn: asyncpg.Connection, programme: str, currency: str) -> None:
    """A budget opened by a raise takes the raise's currency: refused when the programme's grants say otherwise."""
    other = await conn.fetchval(
        """
        SELECT currency FROM (
            SELECT programme_currency AS currency FROM tranches WHERE programme_code = $1 AND programme_currency <> $2
            UNION ALL SELECT currency FROM budget_holds WHERE programme = $1 AND currency <> $2) c
        LIMIT 1
        """, programme, currency)
    if other is not None:
        raise BudgetRefused("currency_mismatch", f"programme {programme}'s grants are in {other.strip()}: "
                            f"open its budget in {other.strip()}, not {currency}")


async def budget_overview(conn: asyncpg.Connection) -> list[BudgetLine]:
    """Every programme with a budget account or grants waiting for one, in programme order."""
    lines = []
    for r in await ledger_check.programme_rows(conn):
        currency = r["currency"].strip()
        m = {column: Money(int(r[column]), currency)
             for column in ("funded", "reserved", "moved_out", "returned", "available", "paid", "held")}
        lines.append(BudgetLine(r["programme"], currency, m["funded"], m["reserved"], m["moved_out"], m["returned"],
                                m["available"], m["paid"], int(r["held_grants"]), m["held"], r["has_budget"]))
    return lines


__all__ = ["AUDIT_ACTION", "BudgetLine", "BudgetRefused", "RaiseResult", "budget_overview", "check_raise",
           "fund_transfer", "fund_transfer_id", "raise_budget"]
