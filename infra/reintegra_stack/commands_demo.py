"""``reintegra demo``: start the stack, feed it a realistic sample, summarise what came out."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer


def demo(
    cases: int = typer.Option(300, help="How many sample cases to publish."),
    state_dir: Path = typer.Option(Path(".reintegra"), help="Data, logs, traces and SMS outbox live here."),
    broker: str = typer.Option("auto", help="auto | kafka | tansu"),
    seed: int = typer.Option(None, help="Random seed, for a reproducible sample."),
    timeout: float = typer.Option(180.0, help="Seconds to wait for every case to reach its final state."),
    keep_running: bool = typer.Option(False, help="Leave the stack running after the summary (Ctrl-C stops it)."),
) -> None:
    """Run the whole system on the embedded default and show it working."""
    from rich.console import Console

    from reintegra_stack.demo.run import run_demo
    from reintegra_stack.demo.scenario import build_scenario
    from reintegra_stack.supervisor import Stack, StackConfig

    console = Console()
    stack = Stack(StackConfig(state_dir=state_dir, broker=broker, extra_env={"OTEL_BSP_SCHEDULE_DELAY": "500"},
                              restart_crashed=True,
                              on_event=lambda message: console.print(message, style="bold yellow", markup=False,
                                                                     highlight=False)))
    ok = False
    try:
        with console.status("starting Postgres, the broker, the provider sandbox, the five services and the finance console..."):
            stack.start()
        console.print(f"Stack up: broker [bold]{stack.broker.kind}[/] at {stack.bootstrap_servers}, "
                      f"Postgres at {stack.database_url}, sandbox at {stack.provider_base_url}")
        ok = asyncio.run(run_demo(stack, build_scenario(cases, seed=seed), timeout, console))
        console.print(f"SMS sent are in {state_dir / 'sms' / 'outbox.log'}; service logs in {stack.logs_dir}.")
        if keep_running:
            console.print("Stack still running; Ctrl-C to stop.")
            import threading
            threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        with console.status("stopping..."):
            stack.stop()
    raise typer.Exit(0 if ok else 1)


def register(app: typer.Typer) -> None:
    app.command()(demo)
