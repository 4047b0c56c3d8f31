"""CSV statements, read with the provider's column map (column_maps.py)."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime

from finance.domain.statements import CREDIT, DEBIT, ParsedStatement, StatementFormatError, StatementLine

from .amounts import currency_code, minor_amount
from .column_maps import CsvColumnMap


def _text(data: bytes, encoding: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise StatementFormatError(f"line {line}", f"not {encoding} text (byte {exc.start})") from None


def _date(text: str | None, fmt: str, location: str) -> date:
    try:
        return datetime.strptime((text or "").strip(), fmt).date()
    except ValueError:
        raise StatementFormatError(location, f"{text!r} is not a date ({fmt})") from None


def parse_csv(data: bytes, column_map: CsvColumnMap) -> ParsedStatement:
    text = _text(data, column_map.encoding).lstrip("\ufeff")
    if not text.strip():
        raise StatementFormatError("line 1", "the file is empty")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=column_map.delimiter, strict=True)
    try:
        rows = list(reader)
    except csv.Error as exc:
        raise StatementFormatError(f"line {reader.line_num}", f"not CSV: {exc}") from None
    header = [h.strip() for h in rows[0]]
    index: dict[str, int] = {}
    for field, column in column_map.columns.items():
        if column not in header:
            raise StatementFormatError("line 1", f"no column {column!r} ({field}); the header is "
                                       f"{', '.join(header)}")
        index[field] = header.index(column)
    lines = []
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue  # a blank line, often the last one
        if len(row) != len(header):
            raise StatementFormatError(f"line {number}", f"{len(row)} columns where the header has {len(header)}")
        lines.append(_line(row, index, column_map, f"line {number}"))
    return ParsedStatement("csv", None, None, None, min((x.booking_date for x in lines), default=None),
                           max((x.booking_date for x in lines), default=None), None, None, tuple(lines))


def _line(row: list[str], index: dict[str, int], m: CsvColumnMap, location: str) -> StatementLine:
    def cell(field: str) -> str | None:
        return row[index[field]].strip() if field in index else None

    currency = currency_code(cell("currency"), f"{location}, column {m.columns['currency']}")
    direction_word = (cell("direction") or "").upper()
    status = (cell("status") or "BOOK").upper()
    reversal = status in m.reversal_words or direction_word in m.reversal_words
    options = {"decimal_separator": m.decimal_separator, "thousands_separator": m.thousands_separator}
    if "amount" in index:
        amount = minor_amount(cell("amount"), currency, f"{location}, column {m.columns['amount']}", **options)
        if direction_word in m.debit_words or (not direction_word and "direction" not in index):
            direction = DEBIT
        elif direction_word in m.credit_words or direction_word in m.reversal_words:
            direction = CREDIT
        else:
            raise StatementFormatError(f"{location}, column {m.columns['direction']}",
                                       f"{cell('direction')!r} is neither a debit nor a credit")
    else:
        debit, credit = cell("debit"), cell("credit")
        if bool(debit) == bool(credit):
            raise StatementFormatError(location, "exactly one of the debit and credit columns has an amount")
        field = "debit" if debit else "credit"
        amount = minor_amount(debit or credit, currency, f"{location}, column {m.columns[field]}", **options)
        direction = DEBIT if debit else CREDIT
    if reversal and direction == DEBIT and direction_word not in m.debit_words:
        direction = CREDIT  # "RVSL" alone: money back
    booked = _date(cell("booking_date"), m.date_format, f"{location}, column {m.columns['booking_date']}")
    value = (_date(cell("value_date"), m.date_format, f"{location}, column {m.columns['value_date']}")
             if cell("value_date") else None)
    return StatementLine(location=location, booking_date=booked, value_date=value,
                         provider_ref=cell("provider_ref") or None, reference=cell("reference") or None,
                         amount_minor=amount, currency=currency, direction=direction, reversal=reversal,
                         counterparty=cell("counterparty") or None, status=status)
