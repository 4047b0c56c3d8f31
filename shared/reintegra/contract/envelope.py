"""One raw Kafka record from `upstream.case-events.v1` -> a validated event or a rejection.

Never raises: every record must end either applied or on the `.invalid` topic with reasons,
so a parser exception would be a record that is silently stuck.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError

from reintegra import jsonfast
from reintegra.contract.reasons import Reason, reasons_from_validation_error
from reintegra.contract.upstream import CASE_ID_RE, EVENT_TYPES, parse_timestamp

MAX_RECORD_BYTES = 1_000_000
STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"
JSON_CONTENT_TYPE = "application/json"
SPECVERSION = "1.0"

_MAX_ID_LENGTH = 256
_MAX_SOURCE_LENGTH = 512
_MAX_TRACESTATE_LENGTH = 512
_MAX_FIELD_LENGTH = 256
MAX_REASONS = 50
# RFC 3986 URI-reference characters; enough to refuse spaces, quotes and control characters.
_URI_REFERENCE_RE = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")
_TRACEPARENT_RE = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")
# Cheap pre-check on the JSON text: only a \u escape can put a NUL or a lone surrogate in a
# string (raw control characters are already invalid JSON). Matches also after an escaped
# backslash, so a hit is only a hint that the exact walk below confirms.
_SUSPECT_ESCAPE_RE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")


@dataclass(frozen=True, slots=True)
class UpstreamEvent:
    event_id: str
    source: str
    type: str
    subject: str
    time: datetime
    case_id: str
    data: BaseModel
    raw_data: dict[str, Any]  # as received; shared, not copied: treat as read-only
    traceparent: str | None
    tracestate: str | None
    content_hash: str  # same (source, id) with another hash is a conflicting redelivery


@dataclass(frozen=True, slots=True)
class RejectedEvent:
    reasons: tuple[Reason, ...]
    case_id: str | None
    event_id: str | None
    source: str | None
    type: str | None


def parse_upstream_record(
    value: bytes | None, headers: Sequence[tuple[str, bytes]], key: bytes | None = None
) -> UpstreamEvent | RejectedEvent:
    try:
        return _parse(value, headers, key)
    except Exception:  # noqa: BLE001 - a bug here must not stall the partition
        return RejectedEvent(
            reasons=(Reason(code="internal_error", field=None, message="the record could not be processed"),),
            case_id=_valid_case_id(_safe_decode(key)),
            event_id=None,
            source=None,
            type=None,
        )


def content_hash(event_type: str, subject: str, data: Any) -> str:
    """sha256 of canonical JSON (sorted keys, no spaces) of type, subject and data."""
    document = {"type": event_type, "subject": subject, "data": data}
    return hashlib.sha256(jsonfast.canonical(document)).hexdigest()


# --- the steps ----------------------------------------------------------------------------


@dataclass(slots=True)
class _Envelope:
    """The CloudEvents attributes and data of a record, whichever mode carried them."""

    attributes: dict[str, Any]
    data: Any
    has_data: bool
    mode: str  # "structured" or "binary"


def _parse(
    value: bytes | None, headers: Sequence[tuple[str, bytes]], key: bytes | None
) -> UpstreamEvent | RejectedEvent:
    key_case_id = _valid_case_id(_safe_decode(key))
    if not value:
        return _reject_record("empty_record", "the record has no value", key_case_id)
    if len(value) > MAX_RECORD_BYTES:
        return _reject_record("record_too_large", f"the record is larger than {MAX_RECORD_BYTES} bytes", key_case_id)

    header_map = _header_map(headers)
    content_type = _media_type(header_map.get("content-type"))
    if content_type == BATCH_CONTENT_TYPE:
        return _reject_record("invalid_value", "batched CloudEvents are not accepted", key_case_id, "content-type")
    binary = content_type != STRUCTURED_CONTENT_TYPE and any(name.startswith("ce_") for name in header_map)

    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return _reject_record("not_utf8", "the record value is not valid UTF-8", key_case_id)
    try:
        document = _fast_json(value)
    except ValueError:
        try:  # the standard library decides the edge cases orjson refuses (e.g. lone surrogates)
            document = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
        except (ValueError, RecursionError):
            return _reject_record("not_json", "the record value is not valid JSON", key_case_id)

    reasons: list[Reason] = []
    if binary:
        envelope = _binary_envelope(header_map, document, reasons)
    else:
        if not isinstance(document, dict):
            return _reject_record("not_an_object", "a structured CloudEvent must be a JSON object", key_case_id)
        envelope = _structured_envelope(document)

    if _SUSPECT_ESCAPE_RE.search(text) or any(isinstance(v, str) and "\x00" in v for v in envelope.attributes.values()):
        for path in _bad_string_paths(envelope.attributes, envelope.data, envelope.has_data):
            reasons.append(Reason(code="invalid_string", field=path,
                                  message="contains a NUL character or an unpaired surrogate"))

    return _validate(envelope, reasons, header_map, key_case_id)


def _validate(envelope: _Envelope, reasons: list[Reason], header_map: dict[str, bytes | None],
              key_case_id: str | None) -> UpstreamEvent | RejectedEvent:
    attrs = envelope.attributes
    specversion = _required_string(attrs, "specversion", reasons)
    if specversion is not None and specversion != SPECVERSION:
        reasons.append(Reason(code="unsupported_specversion", field="specversion", message='must be "1.0"'))

    event_id = _required_string(attrs, "id", reasons)
    if event_id is not None and not 0 < len(event_id) <= _MAX_ID_LENGTH:
        reasons.append(Reason(code="invalid_value", field="id", message=f"must be 1-{_MAX_ID_LENGTH} characters"))
        event_id = None

    source = _required_string(attrs, "source", reasons)
    if source is not None and (len(source) > _MAX_SOURCE_LENGTH or _URI_REFERENCE_RE.fullmatch(source) is None):
        reasons.append(Reason(code="invalid_value", field="source",
                              message=f"must be a non-empty URI-reference of at most {_MAX_SOURCE_LENGTH} characters"))
        source = None

    event_type = _required_string(attrs, "type", reasons)
    model = EVENT_TYPES.get(event_type) if event_type is not None else None
    if event_type is not None and model is None:
        reasons.append(Reason(code="unknown_event_type", field="type", message="is not a known event type"))
        if len(event_type) > _MAX_ID_LENGTH:
            event_type = None

    subject = _required_string(attrs, "subject", reasons)
    if subject is not None and CASE_ID_RE.fullmatch(subject) is None:
        reasons.append(Reason(code="invalid_case_id", field="subject",
                              message="must be a case_id: 1-64 characters of A-Z a-z 0-9 _ -"))
        subject = None

    time_text = _required_string(attrs, "time", reasons)
    time = None
    if time_text is not None:
        try:
            time = parse_timestamp(time_text)
        except ValueError as exc:
            reasons.append(Reason(code="invalid_timestamp", field="time", message=str(exc)))

    if "datacontenttype" in attrs and _media_type(attrs["datacontenttype"]) != JSON_CONTENT_TYPE:
        reasons.append(Reason(code="invalid_datacontenttype", field="datacontenttype",
                              message='must be "application/json"'))

    data = envelope.data
    payload: BaseModel | None = None
    if not envelope.has_data:
        reasons.append(Reason(code="missing_field", field="data", message="is required (data_base64 is not accepted)"))
    elif not isinstance(data, dict):
        code = "not_an_object" if envelope.mode == "binary" else "wrong_type"
        reasons.append(Reason(code=code, field="data", message="must be a JSON object"))
    elif model is not None:
        try:
            payload = model.model_validate(data)
        except ValidationError as exc:
            reasons.extend(reasons_from_validation_error(exc, "data"))

    data_case_id = data.get("case_id") if isinstance(data, dict) else None
    data_case_id = _valid_case_id(data_case_id)
    if subject is not None and data_case_id is not None and data_case_id != subject:
        reasons.append(Reason(code="subject_mismatch", field="subject", message="must equal data.case_id"))

    if reasons or payload is None or time is None:
        if not reasons:  # unreachable by construction; kept so a gap can never pass as valid
            reasons.append(Reason(code="internal_error", field=None, message="the event could not be validated"))
        return RejectedEvent(
            reasons=_bounded(reasons),
            case_id=data_case_id or subject or key_case_id,
            event_id=event_id,
            source=source,
            type=event_type,
        )

    traceparent, tracestate = _trace_context(header_map, attrs)
    return UpstreamEvent(
        event_id=event_id,
        source=source,
        type=event_type,
        subject=subject,
        time=time,
        case_id=subject,
        data=payload,
        raw_data=data,
        traceparent=traceparent,
        tracestate=tracestate,
        content_hash=content_hash(event_type, subject, data),
    )


def _structured_envelope(document: dict[str, Any]) -> _Envelope:
    attributes = {name: v for name, v in document.items() if name not in ("data", "data_base64")}
    return _Envelope(attributes, document.get("data"), "data" in document, "structured")


def _binary_envelope(header_map: dict[str, bytes | None], document: Any, reasons: list[Reason]) -> _Envelope:
    attributes: dict[str, Any] = {}
    for name, raw in header_map.items():
        if not name.startswith("ce_"):
            continue
        attribute = name[3:]
        if raw is None:
            continue
        try:
            attributes[attribute] = raw.decode("utf-8")
        except UnicodeDecodeError:
            reasons.append(Reason(code="not_utf8", field=attribute, message=f"header {name} is not valid UTF-8"))
    # In binary mode the content-type header is the datacontenttype; absent means JSON.
    if header_map.get("content-type") is not None:
        attributes["datacontenttype"] = _safe_decode(header_map["content-type"]) or ""
    return _Envelope(attributes, document, True, "binary")


def _required_string(attrs: dict[str, Any], name: str, reasons: list[Reason]) -> str | None:
    if name not in attrs or attrs[name] is None:
        reasons.append(Reason(code="missing_field", field=name, message="is required"))
        return None
    value = attrs[name]
    if not isinstance(value, str):
        reasons.append(Reason(code="wrong_type", field=name, message="must be a string"))
        return None
    if not value:
        reasons.append(Reason(code="invalid_value", field=name, message="must not be empty"))
        return None
    if _is_bad_string(value):
        return None  # already reported as invalid_string; unusable even in a rejection
    return value


def _bounded(reasons: list[Reason]) -> tuple[Reason, ...]:
    # Reasons travel in Kafka headers and status events; a thousand bad list items must not
    # make a record too large to publish.
    if len(reasons) <= MAX_REASONS:
        return tuple(_short_field(r) for r in reasons)
    kept = [_short_field(r) for r in reasons[: MAX_REASONS - 1]]
    more = len(reasons) - len(kept)
    kept.append(Reason(code="too_many_errors", field=None, message=f"{more} more errors not listed"))
    return tuple(kept)


def _short_field(reason: Reason) -> Reason:
    if reason.field is None or len(reason.field) <= _MAX_FIELD_LENGTH:
        return reason
    return reason.model_copy(update={"field": reason.field[: _MAX_FIELD_LENGTH - 3] + "..."})


def _reject_record(code: str, message: str, case_id: str | None, field: str | None = None) -> RejectedEvent:
    return RejectedEvent(reasons=(Reason(code=code, field=field, message=message),),
                         case_id=case_id, event_id=None, source=None, type=None)


def _header_map(headers: Sequence[tuple[str, bytes]] | None) -> dict[str, bytes | None]:
    """Lower-cased header names; the first occurrence of a repeated header wins."""
    result: dict[str, bytes | None] = {}
    for name, raw in headers or ():
        if isinstance(name, bytes):
            name = name.decode("latin-1")
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogatepass")
        result.setdefault(str(name).lower(), raw if isinstance(raw, (bytes, bytearray)) else None)
    return result


def _media_type(raw: Any) -> str | None:
    """"application/json" from b"Application/JSON; charset=utf-8"."""
    text = _safe_decode(raw) if isinstance(raw, (bytes, bytearray)) else raw
    if not isinstance(text, str):
        return None
    return text.split(";", 1)[0].strip().lower()


def _safe_decode(raw: Any) -> str | None:
    if isinstance(raw, str):
        return raw
    if isinstance(raw, (bytes, bytearray)):
        try:
            return bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            return None
    return None


def _valid_case_id(value: Any) -> str | None:
    return value if isinstance(value, str) and CASE_ID_RE.fullmatch(value) else None


def _fast_json(value: bytes) -> Any:
    """orjson on the hot path; it refuses NaN and infinite numbers as the strict decoder does. It
    reads integers beyond 64 bits as floats, and those need 19 digits or more: documents with such a
    digit run anywhere (even inside a string) go to the standard library instead."""
    if _LONG_DIGIT_RUN in value.translate(_DIGITS_TO_ZERO):  # 10x faster than a regex here
        raise ValueError("a digit run long enough to be an integer beyond 64 bits")
    return orjson.loads(value)


_DIGITS_TO_ZERO = bytes(ord("0") if chr(i).isdigit() and i < 128 else ord(" ") for i in range(256))
_LONG_DIGIT_RUN = b"0" * 19


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    # 1e400 is valid JSON but becomes inf, which no later step can serialise again.
    number = float(text)
    if math.isinf(number):
        raise ValueError("number out of range")
    return number


def _trace_context(header_map: dict[str, bytes | None], attrs: dict[str, Any]) -> tuple[str | None, str | None]:
    """W3C trace context from the record header, else from the CloudEvents extension.

    A malformed traceparent is dropped, not rejected: tracing must never cost an event.
    """
    traceparent = _safe_decode(header_map.get("traceparent")) or attrs.get("traceparent")
    tracestate = _safe_decode(header_map.get("tracestate")) or attrs.get("tracestate")
    if not isinstance(traceparent, str):
        return None, None
    traceparent = traceparent.strip()
    match = _TRACEPARENT_RE.fullmatch(traceparent)
    if match is None or match.group(1) == "ff" or set(match.group(2)) == {"0"} or set(match.group(3)) == {"0"}:
        return None, None
    if not isinstance(tracestate, str) or len(tracestate) > _MAX_TRACESTATE_LENGTH or not tracestate.isprintable():
        tracestate = None
    return traceparent, tracestate


def _bad_string_paths(attributes: dict[str, Any], data: Any, has_data: bool) -> list[str]:
    """JSON paths of strings (keys too) holding NUL or a lone surrogate; iterative, any depth."""
    roots: list[tuple[str, Any]] = [(name, value) for name, value in attributes.items()]
    if has_data:
        roots.append(("data", data))
    found: list[str] = []
    stack = list(reversed(roots))
    while stack:
        path, node = stack.pop()
        if isinstance(node, str):
            if _is_bad_string(node):
                found.append(path)
        elif isinstance(node, dict):
            for name, child in node.items():
                child_path = f"{path}.{name}" if not _is_bad_string(name) else f"{path}.<key>"
                if _is_bad_string(name):
                    found.append(child_path)
                stack.append((child_path, child))
        elif isinstance(node, list):
            stack.extend((f"{path}[{i}]", child) for i, child in reversed(list(enumerate(node))))
    return found


def _is_bad_string(text: str) -> bool:
    if "\x00" in text:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
