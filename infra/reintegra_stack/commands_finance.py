"""``reintegra finance``: statement import, matching, the exceptions queue and reports, for scripts and cron.

    reintegra finance import .reintegra/sandbox/statements          # every statement file under it
    reintegra finance import --provider wave_sn 2026-12-01.camt053.xml
    reintegra finance match [--provider P] [--as-of 2026-12-05] [--missing-after-days 2]
    reintegra finance exceptions [--state open]
    reintegra finance report --programme AVRR-MA-CI-2026 --from 2026-12-01 --to 2026-12-31 -o dec.xlsx

A statement's provider is `--provider`, else the name of the folder it is in (the sandbox writes
`statements/<provider>/<day>.<format>`). Each file is imported in its own transaction: a refused
file (its line or element at fault is printed) changes nothing, and the others still go in; the
exit code is then 2. Database: DATABASE_URL, else the local stack's Postgres (schema finance).
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import typer

from reintegra_stack.cli_database import cli_actor, refuse, run_on_database

finance_app = typer.Typer(
    name="finance",
    help="Finance: import provider statements, match them, the exceptions queue, reports.",
    no_args_is_help=True,
)

STATEMENT_SUFFIXES = (".csv", ".xml", ".camt053", ".mt940", ".sta", ".txt")
PROVIDER_NAME = re.compile(r"^[a-z0-9][a-z0-9_]{0,63}$")


def _with_finance(work, refusals=None):
    from finance.schema import SCHEMA, bring_up_to_date

    return run_on_database(work, prepare=bring_up_to_date, search_path=SCHEMA, refusals=refusals or {})


def statement_files(paths: list[Path]) -> list[Path]:
    """The files named, and the statement files under the folders named, in a stable order."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and p.name.lower().endswith(STATEMENT_SUFFIXES))
        else:
            found.append(path)
    return found


def provider_of(path: Path, provider: str | None) -> str:
    name = provider or path.parent.name
    if not PROVIDER_NAME.match(name):
        raise ValueError(f"{path}: cannot tell the provider (its folder is {path.parent.name!r}); give --provider")
    return name


def import_command(
    paths: list[Path] = typer.Argument(..., exists=True, help="Statement files, or folders holding them."),
    provider: str | None = typer.Option(None, "--provider", help="The provider, when not the file's folder name."),
    fmt: str | None = typer.Option(None, "--format", help="csv, camt053 or mt940 (default: from the content)."),
) -> None:
    """Import provider statements (CSV, camt.053, MT940); the same file twice changes nothing."""
    from finance.domain.statements import StatementFormatError
    from finance.statement_store import import_statement

    files = statement_files(paths)
    if not files:
        raise refuse("no statement files found")
    problems: list[str] = []
    actor = cli_actor()

    async def work(conn):
        results = []
        for path in files:
            try:
                name = provider_of(path, provider)
                data = path.read_bytes()
                async with conn.transaction():
                    results.append((path, await import_statement(conn, name, path.name, data, actor, fmt)))
            except (StatementFormatError, ValueError, OSError) as exc:
                problems.append(f"{path}: refused, nothing imported: {exc}")
        return results

    results = _with_finance(work)
    for path, r in results:
        if r.already_imported:
            typer.echo(f"{path}: already imported (statement {r.statement}); nothing changed")
        else:
            typer.echo(f"{path}: {r.provider} {r.format}, {r.lines} lines, {r.new_lines} new "
                       f"(statement {r.statement})")
    if problems:
        raise refuse(*problems)


def match_command(
    provider: str | None = typer.Option(None, "--provider", help="Only this provider (default: every one)."),
    as_of: str | None = typer.Option(None, "--as-of", help="The day to match as of (YYYY-MM-DD; default today)."),
    missing_after_days: int = typer.Option(2, "--missing-after-days", min=0, max=365,
                                           help="A payment no statement shows this many days after it was sent "
                                           "is missing_in_statement."),
) -> None:
    """Match every imported statement line with the payments sent; findings go to the exceptions queue.
    Exit 0 when nothing is an exception, 3 when there are exceptions (for cron alerts)."""
    from finance.reconciliation import run_reconciliation

    try:
        day = date.fromisoformat(as_of) if as_of else None
    except ValueError:
        raise refuse(f"--as-of {as_of!r} is not a date (YYYY-MM-DD)") from None

    async def work(conn):
        async with conn.transaction():
            return await run_reconciliation(conn, cli_actor(), provider=provider, as_of=day,
                                            missing_after_days=missing_after_days)

    summary = _with_finance(work)
    counts = ", ".join(f"{k} {v}" for k, v in sorted(summary.counts.items())) or "nothing to match"
    typer.echo(f"Run {summary.run} as of {summary.as_of}: {counts}. "
               f"{summary.exceptions} exception(s), {summary.new_exceptions} new, "
               f"{summary.auto_resolved} resolved by this run.")
    if summary.exceptions:
        raise typer.Exit(3)


def exceptions_command(
    state: list[str] = typer.Option([], "--state", help="Only these states (open, investigating, ...)."),
    kind: str | None = typer.Option(None, "--kind"),
    limit: int = typer.Option(100, "--limit", min=1, max=10_000),
) -> None:
    """The exceptions queue: open ones first, newest first."""
    from finance.exception_store import list_exceptions
    from rich.console import Console
    from rich.table import Table

    async def work(conn):
        return await list_exceptions(conn, states=state or None, kind=kind, limit=limit)

    rows = _with_finance(work)
    console = Console()
    if not rows:
        console.print("No exceptions.")
        return
    table = Table(title=f"Finance exceptions ({len(rows)} shown)")
    for column in ("id", "raised", "kind", "state", "provider", "reference", "amount"):
        table.add_column(column, overflow="fold")
    for r in rows:
        amount = f"{r['amount_minor']} {r['currency'] or ''}".strip() if r["amount_minor"] is not None else ""
        table.add_row(str(r["id"]), r["raised_at"].strftime("%Y-%m-%d %H:%M"), r["kind"], r["state"],
                      r["provider"] or "", r["reference"] or "", amount)
    console.print(table)


def register(app: typer.Typer) -> None:
    finance_app.command("import")(import_command)
    finance_app.command("match")(match_command)
    finance_app.command("exceptions")(exceptions_command)
    app.add_typer(finance_app)
