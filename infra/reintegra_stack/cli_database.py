"""What every command that works on the database shares: exit codes, the actor, refusals, and
running one unit of work on DATABASE_URL or the local stack's Postgres."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import typer

T = TypeVar("T")

EXIT_REFUSED = 2  # bad input, refused change, or no database to talk to
EXIT_FAILED = 1  # anything unexpected (database unreachable, ...)


def cli_actor() -> str:
    """``cli:<effective OS user>``, read from the uid rather than $USER, which anyone can set."""
    import os
    import pwd

    try:
        return f"cli:{pwd.getpwuid(os.geteuid()).pw_name}"
    except KeyError:
        return f"cli:uid-{os.geteuid()}"


def refuse(*problems: str) -> typer.Exit:
    """One ``error:`` line per problem on stderr; the command exits with EXIT_REFUSED."""
    for problem in problems:
        typer.echo(f"error: {problem}", err=True)
    return typer.Exit(EXIT_REFUSED)


def run_on_database(
    work: Callable[[Any], Awaitable[T]],
    *,
    prepare: Callable[[str], Awaitable[None]],
    refusals: Mapping[type[Exception], Callable[[Exception], list[str]]],
    search_path: str | None = None,
    problems_so_far: list[str] | None = None,
) -> T:
    """Run ``work(conn)`` after ``prepare(database_url)`` (migrations). An exception of a type in
    ``refusals`` exits 2 with its problems; anything else exits 1, without a traceback. Without a
    database, exit 2 saying why, after the problems already found."""
    import asyncio

    import asyncpg

    from reintegra_stack.database import DatabaseNotFound, resolve_database_url

    try:
        database_url = resolve_database_url()
    except DatabaseNotFound as exc:
        raise refuse(*(problems_so_far or []), str(exc)) from None

    async def run() -> T:
        await prepare(database_url)
        settings = {"search_path": search_path} if search_path else None
        conn = await asyncpg.connect(database_url, timeout=10, server_settings=settings)
        try:
            return await work(conn)
        finally:
            await conn.close()

    try:
        return asyncio.run(run())
    except tuple(refusals) as exc:
        problems = next(describe(exc) for kind, describe in refusals.items() if isinstance(exc, kind))
        raise refuse(*problems) from None
    except Exception as exc:  # noqa: BLE001 - reported plainly, without a traceback
        typer.echo(f"error: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(EXIT_FAILED) from None
