"""``reintegra ledger`` and ``reintegra budget``: the disbursement ledger's invariants, and budgets.

    reintegra ledger check              # every invariant; exit 0 when all hold, 1 on any violation
    reintegra ledger check --sql        # the queries it runs (runnable in psql with search_path set)
    reintegra budget show               # per programme: funded, reserved, moved out, returned, available
    reintegra budget raise MA-AVRR-2026 25000.00 --currency EUR --reason "ECHO top-up 2026-03" --key echo-2026-03

Database: DATABASE_URL, else the local stack's Postgres (``reintegra_stack.database``); schemas
``disbursement`` and ``auth`` are created or brought up to date first. A raise, and a raise refused
(same key with another amount, a currency that is not the budget's, ...), is written to
``auth.audit`` (action ``budget.raise``) with the OS user as actor (``cli:<user>``). Refusals print
one ``error:`` line on stderr and exit with code 2; an amount that is not a decimal with at most the
currency's fraction digits ("12,5", "-3", "1.234" for EUR) is refused before connecting.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import typer

from reintegra_stack.cli_database import cli_actor, refuse, run_on_database

T = TypeVar("T")

EXIT_VIOLATIONS = 1  # `ledger check`: at least one invariant does not hold

ledger_app = typer.Typer(
    name="ledger",
    help="The disbursement ledger's invariants (schema disbursement; DATABASE_URL or the local stack's Postgres).",
    no_args_is_help=True,
)
budget_app = typer.Typer(
    name="budget",
    help="Programme budgets: show them, raise one (audited).",
    no_args_is_help=True,
)


def _refuse(message: str) -> typer.Exit:
    return refuse(message)


def _with_disbursement(work: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``work(conn)`` on schema disbursement (search_path), migrations applied; refusals exit 2."""
    from disbursement.budget_admin import BudgetRefused
    from disbursement.schema import SCHEMA, bring_up_to_date

    return run_on_database(work, prepare=bring_up_to_date, search_path=SCHEMA,
                           refusals={BudgetRefused: lambda exc: [exc.message]})


# --------------------------------------------------------------------------- ledger


def check_command(
    show_sql: bool = typer.Option(False, "--sql", help="Print each check's query instead of running them."),
) -> None:
    """Check every ledger invariant; exit 0 when all hold, 1 when any is violated."""
    from disbursement.ledger_check import CHECKS, check_ledger, format_report

    if show_sql:
        for check in CHECKS:
            count_sql, violations_sql, _ = check.sql()
            typer.echo(f"-- {check.name}: {check.description}\n-- checked ({check.unit}):\n{_dedent(count_sql)};\n"
                       f"-- violations (one row each):\n{_dedent(violations_sql)};\n")
        return

    report = _with_disbursement(check_ledger)
    typer.echo(format_report(report))
    if not report.ok:
        raise typer.Exit(EXIT_VIOLATIONS)


def _dedent(sql: str) -> str:
    import textwrap

    return textwrap.dedent(sql).strip()


# --------------------------------------------------------------------------- budget


def show_command() -> None:
    """Per programme: currency, funded, reserved, moved out, returned, available and held grants."""
    from disbursement.budget_admin import budget_overview
    from disbursement.ledger_check import ledger_summary
    from reintegra.money import Money
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    async def work(conn):
        return await budget_overview(conn), await ledger_summary(conn)

    lines, summary = _with_disbursement(work)
    console = Console()
    if not lines:
        console.print("No programme budgets yet: one is opened with the first grant of a programme, "
                      "or with `reintegra budget raise PROGRAMME AMOUNT --currency CUR --reason ...`.")
        return
    table = Table(title="Programme budgets", title_justify="left")
    for column in ("programme", "currency", "funded", "reserved", "moved out", "returned", "available", "held grants"):
        table.add_column(column, justify="left" if column in ("programme", "currency") else "right")
    for b in lines:
        held = f"{b.held_grants} ({b.held.format_amount()})" if b.held_grants else "0"
        available = b.available.format_amount() if b.has_budget else "no budget yet"
        table.add_row(Text(b.programme), b.currency, b.funded.format_amount(), b.reserved.format_amount(),
                      b.moved_out.format_amount(), b.returned.format_amount(), available, held)
    console.print(table)
    if summary["currencies"]:
        payouts = Table(title="Payouts per currency", title_justify="left")
        for column in ("currency", "payee", "payable (owed)", "paid"):
            payouts.add_column(column, justify="right" if column in ("payable (owed)", "paid") else "left")
        for c in summary["currencies"]:
            for p in c["payees"]:
                payouts.add_row(c["currency"], Text(p["payee"] or "?"),
                                Money(p["payable_minor"], c["currency"]).format_amount(),
                                Money(p["paid_minor"], c["currency"]).format_amount())
        console.print(payouts)


def raise_command(
    programme: str = typer.Argument(..., help="The programme code, e.g. MA-AVRR-2026."),
    amount: str = typer.Argument(..., help="A decimal with at most the currency's fraction digits, e.g. 25000.00."),
    currency: str = typer.Option(..., "--currency", help="ISO 4217 code; must be the budget's currency."),
    reason: str = typer.Option(..., "--reason", help="What the money is and who decided it (kept in the ledger and audit)."),
    key: str | None = typer.Option(
        None, "--key", help="Idempotency key: running the same raise again with it changes nothing "
                            "(default: a new random key, i.e. a new raise).",
    ),
) -> None:
    """Raise a programme's budget (a posted transfer funding -> budget); audited."""
    from disbursement.budget_admin import raise_budget
    from reintegra.money import Money, MoneyError

    currency = currency.strip().upper()
    try:
        money = Money.parse(amount, currency)
    except MoneyError as exc:
        raise _refuse(f"amount {amount!r} {currency}: {exc.message}") from None

    result = _with_disbursement(
        lambda conn: raise_budget(conn, programme, money, reason=reason, actor=cli_actor(), key=key))
    if result.already_applied:
        typer.echo(f"transfer {result.transfer_id} was already applied"
                   f"{f' by {result.applied_by}' if result.applied_by else ''}: nothing changed")
    else:
        opened = " (budget opened)" if result.opened else ""
        typer.echo(f"transfer {result.transfer_id}: budget:{result.programme} raised by {result.amount}{opened}")
    typer.echo(f"available: {result.available}")


def register(app: typer.Typer) -> None:
    ledger_app.command("check")(check_command)
    budget_app.command("show")(show_command)
    # "-3" is an amount to refuse with a reason, not an unknown option.
    budget_app.command("raise", context_settings={"ignore_unknown_options": True})(raise_command)
    app.add_typer(ledger_app, name="ledger")
    app.add_typer(budget_app, name="budget")
