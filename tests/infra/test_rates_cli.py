"""``reintegra rates`` as finance runs it (a subprocess, DATABASE_URL set to the test database), and
``disbursement.rates_store`` on a connection.

The Postgres is shared by the whole session: every test uses its own effective dates, far in the
future (2031 on), so that no other test's "rate in force today" changes.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import pwd
import random
import subprocess
import sys
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import asyncpg
import disbursement
import pytest
from disbursement import rates_store
from disbursement.domain.currency import LoadedRate
from disbursement.rates_store import RatesRefused
from reintegra.auth import apply_auth_migrations_blocking
from reintegra.db import apply_migrations

ACTOR = f"cli:{pwd.getpwuid(os.geteuid()).pw_name}"

# Days far in the future, each handed out once per session (a random start so reruns on a kept
# database do not collide either).
_DAYS = itertools.count(random.SystemRandom().randrange(0, 20_000, 100))


def fresh_day() -> date:
    return date(2031, 1, 1) + timedelta(days=next(_DAYS))


def reintegra(*args: str, database_url: str | None, extra_env: dict[str, str] | None = None,
              ) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REINTEGRA_STATE_DIR")}
    env.update(COLUMNS="400", NO_COLOR="1", TERM="dumb", **(extra_env or {}))
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    return subprocess.run([sys.executable, "-m", "reintegra_stack.cli", *args],
                          capture_output=True, text=True, env=env, timeout=120)


def assert_refused(result: subprocess.CompletedProcess, *lines: tuple[str, ...]) -> None:
    """Exit 2, no traceback, one ``error:`` line per expected problem, each with its words."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    errors = result.stderr.strip().splitlines()
    assert len(errors) == len(lines), result.stderr
    for error, words in zip(errors, lines, strict=True):
        assert error.startswith("error: "), result.stderr
        for word in words:
            assert word in error, result.stderr


async def fetch(database_url: str, sql: str, *args) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def loaded(database_url: str, *days: date) -> list[tuple[str, str, str, str, str]]:
    rows = await fetch(database_url, "SELECT currency, effective_date, per_eur, source, loaded_by "
                                     "FROM disbursement.exchange_rates WHERE effective_date = ANY($1::date[]) "
                                     "ORDER BY currency, effective_date", list(days))
    return [(r["currency"], r["effective_date"].isoformat(), str(r["per_eur"]), r["source"], r["loaded_by"])
            for r in rows]


async def file_audit(database_url: str, path: Path) -> list[tuple[str, str, dict]]:
    rows = await fetch(database_url, "SELECT actor, outcome, detail FROM auth.audit WHERE action = 'rates.load' "
                                     "AND detail->>'file' = $1 ORDER BY id", str(path))
    return [(r["actor"], r["outcome"], json.loads(r["detail"])) for r in rows]


async def audit_mentioning(database_url: str, text: str) -> list[tuple[str, str, dict]]:
    rows = await fetch(database_url, "SELECT actor, outcome, detail FROM auth.audit WHERE action = 'rates.load' "
                                     "AND strpos(detail::text, $1) > 0 ORDER BY id", text)
    return [(r["actor"], r["outcome"], json.loads(r["detail"])) for r in rows]


def write_csv(tmp_path: Path, text: str, name: str = "rates.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- reintegra rates load


async def test_load_then_reload_is_idempotent(infra, tmp_path) -> None:
    db = infra.database_url
    d1, d2 = fresh_day(), fresh_day()
    path = write_csv(tmp_path, "currency,per_eur,effective_date,source\n"
                               f"GNF,10250.5,{d1},BCRG fixing\n"
                               f'NGN,1650.25,{d1},"CBN, official window"\n'
                               "\n"  # blank lines are allowed
                               f"GNF,10300.00,{d2},BCRG fixing\n")
    first = reintegra("rates", "load", str(path), database_url=db)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == f"loaded 3 rates from {path}"
    assert await loaded(db, d1, d2) == [
        ("GNF", d1.isoformat(), "10250.5", "BCRG fixing", ACTOR),
        ("GNF", d2.isoformat(), "10300", "BCRG fixing", ACTOR),  # stored without trailing zeros
        ("NGN", d1.isoformat(), "1650.25", "CBN, official window", ACTOR),
    ]

    again = reintegra("rates", "load", str(path), database_url=db)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == f"loaded 0 rates from {path} (3 rates already loaded, unchanged)"
    assert len(await loaded(db, d1, d2)) == 3

    audit = await file_audit(db, path)
    assert [(actor, outcome) for actor, outcome, _ in audit] == [(ACTOR, "ok"), (ACTOR, "ok")]
    assert [(d["added"], d["unchanged"], d["count"]) for _, _, d in audit] == [(3, 0, 3), (0, 3, 3)]
    assert {"currency": "NGN", "effective_date": d1.isoformat(), "per_eur": "1650.25",
            "source": "CBN, official window"} in audit[0][2]["rates"]
    assert audit[0][2]["command"] == "rates load" and audit[0][2]["host"]


async def test_a_changed_value_is_refused_and_nothing_is_loaded(infra, tmp_path) -> None:
    db = infra.database_url
    d1, d2 = fresh_day(), fresh_day()
    assert reintegra("rates", "set", "GHS", "16.25", "--effective", str(d1), "--source", "BoG",
                     database_url=db).returncode == 0
    path = write_csv(tmp_path, "currency,per_eur,effective_date,source\n"
                               f"GHS,16.5,{d2},BoG\n"
                               f"GHS,16.30,{d1},BoG corrected\n"
                               f"GHS,16.250,{d1},BoG\n"  # the loaded value, written otherwise
                               f"GHS,16.5,{d2},BoG\n")  # line 2 again: fine
    refused = reintegra("rates", "load", str(path), database_url=db)
    assert_refused(refused, ("line 3", f"GHS from {d1}", "already loaded at 16.25, not 16.3", "never changed",
                             "new effective date"),
                   ("line 4", "16.25 here but 16.3 at line 3"))
    assert await loaded(db, d1, d2) == [("GHS", d1.isoformat(), "16.25", "BoG", ACTOR)]  # d2 not loaded either

    [(actor, outcome, detail)] = await file_audit(db, path)
    assert (actor, outcome) == (ACTOR, "refused")
    assert len(detail["problems"]) == 2 and "line 3" in detail["problems"][0]
    assert detail["count"] == 4 and detail["lines"] == 4


async def test_malformed_lines_are_reported_with_their_numbers_and_nothing_is_loaded(infra, tmp_path) -> None:
    db = infra.database_url
    d1, d2 = fresh_day(), fresh_day()
    assert reintegra("rates", "set", "GMD", "77.5", "--effective", str(d2), "--source", "CBG",
                     database_url=db).returncode == 0
    path = write_csv(tmp_path, "currency,per_eur,effective_date,source\n"
                               f"GMD,77.5,{d1},CBG\n"
                               f"GMD,77;5,{d1},CBG\n"
                               f"GMD,78,{d1}\n"
                               "GMD,78,2031-02-30,CBG\n"
                               f'GMD,"1,5",{d1},CBG\n'
                               f"GMD,-3,{d1},CBG\n"
                               f"XOF,655.957,{d1},BCEAO\n"  # readable, but refused: reported in line order
                               f"GMD,78,{d2},CBG\n")  # readable, but another value than the one loaded
    refused = reintegra("rates", "load", str(path), database_url=db)
    assert_refused(refused,
                   ("line 3", "per_eur '77;5' is not a decimal number"),
                   ("line 4", "expected 4 fields", "got 3"),
                   ("line 5", "effective_date '2031-02-30' is not a date"),
                   ("line 6", "per_eur '1,5'"),
                   ("line 7", "per_eur '-3'"),
                   ("line 8", "XOF is pegged"),
                   ("line 9", "already loaded at 77.5, not 78"))
    assert await loaded(db, d1, d2) == [("GMD", d2.isoformat(), "77.5", "CBG", ACTOR)]  # line 2 was not loaded
    [(_, outcome, detail)] = await file_audit(db, path)
    assert outcome == "refused" and len(detail["problems"]) == 7 and detail["lines"] == 8
    assert detail["count"] == 3  # the lines that could be read as rates


async def test_rates_that_cannot_be_loaded_are_refused_by_line(infra, tmp_path) -> None:
    db = infra.database_url
    d1 = fresh_day()
    path = write_csv(tmp_path, "source,effective_date,per_eur,currency\n"  # columns in any order
                               f"BCRG,{d1},10250.5,GNF\n"
                               f"BCEAO,{d1},655.957,XOF\n"
                               f"ECB,{d1},1,EUR\n"
                               f"x,{d1},1.5,ABC\n"
                               f"x,{d1},1.5,XAU\n"
                               f"x,{d1},0,NGN\n"
                               f"x,{d1},2000000000,GHS\n"
                               f"x,{d1},1.0000000000001,GMD\n"
                               f",{d1},10,MAD\n"
                               f"BCRG,{d1},10250.6,GNF\n")
    refused = reintegra("rates", "load", str(path), database_url=db)
    assert_refused(refused,
                   ("line 3", "XOF is pegged at 655.957 per EUR by treaty: no rate is loaded"),
                   ("line 4", "EUR is the reference currency"),
                   ("line 5", "'ABC' is not an ISO 4217 currency"),
                   ("line 6", "'XAU' is not an ISO 4217 currency"),
                   ("line 7", "greater than zero"),
                   ("line 8", "at most 1,000,000,000"),
                   ("line 9", "at most 12 fraction digits"),
                   ("line 10", "source"),
                   ("line 11", "10250.6 here but 10250.5 at line 2"))
    assert await loaded(db, d1) == []
    [(_, outcome, _detail)] = await file_audit(db, path)
    assert outcome == "refused"


@pytest.mark.parametrize(("text", "expected"), [
    ("", ("the file is empty",)),
    ("\n\n", ("the file is empty",)),
    ("currency,per_eur,effective_date,source\n", ("header but no rates",)),
    ("currency,rate,effective_date,source\nGNF,1,2031-01-01,x\n",
     ("line 1", "the header must be currency,per_eur,effective_date,source", "missing per_eur", "unknown 'rate'")),
    ('currency,per_eur,effective_date,source\nGNF,"1,2031-01-01,x\n', ("line 2", "not valid CSV")),
])
async def test_files_without_rates_are_refused(infra, tmp_path, text, expected) -> None:
    path = write_csv(tmp_path, text)
    assert_refused(reintegra("rates", "load", str(path), database_url=infra.database_url), expected)
    assert [outcome for _, outcome, _ in await file_audit(infra.database_url, path)] == ["refused"]


def test_unreadable_files_are_refused(infra, tmp_path) -> None:
    assert_refused(reintegra("rates", "load", str(tmp_path / "missing.csv"), database_url=infra.database_url),
                   ("missing.csv", "No such file"))
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("currency,per_eur,effective_date,source\nGNF,1,2031-01-01,Banque centrale épargne\n".encode("cp1252"))
    assert_refused(reintegra("rates", "load", str(latin1), database_url=infra.database_url), ("not UTF-8",))


async def test_a_byte_order_mark_and_windows_line_ends_are_fine(infra, tmp_path) -> None:
    d1 = fresh_day()
    path = tmp_path / "excel.csv"
    path.write_bytes(f"\ufeffcurrency,per_eur,effective_date,source\r\nMAD,10.85,{d1},BAM\r\n".encode())
    result = reintegra("rates", "load", str(path), database_url=infra.database_url)
    assert result.returncode == 0, result.stderr
    assert await loaded(infra.database_url, d1) == [("MAD", d1.isoformat(), "10.85", "BAM", ACTOR)]


# --------------------------------------------------------------------------- reintegra rates set / list


async def test_set_then_the_same_again_then_another_value(infra) -> None:
    db = infra.database_url
    d1 = fresh_day()
    first = reintegra("rates", "set", "GNF", "10250.5", "--effective", str(d1), "--source", "BCRG fixing",
                      database_url=db)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == f"loaded GNF 10250.5 per EUR from {d1} (source: BCRG fixing)"
    again = reintegra("rates", "set", "GNF", "10250.50", "--effective", str(d1), "--source", "BCRG",
                      database_url=db)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == f"GNF 10250.5 per EUR from {d1} is already loaded: unchanged"
    changed = reintegra("rates", "set", "GNF", "10251", "--effective", str(d1), "--source", "BCRG",
                        database_url=db)
    assert_refused(changed, ("already loaded at 10250.5, not 10251", "never changed"))
    assert await loaded(db, d1) == [("GNF", d1.isoformat(), "10250.5", "BCRG fixing", ACTOR)]
    assert [outcome for _, outcome, _ in await audit_mentioning(db, str(d1))] == ["ok", "ok", "refused"]


async def test_set_refuses_pegged_unknown_and_malformed_rates(infra) -> None:
    db = infra.database_url
    d1 = fresh_day()

    def rate_set(currency: str, per_eur: str, effective: str = str(d1), source: str = "test"):
        return reintegra("rates", "set", currency, per_eur, "--effective", effective, "--source", source,
                         database_url=db)

    assert_refused(rate_set("XOF", "655.957"), ("XOF is pegged at 655.957 per EUR by treaty: no rate is loaded",))
    assert_refused(rate_set("XAF", "656"), ("XAF is pegged at 655.957 per EUR by treaty",))
    assert_refused(rate_set("ZZZ", "1.5"), ("'ZZZ' is not an ISO 4217 currency",))
    assert_refused(rate_set("GNF", "1e4"), ("per_eur '1e4' is not a decimal number",))
    assert_refused(rate_set("GNF", "10250.5", "01/11/2031"), ("effective_date '01/11/2031' is not a date",))
    assert_refused(rate_set("GNF", "10250.5", source="  "), ("source",))
    assert_refused(rate_set("GNF", "NaN"), ("per_eur 'NaN'",))
    assert await loaded(db, d1) == []
    outcomes = await audit_mentioning(db, str(d1))
    assert [(actor, outcome) for actor, outcome, _ in outcomes] == [(ACTOR, "refused")] * 6
    assert "pegged" in outcomes[0][2]["problems"][0] and outcomes[0][2]["command"] == "rates set"


async def test_list_shows_the_pegs_and_the_loaded_rates(infra) -> None:
    db = infra.database_url
    d1 = fresh_day()
    assert reintegra("rates", "set", "NGN", "1650.75", "--effective", str(d1), "--source", "CBN [window]",
                     database_url=db).returncode == 0
    listed = reintegra("rates", "list", database_url=db)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    [xof] = [line for line in lines if " XOF " in line]
    [xaf] = [line for line in lines if " XAF " in line]
    assert "655.957" in xof and "fixed" in xof and "655.957" in xaf and "fixed" in xaf
    [ngn] = [line for line in lines if str(d1) in line]
    assert "NGN" in ngn and "1650.75" in ngn and "CBN [window]" in ngn and ACTOR in ngn
    assert f"from {d1}" in ngn  # not in force yet


def test_no_database_is_a_refusal(tmp_path) -> None:
    env_free = reintegra("rates", "list", database_url=None, extra_env={"REINTEGRA_STATE_DIR": str(tmp_path)})
    assert env_free.returncode == 2 and "DATABASE_URL" in env_free.stderr and "Traceback" not in env_free.stderr


# --------------------------------------------------------------------------- rates_store on a connection


@pytest.fixture(scope="module")
def schemas(infra):
    apply_migrations(infra.database_url, "disbursement", Path(disbursement.__file__).parent / "migrations")
    apply_auth_migrations_blocking(infra.database_url)
    return infra.database_url


async def with_conn(database_url: str, work):
    conn = await asyncpg.connect(database_url)
    try:
        return await work(conn)
    finally:
        await conn.close()


async def test_add_rates_list_rates_and_the_rate_book(schemas) -> None:
    d1, d2 = fresh_day(), fresh_day()
    actor = "test:rates-store"
    rates = [LoadedRate("GNF", d1, Decimal("10250.50"), " BCRG "), LoadedRate("GNF", d2, 10300, "BCRG"),
             LoadedRate("GNF", d1, Decimal("10250.5"), "BCRG")]  # twice in one load, same value

    result = await with_conn(schemas, lambda c: rates_store.add_rates(c, rates, actor, detail={"why": "test"}))
    assert result.added == [LoadedRate("GNF", d1, Decimal("10250.5"), "BCRG"),
                            LoadedRate("GNF", d2, Decimal("10300"), "BCRG")]
    assert result.unchanged == [LoadedRate("GNF", d1, Decimal("10250.5"), "BCRG")]

    listed = await with_conn(schemas, rates_store.list_rates)
    assert [r for r in listed if r.effective_date in (d1, d2)] == result.added
    book = await with_conn(schemas, rates_store.load_rate_book)
    assert book.rate("EUR", "GNF", d1).text == "10250.5"
    assert book.rate("XOF", "GNF", d2).source == f"rates:GNF@{d2}"
    assert book.rate("EUR", "GNF", d2 + timedelta(days=1)).text == "10300"
    records = await with_conn(schemas, rates_store.list_rate_records)
    assert {r.loaded_by for r in records if r.rate.effective_date in (d1, d2)} == {actor}

    [(who, outcome, detail)] = await audit_mentioning(schemas, str(d2))
    assert (who, outcome, detail["why"], detail["added"], detail["unchanged"]) == (actor, "ok", "test", 2, 1)


async def test_add_rates_refuses_everything_when_one_is_wrong(schemas) -> None:
    d1 = fresh_day()
    rates = [LoadedRate("NGN", d1, Decimal("1650"), "CBN"), LoadedRate("NGN", d1, Decimal("1651"), "CBN"),
             LoadedRate("GHS", d1, 16.25, "BoG"), LoadedRate("GMD", d1, Decimal("Infinity"), "CBG"),  # type: ignore[arg-type]
             LoadedRate("MAD", d1, Decimal("10"), "x" * 201), LoadedRate("MAD", d1, Decimal("10"), "two\nlines")]
    with pytest.raises(RatesRefused) as refused:
        await with_conn(schemas, lambda c: rates_store.add_rates(c, rates, "test:rates-store"))
    problems = refused.value.problems
    assert [p.split(":")[0] for p in problems] == ["row 2", "row 3", "row 4", "row 5", "row 6"]
    assert "1651 here but 1650 at row 1" in problems[0]
    assert "never a float" in problems[1] and "finite" in problems[2]
    assert "at most 200 characters" in problems[3] and "one line" in problems[4]
    assert await loaded(schemas, d1) == []
    [(_, outcome, detail)] = await audit_mentioning(schemas, str(d1))
    assert outcome == "refused" and detail["problems"] == problems

    with pytest.raises(RatesRefused, match="no rates to load"):
        await with_conn(schemas, lambda c: rates_store.add_rates(c, [], "test:rates-store"))
    with pytest.raises(RatesRefused, match="actor"):
        await with_conn(schemas, lambda c: rates_store.add_rates(c, [LoadedRate("NGN", d1, Decimal(1), "x")], " "))
    with pytest.raises(RatesRefused, match="effective_date must be a date"):
        await with_conn(schemas, lambda c: rates_store.add_rates(
            c, [LoadedRate("NGN", "2031-01-01", Decimal(1), "x")], "test:rates-store"))  # type: ignore[arg-type]


async def test_concurrent_loads_of_one_date_with_different_values_let_one_win(schemas) -> None:
    d1 = fresh_day()

    async def load(value: str):
        try:
            return await with_conn(schemas, lambda c: rates_store.add_rates(
                c, [LoadedRate("GHS", d1, Decimal(value), "race")], "test:race"))
        except RatesRefused as exc:
            return exc

    results = await asyncio.gather(*(load(v) for v in ("16.1", "16.2", "16.3", "16.4")))
    assert sum(isinstance(r, RatesRefused) for r in results) == 3
    assert len(await loaded(schemas, d1)) == 1
