"""``reintegra payments``: what finance and SREs look at until the finance console exists.

    reintegra payments exceptions          # payment exceptions raised for finance, newest first
    reintegra payments show RG-…           # one payment: its instruction, reports and exceptions

Database: DATABASE_URL, else the local stack's Postgres (schema disbursement).
"""

from __future__ import annotations

import typer

from reintegra_stack.cli_database import refuse, run_on_database

payments_app = typer.Typer(
    name="payments",
    help="Payments through providers: exceptions for finance, one payment's history.",
    no_args_is_help=True,
)


def _with_disbursement(work):
    from disbursement.schema import SCHEMA, bring_up_to_date

    return run_on_database(work, prepare=bring_up_to_date, search_path=SCHEMA, refusals={})


def exceptions_command(
    limit: int = typer.Option(50, "--limit", min=1, max=10_000, help="How many, newest first."),
    kind: str | None = typer.Option(None, "--kind", help="Only this kind (amount_mismatch, outcome_unresolved, ...)."),
) -> None:
    """Payment exceptions raised for finance, newest first; exit 0 either way."""
    from rich.console import Console
    from rich.table import Table

    async def work(conn):
        return await conn.fetch(
            "SELECT id, kind, provider, reference, case_id, details ->> 'message' AS message, raised_at "
            "FROM payment_exceptions WHERE $1::text IS NULL OR kind = $1 ORDER BY id DESC LIMIT $2", kind, limit)

    rows = _with_disbursement(work)
    console = Console()
    if not rows:
        console.print("No payment exceptions.")
        return
    table = Table(title=f"Payment exceptions ({len(rows)} shown)")
    for column in ("id", "raised", "kind", "provider", "reference", "case", "why"):
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row(str(r["id"]), r["raised_at"].strftime("%Y-%m-%d %H:%M"), r["kind"], r["provider"] or "",
                      r["reference"] or "", r["case_id"] or "", r["message"] or "")
    console.print(table)


def show_command(reference: str = typer.Argument(..., help="A payment reference (RG-…, RG-…-2 for a re-issue).")) -> None:
    """One payment: its instruction (state, calls, deadline), what providers reported, its exceptions."""
    from rich.console import Console

    async def work(conn):
        instruction = await conn.fetchrow(
            "SELECT reference, previous_reference, case_id, provider, amount_minor, currency, state, sends, lookups, "
            "transfer_id, last_outcome, last_error, created_at, deadline_at FROM payment_instructions "
            "WHERE reference = $1", reference)
        reports = await conn.fetch("SELECT received_at, via, status, transfer_id, amount_minor, reason, outcome "
                                   "FROM provider_events WHERE reference = $1 ORDER BY id", reference)
        raised = await conn.fetch("SELECT kind, details ->> 'message' AS message FROM payment_exceptions "
                                  "WHERE reference = $1 ORDER BY id", reference)
        return instruction, reports, raised

    instruction, reports, raised = _with_disbursement(work)
    if instruction is None and not reports and not raised:
        raise refuse(f"no payment {reference!r}")
    console = Console()
    if instruction is not None:
        for column, value in dict(instruction).items():
            console.print(f"{column:>18}: {'' if value is None else value}", highlight=False)
    for r in reports:
        console.print(f"report {r['received_at']:%Y-%m-%d %H:%M:%S} via {r['via']}: {r['status']} "
                      f"{r['transfer_id']} amount {r['amount_minor']} {r['reason'] or ''} -> {r['outcome']}",
                      highlight=False)
    for r in raised:
        console.print(f"exception {r['kind']}: {r['message'] or ''}", highlight=False)


def register(app: typer.Typer) -> None:
    payments_app.command("exceptions")(exceptions_command)
    payments_app.command("show")(show_command)
    app.add_typer(payments_app, name="payments")
