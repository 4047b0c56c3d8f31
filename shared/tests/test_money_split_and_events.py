"""Internal CloudEvents (events.py) and the helpers handlers share (handling.py), without a database."""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime

import pytest
from aiokafka.structs import ConsumerRecord
from reintegra.errors import PermanentError
from reintegra.events import (
    InternalEvent,
    MalformedInternalEvent,
    decode_internal,
    encode,
    new_event,
    utc_now_iso,
)
from reintegra.handling import decode_or_reject, derived_id, span_attributes


def test_new_event_has_the_cloudevents_envelope():
    event = new_event("reintegra.test.v1", "urn:reintegra:test", "CASE-1", {"a": 1})
    assert event["specversion"] == "1.0"
    assert event["type"] == "reintegra.test.v1"
    assert event["source"] == "urn:reintegra:test"
    assert event["subject"] == "CASE-1"
    assert event["datacontenttype"] == "application/json"
    assert event["data"] == {"a": 1}
    uuid.UUID(event["id"])  # a fresh UUID when no id is given
    assert event["time"].endswith("Z")
    datetime.fromisoformat(event["time"].replace("Z", "+00:00"))
    assert new_event("t", "s", "c", {})["id"] != new_event("t", "s", "c", {})["id"]


def test_new_event_keeps_a_given_id_and_time():
    event = new_event("t", "s", "c", {}, event_id="e-1", time="2026-01-01T00:00:00Z")
    assert (event["id"], event["time"]) == ("e-1", "2026-01-01T00:00:00Z")


def test_utc_now_iso_is_rfc3339_utc():
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z", utc_now_iso())


def test_encode_then_decode_round_trips_including_non_ascii():
    event = new_event("reintegra.test.v1", "urn:reintegra:test", "CASE-é", {"text": "مرحبا", "n": [1, 2]},
                      event_id="e-42")
    value = encode(event)
    assert "مرحبا".encode() in value  # UTF-8, not \\u escapes
    assert json.loads(value) == event
    assert decode_internal(value) == InternalEvent("e-42", "urn:reintegra:test", "reintegra.test.v1", "CASE-é",
                                                   {"text": "مرحبا", "n": [1, 2]}, event["time"])


@pytest.mark.parametrize(
    "value",
    [
        None,
        b"",
        b"not json",
        b"\xff\xfe\x00",
        b"null",
        b"123",
        b'"a string"',
        b"[1, 2]",
        b"{}",
        b'{"id": "e", "source": "s", "type": "t", "subject": "c"}',  # no data
        b'{"id": "e", "source": "s", "type": "t", "data": {}}',  # no subject
        b'{"source": "s", "type": "t", "subject": "c", "data": {}}',  # no id
        b'{"id": "e", "source": "s", "type": "t", "subject": "c", "data": {}',  # truncated
    ],
)
def test_decode_internal_rejects_garbage(value):
    with pytest.raises(MalformedInternalEvent):
        decode_internal(value)


def _record(value: bytes | None) -> ConsumerRecord:
    return ConsumerRecord("reintegra.x.v1", 2, 17, 0, 0, b"CASE-1", value, None, 6, len(value or b""), ())


def test_decode_or_reject_turns_garbage_into_a_permanent_error():
    with pytest.raises(PermanentError) as exc:
        decode_or_reject(_record(b"{oops"))
    assert exc.value.reason == "malformed_event"
    good = encode(new_event("t.v1", "urn:s", "CASE-1", {}, event_id="e-1"))
    assert decode_or_reject(_record(good)).event_id == "e-1"


def test_span_attributes_name_the_record_and_the_case():
    event = decode_internal(encode(new_event("t.v1", "urn:s", "CASE-1", {}, event_id="e-1")))
    assert span_attributes(_record(b"x"), event) == {
        "messaging.system": "kafka", "messaging.destination.name": "reintegra.x.v1",
        "messaging.kafka.partition": 2, "messaging.kafka.offset": 17,
        "reintegra.case_id": "CASE-1", "cloudevents.type": "t.v1",
    }


def test_derived_id_is_deterministic():
    assert derived_id("urn:s", "e-1", "status", "0") == derived_id("urn:s", "e-1", "status", "0")
    uuid.UUID(derived_id("x"))  # usable as a CloudEvents id: a UUID


def test_derived_id_differs_when_any_part_differs():
    ids = {
        derived_id("urn:s", "e-1", "status", "0"),
        derived_id("urn:s", "e-1", "status", "1"),
        derived_id("urn:s", "e-1", "down", "0"),
        derived_id("urn:s", "e-2", "status", "0"),
        derived_id("urn:t", "e-1", "status", "0"),
        derived_id("urn:s", "e-1", "status"),
    }
    assert len(ids) == 6


def test_derived_id_does_not_confuse_part_boundaries():
    assert derived_id("ab", "c") != derived_id("a", "bc")
    assert derived_id("a", "b") != derived_id("ab")
    assert derived_id("a:b", "c") != derived_id("a", "b:c")


def test_event_times_are_rfc3339_utc_with_microseconds_and_current():
    from datetime import UTC, timedelta

    from reintegra.events import utc_now_iso

    before = datetime.now(UTC)
    stamps = [utc_now_iso() for _ in range(2000)]
    after = datetime.now(UTC)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", s) for s in stamps)
    parsed = [datetime.fromisoformat(s) for s in stamps]
    assert parsed == sorted(parsed)
    assert before - timedelta(microseconds=1) <= parsed[0] and parsed[-1] <= after + timedelta(microseconds=1)
