"""The demo's finance act: the sandbox's own statements imported (every format of every provider),
matched with the payments finance saw, and the console's address with a sign-in to open it."""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path

import asyncpg
from rich.console import Console
from rich.table import Table

CAUGHT_UP_TIMEOUT_S = 90.0


async def _caught_up(conn: asyncpg.Connection, timeout_s: float) -> bool:
    """Whether finance's payments view shows every payment disbursement settled (its consumer lags a
    little behind disbursement's outbox)."""
    deadline = time.monotonic() + timeout_s
    while True:
        missing = await conn.fetchval(
            "SELECT count(*) FROM disbursement.payment_instructions i WHERE i.state = 'settled' AND NOT EXISTS "
            "(SELECT 1 FROM finance.payments p WHERE p.reference = i.reference AND p.status = 'settled')")
        if missing == 0 or time.monotonic() > deadline:
            return missing == 0
        await asyncio.sleep(0.5)


async def reconcile_demo(console: Console, database_url: str, statements_dir: Path, console_url: str,
                         run: str) -> bool:
    """Import and match the sandbox's statements; True when they reconcile with no exception."""
    from finance.reconciliation import run_reconciliation
    from finance.schema import bring_up_to_date
    from finance.statement_store import import_statement

    console.rule("Finance: the providers' statements, reconciled")
    await bring_up_to_date(database_url)
    conn = await asyncpg.connect(database_url, server_settings={"search_path": "finance"})
    try:
        if not await _caught_up(conn, CAUGHT_UP_TIMEOUT_S):
            console.print("[red]finance has not seen every settled payment yet[/]")
            return False
        files = sorted(p for p in statements_dir.glob("*/*") if p.is_file())
        imported = lines = new = 0
        for path in files:
            async with conn.transaction():
                result = await import_statement(conn, path.parent.name, path.name, path.read_bytes(), "demo")
            imported += 1
            lines += result.lines
            new += result.new_lines
        console.print(f"Imported {imported} statement files ({len(files) // 3 or 0} provider-days in CSV, camt.053 "
                      f"and MT940): {lines} lines, {new} distinct (the three formats of a day are the same lines).")
        async with conn.transaction():
            summary = await run_reconciliation(conn, "demo")
        table = Table(title=f"Reconciliation run {summary.run}", caption=f"as of {summary.as_of}")
        for column in ("result", "count"):
            table.add_column(column, justify="left" if column == "result" else "right")
        for kind, count in sorted(summary.counts.items()):
            table.add_row(kind, str(count))
        console.print(table)
        queue = await conn.fetch("SELECT source, kind, count(*) AS n FROM exceptions WHERE state = 'open' "
                                 "GROUP BY source, kind ORDER BY source, kind")
        sign_in = await _console_user(conn, run)
    finally:
        await conn.close()
    ok = summary.exceptions == 0
    if ok:
        console.print(f"[green]Statements reconciled: {summary.counts.get('matched', 0)} payments matched, "
                      "0 exceptions.[/]")
    else:
        console.print(f"[red]{summary.exceptions} reconciliation exception(s)[/]")
    for row in queue:
        console.print(f"  open in the queue ({row['source']}): {row['kind']} {row['n']}")
    if console_url:
        username, password = sign_in
        console.print(f"Finance console: [bold]{console_url}[/]  sign in as [bold]{username}[/] / [bold]{password}[/]"
                      " (finance approver and reviewer). It runs while the demo does: `reintegra demo "
                      "--keep-running` leaves it up, `reintegra up` brings it back on the same data.")
    return ok


async def _console_user(conn: asyncpg.Connection, run: str) -> tuple[str, str]:
    from reintegra.auth import FINANCE_APPROVER, REVIEWER, create_user

    username = f"finance.{run}"
    password = secrets.token_urlsafe(12)
    await create_user(conn, username, [FINANCE_APPROVER, REVIEWER], password=password,
                      display_name="Demo finance officer")
    return username, password
