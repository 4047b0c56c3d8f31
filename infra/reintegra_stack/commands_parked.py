"""``reintegra parked``: upstream events waiting in intake for a case that has not arrived.

Intake parks an event whose case is not registered yet (a plan before its case) and applies
it when the case.registered arrives. An event still parked long afterwards means the case
never came: this is the operator's list of them, oldest first, read from ``intake.parked_events``.

    DATABASE_URL=postgresql://... reintegra parked --older-than 3600
"""

from __future__ import annotations

import os
from datetime import UTC, timedelta

import typer

INTAKE_SCHEMA = "intake"

_QUERY = f"""
    SELECT case_id, type, source, event_id, parked_at, now() - parked_at AS age
    FROM {INTAKE_SCHEMA}.parked_events
    WHERE parked_at <= now() - make_interval(secs => $1::double precision)
    ORDER BY parked_at, id
"""


def format_age(age: timedelta) -> str:
    """``3d 04h 05m``, ``2h 03m 04s``, ``5m 06s``, ``7s``: as long as it needs to be."""
    seconds = max(0, int(age.total_seconds()))
    days, seconds = divmod(seconds, 86_400)
    hours, seconds = divmod(seconds, 3_600)
    minutes, seconds = divmod(seconds, 60)
    if days:
        return f"{days}d {hours:02d}h {minutes:02d}m"
    if hours:
        return f"{hours}h {minutes:02d}m {seconds:02d}s"
    if minutes:
        return f"{minutes}m {seconds:02d}s"
    return f"{seconds}s"


async def _fetch_parked(database_url: str, older_than: int) -> list:
    import asyncpg

    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        return await conn.fetch(_QUERY, older_than)
    finally:
        await conn.close()


def parked(
    older_than: int = typer.Option(
        0, "--older-than", min=0, metavar="SECONDS",
        help="Only events parked at least this many seconds ago (default 0: all of them).",
    ),
) -> None:
    """List events parked in intake, waiting for a case.registered that has not arrived (needs DATABASE_URL)."""
    import asyncio

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    database_url = os.environ.get("DATABASE_URL", "").strip()
    if not database_url:
        typer.echo("error: DATABASE_URL is not set; point it at the Reintegra Postgres database, e.g.\n"
                   "  DATABASE_URL=postgresql://user@host:5432/reintegra reintegra parked", err=True)
        raise typer.Exit(2)
    from reintegra.db import asyncpg_url

    try:
        rows = asyncio.run(_fetch_parked(asyncpg_url(database_url), older_than))  # key=value too
    except Exception as exc:  # noqa: BLE001 - any failure is reported plainly, without a traceback
        typer.echo(f"error: could not read {INTAKE_SCHEMA}.parked_events: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(1) from None

    console = Console()
    older = f" parked more than {older_than} s ago" if older_than else ""
    if not rows:
        console.print(f"No parked events{older}.")
        return
    table = Table(title=f"Parked events waiting for their case{older}", title_justify="left")
    table.add_column("case_id", no_wrap=True, style="bold")
    table.add_column("type", overflow="fold")
    table.add_column("source", overflow="fold")
    table.add_column("event_id", overflow="fold")
    table.add_column("parked_at (UTC)", no_wrap=True)
    table.add_column("age", justify="right", no_wrap=True)
    for row in rows:
        parked_at = row["parked_at"].astimezone(UTC)
        # Text, not str: ids and sources come from upstream and may hold "[...]", which rich
        # would otherwise read as markup (and fail on, or hide).
        table.add_row(*(Text(str(v)) for v in (row["case_id"], row["type"], row["source"], row["event_id"])),
                      parked_at.strftime("%Y-%m-%d %H:%M:%S"), format_age(row["age"]))
    console.print(table)
    cases = len({row["case_id"] for row in rows})
    console.print(f"{len(rows)} parked event(s) for {cases} case(s){older}.")


def register(app: typer.Typer) -> None:
    app.command()(parked)
