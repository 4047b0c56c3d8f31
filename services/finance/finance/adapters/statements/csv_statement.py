"""CSV statements, read with the provider's column map (column_maps.py)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date, datetime

from finance.domain.statements import CREDIT, DEBIT, ParsedStatement, StatementFormatError, StatementLine

from .amounts import currency_code, minor_amount
from .column_maps import CsvColumnMap


def _text(data: bytes, encoding: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise StatementFormatError(f"line {line}", f"not {encoding} text (byte {exc.start + 1} of the file); "
                                   "is this the provider's layout and encoding?") from None


def _rows(text: str, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """Each row with the line it starts on (a quoted cell can hold a line break)."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    start = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise StatementFormatError(f"line {start}", f"not CSV: {exc}") from None
        yield start, row
        start = reader.line_num + 1


def parse_csv(data: bytes, column_map: CsvColumnMap) -> ParsedStatement:
    text = _text(data, column_map.encoding).lstrip("\ufeff")
    if not text.strip():
        raise StatementFormatError("line 1", "the file is empty")
    rows = _rows(text, column_map.delimiter)
    header_row: list[str] = []
    while not any(h.strip() for h in header_row):
        first = next(rows, None)
        if first is None:
            raise StatementFormatError("line 1", "no header line")
        header_row = first[1]
    index = _columns([h.strip() for h in header_row], column_map)
    lines = []
    for number, row in rows:
        if not any(cell.strip() for cell in row):
            continue  # a blank line, often the last one
        if len(row) != len(header_row):
            raise StatementFormatError(f"line {number}", f"{len(row)} columns where the header has "
                                       f"{len(header_row)} (delimiter {column_map.delimiter!r})")
        lines.append(_line(row, index, column_map, f"line {number}"))
    currencies = {x.currency for x in lines}
    days = [x.booking_date for x in lines]
    return ParsedStatement("csv", None, None, currencies.pop() if len(currencies) == 1 else None,
                           min(days, default=None), max(days, default=None), None, None, tuple(lines))


def _columns(header: list[str], m: CsvColumnMap) -> dict[str, int]:
    """The position of each mapped field's column in the header."""
    index: dict[str, int] = {}
    for name, column in m.columns.items():
        if column not in header:
            raise StatementFormatError("line 1", f"no column {column!r} ({name}) in the header "
                                       f"{m.delimiter.join(header)!r} (layout {m.name})")
        if header.count(column) > 1:
            raise StatementFormatError("line 1", f"the column {column!r} appears twice in the header")
        index[name] = header.index(column)
    return index


def _date(text: str | None, fmt: str, location: str) -> date:
    try:
        return datetime.strptime((text or "").strip(), fmt).date()
    except ValueError:
        raise StatementFormatError(location, f"{text!r} is not a date ({fmt})") from None


def _line(row: list[str], index: dict[str, int], m: CsvColumnMap, location: str) -> StatementLine:
    def cell(name: str) -> str:
        return row[index[name]].strip() if name in index else ""

    def at(name: str) -> str:
        return f"{location}, column {m.columns[name]}"

    currency = currency_code(cell("currency"), at("currency"))
    status = cell("status").upper() or "BOOK"
    reversal = (status in m.reversal_words or cell("direction").upper() in m.reversal_words
                or cell("reversal").upper() in m.true_words)
    amount, direction = _amount(cell, at, m, currency, reversal)
    value = cell("value_date")
    return StatementLine(location=location, booking_date=_date(cell("booking_date"), m.date_format, at("booking_date")),
                         value_date=_date(value, m.date_format, at("value_date")) if value else None,
                         provider_ref=cell("provider_ref") or None, reference=cell("reference") or None,
                         amount_minor=amount, currency=currency, direction=direction, reversal=reversal,
                         counterparty=cell("counterparty") or None, status=status)


def _amount(cell, at, m: CsvColumnMap, currency: str, reversal: bool) -> tuple[int, str]:
    options = {"decimal_separator": m.decimal_separator, "thousands_separator": m.thousands_separator}
    if "amount" not in m.columns:
        debit, credit = cell("debit"), cell("credit")
        if bool(debit) == bool(credit):
            raise StatementFormatError(at("debit"), f"one of {m.columns['debit']} and {m.columns['credit']} "
                                       "has the amount, not " + ("both" if debit else "neither"))
        name = "debit" if debit else "credit"
        return minor_amount(cell(name), currency, at(name), **options), DEBIT if debit else CREDIT
    amount = minor_amount(cell("amount"), currency, at("amount"), **options)
    if "direction" not in m.columns:
        return amount, CREDIT if reversal else DEBIT  # a layout without a direction lists payments (and their returns)
    word = cell("direction").upper()
    if word in m.debit_words:
        return amount, DEBIT
    if word in m.credit_words or word in m.reversal_words:
        return amount, CREDIT  # a reversal without its direction is money back
    raise StatementFormatError(at("direction"), f"{cell('direction')!r} is neither a debit "
                               f"({', '.join(sorted(m.debit_words))}) nor a credit ({', '.join(sorted(m.credit_words))})")
