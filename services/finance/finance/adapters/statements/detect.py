"""Which format a statement file is in: from its content first, its name second."""

from __future__ import annotations

from finance.domain.statements import StatementFormatError

FORMATS = ("csv", "camt053", "mt940")


def detect_format(data: bytes, filename: str = "") -> str:
    head = data[:2048].lstrip(b"\xef\xbb\xbf").lstrip()
    name = filename.lower()
    if head.startswith(b"<") or name.endswith(".xml"):
        return "camt053"
    if head.startswith((b":20:", b"{1:", b":940:")) or name.endswith((".mt940", ".sta", ".940")):
        return "mt940"
    if name.endswith((".csv", ".txt")) or b"," in head or b";" in head:
        return "csv"
    raise StatementFormatError("file", "not a CSV, camt.053 or MT940 statement")
