"""``reintegra asyncapi``: write docs/asyncapi.json, or check that it is up to date."""

from __future__ import annotations

from pathlib import Path

import typer


def asyncapi(
    check: bool = typer.Option(False, "--check", help="Exit 1 if the file differs from what the code generates."),
    output: Path = typer.Option(None, "--output", "-o", help="Default: docs/asyncapi.json of the repository."),
) -> None:
    """Generate the AsyncAPI document of the whole system (every topic it reads or writes)."""
    from reintegra_stack.asyncapi import DOC_PATH, generate, render

    path = output or DOC_PATH
    text = render(generate())
    if check:
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current != text:
            typer.echo(f"{path} is out of date: run `reintegra asyncapi`", err=True)
            raise typer.Exit(1)
        typer.echo(f"{path} is up to date")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {path}")


def register(app: typer.Typer) -> None:
    app.command()(asyncapi)
