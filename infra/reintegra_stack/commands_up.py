"""``reintegra up``: run Postgres, the broker, the sandbox, the services, the review API and the finance console
until Ctrl-C / SIGTERM, restarting any of them that crashes (with a backoff)."""

from __future__ import annotations

import signal
import threading
from enum import Enum
from pathlib import Path

import typer


class BrokerChoice(str, Enum):
    auto = "auto"
    kafka = "kafka"
    tansu = "tansu"


def up(
    state_dir: Path = typer.Option(Path(".reintegra"), help="Data, logs, traces and SMS outbox live here."),
    broker: BrokerChoice = typer.Option(
        BrokerChoice.auto, help="auto: Apache Kafka if java and mvn are on PATH, else Tansu."
    ),
) -> None:
    """Start the whole stack locally and keep it running until Ctrl-C / SIGTERM."""
    from rich.console import Console

    from reintegra_stack.supervisor import Stack, StackConfig, StackError

    console = Console()
    # A service that crashes is restarted (with a backoff) and the restart reported here; only
    # Ctrl-C / SIGTERM stops the stack.
    stack = Stack(StackConfig(state_dir=state_dir, broker=broker.value, restart_crashed=True,
                              on_event=lambda message: console.print(message, style="bold yellow", markup=False,
                                                                     highlight=False)))
    stopping = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        # The first signal interrupts whatever runs (start() cleans up after itself);
        # later ones are ignored so that a second Ctrl-C cannot cut the shutdown short.
        if not stopping.is_set():
            stopping.set()
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        with console.status("starting Postgres, broker, sandbox and services..."):
            stack.start()
        console.print(_summary(stack))
        if stack.review_api_url:
            console.print(f"Review API: {stack.review_api_url}  (`reintegra review list`, with REINTEGRA_API_TOKEN)",
                          markup=False, highlight=False)
        if stack.console_url:
            console.print(f"Finance console: {stack.console_url}  (sign-ins: `reintegra users add NAME --role "
                          "finance_viewer --password-stdin`)", markup=False, highlight=False)
        console.print("[bold green]Reintegra is up.[/] Ctrl-C to stop.")
        _watch(stack, stopping, console)
    except KeyboardInterrupt:
        pass
    except StackError as exc:
        console.print(f"[bold red]startup failed:[/] {exc}")
        raise typer.Exit(1) from None
    finally:
        stopping.set()
        with console.status("stopping..."):
            stack.stop()
    console.print("stopped.")


def _watch(stack, stopping: threading.Event, console) -> None:
    """Wait for Ctrl-C / SIGTERM; the supervisor's watcher restarts crashed processes meanwhile (each
    restart is printed through StackConfig.on_event)."""
    while not stopping.wait(1.0):
        pass


def _summary(stack):
    from rich.table import Table

    state = stack.state_dir
    table = Table(title="Reintegra stack", show_lines=False)
    # fold, never truncate: paths and URLs are meant to be copied
    table.add_column("component", overflow="fold")
    table.add_column("address / kind", overflow="fold")
    table.add_column("pid", justify="right")
    table.add_column("log", overflow="fold")
    table.add_row("broker", f"{stack.broker.kind} {stack.bootstrap_servers}", _pid(stack.broker.pid),
                  str(stack.broker.log_file or "-"))
    table.add_row("postgres", f"{stack.postgres.kind} {stack.database_url}", _pid(stack.postgres.pid),
                  str(stack.postgres.log_file or "-"))
    if stack.sandbox is not None:
        table.add_row("provider sandbox", stack.provider_base_url, _pid(stack.sandbox.pid), str(stack.sandbox.log_file))
    for name, svc in stack.processes.items():
        table.add_row(name, svc.app, _pid(svc.pid), str(svc.log_file))
    if stack.review_api is not None:
        table.add_row("review API", stack.review_api_url, _pid(stack.review_api.pid), str(stack.review_api.log_file))
    if stack.console is not None:
        table.add_row("finance console", stack.console_url, _pid(stack.console.pid), str(stack.console.log_file))
    env = stack.env
    if env.get("OTEL_TRACES_EXPORTER"):
        traces = f"{env['OTEL_TRACES_EXPORTER']} -> {env.get('OTEL_EXPORTER_OTLP_ENDPOINT', '(default endpoint)')}"
    else:
        traces = str(state / "traces" / "<service>.jsonl")
    table.add_row("traces", traces, "", "")
    table.add_row("SMS", env.get("REINTEGRA_SMS_OUTBOX_FILE") or str(state / "sms" / "outbox.log"), "", "")
    return table


def _pid(pid: int | None) -> str:
    return str(pid) if pid else "external"


def register(app: typer.Typer) -> None:
    app.command()(up)
