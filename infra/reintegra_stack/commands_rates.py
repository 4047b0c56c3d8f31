"""``reintegra rates``: the exchange rates finance loads (units of a currency per one euro).

    reintegra rates load rates.csv      # header: currency,per_eur,effective_date,source
    reintegra rates set GNF 10250.5 --effective 2026-11-01 --source "BCRG fixing"
    reintegra rates list

A rate applies from its effective date until the next one. A loaded rate is never changed: loading
the same one again changes nothing, another value for the same currency and date is refused (a
correction is a new effective date). EUR is the reference; XOF and XAF are pegged at 655.957 per
EUR by treaty and never loaded. A load is all or nothing: one bad line and nothing is loaded.
Tranches waiting for a rate are released by the disbursement service once it is loaded.

Database: DATABASE_URL, else the local stack's Postgres (``reintegra_stack.database``); schemas
``disbursement`` and ``auth`` are created or brought up to date first. Every load, and every
refused one, is written to ``auth.audit`` (action ``rates.load``) with the OS user as actor
(``cli:<user>``). Refusals print one ``error:`` line per problem on stderr and exit with code 2.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import typer

from reintegra_stack.cli_database import cli_actor, refuse, run_on_database

T = TypeVar("T")

COLUMNS = ("currency", "per_eur", "effective_date", "source")
_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?", re.ASCII)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)

rates_app = typer.Typer(
    name="rates",
    help="Exchange rates per EUR (schema disbursement; DATABASE_URL or the local stack's Postgres).",
    no_args_is_help=True,
)


def _refuse(*problems: str) -> typer.Exit:
    return refuse(*problems)


def _with_database(work: Callable[[Any], Awaitable[T]], problems_so_far: list[str] | None = None) -> T:
    """Run ``work(conn)`` with the disbursement and auth schemas up to date; refusals become exit 2."""
    from disbursement.rates_store import RatesRefused
    from disbursement.schema import bring_up_to_date

    return run_on_database(work, prepare=bring_up_to_date, problems_so_far=problems_so_far,
                           refusals={RatesRefused: lambda exc: list(exc.problems)})


def _parse_per_eur(text: str) -> Decimal | None:
    text = text.strip()
    return Decimal(text) if _DECIMAL.fullmatch(text) else None


def _parse_date(text: str) -> date | None:
    text = text.strip()
    if not _DATE.fullmatch(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _field_problems(per_eur: str, effective: str) -> list[str]:
    problems = []
    if _parse_per_eur(per_eur) is None:
        problems.append(f"per_eur {per_eur.strip()!r} is not a decimal number like 10250.5 (digits, one '.')")
    if _parse_date(effective) is None:
        problems.append(f"effective_date {effective.strip()!r} is not a date (YYYY-MM-DD)")
    return problems


@dataclass
class ParsedRates:
    rates: list[Any] = field(default_factory=list)  # LoadedRate
    lines: list[int] = field(default_factory=list)  # the line each rate starts on
    unreadable: dict[int, list[str]] = field(default_factory=dict)  # line -> what is wrong with it
    problems: list[str] = field(default_factory=list)  # with the file as a whole (header, empty)
    data_lines: int = 0


def parse_rates_csv(text: str) -> ParsedRates:
    """The rates of a CSV text with the header currency,per_eur,effective_date,source (in any order).
    Blank lines are skipped; a line that cannot be read as a rate is kept with its problems."""
    import csv
    import io

    from disbursement.domain.currency import LoadedRate

    parsed = ParsedRates()
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    line = 0
    try:
        for row in reader:
            first_line, line = line + 1, reader.line_num
            if not row or all(not cell.strip() for cell in row):
                continue  # blank lines are allowed anywhere
            if header is None:
                header = [cell.strip().lower() for cell in row]
                missing = [c for c in COLUMNS if c not in header]
                unknown = [c for c in header if c not in COLUMNS]
                repeated = sorted({c for c in header if header.count(c) > 1})
                if missing or unknown or repeated:
                    parsed.problems.append(
                        f"line {first_line}: the header must be {','.join(COLUMNS)}"
                        + (f"; missing {', '.join(missing)}" if missing else "")
                        + (f"; unknown {', '.join(repr(c) for c in unknown)}" if unknown else "")
                        + (f"; repeated {', '.join(repeated)}" if repeated else ""))
                    return parsed
                continue
            parsed.data_lines += 1
            if len(row) != len(header):
                parsed.unreadable[first_line] = [f"expected {len(header)} fields ({','.join(header)}), got {len(row)}"]
                continue
            fields = dict(zip(header, row, strict=True))
            found = _field_problems(fields["per_eur"], fields["effective_date"])
            if found:
                parsed.unreadable[first_line] = found
                continue
            parsed.rates.append(LoadedRate(fields["currency"].strip(), _parse_date(fields["effective_date"]),
                                           _parse_per_eur(fields["per_eur"]), fields["source"].strip()))
            parsed.lines.append(first_line)
    except csv.Error as exc:
        parsed.unreadable.setdefault(line + 1, []).append(f"not valid CSV: {exc} (nothing after it was read)")
    if header is None and not parsed.unreadable:
        parsed.problems.append(f"the file is empty: it needs the header {','.join(COLUMNS)} and one line per rate")
    elif not parsed.rates and not parsed.unreadable:
        parsed.problems.append("the file has a header but no rates")
    return parsed


def _load(parsed: ParsedRates, detail: dict[str, Any], position_name: str):
    """Add the rates (refused, and audited, when anything in the input is wrong); exit 2 on refusal."""
    import socket

    from disbursement import rates_store

    detail = {**detail, "host": socket.gethostname()}

    async def work(conn):
        if parsed.problems:
            await rates_store.refuse_load(conn, cli_actor(), parsed.problems, detail)
        return await rates_store.add_rates(conn, parsed.rates, cli_actor(), positions=parsed.lines,
                                           position_name=position_name, unreadable=parsed.unreadable, detail=detail)

    return _with_database(work, parsed.problems + [f"{position_name} {n}: {message}" if position_name else message
                                                   for n, messages in sorted(parsed.unreadable.items())
                                                   for message in messages])


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


# --------------------------------------------------------------------------- commands


def load_command(
    file: Path = typer.Argument(..., metavar="FILE.csv", help="Header currency,per_eur,effective_date,source."),
) -> None:
    """Load rates from a CSV file, all or nothing."""
    try:
        text = file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise _refuse(f"{file}: not UTF-8 text") from None
    except OSError as exc:
        raise _refuse(f"{file}: {exc.strerror or exc}") from None
    parsed = parse_rates_csv(text)
    result = _load(parsed, {"command": "rates load", "file": str(file), "lines": parsed.data_lines}, "line")
    summary = f"loaded {_count(len(result.added), 'rate')} from {file}"
    if result.unchanged:
        summary += f" ({_count(len(result.unchanged), 'rate')} already loaded, unchanged)"
    typer.echo(summary)


def set_command(
    currency: str = typer.Argument(..., help="ISO 4217 code, e.g. GNF."),
    per_eur: str = typer.Argument(..., help="Units of CURRENCY for one euro, e.g. 10250.5."),
    effective: str = typer.Option(..., "--effective", metavar="YYYY-MM-DD", help="The day the rate applies from."),
    source: str = typer.Option(..., "--source", help='Where the rate comes from, e.g. "BCRG fixing".'),
) -> None:
    """Load one rate."""
    from disbursement.domain.currency import LoadedRate

    problems = _field_problems(per_eur, effective)
    parsed = ParsedRates(problems=problems) if problems else ParsedRates(
        rates=[LoadedRate(currency.strip(), _parse_date(effective), _parse_per_eur(per_eur), source.strip())],
        lines=[1])
    result = _load(parsed, {"command": "rates set", "arguments": {
        "currency": currency, "per_eur": per_eur, "effective": effective, "source": source}}, "")
    if result.added:
        rate = result.added[0]
        typer.echo(f"loaded {rate.currency} {rate.per_eur} per EUR from {rate.effective_date} (source: {rate.source})")
    else:
        rate = result.unchanged[0]
        typer.echo(f"{rate.currency} {rate.per_eur} per EUR from {rate.effective_date} is already loaded: unchanged")


def list_command() -> None:
    """List the rates: the pegs, then every loaded rate (the one in force today marked)."""
    from datetime import UTC, datetime

    from disbursement.domain.currency import PEGGED_PER_EUR, RateBook
    from disbursement.rates_store import list_rate_records
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    records = _with_database(list_rate_records)
    today = datetime.now(UTC).date()
    book = RateBook(r.rate for r in records)

    table = Table(title="Exchange rates (units of the currency per 1 EUR)", title_justify="left")
    for column in ("currency", "per EUR", "effective from", "status", "source", "loaded by", "loaded at (UTC)"):
        table.add_column(column, overflow="fold")
    for currency, per_eur in sorted(PEGGED_PER_EUR.items()):
        table.add_row(currency, str(per_eur), "fixed", "fixed (peg)", "treaty peg to the euro: never loaded", "", "")
    for record in records:
        rate = record.rate
        in_force = book.loaded_rate(rate.currency, today)
        if in_force == rate:
            status = "in force"
        elif rate.effective_date > today:
            status = f"from {rate.effective_date.isoformat()}"
        else:
            status = "superseded"
        # Text, not str: sources are typed by people and may contain "[...]", which rich reads as markup.
        table.add_row(rate.currency, str(rate.per_eur), rate.effective_date.isoformat(), status, Text(rate.source),
                      Text(record.loaded_by), record.loaded_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M"))
    console = Console()
    console.print(table)
    if not records:
        console.print("No rates loaded yet; load one with `reintegra rates set GNF 10250.5 --effective YYYY-MM-DD "
                      "--source \"...\"` or `reintegra rates load FILE.csv`.")


def register(app: typer.Typer) -> None:
    rates_app.command("load")(load_command)
    rates_app.command("set")(set_command)
    rates_app.command("list")(list_command)
    app.add_typer(rates_app, name="rates")
