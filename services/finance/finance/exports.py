"""Tables written as CSV and XLSX for finance staff's spreadsheets.

Cells that a spreadsheet would read as a formula (starting with = + - @, or a tab or CR) are
prefixed with a quote: a beneficiary's name or a provider's reference must never run as code
(CSV/formula injection). Amounts are written as exact decimal text in CSV and as numbers in XLSX,
with the currency in its own column."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Table:
    name: str                      # the sheet's name (XLSX: at most 31 characters)
    columns: Sequence[str]
    rows: Sequence[Sequence[Any]]
    numeric: frozenset[str] = field(default_factory=frozenset)  # columns holding numbers (never escaped)
    chart: tuple[str, Sequence[str]] | None = None  # (category column, value columns) for a bar chart


def safe_text(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def _cells(table: Table, row: Sequence[Any]) -> list[Any]:
    return [value if column in table.numeric else safe_text(value)
            for column, value in zip(table.columns, row, strict=True)]


def to_csv(tables: Sequence[Table]) -> bytes:
    """One CSV: each table under a `# <name>` line when there are several. UTF-8 with a BOM, so
    that spreadsheet programs read accents right."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for n, table in enumerate(tables):
        if len(tables) > 1:
            if n:
                writer.writerow([])
            writer.writerow([f"# {table.name}"])
        writer.writerow(table.columns)
        for row in table.rows:
            writer.writerow(["" if v is None else v for v in _cells(table, row)])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def to_xlsx(tables: Sequence[Table]) -> bytes:
    """One workbook, a sheet per table, with a native bar chart where the table names one."""
    import xlsxwriter

    buffer = io.BytesIO()
    workbook = xlsxwriter.Workbook(buffer, {"in_memory": True, "strings_to_formulas": False,
                                            "strings_to_urls": False})
    bold = workbook.add_format({"bold": True, "bg_color": "#E8EEF4"})
    for table in tables:
        sheet = workbook.add_worksheet(_sheet_name(table.name))
        sheet.write_row(0, 0, list(table.columns), bold)
        for r, row in enumerate(table.rows, start=1):
            for c, value in enumerate(_cells(table, row)):
                if value is None:
                    continue
                if table.columns[c] in table.numeric and isinstance(value, int | float):
                    sheet.write_number(r, c, value)
                else:
                    sheet.write_string(r, c, str(value))
        for c, column in enumerate(table.columns):
            width = max([len(str(column))] + [len(str(row[c] or "")) for row in table.rows[:200]])
            sheet.set_column(c, c, min(max(width + 2, 8), 60))
        sheet.freeze_panes(1, 0)
        if table.chart and table.rows:
            _add_chart(workbook, sheet, table)
    workbook.close()
    return buffer.getvalue()


def _sheet_name(name: str) -> str:
    for bad in "[]:*?/\\":
        name = name.replace(bad, " ")
    return name[:31] or "Sheet"


def _add_chart(workbook: Any, sheet: Any, table: Table) -> None:
    category, values = table.chart
    cat = list(table.columns).index(category)
    chart = workbook.add_chart({"type": "column"})
    last = len(table.rows)
    name = _sheet_name(table.name)
    for column in values:
        c = list(table.columns).index(column)
        chart.add_series({"name": column, "categories": [name, 1, cat, last, cat], "values": [name, 1, c, last, c]})
    chart.set_title({"name": table.name})
    sheet.insert_chart(1, len(table.columns) + 1, chart, {"x_scale": 1.4, "y_scale": 1.2})
