"""Provider statement parsers: CSV (a column map per provider), camt.053, MT940.

    parse_statement(data, filename="2026-12-01.camt053.xml", column_map=column_map_for("wave_sn"))

Each returns the whole statement or raises StatementFormatError naming the line or element at
fault; nothing is ever returned half read."""

from __future__ import annotations

from finance.domain.statements import ParsedStatement, StatementFormatError

from .camt053 import parse_camt053
from .column_maps import CsvColumnMap, column_map_for
from .csv_statement import parse_csv
from .detect import FORMATS, detect_format
from .mt940 import parse_mt940

__all__ = ["FORMATS", "CsvColumnMap", "column_map_for", "detect_format", "parse_statement"]


def parse_statement(data: bytes, *, filename: str = "", fmt: str | None = None,
                    column_map: CsvColumnMap | None = None) -> ParsedStatement:
    if not data or not data.strip():
        raise StatementFormatError("line 1", "the file is empty")
    fmt = fmt or detect_format(data, filename)
    if fmt == "csv":
        return parse_csv(data, column_map or column_map_for("default"))
    if fmt == "camt053":
        return parse_camt053(data)
    if fmt == "mt940":
        return parse_mt940(data)
    raise StatementFormatError("format", f"unknown statement format {fmt!r}; one of {', '.join(FORMATS)}")
