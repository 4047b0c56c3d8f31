"""French and English: the catalogs agree, every key a template uses exists, the language is
chosen by the user (before sign-in a cookie, after it the session) then Accept-Language; Babel
formats money exactly from minor units."""

# ruff: noqa: F811 - the support module's fixtures are imported, then named as parameters

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest
from test_finance_web_support import (
    console_client,
    console_db,  # noqa: F401 - fixture
    csrf_of,
    login_form,
    make_user,
    rows,
    signed_in,
    unique,
)

WEB = Path(__file__).resolve().parents[1] / "finance" / "web"
NARROW_NBSP, NBSP = "\u202f", "\xa0"


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_both_catalogs_have_the_same_keys_and_fields() -> None:
    from finance.web.i18n import CATALOGS

    en, fr = CATALOGS["en"], CATALOGS["fr"]  # the shell's part and the finance pages' part, merged
    assert set(en) == set(fr), set(en) ^ set(fr)
    for key, text in en.items():
        assert _fields(text) == _fields(fr[key]), key
        assert text.strip() and fr[key].strip(), key


def test_a_key_defined_in_two_parts_is_refused() -> None:
    from finance.web.i18n import _merged

    assert _merged({"a": "A"}, {"b": "B"}) == {"a": "A", "b": "B"}
    with pytest.raises(ValueError, match="'a'"):
        _merged({"a": "A"}, {"a": "again"})


def _shell_sources() -> list[Path]:
    """The shell's templates and modules (the finance pages, API and exports have tests of their own)."""
    theirs = {"finance_pages.py", "api.py", "exports.py"}
    return [p for p in [*WEB.glob("templates/*.html"), *WEB.glob("*.py")]
            if p.name not in theirs and not p.name.startswith("finance_")]


def test_every_key_the_shell_uses_exists() -> None:
    from finance.web.i18n import CATALOGS
    from finance.web.navigation import NAV

    catalog = CATALOGS["en"]
    used = set()
    for source in _shell_sources():
        text = source.read_text(encoding="utf-8")
        used |= set(re.findall(r"""\bt\(\s*["']([a-z_]+\.[a-z_.0-9]+)["']\s*[,)]""", text))
        used |= set(re.findall(r"""\bflash="([a-z_]+\.[a-z_.0-9]+)""", text))
        used |= set(re.findall(r"""_Problem\(\d+, "([a-z_]+\.[a-z_.0-9]+)""", text))
    used |= {entry.label_key for entry in NAV}
    used |= {f"role.{r}" for r in ("reviewer", "finance_viewer", "finance_approver", "admin")}
    used |= {f"role.help.{r}" for r in ("reviewer", "finance_viewer", "finance_approver", "admin")}
    used |= {f"error.{kind}.{page}" for kind in ("title", "text") for page in ("400", "403", "404", "405", "422",
                                                                              "500", "503", "csrf")}
    from finance.web.review_pages import STATUSES

    used |= {f"reviews.status.{s}" for s in STATUSES}
    missing = sorted(k for k in used if k not in catalog)
    assert not missing, missing


@pytest.mark.parametrize("minor, currency, locale, expected", [
    (1234550, "EUR", "fr", "12 345,50 €"),
    (1234550, "EUR", "en", "€12,345.50"),
    (262383, "XOF", "fr", "262 383 F CFA"),
    (5, "EUR", "fr", "0,05 €"),
    (-150, "EUR", "en", "-€1.50"),
    (123456789012345678, "EUR", "fr", "1 234 567 890 123 456,78 €"),  # beyond any float's exactness
])
def test_money_from_minor_units(minor, currency, locale, expected) -> None:
    from finance.web.formats import format_money

    assert format_money(minor, currency, locale).replace(NARROW_NBSP, " ").replace(NBSP, " ") == expected


def test_decimal_amounts_and_dates() -> None:
    from finance.web.formats import format_date, format_datetime, format_decimal_money

    assert format_decimal_money("1500.00", "EUR", "fr").replace(NARROW_NBSP, " ").replace(NBSP, " ") == "1 500,00 €"
    with pytest.raises(ValueError):
        format_decimal_money("1.005", "EUR", "fr")
    assert format_date("2026-10-20", "fr") == "20 oct. 2026"
    assert format_datetime("2026-10-20T11:30:00+02:00", "fr") == "20 oct. 2026 09:30 UTC"
    assert format_datetime("2026-10-20T09:30:00+00:00", "en") == "Oct 20, 2026 09:30 UTC"


@pytest.mark.parametrize("header, expected", [
    ("fr-FR,fr;q=0.9,en;q=0.8", "fr"), ("en-GB,en;q=0.9", "en"), ("de-DE,fr;q=0.5", "fr"),
    ("de, es", None), ("", None), ("fr;q=0, en;q=0.1", "en"), ("fr;q=abc, en", "en"),
])
def test_accept_language(header, expected) -> None:
    from finance.web.i18n import negotiate

    assert negotiate(header) == expected


@pytest.fixture
def client(console_db, tmp_path):
    with console_client(console_db, tmp_path) as client:
        yield client


def test_the_browser_language_then_the_users_choice(client) -> None:
    assert "Connexion à la console finance" in client.get("/login", headers={"Accept-Language": "fr-CA"}).text
    assert '<html lang="en">' in client.get("/login", headers={"Accept-Language": "de"}).text
    token = login_form(client)
    answer = client.post("/language", data={"lang": "fr", "next": "/login?next=/users", "csrf_token": token})
    assert answer.status_code == 303 and answer.headers["location"] == "/login?next=/users"
    page = client.get("/login", headers={"Accept-Language": "en"})  # the choice beats the browser
    assert '<html lang="fr">' in page.text and "Se connecter" in page.text


def test_the_choice_is_kept_in_the_session(client, console_db) -> None:
    user = unique("viewer")
    make_user(console_db, user, ["finance_viewer"])
    token = signed_in(client, user)
    answer = client.post("/language", data={"lang": "fr", "next": "/", "csrf_token": token})
    assert answer.status_code == 303
    [row] = rows(console_db, """SELECT locale FROM finance.console_sessions s JOIN auth.users u ON u.id = s.user_id
                                WHERE u.username = %s""", user)
    assert row["locale"] == "fr"
    client.cookies.delete("reintegra_console_lang")  # the session alone decides now
    home = client.get("/", headers={"Accept-Language": "en"})
    assert "Bienvenue" in home.text and "Se déconnecter" in home.text and "Finance (consultation)" in home.text
    assert client.post("/language", data={"lang": "xx", "csrf_token": csrf_of(home.text)}).status_code == 400
