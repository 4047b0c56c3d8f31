"""``reintegra users``: the people who may use the review API and the finance console.

    reintegra users add k.benali --role reviewer --upstream-id caseworker:k.benali --token laptop
    reintegra users add a.diallo --role finance_approver --password-stdin < password.txt
    reintegra users list
    reintegra users token k.benali --name nightly-export     # prints the token, once
    reintegra users revoke-token 3
    reintegra users disable k.benali

Database: DATABASE_URL, else the local stack's Postgres (``reintegra_stack.database``); schema
``auth`` is created or brought up to date first. Every change, and every change refused by the
database (duplicate user, unknown user or token), is written to ``auth.audit`` with the OS user
as actor (``cli:<user>``). Refusals print one line on stderr and exit with code 2.

A printed token is the only line on stdout (``TOKEN=$(reintegra users token ...)`` works); the
note that goes with it is on stderr.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import typer

from reintegra_stack.cli_database import cli_actor, refuse, run_on_database

T = TypeVar("T")

users_app = typer.Typer(
    name="users",
    help="Users, roles and API tokens (schema auth; DATABASE_URL or the local stack's Postgres).",
    no_args_is_help=True,
)


def _refuse(message: str) -> typer.Exit:
    return refuse(message)


def _with_database(work: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``work(conn)`` on the auth database, its migrations applied; refusals become exit 2."""
    from reintegra.auth import AuthError, apply_auth_migrations

    return run_on_database(work, prepare=apply_auth_migrations, refusals={AuthError: lambda exc: [str(exc)]})


async def _audited(conn, action: str, detail: dict[str, Any], change: Callable[[], Awaitable[T]],
                   result_detail: Callable[[T], dict[str, Any]] = lambda _: {}) -> T:
    """The change and its audit row commit together; a refused change is audited after its rollback."""
    import socket

    from reintegra.auth import AuthError, record_audit

    detail = {**detail, "host": socket.gethostname()}
    try:
        async with conn.transaction():
            result = await change()
            await record_audit(conn, cli_actor(), action, "ok", {**detail, **result_detail(result)})
    except AuthError as exc:
        await record_audit(conn, cli_actor(), action, "refused", {**detail, "error": str(exc)})
        raise
    return result


def _read_password_from_stdin() -> str:
    if sys.stdin.isatty():  # typed by a person: do not echo it
        import getpass

        line = getpass.getpass("password: ")
    else:
        line = sys.stdin.readline()
    password = line[:-1] if line.endswith("\n") else line
    password = password[:-1] if password.endswith("\r") else password
    if not password:
        raise _refuse("--password-stdin: no password on the first line of stdin")
    return password


def _print_token_once(token_id: int, username: str, name: str, token: str) -> None:
    typer.echo(f"API token {token_id} ({name!r}) for {username}; it is shown only this once, store it now:", err=True)
    typer.echo(token)


# --------------------------------------------------------------------------- commands


def add(
    username: str = typer.Argument(..., help="Login name: letters, digits, '.', '_', '@', '-'; case is ignored."),
    role: list[str] = typer.Option(
        ..., "--role", metavar="ROLE", help="reviewer, finance_viewer, finance_approver or admin; repeat for several.",
    ),
    display_name: str | None = typer.Option(None, "--display-name", help="Shown in the consoles (default: username)."),
    upstream_id: list[str] = typer.Option(
        [], "--upstream-id", metavar="ID",
        help="How upstream events name this person, e.g. caseworker:k.benali (four-eyes check); repeatable.",
    ),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read a password (12+ characters) from the first line of stdin.",
    ),
    token: str | None = typer.Option(None, "--token", metavar="NAME", help="Also issue an API token, printed once."),
) -> None:
    """Add a user (without --password-stdin they can only use API tokens)."""
    from reintegra.auth import AuthError, create_user, issue_api_token, parse_roles
    from reintegra.auth.identifiers import check_token_name, check_username, clean_upstream_ids
    from reintegra.auth.passwords import check_password_rules

    password = _read_password_from_stdin() if password_stdin else None
    try:  # what can be checked without the database is, before connecting
        check_username(username)
        roles = parse_roles(role)
        upstream_ids = clean_upstream_ids(upstream_id)
        if password is not None:
            check_password_rules(password)
        if token is not None:
            check_token_name(token)
    except AuthError as exc:
        raise _refuse(str(exc)) from None

    async def work(conn):
        async def change():
            user = await create_user(conn, username, roles, password=password, display_name=display_name,
                                     upstream_ids=upstream_ids)
            issued = await issue_api_token(conn, user.username, token) if token is not None else None
            return user, issued

        def what_was_created(result) -> dict[str, Any]:
            user, issued = result
            return {"user_id": user.user_id, **({"token_id": issued.token_id, "token_name": issued.name}
                                                if issued else {})}

        return await _audited(
            conn, "users.add",
            {"username": username, "roles": sorted(roles), "upstream_ids": upstream_ids,
             "with_password": password is not None},
            change, what_was_created,
        )

    user, issued = _with_database(work)
    summary = f"added user {user.username} (roles: {', '.join(sorted(user.roles))})"
    if issued is None:
        typer.echo(summary)
    else:
        typer.echo(summary, err=True)
        _print_token_once(issued.token_id, issued.username, issued.name, issued.token)


def list_command() -> None:
    """List users and their API tokens."""
    from reintegra.auth import list_users
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    users = _with_database(list_users)
    console = Console()
    if not users:
        console.print("No users yet; add one with `reintegra users add USERNAME --role ROLE`.")
        return

    def when(moment) -> str:
        return moment.strftime("%Y-%m-%d %H:%M") if moment else "never"

    people = Table(title="Users", title_justify="left")
    for column in ("username", "display name", "roles", "upstream ids", "password", "status", "active tokens"):
        people.add_column(column, overflow="fold")
    for user in users:
        # Text, not str: names are typed by people and may contain "[...]", which rich reads as markup.
        people.add_row(Text(user.username), Text(user.display_name), ", ".join(sorted(user.roles)),
                       Text(", ".join(user.upstream_ids)), "yes" if user.has_password else "no",
                       "disabled" if user.disabled else "active", str(sum(t.active for t in user.tokens)))
    console.print(people)

    tokens = [t for user in users for t in user.tokens]
    if tokens:
        table = Table(title="API tokens", title_justify="left")
        for column in ("id", "user", "name", "created (UTC)", "last used (UTC)", "status"):
            table.add_column(column, overflow="fold")
        for t in sorted(tokens, key=lambda t: t.token_id):
            table.add_row(str(t.token_id), Text(t.username), Text(t.name), when(t.created_at), when(t.last_used_at),
                          "active" if t.active else f"revoked {when(t.revoked_at)}")
        console.print(table)


def token_command(
    username: str = typer.Argument(..., help="Whose token it is."),
    name: str = typer.Option(..., "--name", help="What it is for, e.g. nightly-export."),
) -> None:
    """Issue an API token and print it (it is stored only as a hash: this is the one chance to copy it)."""
    from reintegra.auth import AuthError, issue_api_token
    from reintegra.auth.identifiers import check_token_name

    try:
        check_token_name(name)
    except AuthError as exc:
        raise _refuse(str(exc)) from None

    async def work(conn):
        return await _audited(conn, "users.token", {"username": username, "token_name": name},
                              lambda: issue_api_token(conn, username, name),
                              lambda issued: {"token_id": issued.token_id})

    issued = _with_database(work)
    _print_token_once(issued.token_id, issued.username, issued.name, issued.token)


def revoke_token_command(token_id: int = typer.Argument(..., help="The token's id (see `reintegra users list`).")) -> None:
    """Revoke an API token: requests with it are refused from now on."""
    from reintegra.auth import revoke_token

    async def work(conn):
        return await _audited(conn, "users.revoke_token", {"token_id": token_id},
                              lambda: revoke_token(conn, token_id),
                              lambda revoked: {"username": revoked.username, "token_name": revoked.name})

    revoked = _with_database(work)
    typer.echo(f"revoked API token {revoked.token_id} ({revoked.name!r}) of {revoked.username}")


def disable_command(username: str = typer.Argument(..., help="Who to disable.")) -> None:
    """Disable a user: their password and every token of theirs stop working."""
    from reintegra.auth import disable_user

    async def work(conn):
        return await _audited(conn, "users.disable", {"username": username}, lambda: disable_user(conn, username))

    user = _with_database(work)
    typer.echo(f"disabled user {user.username}")


def register(app: typer.Typer) -> None:
    users_app.command("add")(add)
    users_app.command("list")(list_command)
    users_app.command("token")(token_command)
    users_app.command("revoke-token")(revoke_token_command)
    users_app.command("disable")(disable_command)
    app.add_typer(users_app, name="users")
