"""``reintegra finance`` as a cron job runs it (a subprocess on a database of its own): a folder of
statements imported file by file (a malformed one refused, naming it and its line, the others
imported), imported again changing nothing, matched with an exit code that says whether there are
exceptions, and the queue listed."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from provider_sandbox import statements as sandbox_statements
from provider_sandbox.catalogue import load_catalogue
from provider_sandbox.store import Transfer
from test_rates_cli import reintegra

TODAY = date.today()


@pytest.fixture
async def database_url(infra):
    name = f"finance_cli_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(infra.database_url)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    return urlunsplit(urlsplit(infra.database_url)._replace(path=f"/{name}"))


def settled(reference: str, amount_minor: int) -> Transfer:
    at = datetime.combine(TODAY, time(10), UTC).timestamp()
    return Transfer(transfer_id=f"wave-{uuid.uuid4().hex}", provider="wave_sn", reference=reference,
                    provider_reference=reference, amount_minor=amount_minor, currency="XOF",
                    counterparty="221770000000", counterparty_name=None, request={}, callback_url=None,
                    status="settled", failure_reason=None, settled_amount_minor=amount_minor, planned_failure=None,
                    planned_delta_minor=0, pickup_code=None, created_at=at, updated_at=at, settled_at=at)


async def test_a_folder_of_statements_is_imported_matched_and_reported(database_url, tmp_path) -> None:
    assert reintegra("finance", "exceptions", database_url=database_url).returncode == 0  # migrates
    payments = [("RG-" + uuid.uuid4().hex[:24], 150_000), ("RG-" + uuid.uuid4().hex[:24], 98_500)]
    conn = await asyncpg.connect(database_url)
    try:
        for reference, amount in payments:
            await conn.execute(
                "INSERT INTO finance.payments (reference, case_id, modality, provider, programme, amount_minor, "
                "currency, status, sent_at, settled_at, last_event_at) VALUES ($1, 'MA-2026-000001', 'cash', "
                "'wave_sn', 'AVRR-MA-SN-2026', $2, 'XOF', 'settled', now(), now(), now())", reference, amount)
    finally:
        await conn.close()
    provider = load_catalogue()["wave_sn"]
    statement = sandbox_statements.Statement(provider, TODAY, provider.float_minor,
                                             [settled(r, a) for r, a in payments])
    folder = tmp_path / "statements" / "wave_sn"
    folder.mkdir(parents=True)
    for fmt in ("csv", "camt053.xml", "mt940"):
        (folder / f"{TODAY}.{fmt}").write_bytes(sandbox_statements.render(statement, fmt))
    (folder / "broken.csv").write_text("booking_date,value_date,transfer_id,reference,counterparty,amount,currency,"
                                       "direction,status\n2026-12-01,2026-12-01,t,RG-x,c,ten,XOF,DBIT,BOOK\n")

    imported = reintegra("finance", "import", str(tmp_path / "statements"), database_url=database_url)
    assert imported.returncode == 2, imported.stdout + imported.stderr
    assert "Traceback" not in imported.stderr
    assert "broken.csv: refused, nothing imported: line 2, column amount: 'ten' is not an amount" in imported.stderr
    # The day's three formats are the same two lines: the first file read brings them, the others nothing.
    lines = sorted(line.rsplit("/", 1)[-1] for line in imported.stdout.splitlines())
    assert lines == [f"{TODAY}.camt053.xml: wave_sn camt053, 2 lines, 2 new (statement 1)",
                     f"{TODAY}.csv: wave_sn csv, 2 lines, 0 new (statement 2)",
                     f"{TODAY}.mt940: wave_sn mt940, 2 lines, 0 new (statement 3)"]

    again = reintegra("finance", "import", str(folder / f"{TODAY}.csv"), database_url=database_url)
    assert again.returncode == 0 and "already imported" in again.stdout

    matched = reintegra("finance", "match", "--provider", "wave_sn", database_url=database_url)
    assert matched.returncode == 0, matched.stdout + matched.stderr
    assert "matched 2" in matched.stdout and "0 exception(s)" in matched.stdout

    late = reintegra("finance", "match", "--as-of", "not-a-day", database_url=database_url)
    assert late.returncode == 2 and "--as-of 'not-a-day' is not a date" in late.stderr

    stranger = tmp_path / "other" / "wave_sn"
    stranger.mkdir(parents=True)
    (stranger / "extra.csv").write_text("booking_date,value_date,transfer_id,reference,counterparty,amount,currency,"
                                        f"direction,status\n{TODAY},{TODAY},wave-x,RG-{'f' * 24},c,5000,XOF,DBIT,BOOK\n")
    assert reintegra("finance", "import", str(stranger), database_url=database_url).returncode == 0
    found = reintegra("finance", "match", database_url=database_url)
    assert found.returncode == 3 and "unexpected_in_statement 1" in found.stdout
    listed = reintegra("finance", "exceptions", "--state", "open", database_url=database_url)
    assert listed.returncode == 0 and "unexpected_in_statement" in listed.stdout and f"RG-{'f' * 24}" in listed.stdout
