"""OpenTelemetry setup and the per-record spans that keep one trace per case.

Exporter: chosen by the standard OTEL_TRACES_EXPORTER (`otlp`, `console`, `none`); when unset,
spans go to a JSON-lines file per service under the state folder, which `reintegra trace`
reads, so a person can see a trace locally without any collector.
Sampling: parent-based ratio (REINTEGRA_TRACE_SAMPLE_RATIO, or the standard OTEL_TRACES_SAMPLER);
the trace context is propagated for every record whether or not it is recorded.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_PROPAGATOR = TraceContextTextMapPropagator()
_TRACER_NAME = "reintegra"


class JsonLinesSpanExporter(SpanExporter):
    """Appends one compact JSON object per finished span to a file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = []
        for span in spans:
            ctx = span.get_span_context()
            lines.append(
                json.dumps(
                    {
                        "trace_id": format(ctx.trace_id, "032x"),
                        "span_id": format(ctx.span_id, "016x"),
                        "parent_id": format(span.parent.span_id, "016x") if span.parent else None,
                        "name": span.name,
                        "service": span.resource.attributes.get("service.name"),
                        "kind": span.kind.name,
                        "start_ns": span.start_time,
                        "end_ns": span.end_time,
                        "status": span.status.status_code.name,
                        "attributes": {k: v for k, v in (span.attributes or {}).items() if isinstance(v, str | int | float | bool)},
                    },
                    separators=(",", ":"),
                )
            )
        with self._lock:
            self._file.write("\n".join(lines) + "\n")
            self._file.flush()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self._file.close()


def _exporter(service_name: str, trace_dir: Path) -> SpanExporter | None:
    choice = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if choice == "none":
        return None
    if choice == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()  # endpoint etc. from OTEL_EXPORTER_OTLP_* variables
    if choice == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    return JsonLinesSpanExporter(trace_dir / f"{service_name}.jsonl")


def configure_telemetry(service_name: str, trace_dir: Path, sample_ratio: float) -> TracerProvider:
    sampler = None if os.environ.get("OTEL_TRACES_SAMPLER") else ParentBased(TraceIdRatioBased(sample_ratio))
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}), sampler=sampler)
    exporter = _exporter(service_name, trace_dir)
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=65536, max_export_batch_size=2048))
    trace.set_tracer_provider(provider)
    global _tracer
    _tracer = None
    return provider


_tracer: trace.Tracer | None = None


def tracer() -> trace.Tracer:
    # get_tracer costs more than a span when called per record; resolve it once per provider.
    global _tracer
    if _tracer is None:
        _tracer = trace.get_tracer(_TRACER_NAME)
    return _tracer


def _header_carrier(headers: Sequence[tuple[str, bytes]]) -> dict[str, str]:
    carrier = {}
    for name, value in headers:
        if name in ("traceparent", "tracestate") and value is not None:
            carrier[name] = value.decode("ascii", errors="replace")
    return carrier


def context_from_headers(headers: Sequence[tuple[str, bytes]]) -> otel_context.Context:
    carrier = _header_carrier(headers)
    return context_from_traceparent(carrier.get("traceparent"), carrier.get("tracestate"))


# The common case, version 00 without tracestate, parsed directly: 3x cheaper than the propagator,
# which stays the judge of everything else (other versions, tracestate, malformed values).
_PLAIN_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")


def context_from_traceparent(traceparent: str | None, tracestate: str | None = None) -> otel_context.Context:
    if traceparent and not tracestate and (match := _PLAIN_TRACEPARENT.fullmatch(traceparent)):
        trace_id, span_id = int(match[1], 16), int(match[2], 16)
        if trace_id and span_id:
            remote = trace.SpanContext(trace_id, span_id, is_remote=True, trace_flags=trace.TraceFlags(int(match[3], 16)))
            return trace.set_span_in_context(trace.NonRecordingSpan(remote))
    carrier = {"traceparent": traceparent} if traceparent else {}
    if tracestate:
        carrier["tracestate"] = tracestate
    return _PROPAGATOR.extract(carrier)


def current_trace_carrier() -> dict[str, str]:
    """traceparent (and tracestate) of the current span, to store beside an outbox row."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier


@contextmanager
def _span_under(
    name: str, parent: otel_context.Context, attributes: Mapping[str, str | int] | None, kind: trace.SpanKind,
) -> Iterator[trace.Span]:
    remote = trace.get_current_span(parent)
    if remote.get_span_context().is_valid and not remote.get_span_context().trace_flags.sampled:
        # The trace is not sampled: nothing would be recorded, so skip the span and just make the
        # upstream context current; what is published from here still carries its trace id.
        token = otel_context.attach(parent)
        try:
            yield remote
        finally:
            otel_context.detach(token)
        return
    with tracer().start_as_current_span(name, context=parent, kind=kind, attributes=attributes) as span:
        yield span


def record_span(
    name: str,
    headers: Sequence[tuple[str, bytes]],
    attributes: Mapping[str, str | int] | None = None,
    kind: trace.SpanKind = trace.SpanKind.CONSUMER,
):
    """A span for one record of a batch, continuing that record's own trace (not the batch's)."""
    return _span_under(name, context_from_headers(headers), attributes, kind)


def span_from_traceparent(
    name: str, traceparent: str | None, tracestate: str | None = None,
    attributes: Mapping[str, str | int] | None = None, kind: trace.SpanKind = trace.SpanKind.INTERNAL,
):
    """A span continuing a trace context stored beside a row (outbox, tranche, notice)."""
    return _span_under(name, context_from_traceparent(traceparent, tracestate), attributes, kind)


def is_unsampled(traceparent: str | None) -> bool:
    """A W3C traceparent whose sampled flag is off (…-00)."""
    return bool(traceparent) and traceparent.endswith("-00")


def record_finished_span(
    name: str, traceparent: str | None, tracestate: str | None, start_ns: int, end_ns: int,
    attributes: Mapping[str, str | int] | None = None, kind: trace.SpanKind = trace.SpanKind.CLIENT,
) -> None:
    """A span for one item of work done for many items at once (one call sending a whole batch):
    each item's trace gets a span with the batch's start and end times."""
    if is_unsampled(traceparent):
        return
    parent = context_from_traceparent(traceparent, tracestate)
    span = tracer().start_span(name, context=parent, kind=kind, attributes=attributes, start_time=start_ns)
    span.end(end_time=end_ns)
