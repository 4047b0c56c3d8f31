"""Daily statements: CSV, camt.053 (parsed with pycamt) and MT940 (parsed with mt-940) agree with
the transfers the sandbox settled that day, between balances that chain from one day to the next."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import mt940
from provider_sandbox.context import SANDBOX
from pycamt.parser import Camt053Parser
from sandbox_kit import (
    BANK,
    MOMO,
    PICKUP,
    bank_body,
    bank_create,
    momo_body,
    momo_create,
    momo_token,
    pickup_body,
    pickup_create,
    running,
    set_faults,
    transfers,
    wait_settled,
)

FLOAT = 1_000_000_000
HEADER = "booking_date,value_date,transfer_id,reference,counterparty,amount,currency,direction,status"


def _reference() -> str:
    return "RG-" + uuid.uuid4().hex[:24]  # as long as disbursement's: too long for MT940's 16x field


async def _statement(client, provider: str, day: str, fmt: str) -> bytes:
    response = await client.get(f"/admin/statements/{provider}/{day}.{fmt}")
    assert response.status == 200, await response.text()
    return await response.read()


def _check(csv_bytes: bytes, camt: bytes, mt: bytes, settled: list[dict], opening: int, exponent: int) -> None:
    unit = Decimal(10) ** exponent
    total = sum(t["settled_amount_minor"] for t in settled)
    by_id = {t["transfer_id"]: t for t in settled}

    lines = csv_bytes.decode().splitlines()
    assert lines[0] == HEADER
    rows = list(csv.DictReader(io.StringIO(csv_bytes.decode())))
    assert {r["transfer_id"]: (r["reference"], Decimal(r["amount"]) * unit) for r in rows} == {
        i: (t["reference"], t["settled_amount_minor"]) for i, t in by_id.items()}
    assert {(r["direction"], r["status"]) for r in rows} <= {("DBIT", "BOOK")}

    parser = Camt053Parser(camt)
    assert parser.version == "camt.053.001.02"
    entries = parser.get_transactions() if settled else []
    assert {e["TransactionID"]: (e["EndToEndId"], Decimal(e["Amount"]) * unit) for e in entries} == {
        i: (t["reference"], t["settled_amount_minor"]) for i, t in by_id.items()}
    assert all(e["CreditDebitIndicator"] == "DBIT" and e["Status"] == "BOOK" for e in entries)
    [info] = parser.get_statement_info()
    assert Decimal(info["OpeningBalance"]) * unit == opening
    assert Decimal(info["ClosingBalance"]) * unit == opening - total

    statement = mt940.models.Transactions()
    statement.parse(mt.decode())
    assert statement.data["final_opening_balance"].amount.amount * unit == opening
    assert statement.data["final_closing_balance"].amount.amount * unit == opening - total
    lines_61 = [t.data for t in statement]
    assert sum(t["amount"].amount for t in lines_61) * unit == -total
    assert {t["bank_reference"]: t["extra_details"] for t in lines_61} == {
        i: t["reference"] for i, t in by_id.items()}
    assert all(f"/TXID/{t['bank_reference']}" in t["transaction_details"] for t in lines_61)


async def test_statements_match_the_days_settled_transfers(client):
    token = await momo_token(client)
    await set_faults(client, BANK, closed_accounts=["CI93CI0080111301134291200589"])
    await set_faults(client, PICKUP, settled_amount_delta_minor=-500)
    await bank_create(client, bank_body(_reference()))  # rejected AC04: not on the statement
    other = bank_body(_reference(), iban="SN08SN0100152000048500003035", amount="20000")
    await bank_create(client, other)
    for amount in ("15000", "2500"):
        await momo_create(client, token, momo_body(_reference(), amount=amount), str(uuid.uuid4()))
    await pickup_create(client, pickup_body(_reference()))
    for provider, count in ((BANK, 2), (MOMO, 2), (PICKUP, 1)):
        await wait_settled(client, provider, count)
    day = datetime.now(UTC).date().isoformat()

    written = await client.post("/admin/statements", json={"date": day})
    assert written.status == 200
    paths = (await written.json())["statements"]
    assert len(paths) == 9 and all(set(p) == {"csv", "camt053.xml", "mt940"} for p in paths.values())

    for provider in (BANK, MOMO, PICKUP):
        settled = [t for t in await transfers(client, provider) if t["status"] == "settled"]
        files = [await _statement(client, provider, day, fmt) for fmt in ("csv", "camt053.xml", "mt940")]
        _check(*files, settled, FLOAT, 0)
        assert Path(paths[provider]["csv"]).read_bytes() == files[0]
        assert Path(paths[provider]["mt940"]).read_bytes() == files[2]
        _check(files[0], Path(paths[provider]["camt053.xml"]).read_bytes(), files[2], settled, FLOAT, 0)
    assert len([t for t in await transfers(client, BANK) if t["status"] == "settled"]) == 1
    [pickup] = await transfers(client, PICKUP)
    assert pickup["settled_amount_minor"] == 49_500


async def test_opening_balance_is_the_previous_closing(client):
    for i in range(3):
        await bank_create(client, bank_body(_reference(), amount=str(1000 * (i + 1))))
    settled = await wait_settled(client, BANK, 3)
    # Book the first one a day earlier, as if it had settled yesterday.
    client.app[SANDBOX].store._db.execute(
        "UPDATE transfers SET settled_at = settled_at - 86400 WHERE transfer_id = ?", (settled[0]["transfer_id"],))
    today = datetime.now(UTC).date()
    yesterday, before = today - timedelta(days=1), today - timedelta(days=2)

    statements = {}
    for day in (before, yesterday, today):
        parsed = mt940.models.Transactions()
        parsed.parse((await _statement(client, BANK, day.isoformat(), "mt940")).decode())
        statements[day] = parsed
    assert len(statements[before]) == 0 and len(statements[yesterday]) == 1 and len(statements[today]) == 2
    for earlier, later in ((before, yesterday), (yesterday, today)):
        assert (statements[earlier].data["final_closing_balance"].amount.amount
                == statements[later].data["final_opening_balance"].amount.amount)
    assert statements[before].data["final_opening_balance"].amount.amount == FLOAT
    assert statements[today].data["final_closing_balance"].amount.amount == FLOAT - 6000


async def test_two_decimal_currency_and_custom_catalogue(tmp_path):
    catalogue = tmp_path / "providers.yaml"
    catalogue.write_text(
        "float_minor: 500000\n"
        "providers:\n"
        "  - {name: bank_fr, kind: bank_transfer, dialect: bank, country: FR, currency: EUR,\n"
        "     account: {iban: FR7630006000011234567890189}, credentials: {api_key: secret-fr}}\n"
    )
    async with running(providers_path=catalogue, state_dir=tmp_path / "state") as client:
        body = bank_body(_reference(), amount="12.50", iban="FR7630006000011234567890189")
        body["instructed_amount"]["currency"] = "EUR"
        refused = await client.post("/providers/bank_fr/v1/payments", json=body,
                                    headers={"Authorization": "Bearer sandbox-key-bank_fr", "Idempotency-Key": "k"})
        assert refused.status == 401  # the catalogue's key replaced the default one
        too_precise = {**body, "instructed_amount": {"amount": "12.505", "currency": "EUR"}}
        headers = {"Authorization": "Bearer secret-fr", "Idempotency-Key": "k"}
        assert (await client.post("/providers/bank_fr/v1/payments", json=too_precise, headers=headers)).status == 422
        assert (await client.post("/providers/bank_fr/v1/payments", json=body, headers=headers)).status == 201
        settled = await wait_settled(client, "bank_fr")
        day = datetime.now(UTC).date().isoformat()
        files = [await _statement(client, "bank_fr", day, fmt) for fmt in ("csv", "camt053.xml", "mt940")]
        _check(*files, settled, 500_000, 2)
        assert b",12.50," in files[0]
        assert b"D12,50NTRF" in files[2]
        assert ":60F:C" + day[2:].replace("-", "") + "EUR5000,00" in files[2].decode()
        written = await (await client.post("/admin/statements", json={})).json()
        assert Path(written["statements"]["bank_fr"]["csv"]).is_relative_to(tmp_path / "state" / "statements")


async def test_statement_requests_are_checked(client):
    day = datetime.now(UTC).date().isoformat()
    assert (await client.get(f"/admin/statements/nobody/{day}.csv")).status == 404
    assert (await client.get(f"/admin/statements/{BANK}/{day}.pdf")).status == 404
    assert (await client.get(f"/admin/statements/{BANK}/2026-13-01.csv")).status == 404
    assert (await client.post("/admin/statements", json={"date": "yesterday"})).status == 422
    empty = await _statement(client, BANK, day, "csv")
    assert empty.decode().strip() == HEADER


async def test_a_sandbox_with_a_state_dir_writes_todays_statements_on_its_own(tmp_path):
    from sandbox_kit import running

    async with running(state_dir=tmp_path):
        pass  # the daily statement run writes on start
    today = datetime.now(UTC).date().isoformat()
    written = sorted(p.name for p in (tmp_path / "statements" / "wave_sn").iterdir())
    assert written[-3:] == sorted([f"{today}.camt053.xml", f"{today}.csv", f"{today}.mt940"])
