"""Which format a statement file is in: from its content first (a file can be misnamed), its name second."""

from __future__ import annotations

import re

from finance.domain.statements import StatementFormatError

FORMATS = ("csv", "camt053", "mt940")
_MT940_START = re.compile(rb"^(\{1:|\{4:|:20:)", re.MULTILINE)
_NOT_TEXT = {b"%PDF": "a PDF", b"PK\x03\x04": "a ZIP or XLSX file", b"\xd0\xcf\x11\xe0": "an XLS file"}
_BY_NAME = ((".xml", "camt053"), (".camt053", "camt053"), (".mt940", "mt940"),
            (".sta", "mt940"), (".940", "mt940"), (".csv", "csv"))


def detect_format(data: bytes, filename: str = "") -> str:
    head = data[:4096].removeprefix(b"\xef\xbb\xbf").lstrip()
    for magic, what in _NOT_TEXT.items():
        if head.startswith(magic):
            raise StatementFormatError("file", f"{what}, not a CSV, camt.053 or MT940 statement")
    if head.startswith(b"<"):
        return "camt053"
    if _MT940_START.search(head[:512]):
        return "mt940"
    name = filename.lower()
    for suffix, fmt in _BY_NAME:
        if name.endswith(suffix):
            return fmt
    first_line = head.split(b"\n", 1)[0]
    if any(d in first_line for d in (b",", b";", b"\t", b"|")):
        return "csv"
    raise StatementFormatError("file", "not a CSV, camt.053 or MT940 statement (say which with the format)")
