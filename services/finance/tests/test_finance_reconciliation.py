"""Statement import and matching against a real Postgres, with the provider sandbox's own statement
writer: clean statements reconcile with no exception in every format; injected faults (a missing
line, a changed amount, a duplicate, a stranger's payment, a reversal) give exactly the expected
exceptions; a malformed file of each format is refused with its location and changes nothing."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from types import SimpleNamespace

import pytest
from finance import exception_store, handlers, reconciliation, statement_store
from finance.domain import exceptions as wf
from finance.domain.statements import StatementFormatError
from finance.schema import MIGRATIONS
from provider_sandbox import statements as sandbox_statements
from provider_sandbox.catalogue import load_catalogue
from provider_sandbox.store import Transfer
from reintegra.auth import apply_auth_migrations
from reintegra.events import encode, new_event
from reintegra.topics import CASE_STATUS
from scratch_schemas import scratch_pool

PROVIDER = "wave_sn"  # XOF, mobile money
TODAY = date.today()
FORMATS = ("csv", "camt053.xml", "mt940")


@pytest.fixture
async def pool(infra):
    await apply_auth_migrations(infra.database_url)
    async with scratch_pool(infra.database_url, "finance", MIGRATIONS, max_size=4) as pool:
        yield pool


def _reference() -> str:
    return "RG-" + uuid.uuid4().hex[:24]


def _transfer(reference: str, amount_minor: int, n: int) -> Transfer:
    settled = datetime.combine(TODAY, time(9, n % 60), UTC).timestamp()
    return Transfer(
        transfer_id=f"wave-{uuid.uuid4().hex[:12]}", provider=PROVIDER, reference=reference,
        provider_reference=reference, amount_minor=amount_minor, currency="XOF", counterparty="221770000000",
        counterparty_name=None, request={}, callback_url=None, status="settled", failure_reason=None,
        settled_amount_minor=amount_minor, planned_failure=None, planned_delta_minor=0, pickup_code=None,
        created_at=settled - 5, updated_at=settled, settled_at=settled)


def _statement(transfers: list[Transfer]) -> sandbox_statements.Statement:
    provider = load_catalogue()[PROVIDER]
    return sandbox_statements.Statement(provider, TODAY, provider.float_minor, transfers)


def _status_record(reference: str, amount_minor: int, type_suffix: str, status: str, n: int) -> SimpleNamespace:
    data = {"case_id": f"MA-2026-{n:06d}", "status": status, "plan_id": "P1", "component_id": "c1",
            "tranche_seq": 1, "modality": "cash", "category": "immediate_needs", "reference": reference,
            "amount": {"amount": str(amount_minor), "currency": "XOF"},
            "programme_amount": {"amount": f"{amount_minor / 655.957:.2f}", "currency": "EUR"},
            "programme_code": "AVRR-MA-SN-2026", "provider": PROVIDER}
    event = new_event(f"reintegration.{type_suffix}.v1", "urn:reintegra:disbursement", data["case_id"], data,
                      time=f"{TODAY.isoformat()}T08:00:00Z")
    return SimpleNamespace(topic=CASE_STATUS, partition=0, offset=n, key=b"", value=encode(event), headers=[],
                           timestamp=0)


async def _paid(pool, count: int, *, sent_on: date = TODAY) -> list[tuple[str, int]]:
    """`count` payments sent and settled through the provider, as finance learns them from status events."""
    payments = [(_reference(), 150_000 + 1_000 * n) for n in range(count)]
    records = []
    for n, (reference, amount) in enumerate(payments):
        records += [_status_record(reference, amount, "payment.sent", "payment_sent", n),
                    _status_record(reference, amount, "payment.settled", "payment_settled", n)]
    async with pool.acquire() as conn, conn.transaction():
        await handlers.handle_status_batch(conn, records)
    if sent_on != TODAY:
        await pool.execute("UPDATE payments SET sent_at = $1, settled_at = $1",
                           datetime.combine(sent_on, time(8), UTC))
    return payments


async def _import(pool, name: str, data: bytes):
    async with pool.acquire() as conn, conn.transaction():
        return await statement_store.import_statement(conn, PROVIDER, name, data, "tester")


async def _run(pool, as_of: date = TODAY):
    async with pool.acquire() as conn, conn.transaction():
        return await reconciliation.run_reconciliation(conn, "tester", provider=PROVIDER, as_of=as_of)


async def _open_kinds(pool) -> list[tuple[str, str | None]]:
    rows = await pool.fetch("SELECT kind, reference FROM exceptions WHERE state = 'open' ORDER BY kind, reference")
    return [(r["kind"], r["reference"]) for r in rows]


async def test_clean_statements_in_every_format_reconcile_with_no_exception_and_reimports_change_nothing(pool):
    payments = await _paid(pool, 5)
    statement = _statement([_transfer(ref, amount, n) for n, (ref, amount) in enumerate(payments)])
    results = [await _import(pool, f"{TODAY}.{fmt}", sandbox_statements.render(statement, fmt)) for fmt in FORMATS]
    assert [(r.format, r.lines, r.new_lines) for r in results] == [("csv", 5, 5), ("camt053", 5, 0), ("mt940", 5, 0)]
    again = await _import(pool, f"{TODAY}.csv", sandbox_statements.render(statement, "csv"))
    assert again.already_imported and again.new_lines == 0
    assert await pool.fetchval("SELECT count(*) FROM statements") == 3

    summary = await _run(pool)
    assert summary.counts == {"matched": 5}
    assert summary.exceptions == 0 and await _open_kinds(pool) == []
    assert await pool.fetchval("SELECT count(*) FROM payments WHERE reconciled_line IS NULL") == 0
    # A second run finds nothing new to say.
    assert (await _run(pool)).exceptions == 0


async def test_injected_faults_give_exactly_the_expected_exceptions(pool):
    payments = await _paid(pool, 6, sent_on=TODAY - timedelta(days=5))
    (missing, _), (changed, changed_amount), (duplicated, _), *rest = payments
    transfers = [_transfer(ref, amount, n) for n, (ref, amount) in enumerate(payments)]
    by_ref = {t.reference: t for t in transfers}
    lines = [t for t in transfers if t.reference != missing]                          # a missing line
    lines = [replace(t, settled_amount_minor=changed_amount - 100) if t.reference == changed else t
             for t in lines]                                                          # a changed amount
    second = replace(by_ref[duplicated], transfer_id="wave-second-transfer")          # a duplicate
    stranger = _transfer("RG-" + "f" * 24, 99_000, 40)                                # a stranger's payment
    statement = _statement([*lines, second, stranger])
    await _import(pool, "faulty.csv", sandbox_statements.render(statement, "csv"))
    reversed_ref, reversed_amount = rest[0]
    reversal = (f"{TODAY},{TODAY},wave-rvsl-1,{reversed_ref},221770000000,{reversed_amount},XOF,CRDT,RVSL\n")
    header = sandbox_statements.CSV_HEADER
    await _import(pool, "reversal.csv", (",".join(header) + "\n" + reversal).encode())  # a reversal

    summary = await _run(pool)
    assert await _open_kinds(pool) == sorted([
        ("amount_mismatch", changed), ("duplicate_in_statement", duplicated), ("missing_in_statement", missing),
        ("reversed", reversed_ref), ("unexpected_in_statement", "RG-" + "f" * 24)])
    assert summary.counts["matched"] == 4  # the duplicated, the reversed and the two others paid once
    mismatch = await pool.fetchrow("SELECT details FROM exceptions WHERE kind = 'amount_mismatch'")
    assert str(changed_amount) in mismatch["details"] and str(changed_amount - 100) in mismatch["details"]
    # Matching again raises nothing twice.
    again = await _run(pool)
    assert again.new_exceptions == 0 and len(await _open_kinds(pool)) == 5


async def test_a_late_line_closes_the_missing_payment_exception_in_its_history(pool):
    [(reference, amount)] = await _paid(pool, 1, sent_on=TODAY - timedelta(days=5))
    assert (await _run(pool)).counts == {"missing_in_statement": 1}
    await _import(pool, "late.csv", sandbox_statements.render(_statement([_transfer(reference, amount, 1)]), "csv"))
    summary = await _run(pool)
    assert summary.counts == {"matched": 1} and summary.auto_resolved == 1
    row = await pool.fetchrow("SELECT id, state FROM exceptions")
    assert row["state"] == "resolved"
    history = await pool.fetch("SELECT actor, action, to_state FROM exception_events WHERE exception_id = $1 "
                               "ORDER BY id", row["id"])
    assert [(h["action"], h["to_state"]) for h in history] == [("raise", "open"), ("auto_resolve", "resolved")]


MALFORMED = {
    "csv": (b"booking_date,value_date,transfer_id,reference,counterparty,amount,currency,direction,status\n"
            b"2026-12-01,2026-12-01,t1,RG-1,221770000000,12x00,XOF,DBIT,BOOK\n", "line 2"),
    "camt053": (b"<?xml version='1.0' encoding='UTF-8'?>\n<Document xmlns='urn:iso:std:iso:20022:tech:xsd:camt.053.001.02'>"
                b"<BkToCstmrStmt><Stmt><Ntry><Amt Ccy='XOF'>1000</Amt></Ntry>\n</Stmt>", "line"),
    "mt940": (b":20:STATEMENT\n:25:SN0000\n:28C:1/1\n:60F:C261201XOF1000000,\n:61:2612011201DX100,NTRFRG-1\n", "line"),
}


@pytest.mark.parametrize("fmt", sorted(MALFORMED))
async def test_a_malformed_statement_is_refused_with_its_location_and_changes_nothing(pool, fmt):
    data, where = MALFORMED[fmt]
    with pytest.raises(StatementFormatError) as refused:
        await _import(pool, f"bad.{fmt}", data)
    assert where in refused.value.location
    assert await pool.fetchval("SELECT count(*) FROM statements") == 0
    assert await pool.fetchval("SELECT count(*) FROM statement_lines") == 0


async def test_a_write_off_needs_a_second_person_and_is_sent_to_disbursement_once_approved(pool):
    [(reference, _)] = await _paid(pool, 1, sent_on=TODAY - timedelta(days=5))
    await _run(pool)
    exception_id = await pool.fetchval("SELECT id FROM exceptions")

    async def act(name: str, who: str, reason: str | None = "checked with the provider"):
        async with pool.acquire() as conn, conn.transaction():
            return await exception_store.act(conn, exception_id, wf.Action(name, reason), who)

    await act(wf.INVESTIGATE, "a.diallo", None)
    await act(wf.REQUEST_WRITE_OFF, "a.diallo")
    with pytest.raises(wf.FourEyesError):
        await act(wf.APPROVE, "A.Diallo")
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 0
    transition = await act(wf.APPROVE, "m.sow")
    assert transition.state.state == wf.WRITTEN_OFF
    decision = await pool.fetchrow("SELECT kind, reference, payload FROM decisions")
    assert (decision["kind"], decision["reference"]) == ("write_off", reference)
    outbox = await pool.fetch("SELECT topic, value FROM outbox")
    assert [r["topic"] for r in outbox] == ["reintegra.finance.decisions.v1"]
    assert b"reintegra.finance.write_off.approved.v1" in bytes(outbox[0]["value"])
    history = await pool.fetch("SELECT actor, action FROM exception_events WHERE exception_id = $1 ORDER BY id",
                               exception_id)
    assert [(h["actor"], h["action"]) for h in history] == [
        ("system:reconciliation", "raise"), ("a.diallo", "investigate"), ("a.diallo", "request_write_off"),
        ("m.sow", "approve")]
