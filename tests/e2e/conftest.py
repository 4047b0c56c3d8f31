"""Every end-to-end test ends with `reintegra ledger check`'s invariants holding on the ledger the
running services wrote (the same checks the command runs, on one consistent snapshot)."""

from __future__ import annotations

import asyncpg
import pytest


@pytest.fixture(autouse=True)
async def ledger_stays_balanced(request):
    yield
    if "stack" not in request.fixturenames:
        return
    from disbursement.ledger_check import check_ledger, format_report

    stack = request.getfixturevalue("stack")
    conn = await asyncpg.connect(stack.database_url)
    try:
        if not await conn.fetchval("SELECT to_regclass('disbursement.ledger_transfers') IS NOT NULL"):
            return
        report = await check_ledger(conn)
    finally:
        await conn.close()
    assert report.ok, "the ledger check failed after this test:\n" + format_report(report)
