"""Finance on the whole stack: payments settled through the sandbox reconcile against the sandbox's
own statements (imported with the CLI, matched through the API); the API refuses and audits calls
without a token or with the wrong role; reports download as XLSX and CSV."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys

import httpx
import openpyxl
import pytest
from reintegra.auth import FINANCE_APPROVER, FINANCE_VIEWER, REVIEWER, create_user, issue_token
from support import (
    cash_case_records,
    clear_faults,
    payment_ref,
    payout_case_records,
    publish,
    query,
    sandbox_call,
    sandbox_transfers,
    set_faults,
    wait_for_row,
    watch,
)


async def token_for(database_url: str, username: str, *roles: str) -> str:
    import asyncpg

    conn = await asyncpg.connect(database_url)
    try:
        await create_user(conn, username, roles)
        return await issue_token(conn, username, "e2e")
    finally:
        await conn.close()


def cli(stack, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": stack.database_url, "REINTEGRA_STATE_DIR": str(stack.state_dir)}
    return subprocess.run([sys.executable, "-m", "reintegra_stack.cli", "finance", *args], env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
async def approver(stack):
    return await token_for(stack.database_url, "fin.approver.e2e", FINANCE_APPROVER)


@pytest.fixture(scope="module")
async def viewer(stack):
    return await token_for(stack.database_url, "fin.viewer.e2e", FINANCE_VIEWER)


async def test_settled_payments_reconcile_with_the_sandbox_statements(stack, run_id, approver):
    cases = [f"FIN1-{run_id}-{n}" for n in range(3)]
    watcher = await watch(stack.bootstrap_servers, f"FIN1-{run_id}", dict.fromkeys(cases, "grant.completed"))
    try:
        for case_id in cases:
            await publish(stack.bootstrap_servers, cash_case_records(case_id))
        assert await watcher.wait_until(lambda: watcher.settled_count() == len(cases), 120)
    finally:
        await watcher.stop()
    references = [payment_ref(c) for c in cases]
    await wait_for_row(stack.database_url, "SELECT count(*) AS n FROM finance.payments WHERE reference = ANY($1) "
                       "AND status = 'settled'", references, predicate=lambda rows: rows[0]["n"] == len(cases))

    written = sandbox_call(stack, "POST", "/admin/statements", {})["statements"]
    assert written
    imported = cli(stack, "import", str(stack.state_dir / "sandbox" / "statements"))
    assert imported.returncode == 0, imported.stderr
    assert "already imported" not in imported.stdout.splitlines()[0]
    again = cli(stack, "import", str(stack.state_dir / "sandbox" / "statements"))
    assert again.returncode == 0 and again.stdout.count("already imported") == len(again.stdout.splitlines())

    async with httpx.AsyncClient(base_url=stack.console_url, headers={"Authorization": f"Bearer {approver}"}) as http:
        run = await http.post("/api/v1/reconciliation-runs", json={})
        assert run.status_code == 201, run.text
        detail = (await http.get(f"/api/v1/reconciliation-runs/{run.json()['run']}")).json()
    ours = {r["reference"]: r["kind"] for r in detail["results"] if r["reference"] in references}
    assert ours == dict.fromkeys(references, "matched")
    rows = await query(stack.database_url, "SELECT count(*) AS n FROM finance.payments WHERE reference = ANY($1) "
                       "AND reconciled_line IS NOT NULL", references)
    assert rows[0]["n"] == len(cases)


async def test_api_calls_without_a_token_or_with_the_wrong_role_are_refused_and_audited(stack, viewer):
    reviewer = await token_for(stack.database_url, "fin.reviewer.e2e", REVIEWER)
    async with httpx.AsyncClient(base_url=stack.console_url) as http:
        anonymous = await http.get("/api/v1/exceptions")
        assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
        wrong_role = await http.get("/api/v1/exceptions", headers={"Authorization": f"Bearer {reviewer}"})
        assert wrong_role.status_code == 403
        viewer_acts = await http.post("/api/v1/reconciliation-runs", json={},
                                      headers={"Authorization": f"Bearer {viewer}"})
        assert viewer_acts.status_code == 403
        forged = await http.post("/api/v1/exceptions/1/actions", json={"action": "approve"},
                                 headers={"Authorization": f"Bearer {viewer}"})
        assert forged.status_code == 403
        reads = await http.get("/api/v1/exceptions", headers={"Authorization": f"Bearer {viewer}"})
        assert reads.status_code == 200
    audit = await query(stack.database_url, "SELECT actor, action, outcome FROM auth.audit "
                        "WHERE action LIKE '% /api/v1/%' ORDER BY id DESC LIMIT 20")
    seen = {(a["actor"], a["action"], a["outcome"]) for a in audit}
    assert (None, "GET /api/v1/exceptions", "unauthenticated") in seen
    assert ("fin.reviewer.e2e", "GET /api/v1/exceptions", "forbidden") in seen
    assert ("fin.viewer.e2e", "POST /api/v1/reconciliation-runs", "forbidden") in seen
    assert ("fin.viewer.e2e", "POST /api/v1/exceptions/1/actions", "forbidden") in seen


async def test_reports_download_as_xlsx_and_csv(stack, viewer):
    async with httpx.AsyncClient(base_url=stack.console_url, headers={"Authorization": f"Bearer {viewer}"}) as http:
        report = await http.get("/api/v1/reports")
        assert report.status_code == 200, report.text
        assert report.json()["reports"], "the test programmes have a budget in the ledger"
        assert all(r["ledger_ok"] for r in report.json()["reports"])
        xlsx = await http.get("/api/v1/reports", params={"format": "xlsx"})
        csv = await http.get("/api/v1/reports", params={"format": "csv"})
        bad = await http.get("/api/v1/reports", params={"from": "2026-12-31", "to": "2026-01-01"})
    assert xlsx.status_code == 200 and "attachment" in xlsx.headers["content-disposition"]
    book = openpyxl.load_workbook(io.BytesIO(xlsx.content))
    assert book.sheetnames == ["Report", "Budget burn"]
    assert [c.value for c in book["Report"][1]][:4] == ["programme", "section", "item", "measure"]
    assert csv.status_code == 200 and csv.content.startswith("\ufeff".encode())
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_period"


# ------------------------------------------------------------------ decisions applied by disbursement


def _wallet(run_id: str, n: int) -> str:
    digits = int(hashlib.sha256(f"fin:{run_id}:{n}".encode()).hexdigest(), 16) % 10**8
    return f"+22507{digits:08d}"


async def _unresolved_payment(stack, case_id: str, msisdn: str) -> int:
    """A cash case whose payment the provider never answers for by the deadline (nothing executed);
    returns the finance exception it raised."""
    reference = payment_ref(case_id)
    set_faults(stack, "orange_money_ci", script=[{"match": {"msisdn": msisdn}, "operation": op,
                                                  "fault": "error_before", "times": 1000}
                                                 for op in ("create", "lookup")])
    payout = {"method": "mobile_money", "provider": "orange_money_ci", "msisdn": msisdn}
    await publish(stack.bootstrap_servers, payout_case_records(case_id, payout, phone=msisdn))
    [row] = await wait_for_row(stack.database_url, "SELECT id FROM finance.exceptions WHERE reference = $1 "
                               "AND kind = 'payment_outcome_unresolved'", reference, timeout_s=90)
    clear_faults(stack)
    return row["id"]


async def _four_eyes(stack, exception_id: int, request: str, reason: str) -> None:
    first = await token_for(stack.database_url, f"fin.requester.{exception_id}", FINANCE_APPROVER)
    second = await token_for(stack.database_url, f"fin.second.{exception_id}", FINANCE_APPROVER)
    async with httpx.AsyncClient(base_url=stack.console_url) as http:
        asked = await http.post(f"/api/v1/exceptions/{exception_id}/actions", json={"action": request, "reason": reason},
                                headers={"Authorization": f"Bearer {first}"})
        assert asked.status_code == 200, asked.text
        own = await http.post(f"/api/v1/exceptions/{exception_id}/actions", json={"action": "approve"},
                              headers={"Authorization": f"Bearer {first}"})
        assert own.status_code == 403, own.text  # nobody approves their own request
        approved = await http.post(f"/api/v1/exceptions/{exception_id}/actions", json={"action": "approve"},
                                   headers={"Authorization": f"Bearer {second}"})
        assert approved.status_code == 200, approved.text


async def test_a_repay_approved_by_two_people_pays_an_unresolved_payment_once_under_a_new_reference(stack, run_id):
    case_id, msisdn = f"FINR-{run_id}", _wallet(run_id, 1)
    reference = payment_ref(case_id)
    try:
        exception_id = await _unresolved_payment(stack, case_id, msisdn)
    finally:
        clear_faults(stack)
    assert sandbox_transfers(stack, reference=reference) == []
    watcher = await watch(stack.bootstrap_servers, case_id, {case_id: "grant.completed"})
    try:
        await _four_eyes(stack, exception_id, "request_repay", "orange confirmed nothing was executed")
        assert await watcher.wait_until(lambda: watcher.settled_count() == 1, 90), \
            watcher.observed.history.get(case_id)
    finally:
        await watcher.stop()
    assert sandbox_transfers(stack, reference=reference) == []
    assert len(sandbox_transfers(stack, reference=f"{reference}-2")) == 1
    failed = watcher.observed.statuses_of(case_id, "payment.failed")
    assert [f.get("reason") for f in failed] == ["not_executed_confirmed_by_finance"]
    [decision] = await wait_for_row(stack.database_url, "SELECT outcome FROM finance.decisions WHERE exception_id = $1 "
                                    "AND outcome IS NOT NULL", exception_id)
    assert decision["outcome"] == "applied"
    [instruction] = await query(stack.database_url, "SELECT state FROM disbursement.payment_instructions "
                                "WHERE reference = $1", reference)
    assert instruction["state"] == "failed"
    history = await query(stack.database_url, "SELECT action FROM finance.exception_events WHERE exception_id = $1 "
                          "ORDER BY id", exception_id)
    assert [h["action"] for h in history][-3:] == ["request_repay", "approve", "decision_applied"]


async def test_a_write_off_approved_by_two_people_books_an_unresolved_payment_paid(stack, run_id):
    case_id, msisdn = f"FINW-{run_id}", _wallet(run_id, 2)
    reference = payment_ref(case_id)
    try:
        exception_id = await _unresolved_payment(stack, case_id, msisdn)
    finally:
        clear_faults(stack)
    watcher = await watch(stack.bootstrap_servers, case_id, {case_id: "grant.completed"})
    try:
        await _four_eyes(stack, exception_id, "request_write_off", "provider cannot say; loss accepted")
        assert await watcher.wait_until(lambda: watcher.settled_count() == 1, 90), \
            watcher.observed.history.get(case_id)
    finally:
        await watcher.stop()
    [settled] = watcher.observed.statuses_of(case_id, "payment.settled")
    assert settled.get("reason") == "written_off_by_finance"
    assert sandbox_transfers(stack, reference=reference) == []  # nothing was sent to pay it
    [decision] = await wait_for_row(stack.database_url, "SELECT outcome FROM finance.decisions WHERE exception_id = $1 "
                                    "AND outcome IS NOT NULL", exception_id)
    assert decision["outcome"] == "applied"
