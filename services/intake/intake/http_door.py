"""HTTP door for upstream systems that cannot speak Kafka: one CloudEvent per `POST /v1/events`.

    python -m intake.http_door --host 127.0.0.1 --port 8090     # reads KAFKA_BOOTSTRAP_SERVERS

The event is validated exactly as intake validates a Kafka record (the HTTP `ce-*` headers
become the Kafka `ce_*` headers), then published to `upstream.case-events.v1` as it came:
structured mode as the original bytes with `content-type: application/cloudevents+json`,
binary mode as the original body with its `ce_*` headers. Intake then applies it like any
other record. Answers: 202 `{id, source, case_id}` once the broker has it (acks=all);
400 `{reasons: [{code, field, message}]}` and nothing published; 413 above 1 MB.
"""

from __future__ import annotations

import argparse
import logging
import os
from urllib.parse import unquote

from aiohttp import web
from aiokafka import AIOKafkaProducer
from reintegra.contract import MAX_RECORD_BYTES, Reason, RejectedEvent, parse_upstream_record
from reintegra.relay import new_producer
from reintegra.settings import normalize_bootstrap_servers
from reintegra.topics import UPSTREAM_CASE_EVENTS

log = logging.getLogger("intake.http_door")

PRODUCER = web.AppKey("producer", AIOKafkaProducer)
_PASSED_HEADERS = ("content-type", "traceparent", "tracestate")


def kafka_headers(request: web.Request) -> list[tuple[str, bytes]]:
    """`ce-id: 1` -> `ce_id: b"1"` (percent-decoded, per the CloudEvents HTTP binding), plus trace and content type."""
    headers = []
    for name, value in request.headers.items():
        name = name.lower()
        if name.startswith("ce-") and len(name) > 3:
            headers.append(("ce_" + name[3:], unquote(value).encode("utf-8", "surrogateescape")))
        elif name in _PASSED_HEADERS:
            headers.append((name, value.encode("utf-8", "surrogateescape")))
    return headers


def _refused(status: int, reasons: tuple[Reason, ...] | list[Reason]) -> web.Response:
    return web.json_response({"reasons": [r.model_dump() for r in reasons]}, status=status)


async def post_event(request: web.Request) -> web.Response:
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _refused(413, [Reason(code="record_too_large", field=None,
                                     message=f"the event is larger than {MAX_RECORD_BYTES} bytes")])
    headers = kafka_headers(request)
    parsed = parse_upstream_record(body, headers)
    if isinstance(parsed, RejectedEvent):
        return _refused(400, parsed.reasons)
    try:
        await request.app[PRODUCER].send_and_wait(
            UPSTREAM_CASE_EVENTS, value=body, key=parsed.case_id.encode(), headers=headers
        )
    except Exception:
        log.exception("publishing %s/%s failed", parsed.source, parsed.event_id)
        return web.json_response({"error": "the event could not be stored; retry later"}, status=503)
    return web.json_response({"id": parsed.event_id, "source": parsed.source, "case_id": parsed.case_id}, status=202)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def create_app(bootstrap_servers: str | None = None) -> web.Application:
    bootstrap = normalize_bootstrap_servers(bootstrap_servers or os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
                                            or "127.0.0.1:9092")
    app = web.Application(client_max_size=MAX_RECORD_BYTES)
    app.router.add_post("/v1/events", post_event)
    app.router.add_get("/healthz", healthz)

    async def producer_context(app: web.Application):
        producer = new_producer(bootstrap)  # acks=all
        await producer.start()
        app[PRODUCER] = producer
        yield
        await producer.stop()

    app.cleanup_ctx.append(producer_context)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m intake.http_door", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    web.run_app(create_app(), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
