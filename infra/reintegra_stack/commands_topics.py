"""``reintegra topics``: create or align the Reintegra topics (the one-shot job in docker-compose)."""

from __future__ import annotations

import asyncio
import logging
import os
import time

import typer


def topics(
    partitions: int = typer.Option(6, help="Partitions for topics that do not exist yet."),
    wait: float = typer.Option(120.0, help="Seconds to keep retrying while the broker is unreachable."),
) -> None:
    """Create every topic of reintegra.topics.ALL_TOPICS missing on KAFKA_BOOTSTRAP_SERVERS, and bring
    existing ones to the configs Reintegra needs (their partitions and other overrides are kept).

    The topics holding original records (`.invalid`, `.dlq`) keep them 7 days at most, or exactly
    REINTEGRA_DEAD_LETTER_RETENTION_DAYS when it is set."""
    from aiokafka.errors import KafkaConnectionError
    from reintegra.settings import normalize_bootstrap_servers

    from reintegra_stack.topics import ensure_topics, original_bytes_retention

    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if not bootstrap:
        raise typer.BadParameter("set KAFKA_BOOTSTRAP_SERVERS")
    try:
        bootstrap = normalize_bootstrap_servers(bootstrap)  # "PLAINTEXT://kafka:9092", "a:9092, b:9092"
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    try:
        original_bytes_retention()  # a bad REINTEGRA_DEAD_LETTER_RETENTION_DAYS stops us before any change
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # In compose the broker may still be electing its controller when this job starts.
    deadline = time.monotonic() + wait
    while True:
        try:
            asyncio.run(ensure_topics(bootstrap, partitions))
            break
        except KafkaConnectionError as exc:
            if time.monotonic() >= deadline:
                raise
            typer.echo(f"broker {bootstrap} not reachable yet ({exc}); retrying", err=True)
            time.sleep(2)
    typer.echo(f"topics ready on {bootstrap}")


def register(app: typer.Typer) -> None:
    app.command()(topics)
