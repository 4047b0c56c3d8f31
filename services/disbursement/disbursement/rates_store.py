"""Exchange rates finance loads (``disbursement.exchange_rates``): read into a `RateBook`, added
all-or-nothing, each load and each refusal written to ``auth.audit`` (action ``rates.load``).

A loaded rate is never changed: the same (currency, effective date) again with the same value is
"unchanged", with another value it is refused (a correction is a new effective date). EUR is the
reference and XOF and XAF are pegged by treaty, so none of them is ever loaded.

Queries name the schema, so they work on the service's pool (search_path=disbursement) and on a
plain connection (the CLI) alike. ``auth.audit`` must exist (``reintegra.auth.apply_auth_migrations``).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, NoReturn

import asyncpg
from reintegra.auth import record_audit
from reintegra.money import is_known_currency

from disbursement.domain.currency import EUR, PEGGED_PER_EUR, LoadedRate, RateBook

ACTION = "rates.load"
MAX_PER_EUR = Decimal(10) ** 9
MAX_FRACTION_DIGITS = 12
MAX_SOURCE_LENGTH = 200
MAX_AUDITED_RATES = 500  # rows listed in one audit row's detail (the count is always there)

_SELECT = "SELECT currency, effective_date, per_eur, source FROM disbursement.exchange_rates"


class RatesRefused(Exception):
    """Nothing was loaded; `problems` says why, one message per rate (naming its row or line)."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems) or "rates refused")


@dataclass(frozen=True, slots=True)
class AddRatesResult:
    added: list[LoadedRate] = field(default_factory=list)
    unchanged: list[LoadedRate] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RateRecord:
    """A loaded rate with who loaded it and when."""

    rate: LoadedRate
    loaded_by: str
    loaded_at: datetime


def _row(record: asyncpg.Record) -> LoadedRate:
    return LoadedRate(record["currency"].strip(), record["effective_date"], record["per_eur"], record["source"])


async def list_rates(conn: asyncpg.Connection) -> list[LoadedRate]:
    """Every loaded rate, by currency then effective date."""
    return [_row(r) for r in await conn.fetch(_SELECT + " ORDER BY currency, effective_date")]


async def list_rate_records(conn: asyncpg.Connection) -> list[RateRecord]:
    """`list_rates` with who loaded each rate and when."""
    rows = await conn.fetch(
        "SELECT currency, effective_date, per_eur, source, loaded_by, loaded_at FROM disbursement.exchange_rates "
        "ORDER BY currency, effective_date")
    return [RateRecord(_row(r), r["loaded_by"], r["loaded_at"]) for r in rows]


async def load_rate_book(conn: asyncpg.Connection) -> RateBook:
    return RateBook(_row(r) for r in await conn.fetch(_SELECT))


def _canonical(value: Decimal) -> Decimal:
    """The same number without trailing zeros or exponent (10250.50 -> 10250.5, 1E+3 -> 1000)."""
    value = value.normalize()
    return value.quantize(Decimal(1)) if value.as_tuple().exponent > 0 else value


def rate_problems(rate: object) -> list[str]:
    """What is wrong with one rate (empty when it may be loaded), without the database."""
    if not isinstance(rate, LoadedRate):
        return [f"not a rate: {type(rate).__name__}"]
    problems = []
    currency = rate.currency
    if not is_known_currency(currency):
        problems.append(f"currency {currency!r} is not an ISO 4217 currency with minor units")
    elif currency == EUR:
        problems.append("EUR is the reference currency: rates are units per EUR, so EUR's is always 1")
    elif currency in PEGGED_PER_EUR:
        problems.append(f"{currency} is pegged at {PEGGED_PER_EUR[currency]} per EUR by treaty: no rate is loaded")
    per_eur = rate.per_eur
    if type(per_eur) is int:  # an exact number too (bool is not one)
        per_eur = Decimal(per_eur)
    if not isinstance(per_eur, Decimal):
        problems.append("per_eur must be a decimal number (never a float)")
    elif not per_eur.is_finite():
        problems.append(f"per_eur must be a finite number, got {per_eur}")
    elif per_eur <= 0:
        problems.append(f"per_eur must be greater than zero, got {per_eur}")
    elif per_eur > MAX_PER_EUR:
        problems.append(f"per_eur must be at most {MAX_PER_EUR:,}, got {per_eur}")
    elif -min(_canonical(per_eur).as_tuple().exponent, 0) > MAX_FRACTION_DIGITS:  # type: ignore[operator]
        problems.append(f"per_eur may have at most {MAX_FRACTION_DIGITS} fraction digits, got {per_eur}")
    if not isinstance(rate.effective_date, date) or isinstance(rate.effective_date, datetime):
        problems.append("effective_date must be a date (YYYY-MM-DD)")
    source = rate.source
    if not isinstance(source, str) or not source.strip():
        problems.append("source must say where the rate comes from (e.g. \"BCRG fixing\")")
    elif len(source) > MAX_SOURCE_LENGTH:
        problems.append(f"source must be at most {MAX_SOURCE_LENGTH} characters, got {len(source)}")
    elif any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in source):
        problems.append("source must be one line of printable text")
    return problems


def _describe(rate: LoadedRate) -> str:
    try:
        return f"{rate.currency} from {rate.effective_date.isoformat()}"
    except AttributeError:
        return repr(rate.currency)


def _audited(rate: LoadedRate) -> dict[str, str]:
    return {"currency": str(rate.currency), "effective_date": str(rate.effective_date),
            "per_eur": str(rate.per_eur), "source": str(rate.source)}


def _rates_detail(rates: Sequence[LoadedRate]) -> dict[str, Any]:
    listed = [_audited(r) for r in rates[:MAX_AUDITED_RATES] if isinstance(r, LoadedRate)]
    return {"count": len(rates), "rates": listed, **({"rates_truncated": True} if len(rates) > len(listed) else {})}


async def refuse_load(conn: asyncpg.Connection, actor: str, problems: Sequence[str],
                      detail: Mapping[str, Any] | None = None) -> NoReturn:
    """Record a refused load (e.g. a file that could not be read) and raise `RatesRefused`."""
    await record_audit(conn, actor, ACTION, "refused", {**(detail or {}), "problems": list(problems)})
    raise RatesRefused(problems)


async def add_rates(conn: asyncpg.Connection, rates: Sequence[LoadedRate], actor: str, *,
                    positions: Sequence[int] | None = None, position_name: str = "row",
                    unreadable: Mapping[int, Sequence[str]] | None = None,
                    detail: Mapping[str, Any] | None = None) -> AddRatesResult:
    """Load `rates`, all or nothing, in one transaction with its audit row; `RatesRefused` (audited
    too) when any is wrong, with every problem found.

    Messages name each rate by its position: `positions` (default 1, 2, ...) and `position_name`
    ("row 2: ...", or "line 3: ..." for a CSV file; no prefix when `position_name` is empty).
    `unreadable` holds the problems of positions that could not be read as rates at all (a malformed
    line): the load is then refused, and they are reported in order with the rates' own. `detail` is
    added to the audit row (never put secrets in it)."""
    rates = list(rates)
    positions = list(positions) if positions is not None else list(range(1, len(rates) + 1))
    if len(positions) != len(rates):
        raise ValueError(f"{len(positions)} positions for {len(rates)} rates")
    def named(n: int, message: str) -> tuple[int, str]:
        return n, f"{position_name} {n}: {message}" if position_name else message

    audit = {**(detail or {}), **_rates_detail(rates)}
    if not isinstance(actor, str) or not actor.strip():
        await refuse_load(conn, str(actor), ["the actor loading the rates must be named"], audit)
    if not rates and not unreadable:
        await refuse_load(conn, actor, ["no rates to load"], audit)

    problems = [named(n, message) for n, messages in (unreadable or {}).items() for message in messages]
    wanted: dict[tuple[str, date], tuple[int, LoadedRate]] = {}  # first occurrence of each key
    repeats: list[tuple[int, LoadedRate]] = []
    for index, rate in enumerate(rates):
        found = rate_problems(rate)
        if found:
            problems += [named(positions[index], message) for message in found]
            continue
        rate = LoadedRate(rate.currency, rate.effective_date, _canonical(Decimal(rate.per_eur)), rate.source.strip())
        key = (rate.currency, rate.effective_date)
        if key not in wanted:
            wanted[key] = (index, rate)
            continue
        first_index, first = wanted[key]
        if first.per_eur != rate.per_eur:
            where = f"{position_name} {positions[first_index]}" if position_name else "another"
            problems.append(named(positions[index], f"{_describe(rate)} is {rate.per_eur} here but {first.per_eur} "
                                                    f"at {where}: one currency has one rate per effective date"))
        else:
            repeats.append((index, rate))  # the same rate twice in one load

    try:
        async with conn.transaction():
            # One load at a time: two loads of the same (currency, date) with different values
            # cannot both pass the check below. Readers (SELECT) are not blocked.
            await conn.execute("LOCK TABLE disbursement.exchange_rates IN SHARE ROW EXCLUSIVE MODE")
            existing = {
                (r["currency"].strip(), r["effective_date"]): r["per_eur"]
                for r in await conn.fetch(
                    "SELECT e.currency, e.effective_date, e.per_eur FROM disbursement.exchange_rates e "
                    "JOIN unnest($1::text[], $2::date[]) AS w (currency, effective_date) "
                    "ON e.currency = w.currency AND e.effective_date = w.effective_date",
                    [c for c, _ in wanted], [d for _, d in wanted])
            } if wanted else {}
            added: list[LoadedRate] = []
            unchanged = [rate for _, rate in repeats]
            for key, (index, rate) in wanted.items():
                loaded = existing.get(key)
                if loaded is None:
                    added.append(rate)
                elif loaded == rate.per_eur:
                    unchanged.append(rate)
                else:
                    problems.append(named(positions[index], (
                        f"{_describe(rate)} is already loaded at {_canonical(loaded)}, not {rate.per_eur}: "
                        "a loaded rate is never changed (load a correction with a new effective date)")))
            if problems:
                raise RatesRefused([message for _, message in sorted(problems, key=lambda p: p[0])])
            await conn.executemany(
                "INSERT INTO disbursement.exchange_rates (currency, effective_date, per_eur, source, loaded_by) "
                "VALUES ($1, $2, $3, $4, $5)",
                [(r.currency, r.effective_date, r.per_eur, r.source, actor) for r in added])
            await record_audit(conn, actor, ACTION, "ok", {**audit, "added": len(added), "unchanged": len(unchanged)})
    except RatesRefused as refused:
        await refuse_load(conn, actor, refused.problems, audit)
    return AddRatesResult(added, unchanged)
