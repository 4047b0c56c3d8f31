"""``reintegra payments`` as finance and SREs run it (a subprocess on the session's Postgres)."""

from __future__ import annotations

import json
import uuid

import asyncpg
from test_rates_cli import reintegra


async def test_exceptions_are_listed_and_one_payment_is_shown_with_its_history(infra) -> None:
    db = infra.database_url
    assert reintegra("payments", "exceptions", database_url=db).returncode == 0  # creates the schema if needed
    reference = f"RG-CLI-{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(db)
    try:
        await conn.execute(
            "INSERT INTO disbursement.payment_exceptions (kind, provider, reference, case_id, details, dedupe_key) "
            "VALUES ('amount_mismatch', 'wave_sn', $1, 'CASE-CLI', $2::jsonb, $1)",
            reference, json.dumps({"message": "the provider settled XOF 14,900 where XOF 15,000 was instructed"}))
        await conn.execute(
            "INSERT INTO disbursement.provider_events (provider, transfer_id, status, reference, amount_minor, "
            "currency, via, outcome, applied_at) VALUES ('wave_sn', 'FT-1', 'settled', $1, 14900, 'XOF', "
            "'callback', 'exception:amount_mismatch', now())", reference)
    finally:
        await conn.close()

    listed = reintegra("payments", "exceptions", "--kind", "amount_mismatch", database_url=db)
    assert listed.returncode == 0, listed.stderr
    assert reference in listed.stdout and "XOF 14,900" in listed.stdout

    shown = reintegra("payments", "show", reference, database_url=db)
    assert shown.returncode == 0, shown.stderr
    assert "via callback: settled FT-1 amount 14900" in shown.stdout
    assert "exception amount_mismatch" in shown.stdout

    missing = reintegra("payments", "show", "RG-NOWHERE", database_url=db)
    assert missing.returncode == 2 and "no payment 'RG-NOWHERE'" in missing.stderr
