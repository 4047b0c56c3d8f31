"""Intake's batch handler against a real Postgres: what each batch writes to its tables and outbox.

Ownership of cases, answers to every refused event, refused registrations, the minimised case
and where each forwarded event came from. The outbox is read back instead of a broker: it is
exactly what the relay will publish.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import intake
import pytest
from aiokafka.structs import ConsumerRecord
from intake.domain.identity import document_hash, person_hash
from intake.handlers import CASE_ACCEPTED_INTERNAL, make_handler
from reintegra import outbox
from reintegra.contract import samples
from reintegra.contract.status import CASE_ACCEPTED, CASE_REJECTED, CaseRejected
from reintegra.contract.upstream import CASE_REGISTERED, PLAN_APPROVED, RETURN_COMPLETED
from reintegra.db import create_pool
from reintegra.handling import derived_id
from reintegra.topics import CASE_STATUS, INTAKE_CASE_EVENTS, UPSTREAM_CASE_EVENTS, UPSTREAM_INVALID
from scratch_schemas import drop_schemas, new_schema, scratch_pool

KEY = b"test-identity-key-0123456789abcdef"
OWNER = "urn:casesys:ma-rabat"
OTHER = "urn:casesys:sn-dakar"
MIGRATIONS = Path(intake.__file__).parent / "migrations"
handler = make_handler(KEY)


@pytest.fixture(scope="module")
async def pool(infra):
    async with scratch_pool(infra.database_url, "intake_test", MIGRATIONS) as pool:
        yield pool


@pytest.fixture
def case_id() -> str:
    return f"IH-{uuid.uuid4().hex[:10].upper()}"


_offsets = iter(range(10**9))


def record(event: dict) -> ConsumerRecord:
    key, value, headers = samples.structured_record(event)
    return ConsumerRecord(UPSTREAM_CASE_EVENTS, 0, next(_offsets), 1_700_000_000_000, 0, key, value, None,
                          len(key or b""), len(value), tuple(headers))


def ce(type_: str, case_id: str, data: dict, source: str = OWNER, id: str | None = None) -> dict:  # noqa: A002
    return samples.cloudevent(type_, case_id, data, source=source, id=id or f"{case_id}-{uuid.uuid4().hex[:6]}")


def registered(case_id: str, source: str = OWNER, **kw) -> dict:
    return ce(CASE_REGISTERED, case_id, samples.sample_case_registered(case_id, **kw), source=source)


def returned(case_id: str, source: str = OWNER) -> dict:
    return ce(RETURN_COMPLETED, case_id, samples.sample_return_completed(case_id), source=source)


def plan(case_id: str, source: str = OWNER) -> dict:
    return ce(PLAN_APPROVED, case_id, samples.sample_plan_approved(case_id, f"PL-{case_id}"), source=source)


@dataclass
class Published:
    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]

    @property
    def event(self) -> dict:
        return json.loads(self.value)

    @property
    def reason_codes(self) -> list[str]:
        return dict(self.headers)["reintegra-reason-codes"].decode().split(",")


@dataclass
class Batch:
    published: list[Published]

    def on(self, topic: str) -> list[Published]:
        return [p for p in self.published if p.topic == topic]

    def statuses(self) -> list[dict]:
        return [p.event for p in self.on(CASE_STATUS)]

    def rejections(self) -> list[tuple[str, list[str], str | None, str | None]]:
        """(case_id, codes, rejected event id, its source) of every case.rejected status."""
        found = []
        for status in self.statuses():
            if status["type"] == CASE_REJECTED:
                CaseRejected.model_validate(status["data"])
                ref = status["data"]["rejected_event"]
                found.append((status["subject"], [r["code"] for r in status["data"]["reasons"]], ref["id"],
                              ref["source"]))
        return found

    def forwarded(self) -> list[dict]:
        return [p.event for p in self.on(INTAKE_CASE_EVENTS)]


async def run(pool: asyncpg.Pool, *events: dict | ConsumerRecord, keep: bool = True) -> Batch:
    """One batch in one transaction; what it added to the outbox (then emptied), or, with
    keep=False, the same rolled back (as if the process died before its commit)."""
    records = [e if isinstance(e, ConsumerRecord) else record(e) for e in events]
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        try:
            await handler(conn, records)
            rows = await conn.fetch("DELETE FROM outbox RETURNING seq, topic, key, value, headers")
        finally:
            await (tx.commit() if keep else tx.rollback())
    return Batch([Published(r["topic"], r["key"], r["value"], outbox.decode_headers(r["headers"]))
                  for r in sorted(rows, key=lambda r: r["seq"])])


async def parked(pool, case_id: str) -> list[tuple[str, str]]:
    rows = await pool.fetch("SELECT source, event_id FROM parked_events WHERE case_id = $1 ORDER BY id", case_id)
    return [(r["source"], r["event_id"]) for r in rows]


async def refusal_marker(pool, case_id: str) -> list[tuple[str, str | None]]:
    rows = await pool.fetch("SELECT source, event_id FROM registration_refusals WHERE case_id = $1", case_id)
    return [(r["source"], r["event_id"]) for r in rows]


def upstream_of(event: dict) -> dict:
    return {"source": event["source"], "id": event["id"], "type": event["type"]}


# --- the accepted case ------------------------------------------------------------------------


async def test_the_accepted_case_carries_source_birth_date_identity_hashes_and_the_payee_name_only(pool, case_id):
    registration = registered(case_id, person_id="P-77", document_number="ci-a 99.8877", full_name="Zélie Q")
    batch = await run(pool, registration)

    [accepted] = batch.forwarded()
    assert accepted["type"] == CASE_ACCEPTED_INTERNAL
    assert accepted["id"] == derived_id(OWNER, registration["id"])
    case = accepted["data"]
    assert case["source"] == OWNER
    assert case["date_of_birth"] == "1994-03-02"
    assert case["identity"] == {"document": document_hash(KEY, "CIA998877"), "person": person_hash(KEY, OWNER, "P-77")}
    assert case["upstream_event"] == upstream_of(registration)
    assert set(case) == {"case_id", "program_code", "source", "host_country", "origin_country", "household_size",
                         "date_of_birth", "vulnerabilities", "consent", "contact", "identity", "upstream_event"}
    # The name goes on only as the payee of payments; upstream's statuses never carry it.
    assert case["contact"]["payee_name"] == "Zélie Q"
    forwarded = batch.forwarded()
    for event in forwarded:
        event["data"].get("contact", {}).pop("payee_name", None)
    text = json.dumps(forwarded + batch.statuses(), ensure_ascii=False)
    for secret in ("P-77", "ci-a 99.8877", "CIA998877", "Zélie Q"):
        assert secret not in text
    assert [s["type"] for s in batch.statuses()] == [CASE_ACCEPTED]


async def test_intake_stores_no_name_document_number_or_person_id(pool, case_id):
    await run(pool, registered(case_id, person_id="P-STORED-1", document_number="DOC-STORED-1",
                                full_name="Stored Nobody"), returned(f"{case_id}-X"))
    for table in ("cases", "parked_events", "registration_refusals", "inbox"):
        dump = json.dumps([dict(r) for r in await pool.fetch(f"SELECT * FROM {table}")], default=str)
        for secret in ("P-STORED-1", "DOC-STORED-1", "Stored Nobody"):
            assert secret not in dump, table


async def test_a_registration_whose_document_number_has_no_letter_or_digit_is_refused(pool, case_id):
    registration = registered(case_id, document_number="--- ---")
    batch = await run(pool, registration)
    [invalid] = batch.on(UPSTREAM_INVALID)
    assert invalid.value == record(registration).value and invalid.reason_codes == ["invalid_value"]
    assert batch.rejections() == [(case_id, ["invalid_value"], registration["id"], OWNER)]
    assert batch.forwarded() == []
    assert await refusal_marker(pool, case_id) == [(OWNER, registration["id"])]


# --- forwarded events say where they came from ------------------------------------------------


async def test_forwarded_and_released_events_name_their_upstream_event(pool, case_id):
    early = plan(case_id)
    await run(pool, early)
    registration, later = registered(case_id), returned(case_id)
    batch = await run(pool, registration, later)
    forwarded = batch.forwarded()
    assert [e["type"] for e in forwarded] == [CASE_ACCEPTED_INTERNAL, PLAN_APPROVED, RETURN_COMPLETED]
    assert [e["data"]["upstream_event"] for e in forwarded] == [
        upstream_of(registration), upstream_of(early), upstream_of(later)]
    assert [e["id"] for e in forwarded] == [derived_id(OWNER, e["id"]) for e in (registration, early, later)]
    assert forwarded[2]["data"] == {**samples.sample_return_completed(case_id), "upstream_event": upstream_of(later)}


# --- ownership --------------------------------------------------------------------------------


async def test_an_event_from_another_source_than_the_owner_is_refused(pool, case_id):
    await run(pool, registered(case_id))
    intruder = returned(case_id, source=OTHER)
    batch = await run(pool, intruder)
    [invalid] = batch.on(UPSTREAM_INVALID)
    assert invalid.value == record(intruder).value and invalid.reason_codes == ["not_case_owner"]
    assert batch.rejections() == [(case_id, ["not_case_owner"], intruder["id"], OTHER)]
    assert batch.forwarded() == []
    # The owner's own events still flow.
    assert len((await run(pool, returned(case_id))).forwarded()) == 1


async def test_a_case_id_registered_by_another_source_is_taken(pool, case_id):
    await run(pool, registered(case_id))
    second = registered(case_id, source=OTHER)
    batch = await run(pool, second)
    assert [p.reason_codes for p in batch.on(UPSTREAM_INVALID)] == [["case_id_taken"]]
    assert batch.rejections() == [(case_id, ["case_id_taken"], second["id"], OTHER)]
    assert batch.forwarded() == []
    rows = await pool.fetch("SELECT source FROM cases WHERE case_id = $1", case_id)
    assert [r["source"] for r in rows] == [OWNER]
    assert await refusal_marker(pool, case_id) == []  # the case is registered: nothing to remember


async def test_a_second_registration_by_the_owner_is_answered(pool, case_id):
    second = registered(case_id)
    batch = await run(pool, registered(case_id), second)  # even within one batch
    assert [p.reason_codes for p in batch.on(UPSTREAM_INVALID)] == [["case_already_registered"]]
    assert batch.rejections() == [(case_id, ["case_already_registered"], second["id"], OWNER)]
    assert len(batch.forwarded()) == 1


async def test_a_reused_id_with_other_content_is_answered(pool, case_id):
    original = returned(case_id)
    await run(pool, registered(case_id), original)
    conflicting = dict(original, data={**original["data"], "arrival_date": "2026-10-04"})
    batch = await run(pool, conflicting, original)  # the original again is only a duplicate
    assert [p.reason_codes for p in batch.on(UPSTREAM_INVALID)] == [["id_conflict"]]
    assert batch.rejections() == [(case_id, ["id_conflict"], original["id"], OWNER)]
    assert batch.forwarded() == []


async def test_parked_events_of_another_source_are_refused_when_the_case_registers(pool, case_id, caplog):
    own, foreign = returned(case_id), plan(case_id, source=OTHER)
    await run(pool, own, foreign)
    caplog.set_level(logging.WARNING, logger="intake")
    registration = registered(case_id, phone="+2250707070707", person_id="P-LOG-1", document_number="DOC-LOG-1")
    batch = await run(pool, registration)
    assert [e["data"]["upstream_event"]["id"] for e in batch.forwarded()] == [registration["id"], own["id"]]
    assert batch.rejections() == [(case_id, ["not_case_owner"], foreign["id"], OTHER)]
    assert batch.on(UPSTREAM_INVALID) == []  # its bytes are gone: the status is the answer
    [status] = [s for s in batch.statuses() if s["type"] == CASE_REJECTED]
    assert status["id"] == derived_id(CASE_REJECTED, "not_case_owner", OTHER, foreign["id"])
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING and case_id in r.getMessage()]
    for secret in ("+2250707070707", "P-LOG-1", "DOC-LOG-1", "Awa"):
        assert secret not in warning.getMessage()
    assert await parked(pool, case_id) == []


# --- refused registrations --------------------------------------------------------------------


async def test_a_refused_registration_makes_waiting_events_answer_and_a_valid_one_releases_them(pool, case_id):
    first, second = plan(case_id), returned(case_id)
    assert (await run(pool, first)).statuses() == []  # nothing to say yet: the case may come
    refused = registered(case_id, consent=False)
    batch = await run(pool, second, refused)  # one parked before, one parked in the same batch
    assert [p.reason_codes for p in batch.on(UPSTREAM_INVALID)] == [["consent_missing"]]
    assert batch.rejections() == [
        (case_id, ["consent_missing"], refused["id"], OWNER),
        (case_id, ["case_registration_refused"], first["id"], OWNER),
        (case_id, ["case_registration_refused"], second["id"], OWNER)]
    assert await refusal_marker(pool, case_id) == [(OWNER, refused["id"])]

    later = ce(PLAN_APPROVED, case_id, samples.sample_plan_approved(case_id, f"PL-{case_id}-2"), source=OTHER)
    batch = await run(pool, later)
    assert batch.rejections() == [(case_id, ["case_registration_refused"], later["id"], OTHER)]
    [status] = batch.statuses()
    assert "kept" in status["data"]["reasons"][0]["message"]
    assert status["id"] == derived_id(CASE_REJECTED, "case_registration_refused", OTHER, later["id"])
    assert batch.on(UPSTREAM_INVALID) == [] and batch.forwarded() == []

    # Refused again: its own answer, and the waiting events are not told a second time.
    refused_again = registered(case_id, host_country="ZZ")
    batch = await run(pool, refused_again)
    assert batch.rejections() == [(case_id, ["unknown_country"], refused_again["id"], OWNER)]
    assert await parked(pool, case_id) == [(OWNER, first["id"]), (OWNER, second["id"]), (OTHER, later["id"])]

    corrected = registered(case_id)
    batch = await run(pool, corrected)
    assert [s["type"] for s in batch.statuses()] == [CASE_ACCEPTED, CASE_REJECTED]
    assert batch.rejections() == [(case_id, ["not_case_owner"], later["id"], OTHER)]
    assert [e["data"]["upstream_event"]["id"] for e in batch.forwarded()] == [corrected["id"], first["id"],
                                                                              second["id"]]
    assert await parked(pool, case_id) == [] and await refusal_marker(pool, case_id) == []
    assert (await run(pool, plan(case_id))).rejections() == []  # an ordinary registered case now


async def test_refused_then_valid_registration_in_one_batch(pool, case_id):
    early, refused, between, valid, after = (returned(case_id), registered(case_id, consent=False), plan(case_id),
                                             registered(case_id), ce(RETURN_COMPLETED, case_id, {
                                                 **samples.sample_return_completed(case_id), "arrival_date": "2026-10-05"}))
    await run(pool, early)
    batch = await run(pool, refused, between, valid, after)
    assert batch.rejections() == [
        (case_id, ["consent_missing"], refused["id"], OWNER),
        (case_id, ["case_registration_refused"], early["id"], OWNER),
        (case_id, ["case_registration_refused"], between["id"], OWNER)]
    assert [e["data"]["upstream_event"]["id"] for e in batch.forwarded()] == [
        valid["id"], early["id"], between["id"], after["id"]]
    assert await parked(pool, case_id) == [] and await refusal_marker(pool, case_id) == []


async def test_a_refusal_with_no_readable_source_is_answered_but_not_remembered(pool, case_id):
    event = registered(case_id, consent=False)
    del event["source"]
    batch = await run(pool, event)
    assert batch.rejections() == [(case_id, ["missing_field", "consent_missing"], event["id"], None)]
    assert await refusal_marker(pool, case_id) == []


async def test_a_refused_registration_of_a_registered_case_changes_nothing(pool, case_id):
    await run(pool, registered(case_id))
    batch = await run(pool, registered(case_id, consent=False))
    assert [r[1] for r in batch.rejections()] == [["consent_missing"]]
    assert await refusal_marker(pool, case_id) == []
    assert len((await run(pool, returned(case_id))).forwarded()) == 1


# --- replays ----------------------------------------------------------------------------------


async def test_a_replayed_batch_publishes_the_same_event_ids(pool, case_id):
    await run(pool, plan(case_id), returned(case_id, source=OTHER))
    records = [record(registered(case_id, consent=False)), record(returned(case_id)),
               record(registered(case_id)), record(returned(case_id, source=OTHER))]
    rolled_back = await run(pool, *records, keep=False)
    committed = await run(pool, *records)
    assert [p.event["id"] for p in committed.on(CASE_STATUS) + committed.on(INTAKE_CASE_EVENTS)] == \
        [p.event["id"] for p in rolled_back.on(CASE_STATUS) + rolled_back.on(INTAKE_CASE_EVENTS)]
    assert len(committed.rejections()) == 6  # consent, 2 parked told, 1 told at park, 2 not_case_owner
    assert len({s["id"] for s in committed.statuses()}) == len(committed.statuses())


async def test_a_plan_handled_by_another_instance_while_its_case_registers_is_forwarded_not_parked(infra, case_id):
    """Two instances (a rebalance, upstream keys that are not the case id): one registers the case
    while the other handles its plan. The plan must wait for the registration and be forwarded; it
    must not be parked after the registration took the parked events (parked for ever)."""
    import asyncio

    schema = new_schema(infra.database_url, "intake_race", MIGRATIONS)
    instances = [await create_pool(infra.database_url, schema, max_size=1) for _ in range(2)]
    try:
        async with instances[0].acquire() as first, instances[1].acquire() as second:
            registration = first.transaction()
            await registration.start()
            await handler(first, [record(registered(case_id))])

            async def plan_on_the_other_instance():
                async with second.transaction():
                    await handler(second, [record(plan(case_id))])

            other = asyncio.create_task(plan_on_the_other_instance())
            await asyncio.sleep(0.5)  # the other instance reads the case while the registration is open
            await registration.commit()
            await asyncio.wait_for(other, 10)
        conn = instances[0]
        assert await conn.fetch("SELECT event_id FROM parked_events WHERE case_id = $1", case_id) == []
        rows = await conn.fetch("SELECT value FROM outbox WHERE topic = $1 ORDER BY seq", INTAKE_CASE_EVENTS)
        types = [json.loads(r["value"])["type"] for r in rows]
        assert types.count(PLAN_APPROVED) == 1 and types[0] == CASE_ACCEPTED_INTERNAL, types
    finally:
        for instance in instances:
            await instance.close()
        await drop_schemas(infra.database_url, schema)
