"""The users page (admin only): create a user with roles and a password, disable one; audited
without the password, refusals shown as readable messages."""

# ruff: noqa: F811 - the support module's fixtures are imported, then named as parameters

from __future__ import annotations

import json

import pytest
from test_finance_web_support import (
    PASSWORD,
    audit_rows,
    console_client,
    console_db,  # noqa: F401 - fixture
    make_user,
    rows,
    sign_in,
    signed_in,
    unique,
)

NEW_PASSWORD = "a brand new long password"


@pytest.fixture(scope="module")
def admin(console_db) -> str:
    name = unique("admin")
    make_user(console_db, name, ["admin"])
    return name


@pytest.fixture
def client(console_db, tmp_path):
    with console_client(console_db, tmp_path) as client:
        yield client


def test_an_admin_creates_a_user_who_can_then_sign_in(client, console_db, admin) -> None:
    token = signed_in(client, admin)
    page = client.get("/users")
    assert page.status_code == 200 and admin in page.text and "(you)" in page.text
    new = unique("k.benali")
    answer = client.post("/users", data={"username": new, "display_name": "Karima Benali", "password": NEW_PASSWORD,
                                         "roles": ["finance_viewer", "finance_approver"], "csrf_token": token})
    assert answer.status_code == 303 and answer.headers["location"] == "/users"
    listed = client.get("/users").text
    assert f"User {new} created." in listed and "Karima Benali" in listed and "Finance approver" in listed

    [row] = audit_rows(console_db, action="POST /users", actor=admin, outcome="ok")
    assert json.loads(row["detail"]) == {"username": new, "roles": ["finance_approver", "finance_viewer"],
                                         "password": True}
    assert NEW_PASSWORD not in str(rows(console_db, "SELECT * FROM auth.audit"))

    with console_client(console_db, client.app.state.settings.state_dir) as other:
        assert sign_in(other, new, NEW_PASSWORD).status_code == 303


@pytest.mark.parametrize("form, status, message", [
    ({"username": "bad name", "roles": ["reviewer"], "password": NEW_PASSWORD}, 422, "is not valid"),
    ({"username": "ok-name", "roles": [], "password": NEW_PASSWORD}, 422, "Choose at least one role."),
    ({"username": "ok-name", "roles": ["superuser"], "password": NEW_PASSWORD}, 422, "Choose at least one role."),
    ({"username": "ok-name", "roles": ["reviewer"], "password": "short"}, 422, "at least 12 characters"),
])
def test_refusals_are_readable_and_audited(client, console_db, admin, form, status, message) -> None:
    token = signed_in(client, admin)
    form = {**form, "username": form["username"] + ("" if " " in form["username"] else "-" + unique("u"))}
    answer = client.post("/users", data={**form, "csrf_token": token})
    assert answer.status_code == status and message in answer.text
    assert f'value="{form["password"]}"' not in answer.text  # never echoed back
    assert audit_rows(console_db, action="POST /users", outcome="refused")


def test_a_duplicate_username_is_refused_whatever_its_case(client, console_db, admin) -> None:
    token = signed_in(client, admin)
    answer = client.post("/users", data={"username": admin.upper(), "roles": ["reviewer"], "csrf_token": token})
    assert answer.status_code == 409 and "already exists" in answer.text


def test_disabling_ends_the_users_sessions_at_once(console_db, tmp_path, admin) -> None:
    victim = unique("viewer")
    make_user(console_db, victim, ["finance_viewer"])
    with console_client(console_db, tmp_path) as admins, console_client(console_db, tmp_path) as victims:
        signed_in(victims, victim)
        token = signed_in(admins, admin)
        answer = admins.post(f"/users/{victim}/disable", data={"csrf_token": token})
        assert answer.status_code == 303
        assert f"User {victim} disabled" in admins.get("/users").text
        assert victims.get("/").status_code == 303
        assert sign_in(victims, victim, PASSWORD).status_code == 401
    [row] = audit_rows(console_db, action=f"POST /users/{victim}/disable", outcome="ok")
    assert json.loads(row["detail"]) == {"username": victim, "sessions_ended": 1}


def test_an_admin_cannot_disable_themself_nor_an_unknown_user(client, console_db, admin) -> None:
    token = signed_in(client, admin)
    client.post(f"/users/{admin}/disable", data={"csrf_token": token})
    assert "You cannot disable your own account." in client.get("/users").text
    client.post("/users/nobody-at-all/disable", data={"csrf_token": token})
    assert "There is no such user." in client.get("/users").text
    assert rows(console_db, "SELECT disabled FROM auth.users WHERE username = %s", admin) == [{"disabled": False}]


def test_a_viewers_forged_post_is_refused_and_audited(client, console_db) -> None:
    viewer = unique("viewer")
    make_user(console_db, viewer, ["finance_viewer"])
    token = signed_in(client, viewer)
    answer = client.post("/users", data={"username": unique("mine"), "roles": ["admin"], "password": NEW_PASSWORD,
                                         "csrf_token": token})
    assert answer.status_code == 403 and "Access refused" in answer.text
    [refusal] = audit_rows(console_db, action="POST /users", actor=viewer)
    assert refusal["outcome"] == "forbidden"
    assert rows(console_db, "SELECT count(*) AS n FROM auth.users WHERE username LIKE 'mine-%%'") == [{"n": 0}]
