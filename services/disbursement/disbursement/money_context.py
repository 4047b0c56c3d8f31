"""The ledger side of one transaction: lock the budgets its cases may touch, read the rates."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

import asyncpg

from disbursement import ledger_repository, payment_store, provider_setup, rates_store
from disbursement.domain.case import CaseLedger
from disbursement.domain.currency import RateBook
from disbursement.domain.grant_money import MoneyContext
from disbursement.domain.ledger import Books, budget_account
from disbursement.domain.three_way_match import invoice_key


def programmes_of(ledgers: Iterable[CaseLedger]) -> set[tuple[str, str]]:
    """(programme, currency) of every grant and tranche of these cases."""
    found = set()
    for ledger in ledgers:
        grant = ledger.facts.grant or {}
        if grant.get("program_code") and grant.get("programme_currency"):
            found.add((grant["program_code"], grant["programme_currency"]))
        for tranche in ledger.tranches.values():
            if tranche.programme_code and tranche.programme_currency:
                found.add((tranche.programme_code, tranche.programme_currency))
    return found


def invoice_numbers_of(ledgers: Iterable[CaseLedger]) -> tuple[set[str], set[str]]:
    """(vendor ids, invoice numbers) that deliveries of these cases name."""
    vendors, numbers = set(), set()
    for ledger in ledgers:
        vendors |= {t.vendor_id for t in ledger.tranches.values() if t.vendor_id}
        for deliveries in ledger.facts.deliveries.values():
            for delivery in deliveries.values():
                invoice = delivery.get("invoice") or {}
                if isinstance(invoice, dict) and invoice.get("number"):
                    numbers.add(str(invoice["number"]))
                if delivery.get("vendor_id"):
                    vendors.add(delivery["vendor_id"])
    return vendors, numbers


async def money_context(conn: asyncpg.Connection, ledgers: Iterable[CaseLedger],
                        more_programmes: Iterable[tuple[str, str]] = (), *, budgets: bool = True,
                        rates: bool = True, invoices: Iterable[tuple[str, str]] = ()) -> MoneyContext:
    """Lock (after the cases, in id order) the budgets of these cases' programmes and give every
    ledger the same context. Recording what a provider did needs neither budgets (unless money
    comes back) nor rates (nothing is released): `budgets=False`, `rates=False` save the queries."""
    ledgers = list(ledgers)
    programmes = programmes_of(ledgers) | set(more_programmes)
    books, queued = Books(), set()
    if budgets:
        books = await ledger_repository.lock_accounts(
            conn, [budget_account(code, currency) for code, currency in programmes])
        queued = await ledger_repository.programmes_with_holds(conn, [code for code, _ in programmes])
    rate_book = await rates_store.load_rate_book(conn) if rates else RateBook()
    ctx = MoneyContext(books, rate_book, datetime.now(UTC).date(), queued, providers=provider_setup.directory(),
                       vendors=provider_setup.vendors())
    vendor_ids, numbers = invoice_numbers_of(ledgers)
    vendor_ids |= {vendor for vendor, _ in invoices}
    numbers |= {number for _, number in invoices}
    if numbers:  # only batches with deliveries look invoices up
        ctx.invoices = await payment_store.matched_invoices(
            conn, [invoice_key(v, n) for v in vendor_ids for n in numbers])
    for ledger in ledgers:
        ledger.money = ctx
    return ctx
