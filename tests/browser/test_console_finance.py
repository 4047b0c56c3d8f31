"""The finance pages in a real browser: a viewer reads the queue but cannot act (the server refuses
even a forged form); a write-off requested by one approver is approved by another, never by the
same one; statements are imported from the page (a malformed one refused with its line); a report
downloads as XLSX with its charts on the page."""

from __future__ import annotations

import io
import json
import uuid

import openpyxl
import pytest
from browser_kit import make_user, query, sign_in, unique
from playwright.sync_api import Browser, Page, expect

PROGRAMME = "AVRR-MA-CI-2026"


@pytest.fixture(autouse=True)
def no_csp_violation(csp_violations):
    yield
    assert not csp_violations, csp_violations


def run_sql(database_url: str, *statements: tuple) -> None:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SET search_path TO finance")
        for sql, *args in statements:
            conn.execute(sql, args or None)


def an_exception(database_url: str, kind: str = "missing_in_statement") -> int:
    """An exception in the queue, as a reconciliation run raises it."""
    reference = "RG-" + uuid.uuid4().hex[:24]
    run_sql(database_url, (
        "INSERT INTO exceptions (kind, source, provider, reference, case_id, amount_minor, currency, details, state, "
        "dedupe_key) VALUES (%s, 'statement', 'wave_sn', %s, 'MA-2026-000123', 196787, 'XOF', '{}', 'open', %s)",
        kind, reference, f"statement:{kind}:{reference}"))
    rows = query(database_url, "SELECT id FROM finance.exceptions WHERE reference = %s", reference)
    run_sql(database_url, ("INSERT INTO exception_events (exception_id, actor, action, to_state) "
                           "VALUES (%s, 'system:reconciliation', 'raise', 'open')", rows[0]["id"]))
    return rows[0]["id"]


def a_funded_programme(database_url: str) -> None:
    """The budget of a programme, as the ledger's posting events gave it to finance."""
    rows = query(database_url, "SELECT count(*) AS n FROM finance.ledger_postings")
    if rows[0]["n"]:
        return
    common = "'posted', 5000000, 'EUR', 'fund', %s, 'fund:" + PROGRAMME + "', now()"
    run_sql(
        database_url,
        ("INSERT INTO ledger_postings (account, seq, account_kind, account_currency, account_programme, side, "
         "phase, amount_minor, currency, kind, programme, transfer_id, posted_at, counter_account) "
         f"VALUES ('budget:{PROGRAMME}', 1, 'budget', 'EUR', %s, 'credit', {common}, 'funding:{PROGRAMME}')",
         PROGRAMME, PROGRAMME),
        ("INSERT INTO ledger_postings (account, seq, account_kind, account_currency, account_programme, side, "
         "phase, amount_minor, currency, kind, programme, transfer_id, posted_at, counter_account) "
         f"VALUES ('funding:{PROGRAMME}', 1, 'funding', 'EUR', %s, 'debit', {common}, 'budget:{PROGRAMME}')",
         PROGRAMME, PROGRAMME),
    )


def csrf_of(page: Page) -> str:
    return page.locator('meta[name="csrf-token"]').get_attribute("content")


def test_a_viewer_reads_the_queue_and_cannot_act_even_with_a_forged_form(page: Page, console, shoot) -> None:
    exception_id = an_exception(console.database_url)
    viewer = make_user(console.database_url, unique("viewer"), ["finance_viewer"])
    sign_in(page, console.url, viewer)
    page.goto(console.url + "/exceptions")
    expect(page.get_by_role("link", name=str(exception_id), exact=True)).to_be_visible()
    shoot(page, "queue")
    page.get_by_role("link", name=str(exception_id), exact=True).click()
    expect(page.get_by_test_id("state")).to_have_text("Open")
    expect(page.get_by_role("button", name="Request a write-off")).to_have_count(0)
    shoot(page, "exception-as-viewer")

    forged = page.request.post(f"{console.url}/exceptions/{exception_id}/actions",
                               form={"csrf_token": csrf_of(page), "action": "request_write_off", "reason": "forged"})
    assert forged.status == 403
    page.goto(console.url + "/runs")
    expect(page.get_by_role("button", name="Import")).to_have_count(0)  # nothing to act with
    forged_import = page.request.post(f"{console.url}/runs", form={"csrf_token": csrf_of(page)})
    assert forged_import.status == 403
    state = query(console.database_url, "SELECT state FROM finance.exceptions WHERE id = %s", exception_id)
    assert state == [{"state": "open"}]
    audit = query(console.database_url, "SELECT action, outcome FROM auth.audit WHERE actor = %s ORDER BY id", viewer)
    assert {"action": f"POST /exceptions/{exception_id}/actions", "outcome": "forbidden"} in audit
    assert {"action": "POST /runs", "outcome": "forbidden"} in audit


def test_one_approver_requests_a_write_off_and_another_approves_it(browser: Browser, console, shoot) -> None:
    exception_id = an_exception(console.database_url)
    first = make_user(console.database_url, unique("a.diallo"), ["finance_approver"])
    second = make_user(console.database_url, unique("m.sow"), ["finance_approver"])

    page = browser.new_page()
    sign_in(page, console.url, first)
    page.goto(f"{console.url}/exceptions/{exception_id}")
    page.get_by_label("Reason or note").fill("The provider confirms the transfer never left; loss booked.")
    page.get_by_role("button", name="Request a write-off").click()
    expect(page.get_by_test_id("state")).to_have_text("Write-off requested")
    expect(page.get_by_test_id("pending-request")).to_contain_text(first)
    expect(page.get_by_role("button", name="Approve the request")).to_have_count(0)  # not for the requester
    shoot(page, "requested")
    # The requester forging the approval is refused by the server (four eyes), and told why.
    forged = page.request.post(f"{console.url}/exceptions/{exception_id}/actions",
                               form={"csrf_token": csrf_of(page), "action": "approve"})
    assert forged.status == 403
    assert "someone else must approve it" in forged.text()
    page.close()

    other = browser.new_page()
    sign_in(other, console.url, second)
    other.goto(f"{console.url}/exceptions/{exception_id}")
    other.get_by_role("button", name="Approve the request").click()
    expect(other.get_by_test_id("state")).to_have_text("Written off")
    history = other.get_by_test_id("history")
    expect(history).to_contain_text(first)
    expect(history).to_contain_text(second)
    shoot(other, "approved")
    other.close()

    decision = query(console.database_url, "SELECT kind, payload FROM finance.decisions WHERE exception_id = %s",
                     exception_id)
    assert decision[0]["kind"] == "write_off"
    assert (decision[0]["payload"]["requested_by"], decision[0]["payload"]["approved_by"]) == (first, second)
    outbox = query(console.database_url, "SELECT topic FROM finance.outbox")
    assert {"topic": "reintegra.finance.decisions.v1"} in outbox


def test_statements_are_imported_from_the_page_and_a_malformed_one_is_refused(page: Page, console, shoot,
                                                                               tmp_path) -> None:
    approver = make_user(console.database_url, unique("importer"), ["finance_approver"])
    sign_in(page, console.url, approver)
    page.goto(console.url + "/runs")
    header = "booking_date,value_date,transfer_id,reference,counterparty,amount,currency,direction,status\n"
    bad = tmp_path / "bad.csv"
    bad.write_text(header + "2026-12-01,2026-12-01,t1,RG-1,221770000000,12x00,XOF,DBIT,BOOK\n")
    page.get_by_label("Provider", exact=True).first.fill("wave_sn")
    page.get_by_label("Statement file").set_input_files(str(bad))
    page.get_by_role("button", name="Import").click()
    expect(page.get_by_role("alert").first).to_contain_text("line 2")
    shoot(page, "refused")
    good = tmp_path / "2026-12-01.csv"
    good.write_text(header + f"2026-12-01,2026-12-01,wave-{uuid.uuid4().hex[:8]},RG-{'a' * 24},221770000000,"
                             "150000,XOF,DBIT,BOOK\n")
    page.get_by_label("Provider", exact=True).first.fill("wave_sn")
    page.get_by_label("Statement file").set_input_files(str(good))
    page.get_by_role("button", name="Import").click()
    expect(page.get_by_role("status").first).to_contain_text("1 lines, 1 new")
    expect(page.get_by_test_id("statements")).to_contain_text("2026-12-01.csv")
    page.get_by_role("button", name="Run the matching").click()
    expect(page.get_by_role("heading", name="Reconciliation run")).to_be_visible()
    expect(page.get_by_test_id("count-unexpected_in_statement")).to_have_text("1")
    shoot(page, "run")


def test_a_report_downloads_as_xlsx_and_shows_its_charts(page: Page, console, shoot) -> None:
    a_funded_programme(console.database_url)
    viewer = make_user(console.database_url, unique("reader"), ["finance_viewer"])
    sign_in(page, console.url, viewer)
    page.goto(console.url + "/reports")
    expect(page.get_by_test_id("burn")).to_contain_text(PROGRAMME)
    expect(page.locator("canvas[data-chart-drawn]")).to_have_count(2)
    chart = json.loads(page.locator("#burn-data").text_content())
    assert chart["data"]["labels"] == [PROGRAMME]
    shoot(page, "reports")
    with page.expect_download() as download_info:
        page.get_by_test_id("download-xlsx").click()
    download = download_info.value
    assert download.suggested_filename.endswith(".xlsx")
    book = openpyxl.load_workbook(io.BytesIO(open(download.path(), "rb").read()))
    assert book.sheetnames == ["Report", "Budget burn"]
    burn = [[c.value for c in row] for row in book["Budget burn"].iter_rows(min_row=2)]
    assert burn[0][:3] == [PROGRAMME, "EUR", 5000000]
    page.get_by_role("button", name="Français").click()
    expect(page.get_by_role("heading", name="Rapports")).to_be_visible()
    shoot(page, "reports-fr")
