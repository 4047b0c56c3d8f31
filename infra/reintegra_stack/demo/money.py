"""The demo's money: finance loads the day's GNF rate first; at the end, what was paid per payout
currency, each programme's budget, and `reintegra ledger check` on the ledger the run wrote."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
from reintegra.money import Money
from rich.console import Console
from rich.table import Table

DEMO_ACTOR = "demo:finance"
# An illustrative fixing (units per euro) for the demo only: finance loads the real one.
DEMO_RATES = {"GNF": Decimal("10250.50")}


async def load_demo_rates(database_url: str, console: Console) -> None:
    from disbursement.domain.currency import LoadedRate
    from disbursement.rates_store import add_rates
    from disbursement.schema import bring_up_to_date

    await bring_up_to_date(database_url)
    today = datetime.now(UTC).date()
    rates = [LoadedRate(currency, today, per_eur, "demo fixing") for currency, per_eur in DEMO_RATES.items()]
    conn = await asyncpg.connect(database_url)
    try:
        await add_rates(conn, rates, DEMO_ACTOR)
    finally:
        await conn.close()
    console.print("Finance loaded today's rates: " + ", ".join(
        f"{r.currency} {r.per_eur} per EUR" for r in rates) + " (XOF and XAF are pegged at 655.957).")


async def print_money(console: Console, database_url: str) -> bool:
    """Tables of the ledger's view, and the check's result; False when an invariant is broken."""
    from disbursement.ledger_check import check_ledger, format_report, ledger_summary

    conn = await asyncpg.connect(database_url)
    try:
        summary = await ledger_summary(conn)
        report = await check_ledger(conn)
    finally:
        await conn.close()

    paid = Table(title="Money per payout currency (from the ledger)")
    for column in ("currency", "paid", "still owed through providers and vendors", "payees"):
        paid.add_column(column, justify="left" if column in ("currency", "payees") else "right")
    for entry in summary["currencies"]:
        cur = entry["currency"]
        payees = ", ".join(p["payee"] for p in entry["payees"])
        paid.add_row(cur, Money(entry["paid_minor"], cur).format_amount(),
                     Money(entry["payable_minor"], cur).format_amount(), payees)
    console.print(paid)

    budgets = Table(title="Budget used per programme (amounts in the programme's currency)")
    for column in ("programme", "cur.", "budget", "released", "returned", "reserved", "available", "held"):
        budgets.add_column(column, justify="left" if column in ("programme", "cur.") else "right")
    for p in summary["programmes"]:
        cur = p["currency"]
        amounts = (p["funded_minor"], p["moved_out_minor"], p["returned_minor"], p["reserved_minor"],
                   p["available_minor"])
        budgets.add_row(p["programme"], cur, *(Money(minor, cur).format_amount() for minor in amounts),
                        str(p["held_grants"]))
    console.print(budgets)
    console.print("\n[bold]reintegra ledger check[/]")
    console.print(format_report(report), markup=False, highlight=False)
    return report.ok
