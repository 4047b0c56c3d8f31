"""A reviewer works an eligibility review from the console, end to end: the whole stack (broker,
Postgres, services, the review API), a case held for review from upstream events, and three
reviewers in three browsers: the plan's author is refused (four eyes), the first reviewer's
approval waits for a second one, the same reviewer cannot give it, a second reviewer does."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from urllib.parse import quote

import pytest
from browser_kit import PASSWORD, make_user, sign_in, start_console, unique
from playwright.sync_api import expect

PLAN_AUTHOR = "caseworker:k.benali"  # approved_by of every sample plan (tests/support.py)
REVIEW_TIMEOUT_S = 60


@pytest.fixture(scope="module")
def review_console(stack, tmp_path_factory):
    running = start_console(stack.database_url, tmp_path_factory.mktemp("review-console"), stack.review_api_url)
    try:
        yield running
    finally:
        running.process.stop()


def _api_token(database_url: str, username: str) -> str:
    import asyncpg
    from reintegra.auth import issue_token
    from reintegra_stack._proc import run_coro_blocking

    async def issue() -> str:
        conn = await asyncpg.connect(database_url)
        try:
            return await issue_token(conn, username, "browser test")
        finally:
            await conn.close()

    return run_coro_blocking(issue, timeout=30)


def _review(api_url: str, token: str, case_id: str) -> dict | None:
    request = urllib.request.Request(f"{api_url}/v1/reviews/{quote(case_id, safe='')}",
                                     headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def _held_case(stack, case_id: str, token: str) -> dict:
    from reintegra_stack._proc import run_coro_blocking
    from support import held_case_records, publish

    # 400 + 1,400 EUR: above the programme's threshold, so two reviewers must approve.
    records = held_case_records(case_id, cash_amount="400.00", inkind_amount="1400.00")
    run_coro_blocking(lambda: publish(stack.bootstrap_servers, records), timeout=60)
    deadline = time.monotonic() + REVIEW_TIMEOUT_S
    while (review := _review(stack.review_api_url, token, case_id)) is None:
        assert time.monotonic() < deadline, f"no review for {case_id} after {REVIEW_TIMEOUT_S} s"
        time.sleep(0.3)
    return review


def _decide(page, reason: str, button: str) -> None:
    page.get_by_label("Reason (kept with the decision)").fill(reason)
    page.get_by_role("button", name=button, exact=True).click()


def test_a_reviewer_works_a_review_from_the_console(stack, review_console, new_context, run_id, shoot) -> None:
    db = stack.database_url
    author = make_user(db, unique("author"), ["reviewer"], upstream_ids=(PLAN_AUTHOR,))
    first = make_user(db, unique("rev.a"), ["reviewer"])
    second = make_user(db, unique("rev.b"), ["reviewer"])
    case_id = f"CONSOLE-{run_id}"
    held = _held_case(stack, case_id, _api_token(db, first))
    assert held["status"] == "open" and held["second_approval_needed"] is True
    url = review_console.url

    # The caseworker who approved the plan upstream is a reviewer too: the API refuses them.
    page = new_context().new_page()
    sign_in(page, url, author)
    page.get_by_role("navigation", name="Main sections").get_by_role("link", name="Reviews").click()
    row = page.get_by_role("row").filter(has_text=case_id)
    expect(row).to_contain_text("Open")
    expect(row).to_contain_text("€1,800.00")
    expect(row).to_contain_text("two reviewers needed")
    shoot(page, "queue")
    row.get_by_role("link", name=case_id).click()
    expect(page.get_by_role("heading", name=f"Case {case_id}")).to_be_visible()
    expect(page.get_by_text(f"Approved upstream by {PLAN_AUTHOR}.")).to_be_visible()
    _decide(page, "my own plan, looks fine", "Approve")
    expect(page.get_by_role("alert")).to_contain_text("Four eyes: you approved this plan upstream")
    expect(page.get_by_label("Reason (kept with the decision)")).to_have_value("my own plan, looks fine")
    shoot(page, "author-refused")

    # A first reviewer approves: a second, different one must confirm.
    page = new_context().new_page()
    sign_in(page, url, first)
    page.goto(f"{url}/reviews/{quote(case_id, safe='')}")
    shoot(page, "case")
    _decide(page, "Best-interests check done with the guardian", "Approve")
    expect(page.get_by_role("status")).to_have_text("Approved; a second, different reviewer must confirm.")
    expect(page.locator("dl.facts").first).to_contain_text("Awaiting a second approval")
    _decide(page, "approving again", "Approve")
    expect(page.get_by_role("alert")).to_contain_text("you already approved this case")
    shoot(page, "same-reviewer-refused")

    # A second reviewer gives the second approval.
    page = new_context().new_page()
    sign_in(page, url, second, PASSWORD)
    page.goto(f"{url}/reviews/{quote(case_id, safe='')}")
    _decide(page, "Confirmed after reading the plan", "Approve")
    expect(page.get_by_role("status")).to_have_text("Approved: the grant goes on.")
    history = page.locator("section", has=page.get_by_role("heading", name="History")).get_by_role("row")
    expect(history).to_have_count(3)  # the header and two approvals
    expect(page.get_by_text("This review is closed.")).to_be_visible()
    shoot(page, "approved")

    review = _review(stack.review_api_url, _api_token(db, second), case_id)
    assert review["status"] == "approved"
    assert [(a["actor"], a["outcome"]) for a in review["actions"]] == [
        (first, "awaiting_second_approval"), (second, "approved")]

