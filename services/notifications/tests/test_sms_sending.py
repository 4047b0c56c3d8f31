"""Sending SMS: the file gateway writes a notice once whatever the number of processes writing it,
refuses an invalid number for good without holding up the others; the sender claims notices under
a lease, sends with no transaction open and records only under its lease (real Postgres)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from datetime import timedelta

import pytest
from notifications import repository
from notifications.adapters.sms_gateway import (
    INVALID_NUMBER,
    FileSmsGateway,
    SendResult,
    Sms,
    SmsGatewayUnavailable,
)
from notifications.repository import Recorded
from notifications.sender import SenderSettings, send_due
from notifications_support import (
    LINE,
    MIGRATIONS,
    PHONE,
    REJECTED_PHONE,
    add_notices,
    notice,
    notices_schema,
    pool_for,
    sms_lines,
    statuses,
    written_ids,
)

CASE = "MA-2026-000123"


def sms(message_id: str, phone: str = PHONE, text: str = "Paiement reçu : 720,00 EUR.") -> Sms:
    return Sms(message_id=message_id, to=phone, language="fr", case_id=CASE, text=text)


# --- the file gateway: once per notice id, across processes ----------------------------------------


async def test_two_gateways_on_one_file_write_a_notice_once(tmp_path):
    path = tmp_path / "sms" / "outbox.log"
    # Two instances of the service, each started before the other wrote anything.
    first, second = FileSmsGateway(path), FileSmsGateway(path)
    assert await first.send([sms("n-1"), sms("n-2")]) == {"n-1": SendResult.sent(), "n-2": SendResult.sent()}
    # The second one is asked for the same notices (it took them over after a crash) and a new one.
    answers = await second.send([sms("n-1"), sms("n-2"), sms("n-3")])
    assert answers == {"n-1": SendResult.sent(), "n-2": SendResult.sent(), "n-3": SendResult.sent()}
    await first.send([sms("n-3"), sms("n-4")])
    assert written_ids(path) == {"n-1": 1, "n-2": 1, "n-3": 1, "n-4": 1}


async def test_gateways_sending_the_same_notices_at_the_same_time_write_each_once(tmp_path):
    path = tmp_path / "outbox.log"
    gateways = [FileSmsGateway(path) for _ in range(4)]
    ids = [f"n-{i:03d}" for i in range(200)]

    async def send_all(gateway: FileSmsGateway, order: list[str]) -> None:
        for start in range(0, len(order), 10):
            await gateway.send([sms(i) for i in order[start:start + 10]])

    # Each in its own order, the calls interleaved on threads (asyncio.to_thread inside send).
    await asyncio.gather(*(send_all(g, ids[k * 50:] + ids[:k * 50]) for k, g in enumerate(gateways)))
    assert written_ids(path) == {i: 1 for i in ids}


SEND_FROM_A_PROCESS = textwrap.dedent("""
    import asyncio, sys
    from pathlib import Path
    from notifications.adapters.sms_gateway import FileSmsGateway, Sms

    async def main(path, offset):
        gateway = FileSmsGateway(Path(path))
        ids = [f"n-{i:03d}" for i in range(300)]
        ids = ids[offset:] + ids[:offset]
        for start in range(0, len(ids), 7):
            answers = await gateway.send([Sms(i, "+2250701020304", "fr", "MA-2026-000123", "Bonjour.")
                                          for i in ids[start:start + 7]])
            assert all(a.outcome == "sent" for a in answers.values()), answers

    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
""")


def test_processes_sending_the_same_notices_at_the_same_time_write_each_once(tmp_path):
    path = tmp_path / "outbox.log"
    processes = [subprocess.Popen([sys.executable, "-c", SEND_FROM_A_PROCESS, str(path), str(offset)])
                 for offset in (0, 100, 200)]
    assert [p.wait(timeout=60) for p in processes] == [0, 0, 0]
    assert written_ids(path) == {f"n-{i:03d}": 1 for i in range(300)}


async def test_a_rejected_number_is_refused_for_good_and_the_others_are_sent(tmp_path):
    path = tmp_path / "outbox.log"
    gateway = FileSmsGateway(path)
    answers = await gateway.send([sms("n-1"), sms("n-2", phone=REJECTED_PHONE), sms("n-3")])
    assert answers == {"n-1": SendResult.sent(), "n-2": SendResult.rejected(INVALID_NUMBER),
                       "n-3": SendResult.sent()}
    assert written_ids(path) == {"n-1": 1, "n-3": 1}
    # Asked again, it says the same: nothing about the number has changed.
    assert (await gateway.send([sms("n-2", phone=REJECTED_PHONE)]))["n-2"] == SendResult.rejected(INVALID_NUMBER)
    assert all(REJECTED_PHONE not in line for line in sms_lines(path))


async def test_the_line_format_is_unchanged(tmp_path):
    path = tmp_path / "outbox.log"
    await FileSmsGateway(path).send([sms("n-1", text="مرحبا  deux espaces")])
    [line] = sms_lines(path)
    match = LINE.match(line)
    assert match is not None
    assert match.groups() == ("n-1", "+225•••••••304", "fr", CASE, "مرحبا  deux espaces")


async def test_a_line_torn_by_a_killed_writer_does_not_swallow_the_next_one(tmp_path):
    path = tmp_path / "outbox.log"
    await FileSmsGateway(path).send([sms("n-1")])
    with path.open("a", encoding="utf-8") as f:
        f.write("2026-01-01T00:00:00Z  id=n-2  to=+225•••••••304  lang=fr  ca")  # killed mid-write
    gateway = FileSmsGateway(path)
    await gateway.send([sms("n-2"), sms("n-3")])  # n-2 counts as written: it is in the file
    lines = sms_lines(path)
    assert [line.split("  ")[1] for line in lines] == ["id=n-1", "id=n-2", "id=n-3"]
    assert LINE.match(lines[-1])


# --- the sender against a real Postgres, with a gateway that answers as told -------------------------


class ScriptedGateway:
    """Answers each message as `script` says (by notice id; default: sent); `down`: the call fails."""

    def __init__(self, script: Mapping[str, SendResult] | None = None) -> None:
        self.script = dict(script or {})
        self.down = False
        self.calls: list[list[str]] = []

    async def send(self, messages: list[Sms]) -> dict[str, SendResult]:
        self.calls.append([m.message_id for m in messages])
        if self.down:
            raise SmsGatewayUnavailable("connection refused")
        return {m.message_id: self.script.get(m.message_id, SendResult.sent()) for m in messages}


FAST = SenderSettings(batch_size=50, lease_s=30, max_attempts=20, retry_base_s=60, retry_max_s=600)


async def test_a_rejected_notice_ends_rejected_and_the_rest_of_the_batch_is_sent(pool, tmp_path):
    await add_notices(pool, [notice("n-1"), notice("n-2", phone=REJECTED_PHONE), notice("n-3")])
    assert await send_due(pool, FileSmsGateway(tmp_path / "outbox.log"), FAST) == 3
    rows = await statuses(pool)
    assert {i: (r["status"], r["last_error"]) for i, r in rows.items()} == {
        "n-1": ("sent", None), "n-2": ("rejected", INVALID_NUMBER), "n-3": ("sent", None)}
    assert rows["n-1"]["sent_at"] is not None and rows["n-2"]["sent_at"] is None
    await add_notices(pool, [notice("n-4")])  # the next batch is not held up by the rejected one
    assert await send_due(pool, FileSmsGateway(tmp_path / "outbox.log"), FAST) == 1
    assert await send_due(pool, FileSmsGateway(tmp_path / "outbox.log"), FAST) == 0
    assert (await statuses(pool))["n-4"]["status"] == "sent"
    assert written_ids(tmp_path / "outbox.log") == {"n-1": 1, "n-3": 1, "n-4": 1}


async def test_a_notice_the_gateway_did_not_take_waits_its_backoff_without_holding_up_others(pool):
    gateway = ScriptedGateway({"n-2": SendResult.retry("throttled")})
    await add_notices(pool, [notice("n-1"), notice("n-2"), notice("n-3")])
    assert await send_due(pool, gateway, FAST) == 3
    rows = await statuses(pool)
    assert {i: r["status"] for i, r in rows.items()} == {"n-1": "sent", "n-2": "pending", "n-3": "sent"}
    n2 = rows["n-2"]
    assert (n2["attempts"], n2["last_error"], n2["lease_token"]) == (1, "throttled", None)
    now = await pool.fetchval("SELECT now()")
    assert timedelta(seconds=55) < n2["next_attempt_at"] - now <= timedelta(seconds=60)
    await add_notices(pool, [notice("n-4")])
    assert await send_due(pool, gateway, FAST) == 1  # n-4 only: n-2 waits its turn
    assert gateway.calls[-1] == ["n-4"]
    await pool.execute("UPDATE notices SET next_attempt_at = now() WHERE notice_id = 'n-2'")  # time passes
    gateway.script.clear()
    assert await send_due(pool, gateway, FAST) == 1
    n2 = (await statuses(pool))["n-2"]
    assert (n2["status"], n2["attempts"]) == ("sent", 2)


async def test_the_gateway_down_backs_off_and_fails_a_notice_after_max_attempts_never_dropping_it(pool):
    settings = SenderSettings(batch_size=50, lease_s=30, max_attempts=3, retry_base_s=0, retry_max_s=0)
    gateway = ScriptedGateway()
    gateway.down = True
    await add_notices(pool, [notice("n-1")])
    for attempt in (1, 2):
        assert await send_due(pool, gateway, settings) == 1
        row = (await statuses(pool))["n-1"]
        assert (row["status"], row["attempts"]) == ("pending", attempt)
        assert row["last_error"] == "SmsGatewayUnavailable: connection refused"
    assert await send_due(pool, gateway, settings) == 1
    row = (await statuses(pool))["n-1"]
    assert row["status"] == "failed"
    assert row["last_error"] == "SmsGatewayUnavailable: connection refused (after 3 attempts)"
    assert await send_due(pool, gateway, settings) == 0
    gateway.down = False  # back up: new notices go out; the failed one stays for a person to see
    await add_notices(pool, [notice("n-2")])
    assert await send_due(pool, gateway, settings) == 1
    assert {i: r["status"] for i, r in (await statuses(pool)).items()} == {"n-1": "failed", "n-2": "sent"}


async def test_a_claim_leases_a_notice_and_only_that_lease_records_its_result(pool):
    await add_notices(pool, [notice("n-1")])
    async with pool.acquire() as conn:
        [first] = await repository.claim_due(conn, 10, 30, 20)
        assert await repository.claim_due(conn, 10, 30, 20) == []  # leased: nobody else takes it
    row = (await statuses(pool))["n-1"]
    assert (row["status"], row["attempts"], row["lease_token"]) == ("sending", 1, first["lease_token"])
    now = await pool.fetchval("SELECT now()")
    assert timedelta(seconds=25) < row["lease_until"] - now <= timedelta(seconds=30)

    await pool.execute("UPDATE notices SET lease_until = now(), next_attempt_at = now()")  # the lease ends
    async with pool.acquire() as conn:
        [second] = await repository.claim_due(conn, 10, 30, 20)
        assert second["lease_token"] != first["lease_token"] and second["attempts"] == 2
        # The first sender comes back late: its lease is gone, it records nothing.
        assert await repository.record_results(conn, [Recorded("n-1", first["lease_token"], "rejected", "x")]) \
            == set()
        row = (await statuses(pool))["n-1"]
        assert (row["status"], row["last_error"]) == ("sending", "lease expired")
        assert await repository.record_results(conn, [Recorded("n-1", second["lease_token"], "sent")]) \
            == {"n-1"}
        assert await repository.record_results(conn, [Recorded("n-1", second["lease_token"], "pending",
                                                               "late", 1.0)]) == set()  # once only
    row = (await statuses(pool))["n-1"]
    assert (row["status"], row["lease_token"], row["lease_until"]) == ("sent", None, None)


async def test_a_notice_whose_senders_keep_dying_ends_failed_after_max_attempts(pool):
    await add_notices(pool, [notice("n-1")])
    async with pool.acquire() as conn:
        for _ in range(2):  # claimed, and the sender dies before recording (lease of 0 s)
            assert len(await repository.claim_due(conn, 10, 0, 2)) == 1
        assert await repository.claim_due(conn, 10, 0, 2) == []
    row = (await statuses(pool))["n-1"]
    assert (row["status"], row["attempts"]) == ("failed", 2)
    assert "lease expired 2 time(s)" in row["last_error"]


async def test_a_notice_without_a_number_is_never_claimed(pool):
    await add_notices(pool, [notice("n-1", phone=None)])
    assert await send_due(pool, ScriptedGateway(), FAST) == 0
    assert (await statuses(pool))["n-1"]["status"] == "undeliverable"


async def test_notices_stored_before_the_migration_are_still_sent(database_url, tmp_path):
    first_version = tmp_path / "migrations"
    first_version.mkdir()
    (first_version / "0100.notifications.sql").write_bytes((MIGRATIONS / "0100.notifications.sql").read_bytes())
    async with notices_schema(database_url, first_version) as schema:
        pool = await pool_for(database_url, schema)
        try:
            await pool.execute(
                "INSERT INTO notices (notice_id, case_id, kind, language, phone, body, status, sent_at) VALUES "
                "('old-pending', $1, 'payment_settled', 'fr', $2, 'Bonjour.', 'pending', NULL), "
                "('old-sent', $1, 'payment_settled', 'fr', $2, 'Bonjour.', 'sent', now())", CASE, PHONE)
        finally:
            await pool.close()
        from reintegra.db import apply_migrations

        apply_migrations(database_url, schema, MIGRATIONS)
        pool = await pool_for(database_url, schema)
        try:
            gateway = ScriptedGateway()
            assert await send_due(pool, gateway, FAST) == 1
            assert gateway.calls == [["old-pending"]]
            assert {i: (r["status"], r["attempts"]) for i, r in (await statuses(pool)).items()} == {
                "old-pending": ("sent", 1), "old-sent": ("sent", 0)}
        finally:
            await pool.close()


@pytest.mark.parametrize("status", ["queued", "SENT"])
async def test_an_unknown_status_is_refused_by_the_schema(pool, status):
    import asyncpg

    with pytest.raises(asyncpg.CheckViolationError):
        await pool.execute(
            "INSERT INTO notices (notice_id, case_id, kind, language, phone, body, status) "
            "VALUES ('n-1', $1, 'k', 'fr', $2, 'b', $3)", CASE, PHONE, status)
