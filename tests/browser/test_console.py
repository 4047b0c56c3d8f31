"""The finance console in a real browser: sign-in and sign-out, throttling, French, the users page
for an admin, and what a finance viewer is refused (the page and a forged POST)."""

from __future__ import annotations

import json

import pytest
from browser_kit import PASSWORD, make_user, query, sign_in, unique
from playwright.sync_api import Page, expect


@pytest.fixture(autouse=True)
def no_csp_violation(csp_violations):
    yield
    assert not csp_violations, csp_violations


def test_sign_in_and_out(page: Page, console, shoot) -> None:
    user = make_user(console.database_url, unique("a.diallo"), ["finance_viewer", "reviewer"])
    page.goto(console.url + "/reviews?status=approved")
    expect(page).to_have_url(console.url + "/login?next=/reviews%3Fstatus%3Dapproved")
    expect(page.get_by_text("Sign in to continue.")).to_be_visible()
    shoot(page, "login")

    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(console.url + "/reviews?status=approved")  # back where they were going
    expect(page.get_by_label("Show")).to_have_value("approved")

    page.goto(console.url + "/")
    expect(page.get_by_role("heading", name=f"Welcome, {user}")).to_be_visible()
    nav = page.get_by_role("navigation", name="Main sections")
    for label in ("Reconciliation", "Exceptions", "Reports", "Reviews"):
        expect(nav.get_by_role("link", name=label)).to_be_visible()
    expect(nav.get_by_role("link", name="Users")).to_have_count(0)
    cookie = next(c for c in page.context.cookies() if c["name"] == "reintegra_console_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    shoot(page, "home")

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(console.url + "/login")
    expect(page.get_by_text("You are signed out.")).to_be_visible()
    page.goto(console.url + "/")
    expect(page).to_have_url(console.url + "/login?next=/")


def test_wrong_password_then_throttled(page: Page, console, shoot) -> None:
    user = make_user(console.database_url, unique("viewer"), ["finance_viewer"])
    for attempt in range(5):
        sign_in(page, console.url, user, f"wrong password number {attempt}")
        expect(page.get_by_role("alert")).to_have_text("Wrong username or password.")
    shoot(page, "wrong-password")
    sign_in(page, console.url, user, PASSWORD)  # the right one, too late
    expect(page.get_by_role("alert")).to_contain_text("Too many failed attempts. Try again in 15 min.")
    shoot(page, "throttled")
    outcomes = [r["outcome"] for r in query(console.database_url,
                                            "SELECT outcome FROM auth.audit WHERE actor = %s ORDER BY id", user)]
    assert outcomes == ["refused"] * 5 + ["throttled"]


def test_the_french_switch_shows_french(page: Page, console, shoot) -> None:
    user = make_user(console.database_url, unique("k.benali"), ["admin"])
    page.goto(console.url + "/login")
    page.get_by_role("button", name="Français").click()
    expect(page.get_by_role("heading", name="Connexion à la console finance")).to_be_visible()
    assert page.locator("html").get_attribute("lang") == "fr"
    page.get_by_label("Nom d'utilisateur").fill(user)
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    expect(page.get_by_role("heading", name=f"Bienvenue, {user}")).to_be_visible()
    expect(page.get_by_role("link", name="Utilisateurs").first).to_be_visible()
    page.goto(console.url + "/users")
    expect(page.get_by_role("heading", name="Créer un utilisateur")).to_be_visible()
    expect(page.get_by_role("button", name="Se déconnecter")).to_be_visible()
    shoot(page, "users-fr")
    # Back to English through an htmx request: console.js adds the page's CSRF token as a header.
    assert page.evaluate("htmx.config.includeIndicatorStyles === false && htmx.config.allowEval === false")
    page.evaluate("htmx.ajax('POST', '/language', {values: {lang: 'en', next: '/users'}, swap: 'none'})")
    page.reload()
    expect(page.get_by_role("heading", name="Create a user")).to_be_visible()


def test_an_admin_creates_a_user(page: Page, console, browser, shoot) -> None:
    admin = make_user(console.database_url, unique("admin"), ["admin"])
    make_user(console.database_url, unique("m.ndiaye"), ["reviewer"])  # someone to list beside them
    sign_in(page, console.url, admin)
    page.get_by_role("navigation", name="Main sections").get_by_role("link", name="Users").click()
    expect(page.get_by_role("heading", name="Users", exact=True)).to_be_visible()

    new = unique("f.sow")
    form = page.locator("form[action='/users']")
    form.get_by_label("Username").fill(new)
    form.get_by_label("Name (optional)").fill("Fatou Sow")
    form.get_by_label("Finance viewer").check()
    form.get_by_label("Password").fill("fatou's long password")
    shoot(page, "form")
    form.get_by_role("button", name="Create the user").click()
    expect(page.get_by_role("status")).to_have_text(f"User {new} created.")
    row = page.get_by_role("row").filter(has_text=new)
    expect(row).to_contain_text("Fatou Sow")
    expect(row).to_contain_text("Finance viewer")
    expect(row).to_contain_text("Active")
    shoot(page, "created")

    other = browser.new_context(locale="en-GB")
    try:
        newcomer = other.new_page()
        sign_in(newcomer, console.url, new, "fatou's long password")
        expect(newcomer.get_by_role("heading", name="Welcome, Fatou Sow")).to_be_visible()
    finally:
        other.close()
    [audit] = query(console.database_url, "SELECT detail::text AS d FROM auth.audit WHERE action = 'POST /users' "
                                          "AND actor = %s", admin)
    assert json.loads(audit["d"])["username"] == new and "fatou's long password" not in audit["d"]


def test_a_finance_viewer_is_refused_the_users_page_and_a_forged_post(page: Page, console, shoot) -> None:
    viewer = make_user(console.database_url, unique("viewer"), ["finance_viewer"])
    sign_in(page, console.url, viewer)
    answer = page.goto(console.url + "/users")
    assert answer is not None and answer.status == 403
    expect(page.get_by_role("heading", name="Access refused")).to_be_visible()
    shoot(page, "forbidden")

    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    forged = page.request.post(console.url + "/users", form={
        "username": unique("intruder"), "roles": "admin", "password": "a password long enough", "csrf_token": token,
    }, headers={"Origin": console.url}, max_redirects=0)
    assert forged.status == 403
    refusals = query(console.database_url, "SELECT action, outcome, detail::text AS d FROM auth.audit "
                                           "WHERE actor = %s ORDER BY id", viewer)
    assert [(r["action"], r["outcome"]) for r in refusals] == [("POST /login", "ok"), ("GET /users", "forbidden"),
                                                                ("POST /users", "forbidden")]
    assert json.loads(refusals[-1]["d"])["needs_roles"] == ["admin"]
    assert query(console.database_url, "SELECT count(*) AS n FROM auth.users WHERE username LIKE 'intruder-%%'") \
        == [{"n": 0}]
