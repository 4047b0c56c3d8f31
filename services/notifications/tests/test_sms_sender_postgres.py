"""Two instances of the notifications sender against one real Postgres and one SMS outbox: each
notice is sent exactly once, a sender killed after the gateway took its notices is made good by
the other once the lease expires, and a rejected number ends `rejected` without stopping the rest."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap

from notifications.adapters.sms_gateway import INVALID_NUMBER, FileSmsGateway, SendResult, Sms
from notifications.sender import SenderSettings, send_due
from notifications_support import REJECTED_PHONE, add_notices, notice, notices_schema, pool_for, statuses, written_ids


class SlowGateway(FileSmsGateway):
    """The file gateway taking a few milliseconds per call, as a remote one would: the two senders'
    calls overlap."""

    def __init__(self, path, name: str) -> None:
        super().__init__(path)
        self.name = name
        self.sent: list[str] = []

    async def send(self, messages: list[Sms]) -> dict[str, SendResult]:
        await asyncio.sleep(0.005)
        answers = await super().send(messages)
        self.sent += [m.message_id for m in messages]
        return answers


async def run_until_settled(pool, gateway, settings, timeout_s: float = 60) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        if await send_due(pool, gateway, settings) == 0:
            left = await pool.fetchval("SELECT count(*) FROM notices WHERE status IN ('pending', 'sending')")
            if left == 0:
                return
            await asyncio.sleep(0.01)
    raise AssertionError("notices still waiting to be sent")


async def test_two_senders_sending_at_once_send_each_notice_exactly_once(database_url, tmp_path):
    outbox = tmp_path / "sms" / "outbox.log"
    ids = [f"N-{i:04d}" for i in range(400)]
    settings = SenderSettings(batch_size=20, lease_s=30)
    async with notices_schema(database_url) as schema:
        pools = [await pool_for(database_url, schema) for _ in range(2)]  # two instances, two pools
        try:
            await add_notices(pools[0], [notice(i, case_id=f"CASE-{i}") for i in ids])
            a, b = SlowGateway(outbox, "a"), SlowGateway(outbox, "b")
            await asyncio.gather(run_until_settled(pools[0], a, settings), run_until_settled(pools[1], b, settings))
            assert a.sent and b.sent, "both senders took part"
            assert sorted(a.sent + b.sent) == ids, "no notice was handed to the gateway twice"
            rows = await statuses(pools[0])
            assert {r["status"] for r in rows.values()} == {"sent"}
            assert {r["attempts"] for r in rows.values()} == {1}
            assert written_ids(outbox) == {i: 1 for i in ids}
        finally:
            for pool in pools:
                await pool.close()


async def test_a_sender_that_stalls_after_the_gateway_call_is_made_good_once_by_the_other(database_url, tmp_path):
    outbox = tmp_path / "outbox.log"
    ids = [f"N-{i:02d}" for i in range(10)]
    async with notices_schema(database_url) as schema:
        first, second = await pool_for(database_url, schema), await pool_for(database_url, schema)
        try:
            await add_notices(first, [notice(i) for i in ids])
            stalled = FileSmsGateway(outbox)

            class StallsAfterSending:
                """Sends, then never returns: the sender is stuck (or dead) before recording."""

                async def send(self, messages):
                    await stalled.send(messages)
                    await asyncio.Event().wait()

            stuck = asyncio.create_task(send_due(first, StallsAfterSending(), SenderSettings(lease_s=1.0)))
            while written_ids(outbox) != {i: 1 for i in ids}:
                await asyncio.sleep(0.01)
            other = FileSmsGateway(outbox)
            settings = SenderSettings(lease_s=30)
            assert await send_due(second, other, settings) == 0  # leased: the other sender waits
            assert {r["status"] for r in (await statuses(second)).values()} == {"sending"}
            await asyncio.sleep(1.2)  # the lease expires
            await run_until_settled(second, other, settings)
            stuck.cancel()
            rows = await statuses(second)
            assert {(r["status"], r["attempts"]) for r in rows.values()} == {("sent", 2)}
            assert written_ids(outbox) == {i: 1 for i in ids}
        finally:
            await first.close()
            await second.close()


CRASHING_SENDER = textwrap.dedent("""
    import asyncio, sys
    from pathlib import Path
    from notifications.adapters.sms_gateway import FileSmsGateway
    from notifications.sender import SenderSettings, send_due
    from reintegra.db import create_pool

    async def main(database_url, schema, outbox):
        pool = await create_pool(database_url, schema, max_size=1)
        await send_due(pool, FileSmsGateway(Path(outbox)), SenderSettings(lease_s=2.0))

    asyncio.run(main(*sys.argv[1:]))
""")


async def test_a_sender_killed_after_the_gateway_call_leaves_exactly_one_sms_per_notice(database_url, tmp_path):
    outbox = tmp_path / "outbox.log"
    ids = [f"N-{i:02d}" for i in range(10)]
    async with notices_schema(database_url) as schema:
        pool = await pool_for(database_url, schema)
        try:
            await add_notices(pool, [notice(i, case_id="KILL-ME") for i in ids])
            # Another process, SIGKILLed at the crash point: the gateway took the notices, nothing recorded.
            env = {**os.environ, "REINTEGRA_CRASH_AT": "sms.after_send:KILL-"}
            env.pop("REINTEGRA_CRASH_ONCE_DIR", None)
            crashed = await asyncio.to_thread(
                subprocess.run, [sys.executable, "-c", CRASHING_SENDER, database_url, schema, str(outbox)],
                env=env, timeout=60)
            assert crashed.returncode == -signal.SIGKILL
            assert written_ids(outbox) == {i: 1 for i in ids}
            assert {r["status"] for r in (await statuses(pool)).values()} == {"sending"}

            # The surviving instance takes them over once the dead one's lease (2 s) has expired.
            survivor = FileSmsGateway(outbox)
            await run_until_settled(pool, survivor, SenderSettings(lease_s=30), timeout_s=30)
            rows = await statuses(pool)
            assert {(r["status"], r["attempts"], r["last_error"]) for r in rows.values()} == {
                ("sent", 2, "lease expired")}
            assert written_ids(outbox) == {i: 1 for i in ids}
        finally:
            await pool.close()


async def test_a_rejected_number_ends_rejected_and_the_next_notices_are_sent(database_url, tmp_path):
    outbox = tmp_path / "outbox.log"
    settings = SenderSettings(batch_size=5, lease_s=30)
    async with notices_schema(database_url) as schema:
        pools = [await pool_for(database_url, schema) for _ in range(2)]
        try:
            await add_notices(pools[0], [notice("N-00", phone=REJECTED_PHONE)])
            await add_notices(pools[0], [notice(f"N-{i:02d}") for i in range(1, 13)])
            gateways = [FileSmsGateway(outbox), FileSmsGateway(outbox)]
            await asyncio.gather(*(run_until_settled(p, g, settings) for p, g in zip(pools, gateways, strict=True)))
            rows = await statuses(pools[0])
            assert (rows["N-00"]["status"], rows["N-00"]["last_error"]) == ("rejected", INVALID_NUMBER)
            assert {i: r["status"] for i, r in rows.items() if i != "N-00"} == {f"N-{i:02d}": "sent"
                                                                               for i in range(1, 13)}
            # Later notices are not held up either.
            await add_notices(pools[1], [notice("N-13"), notice("N-14", phone=REJECTED_PHONE), notice("N-15")])
            await run_until_settled(pools[1], gateways[1], settings)
            rows = await statuses(pools[0])
            assert [rows[i]["status"] for i in ("N-13", "N-14", "N-15")] == ["sent", "rejected", "sent"]
            assert written_ids(outbox) == {f"N-{i:02d}": 1 for i in range(1, 16) if i != 14}
        finally:
            for pool in pools:
                await pool.close()
