"""A service killed with SIGKILL in the middle of the stream: no case lost, nothing applied twice."""

from __future__ import annotations

import signal

import pytest
from support import cash_case_records, publish, query, sms_lines, wait_for_sms, watch

CASES = 120


@pytest.mark.parametrize("victim", ["intake", "eligibility", "disbursement", "notifications"])
async def test_sigkill_mid_stream_loses_nothing_and_applies_nothing_twice(stack, run_id, victim):
    prefix = f"KILL-{victim[:4].upper()}-{run_id}"
    cases = [f"{prefix}-{i:04d}" for i in range(CASES)]
    records = [r for case_id in cases for r in cash_case_records(case_id)]
    half = len(records) // 2
    watcher = await watch(stack.bootstrap_servers, prefix, {c: "grant.completed" for c in cases})
    try:
        await publish(stack.bootstrap_servers, records[:half])
        # Let the first half get going, then kill the service without any chance to clean up.
        await watcher.wait_until(lambda: len(watcher.observed.last_status) >= 10, 30)
        stack.kill_service(victim, signal.SIGKILL)
        await publish(stack.bootstrap_servers, records[half:])
        stack.restart_service(victim)
        done = await watcher.wait_until(lambda: watcher.settled_count() == len(cases), 180)
        assert done, {c: watcher.observed.last_status.get(c) for c in cases if
                      watcher.observed.last_status.get(c) != "grant.completed"}
        await watcher.wait_until(lambda: False, 2)
    finally:
        await watcher.stop()

    for case_id in cases:
        ids = watcher.observed.status_ids[case_id]
        for status in ("case.accepted", "eligibility.approved", "tranche.released", "payment.sent",
                       "payment.settled", "grant.completed"):
            assert len(ids[status]) == 1, f"{case_id} {status}: {len(ids[status])} distinct events"
    tranches = await query(stack.database_url,
                           "SELECT status, count(*) AS n FROM disbursement.tranches WHERE case_id LIKE $1 GROUP BY status",
                           prefix + "%")
    assert {r["status"]: r["n"] for r in tranches} == {"settled": CASES}
    lines = await wait_for_sms(stack.state_dir, prefix, 2 * CASES)
    assert len(lines) == 2 * CASES
    notices = await query(stack.database_url,
                          "SELECT count(*) AS n FROM notifications.notices WHERE case_id LIKE $1", prefix + "%")
    assert notices[0]["n"] == 2 * CASES
    assert len(sms_lines(stack.state_dir, prefix)) == 2 * CASES
