"""Trace context read from records and rows: the fast path must agree with OpenTelemetry's propagator."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from reintegra.telemetry import context_from_headers, context_from_traceparent

_PROPAGATOR = TraceContextTextMapPropagator()
_hex = st.text(alphabet="0123456789abcdefABCDEF", min_size=0, max_size=34)


def _seen_by(context) -> tuple:
    span_context = trace.get_current_span(context).get_span_context()
    return (span_context.is_valid, span_context.trace_id, span_context.span_id, int(span_context.trace_flags),
            span_context.is_remote)


def _by_propagator(traceparent: str | None, tracestate: str | None = None) -> tuple:
    carrier = {k: v for k, v in (("traceparent", traceparent), ("tracestate", tracestate)) if v}
    return _seen_by(_PROPAGATOR.extract(carrier))


@settings(max_examples=500)
@given(
    version=st.sampled_from(["00", "01", "ff", "0"]),
    trace_id=st.one_of(_hex, st.just("0" * 32), st.from_regex(r"[0-9a-f]{32}", fullmatch=True)),
    span_id=st.one_of(_hex, st.just("0" * 16), st.from_regex(r"[0-9a-f]{16}", fullmatch=True)),
    flags=st.sampled_from(["00", "01", "03", "0g", "1"]),
    tail=st.sampled_from(["", "-extra", " "]),
)
def test_traceparents_are_read_exactly_as_the_propagator_reads_them(version, trace_id, span_id, flags, tail):
    traceparent = f"{version}-{trace_id}-{span_id}-{flags}{tail}"
    assert _seen_by(context_from_traceparent(traceparent)) == _by_propagator(traceparent)


def test_a_sampled_and_an_unsampled_parent_are_told_apart():
    sampled = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    unsampled = sampled[:-2] + "00"
    assert _seen_by(context_from_traceparent(sampled)) == (True, 0x0AF7651916CD43DD8448EB211C80319C,
                                                           0xB7AD6B7169203331, 1, True)
    assert _seen_by(context_from_traceparent(unsampled))[3] == 0


def test_tracestate_is_kept():
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    context = context_from_headers([("traceparent", traceparent.encode()), ("tracestate", b"vendor=abc")])
    assert trace.get_current_span(context).get_span_context().trace_state.get("vendor") == "abc"


def test_no_or_bad_context_means_no_parent():
    assert not _seen_by(context_from_traceparent(None))[0]
    assert not _seen_by(context_from_headers([("traceparent", b"garbage")]))[0]
