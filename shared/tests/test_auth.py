"""reintegra.auth without I/O: the four-eyes match, roles, tokens, passwords and identifiers."""

from __future__ import annotations

import re

import pytest
from argon2 import PasswordHasher
from reintegra.auth import (
    ADMIN,
    FINANCE_APPROVER,
    FINANCE_VIEWER,
    REVIEWER,
    ROLES,
    InvalidUserDataError,
    PasswordRuleError,
    Principal,
    UnknownRoleError,
    parse_roles,
    passwords,
)
from reintegra.auth.http import error_body, needs_roles_message
from reintegra.auth.identifiers import check_token_name, check_username, clean_display_name, clean_upstream_ids
from reintegra.auth.passwords import check_password, check_password_rules, hash_password
from reintegra.auth.tokens import TOKEN_PREFIX, looks_like_token, new_token, token_hash


def principal(username: str = "k.benali", upstream_ids: tuple[str, ...] = ("caseworker:k.benali", "KB-0042"),
              roles: frozenset[str] = frozenset({REVIEWER})) -> Principal:
    return Principal(user_id=1, username=username, display_name="K. Benali", roles=roles,
                     upstream_ids=frozenset(upstream_ids), via="token")


# --------------------------------------------------------------------------- four eyes

SAME_PERSON_CASES = [
    # (username, upstream_ids, upstream_actor, same person?)
    ("k.benali", ("caseworker:k.benali",), "caseworker:k.benali", True),       # an upstream id
    ("k.benali", ("caseworker:k.benali",), "CASEWORKER:K.Benali", True),       # ... ignoring case
    ("k.benali", ("KB-0042",), "kb-0042", True),                               # any upstream id form
    ("k.benali", (), "k.benali", True),                                        # the username itself
    ("k.benali", (), "K.BENALI", True),
    ("K.Benali", (), "caseworker:k.benali", True),                             # "<role>:<username>"
    ("k.benali", (), "supervisor:k.benali", True),                             # whatever the prefix
    ("k.benali", (), ":k.benali", True),                                       # empty prefix
    ("k.benali", ("caseworker:k.benali",), "  caseworker:k.benali\n", True),   # stray spaces
    ("k.benali", (), "caseworker: k.benali", True),
    ("k.benali", (), "caseworker:ｋ.benali", True),                            # fullwidth k (NFKC)
    ("k.benali", (), "caseworker:a.diallo", False),                            # someone else
    ("k.benali", ("caseworker:k.benali",), "caseworker:k.benali2", False),     # a longer name
    ("k.benali", (), "caseworker:k", False),                                   # a prefix of the name
    ("k.benali", (), "k.benali:caseworker", False),                            # name before the colon
    ("k.benali", (), "a:b:k.benali", False),                                   # only the FIRST ':' splits
    ("k.benali", ("KB-0042",), "caseworker:kb-0042", False),                   # ids match whole, not after ':'
    ("k.benali", ("KB-0042",), "KB-00420", False),
    ("k.benali", (), "k.benali@example.org", False),
    ("k.benali", (), "caseworker:", False),
    ("k.benali", (), ":", False),
    ("k.benali", (), "", False),
    ("k.benali", (), "   ", False),
]


@pytest.mark.parametrize(("username", "upstream_ids", "actor", "expected"), SAME_PERSON_CASES)
def test_is_same_person(username: str, upstream_ids: tuple[str, ...], actor: str, expected: bool) -> None:
    assert principal(username, upstream_ids).is_same_person(actor) is expected


def test_is_same_person_tolerates_none() -> None:
    assert principal().is_same_person(None) is False  # type: ignore[arg-type]


def test_principal_is_frozen() -> None:
    p = principal()
    with pytest.raises(AttributeError):
        p.roles = frozenset({ADMIN})  # type: ignore[misc]


# --------------------------------------------------------------------------- roles


def test_the_roles_are_exactly_four() -> None:
    assert ROLES == ("reviewer", "finance_viewer", "finance_approver", "admin")
    assert (REVIEWER, FINANCE_VIEWER, FINANCE_APPROVER, ADMIN) == ROLES


def test_parse_roles_accepts_known_roles_as_a_set() -> None:
    assert parse_roles(["reviewer", "admin", "reviewer"]) == frozenset({"reviewer", "admin"})


def test_a_lone_string_is_one_role_not_its_letters() -> None:
    assert parse_roles("reviewer") == frozenset({"reviewer"})


@pytest.mark.parametrize("bad", ["approver", "Reviewer", "reviewer ", "", "finance-viewer", "superuser"])
def test_unknown_role_is_a_clear_error(bad: str) -> None:
    with pytest.raises(UnknownRoleError) as excinfo:
        parse_roles(["reviewer", bad])
    message = str(excinfo.value)
    assert repr(bad) in message and "reviewer, finance_viewer, finance_approver, admin" in message


def test_no_role_is_refused_unless_allowed() -> None:
    with pytest.raises(UnknownRoleError, match="at least one role"):
        parse_roles([])
    assert parse_roles([], allow_empty=True) == frozenset()


def test_admin_implies_no_other_role() -> None:
    admin = principal(roles=frozenset({ADMIN}))
    assert admin.has_any_role(ADMIN)
    assert not admin.has_any_role(REVIEWER)
    assert not admin.has_any_role(FINANCE_VIEWER, FINANCE_APPROVER)


def test_refusal_messages() -> None:
    assert needs_roles_message(("reviewer",)) == "needs role reviewer"
    assert needs_roles_message(("finance_approver", "finance_viewer")) == "needs role finance_approver or finance_viewer"
    assert error_body("forbidden", "needs role reviewer") == {
        "error": {"code": "forbidden", "message": "needs role reviewer"}}


# --------------------------------------------------------------------------- tokens


def test_token_format() -> None:
    token = new_token()
    assert token.startswith(TOKEN_PREFIX) and TOKEN_PREFIX == "rgt_"
    assert re.fullmatch(r"rgt_[A-Za-z0-9_-]{43}", token), token  # token_urlsafe(32): 43 characters
    assert looks_like_token(token)


def test_tokens_are_unique() -> None:
    assert len({new_token() for _ in range(2000)}) == 2000


def test_token_hash_is_a_sha256_hex_that_reveals_nothing() -> None:
    token = new_token()
    digest = token_hash(token)
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert digest == token_hash(token) != token_hash(new_token())
    assert token[len(TOKEN_PREFIX):] not in digest


@pytest.mark.parametrize("bad", ["", "rgt_", "Bearer rgt_abc", "abc" * 20, "ghp_" + "a" * 43, "rgt_" + "a" * 300])
def test_things_that_are_not_tokens(bad: str) -> None:
    assert not looks_like_token(bad)


# --------------------------------------------------------------------------- passwords


def test_password_minimum_length_is_12() -> None:
    with pytest.raises(PasswordRuleError, match="at least 12"):
        check_password_rules("a" * 11)
    check_password_rules("a" * 12)
    check_password_rules("été à l'aube")  # 12 characters, more bytes: characters are what count


def test_password_maximum_length() -> None:
    with pytest.raises(PasswordRuleError, match="too long"):
        check_password_rules("a" * 1025)


def test_short_password_is_never_hashed() -> None:
    with pytest.raises(PasswordRuleError):
        hash_password("short")


def test_hash_is_argon2id_and_checks() -> None:
    stored = hash_password("correct horse battery")
    assert stored.startswith("$argon2id$")
    assert "correct horse" not in stored
    assert check_password(stored, "correct horse battery").matches
    assert check_password(stored, "correct horse battery").upgraded_hash is None
    assert not check_password(stored, "Correct horse battery").matches
    assert not check_password(stored, "").matches
    assert not check_password("not-a-hash", "correct horse battery").matches


def test_hash_made_with_other_parameters_is_upgraded_on_success() -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash("correct horse battery")
    check = check_password(weak, "correct horse battery")
    assert check.matches and check.upgraded_hash is not None
    assert not passwords.HASHER.check_needs_rehash(check.upgraded_hash)
    assert check_password(check.upgraded_hash, "correct horse battery").matches
    assert check_password(weak, "wrong password!").upgraded_hash is None


def test_no_stored_hash_still_spends_one_verification(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unknown user costs the same argon2 work as a known one: timing reveals no usernames."""
    calls: list[str] = []

    class CountingHasher(PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> bool:
            calls.append(str(hash))
            return super().verify(hash, password)

    monkeypatch.setattr(passwords, "HASHER", CountingHasher())
    assert not check_password(None, "whatever password").matches
    assert not check_password(None, "x" * 5000).matches  # too long to be anyone's: still one hash
    assert len(calls) == 2 and all(stored.startswith("$argon2id$") for stored in calls)


# --------------------------------------------------------------------------- identifiers


@pytest.mark.parametrize("good", ["k.benali", "K.Benali", "a", "ops-bot_2", "anna@iom", "x" * 64])
def test_valid_usernames(good: str) -> None:
    assert check_username(good) == good


@pytest.mark.parametrize("bad", ["", "caseworker:k.benali", "k benali", ".hidden", "-x", "x" * 65, "a/b", "é"])
def test_invalid_usernames(bad: str) -> None:
    with pytest.raises(InvalidUserDataError):
        check_username(bad)


def test_display_name_defaults_to_username() -> None:
    assert clean_display_name(None, "k.benali") == "k.benali"
    assert clean_display_name("  ", "k.benali") == "k.benali"
    assert clean_display_name(" Karima Benali ", "k.benali") == "Karima Benali"


def test_upstream_ids_are_cleaned_and_deduplicated_ignoring_case() -> None:
    assert clean_upstream_ids([" caseworker:k.benali", "CASEWORKER:K.BENALI", "kb-1"]) == ["caseworker:k.benali", "kb-1"]
    assert clean_upstream_ids("caseworker:k.benali") == ["caseworker:k.benali"]


@pytest.mark.parametrize("bad", ["", "  ", "caseworker: k benali", "x" * 201])
def test_invalid_upstream_ids(bad: str) -> None:
    with pytest.raises(InvalidUserDataError):
        clean_upstream_ids([bad])


def test_token_names() -> None:
    assert check_token_name(" nightly export ") == "nightly export"
    with pytest.raises(InvalidUserDataError):
        check_token_name("  ")
