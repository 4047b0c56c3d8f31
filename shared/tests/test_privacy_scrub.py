"""Personal data out of logs and dead letters: `scrub`, `mask_phone`, and the batch consumer on a real
Postgres whose errors quote a phone number."""

from __future__ import annotations

import logging
import re

import asyncpg
import pytest
from aiokafka.structs import ConsumerRecord
from reintegra import inbox, outbox
from reintegra.consumer import BatchConsumer
from reintegra.errors import TransientError
from reintegra.privacy import ScrubExceptionText, describe_exception, mask_phone, scrub
from reintegra.settings import Settings
from scratch_schemas import scratch_pool

PHONE = "+2250701020304"
# Any 6 digits in a row of the phone number: none may reach a log line or a header.
PHONE_DIGITS = re.compile(r"0701020304|701020|020304")

# --- mask_phone ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phone", "masked"),
    [
        # long international numbers: as before, the country prefix and the last 3 digits
        ("+2250701020304", "+225•••••••304"),
        ("+225 07 01 02 03 04", "+225•••••••304"),
        ("+212612345678", "+212••••••678"),
        ("+33612345678", "+336•••••678"),
        # long local numbers: the last 3 digits only
        ("0701020304", "•••••••304"),
        ("07 01 02 03 04", "•••••••304"),
        ("00225070102030", "•••••••••••030"),
        # short numbers (local forms of 6-9 digits): the last 2 digits only
        ("070102030", "•••••••30"),
        ("01020304", "••••••04"),
        ("20-21-22-23", "••••••23"),
        ("+2250102", "•••••02"),
        ("1234567", "•••••67"),
        ("123456", "••••56"),
        # shorter: nothing shows
        ("12345", "•••••"),
        ("112", "•••"),
        ("12", "•••"),
        ("n/a", "•••"),
        # nothing to mask
        ("", ""),
        (None, None),
    ],
)
def test_mask_phone(phone, masked):
    assert mask_phone(phone) == masked


@pytest.mark.parametrize("phone", ["+2250701020304", "0701020304", "01020304", "123456", "12345", "07 01 02 03"])
def test_mask_phone_never_shows_more_than_three_digits_of_the_subscriber(phone):
    masked = mask_phone(phone)
    shown = sum(c.isdigit() for c in masked.removeprefix("+" + "".join(c for c in phone if c.isdigit())[:3]))
    assert shown <= 3
    assert masked != phone


# --- scrub ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "scrubbed"),
    [
        # Postgres details that quote a row
        ('duplicate key value violates unique constraint "people_phone_key"\n'
         "DETAIL:  Key (phone)=(+2250701020304) already exists.",
         'duplicate key value violates unique constraint "people_phone_key"\n'
         "DETAIL:  Key (phone)=([redacted]) already exists."),
        ("Key (lower(email::text))=(awa@example.org) already exists.",
         "Key (lower(email::text))=([redacted]) already exists."),
        ("Key (name, born)=(Awa Traoré, 1990-05-12) already exists.",
         "Key (name, born)=([redacted]) already exists."),
        ('Key (case_id)=(CASE-1) is not present in table "cases".',
         'Key (case_id)=([redacted]) is not present in table "cases".'),
        ('Key (id)=(42) is still referenced from table "tranches".',
         'Key (id)=([redacted]) is still referenced from table "tranches".'),
        ("Key (a, b)=(1, (2)) conflicts with existing key (a, b)=(1, 3).",
         "Key (a, b)=([redacted]) conflicts with existing key (a, b)=([redacted])."),
        ("DETAIL:  Failing row contains (7, Awa Traoré, +225 07 01 02 03 04, null).",
         "DETAIL:  Failing row contains ([redacted])."),
        # values quoted in a message
        ('invalid input syntax for type uuid: "0701020304"', 'invalid input syntax for type uuid: "[redacted]"'),
        ('invalid input value for enum language: "Awa"', 'invalid input value for enum language: "[redacted]"'),
        ('value "99999999999" is out of range for type integer', 'value "[redacted]" is out of range for type integer'),
        ("invalid input for query argument $1: '+2250701020304' (expected int, got str)",
         "invalid input for query argument $1: [redacted] (expected int, got str)"),
        ("invalid input for query argument $3: '(07) 01 02' ('str' object cannot be interpreted as an integer)",
         "invalid input for query argument $3: [redacted] ('str' object cannot be interpreted as an integer)"),
        ("invalid input for query argument $2: 701020304 (expected str, got int)",
         "invalid input for query argument $2: [redacted] (expected str, got int)"),
        ("String should match pattern [type=string_pattern_mismatch, input_value='+2250701020304', input_type=str]",
         "String should match pattern [type=string_pattern_mismatch, input_value=[redacted], input_type=str]"),
        # phone numbers, international and local, with spaces, dashes, dots or parentheses
        ("no wallet for +2250701020304", "no wallet for [phone]"),
        ("no wallet for +225 07 01 02 03 04.", "no wallet for [phone]."),
        ("no wallet for +225-07-01-02-03-04", "no wallet for [phone]"),
        ("no wallet for 00225 0701020304", "no wallet for [phone]"),
        ("no wallet for 07 01 02 03 04", "no wallet for [phone]"),
        ("no wallet for 07-01-02-03-04", "no wallet for [phone]"),
        ("no wallet for 07.01.02.03.04", "no wallet for [phone]"),
        ("no wallet for (07) 01 02 03", "no wallet for [phone]"),
        ("no wallet for 20 21 22", "no wallet for [phone]"),
        ("call 0701-020-304 now", "call [phone] now"),
        ("KeyError: '+2250701020304'", "KeyError: '[redacted]'"),  # a value quoted after a colon goes whole
        # any other run of 6 digits or more (a local number, a document number, a compact date)
        ("unknown subscriber 01020304", "unknown subscriber [number]"),
        ("passport 123456 refused", "passport [number] refused"),
        ("born 19900512", "born [number]"),
        # email addresses, IBANs
        ("no account for awa.traore+x@example.co.uk", "no account for [email]"),
        ("closed: CI93 CI00 8011 1301 1342 9120 0589", "closed: [iban]"),
        ("closed: FR7630006000011234567890189", "closed: [iban]"),
        # what stays: our own words, codes, ids, times, addresses and small numbers
        ("cannot digest this record", "cannot digest this record"),
        ('relation "people" does not exist', 'relation "people" does not exist'),
        ("at 2026-01-15T10:20:30Z and 2026-01-15 10:20:30.123+00:00", "at 2026-01-15T10:20:30Z and 2026-01-15 10:20:30.123+00:00"),
        ("connection to 192.168.10.20:5432 refused", "connection to 192.168.10.20:5432 refused"),
        ("event 12345678-1234-1234-1234-123456789012 trace 0af7651916cd43dd8448eb211c80319c",
         "event 12345678-1234-1234-1234-123456789012 trace 0af7651916cd43dd8448eb211c80319c"),
        ("amount 1500.00 over 12345 in 3 tranches, version 1.2.3", "amount 1500.00 over 12345 in 3 tranches, version 1.2.3"),
        ("", ""),
    ],
)
def test_scrub(text, scrubbed):
    assert scrub(text) == scrubbed
    assert scrub(scrubbed) == scrubbed  # idempotent: scrubbing twice changes nothing more


def test_describe_exception_names_the_type_and_scrubs_the_message():
    assert describe_exception(ValueError(f"no wallet for {PHONE}")) == "ValueError: no wallet for [phone]"
    assert describe_exception(TimeoutError()) == "TimeoutError"


def test_the_filter_scrubs_a_traceback_and_its_chain(caplog):
    logger = logging.getLogger("test.privacy.filter")
    logger.addFilter(ScrubExceptionText())
    try:
        try:
            raise KeyError(PHONE)
        except KeyError as inner:
            raise RuntimeError(f"lookup failed for awa@example.org ({PHONE})") from inner
    except RuntimeError:
        with caplog.at_level(logging.INFO, logger="test.privacy.filter"):
            logger.exception("it failed")
    assert "Traceback" in caplog.text and "RuntimeError" in caplog.text and "KeyError" in caplog.text
    assert "[phone]" in caplog.text and "[email]" in caplog.text
    assert not PHONE_DIGITS.search(caplog.text) and "awa@" not in caplog.text


# --- the batch consumer on a real Postgres ---------------------------------------------------------

TOPIC = "test.privacy.v1"


@pytest.fixture(scope="module")
async def pool(infra, tmp_path_factory):
    async with scratch_pool(infra.database_url, "privacy", tmp_path_factory.mktemp("no-service-migrations"),
                            max_size=3, setup_sql="CREATE TABLE people (n int NOT NULL, phone text NOT NULL "
                            "UNIQUE, age int CHECK (age >= 0))") as pool:
        yield pool


@pytest.fixture
async def db(pool):
    await pool.execute("TRUNCATE inbox, outbox, people")
    return pool


def record(offset: int, value: bytes) -> ConsumerRecord:
    return ConsumerRecord(TOPIC, 0, offset, 1_700_000_000_000, 0, b"CASE-1", value, None, 6, len(value), ())


async def register_people(conn: asyncpg.Connection, records) -> None:
    """Each record: `<phone>` or `<phone>;<age>`; the phone is unique, the age not negative."""
    verdicts = await inbox.claim(conn, [(f"test:{r.topic}", str(r.offset), None) for r in records])
    for r, verdict in zip(records, verdicts, strict=True):
        if verdict is inbox.Verdict.APPLY:
            phone, _, age = r.value.decode().partition(";")
            await conn.execute("INSERT INTO people (n, phone, age) VALUES ($1, $2, $3)",
                               r.offset, phone, int(age) if age else None)


async def dead_letter_messages(pool) -> list[bytes]:
    rows = await pool.fetch("SELECT headers FROM outbox ORDER BY seq")
    return [dict(outbox.decode_headers(r["headers"]))["reintegra-dlq-message"] for r in rows]


async def test_a_unique_violation_quoting_a_phone_is_scrubbed_in_the_dead_letter_and_the_log(db, caplog):
    records = [record(1, PHONE.encode()), record(2, b"+2250505050505"), record(3, PHONE.encode())]
    consumer = BatchConsumer(lambda: db, Settings(), register_people, "test")

    # The message Postgres really sends for the duplicate: the phone is in it.
    async with db.acquire() as conn:
        with pytest.raises(asyncpg.UniqueViolationError) as caught:
            async with conn.transaction():
                await register_people(conn, records)
    assert PHONE in str(caught.value)

    with caplog.at_level(logging.INFO, logger="reintegra.consumer"):
        await consumer.process(records)

    assert await db.fetchval("SELECT count(*) FROM people") == 2  # the others applied
    [message] = await dead_letter_messages(db)
    assert message.startswith(b"UniqueViolationError: duplicate key value violates unique constraint")
    assert b"Key (phone)=([redacted]) already exists" in message
    assert not PHONE_DIGITS.search(message.decode())
    [dead] = await db.fetch("SELECT value FROM outbox")
    assert bytes(dead["value"]) == PHONE.encode()  # the original bytes stay, for whoever fixes it

    assert "dead-lettering test.privacy.v1[0]@3" in caplog.text and "[redacted]" in caplog.text
    assert "isolating the failing record" in caplog.text
    assert not PHONE_DIGITS.search(caplog.text)


async def test_a_check_violation_and_a_refused_argument_are_scrubbed(db, caplog):
    async def handler(conn, records):
        for r in records:
            if r.value == b"as-int":  # asyncpg refuses the argument before sending it
                await conn.execute("INSERT INTO people (n, phone, age) VALUES ($1, $2, $3)", 0, "x", PHONE)
            else:
                await register_people(conn, [r])

    records = [record(1, b"+2250101010101;30"), record(2, f"{PHONE};-1".encode()), record(3, b"as-int")]
    with caplog.at_level(logging.INFO, logger="reintegra.consumer"):
        await BatchConsumer(lambda: db, Settings(), handler, "test").process(records)

    check, argument = await dead_letter_messages(db)
    assert check.startswith(b"CheckViolationError:") and b"Failing row contains ([redacted])" in check
    assert argument.startswith(b"DataError: invalid input for query argument $3: [redacted]")
    for text in (check.decode(), argument.decode(), caplog.text):
        assert not PHONE_DIGITS.search(text)


class FakeMessage:
    def __init__(self, records, *, ack_error: Exception | None = None) -> None:
        self.raw_message = tuple(records)
        self.acked = self.nacked = 0
        self.ack_error = ack_error

    async def ack(self) -> None:
        self.acked += 1
        if self.ack_error is not None:
            raise self.ack_error

    async def nack(self) -> None:
        self.nacked += 1


async def test_the_traceback_of_a_rewound_batch_is_scrubbed(db, caplog):
    async def unreachable(conn, records):
        raise TransientError(f"the gateway hung up on {PHONE} (awa@example.org)")

    settings = Settings(REINTEGRA_RETRY_ATTEMPTS=1)
    message = FakeMessage([record(1, PHONE.encode())])
    with caplog.at_level(logging.INFO, logger="reintegra.consumer"):
        await BatchConsumer(lambda: db, settings, unreachable, "test").on_batch(message)
    assert message.nacked == 1 and message.acked == 0
    assert "rewinding its partitions" in caplog.text
    assert "Traceback" in caplog.text and "TransientError: the gateway hung up on [phone] ([email])" in caplog.text
    assert not PHONE_DIGITS.search(caplog.text) and "awa@" not in caplog.text


async def test_the_traceback_of_a_failed_offset_commit_is_scrubbed(db, caplog):
    message = FakeMessage([record(1, PHONE.encode())], ack_error=RuntimeError(f"commit failed near {PHONE}"))
    with caplog.at_level(logging.INFO, logger="reintegra.consumer"):
        await BatchConsumer(lambda: db, Settings(), register_people, "test").on_batch(message)
    assert message.acked == 1
    assert "offset commit failed" in caplog.text and "RuntimeError: commit failed near [phone]" in caplog.text
    assert not PHONE_DIGITS.search(caplog.text)
