"""``reintegra trace``: show one trace from the local trace files as a tree."""

from __future__ import annotations

from pathlib import Path

import typer


def trace(
    trace_id: str = typer.Argument(..., help="32 hex digits, as printed by the demo or found in a traceparent."),
    state_dir: Path = typer.Option(Path(".reintegra"), help="Where the services wrote their traces."),
) -> None:
    """Print every span of a trace, across services, as a tree."""
    from rich.console import Console

    from reintegra_stack.traces import load_trace, render_trace

    spans = load_trace(state_dir / "traces", trace_id.lower())
    if not spans:
        typer.echo(f"no spans of trace {trace_id} under {state_dir / 'traces'}", err=True)
        raise typer.Exit(1)
    Console().print(render_trace(trace_id, spans))


def register(app: typer.Typer) -> None:
    app.command()(trace)
