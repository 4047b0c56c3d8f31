"""ISO 20022 camt.053 (bank-to-customer statement) files.

pycamt reads the statement (version check, balances, the transactions); lxml reads the same tree
for what pycamt leaves out (each entry's line in the file, the account servicer's reference) so
that every refusal can say which element is at fault."""

from __future__ import annotations

from datetime import date

from lxml import etree
from pycamt.parser import Camt053Parser

from finance.domain.statements import CREDIT, DEBIT, ParsedStatement, StatementFormatError, StatementLine

from .amounts import currency_code, minor_amount

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)


def _root(data: bytes) -> etree._Element:
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        line = exc.position[0] if exc.position else "?"
        raise StatementFormatError(f"line {line}", f"not well-formed XML: {exc.msg}") from None
    namespace = etree.QName(root).namespace or ""
    if etree.QName(root).localname != "Document" or "camt.053" not in namespace:
        raise StatementFormatError(f"element {etree.QName(root).localname} (line {root.sourceline})",
                                   f"not a camt.053 document (namespace {namespace or 'none'})")
    return root


def _find(parent: etree._Element, path: str, ns: dict) -> etree._Element | None:
    return parent.find(path, ns)


def _text(parent: etree._Element, path: str, ns: dict) -> str | None:
    element = parent.find(path, ns)
    return element.text.strip() if element is not None and element.text else None


def _where(element: etree._Element, name: str) -> str:
    return f"{name} (line {element.sourceline})"


def _date(text: str | None, location: str) -> date:
    try:
        return date.fromisoformat((text or "")[:10])
    except ValueError:
        raise StatementFormatError(location, f"{text!r} is not a date") from None


def parse_camt053(data: bytes) -> ParsedStatement:
    root = _root(data)
    ns = {"c": etree.QName(root).namespace}
    try:
        Camt053Parser(data).get_statement_info()  # the library's own reading must succeed too
    except Exception as exc:  # noqa: BLE001 - pycamt raises bare errors: reported with a location
        raise StatementFormatError(_where(root, "Document"), f"unreadable camt.053: {exc}") from None
    statements = root.findall("c:BkToCstmrStmt/c:Stmt", ns)
    if len(statements) != 1:
        raise StatementFormatError(_where(root, "BkToCstmrStmt"), f"{len(statements)} Stmt elements; one is expected")
    stmt = statements[0]
    currency = _text(stmt, "c:Acct/c:Ccy", ns)
    lines = tuple(_entry(e, n, ns) for n, e in enumerate(stmt.findall("c:Ntry", ns), start=1))
    _check_summary(stmt, lines, ns)
    opening, closing = _balance(stmt, "OPBD", ns), _balance(stmt, "CLBD", ns)
    if opening is not None and closing is not None:
        net = sum(x.amount_minor if x.direction == CREDIT else -x.amount_minor for x in lines)
        if opening + net != closing:
            raise StatementFormatError(_where(stmt, "Stmt/Bal"), f"the opening balance {opening} and the entries "
                                       f"({net:+}) do not give the closing balance {closing}")
    account = _text(stmt, "c:Acct/c:Id/c:IBAN", ns) or _text(stmt, "c:Acct/c:Id/c:Othr/c:Id", ns)
    start = _text(stmt, "c:FrToDt/c:FrDtTm", ns)
    end = _text(stmt, "c:FrToDt/c:ToDtTm", ns)
    return ParsedStatement(
        "camt053", _text(stmt, "c:Id", ns), account, currency_code(currency, _where(stmt, "Acct/Ccy")) if currency
        else None, _date(start, _where(stmt, "FrToDt")) if start else None,
        _date(end, _where(stmt, "FrToDt")) if end else None, opening, closing, lines)


def _entry(entry: etree._Element, n: int, ns: dict) -> StatementLine:
    location = f"Ntry {n} (line {entry.sourceline})"
    amount_element = _find(entry, "c:Amt", ns)
    if amount_element is None or not (amount_element.text or "").strip():
        raise StatementFormatError(location, "no Amt")
    currency = currency_code(amount_element.get("Ccy"), f"{location}, Amt/@Ccy")
    amount = minor_amount(amount_element.text, currency, f"{location}, Amt")
    indicator = _text(entry, "c:CdtDbtInd", ns)
    if indicator not in ("DBIT", "CRDT"):
        raise StatementFormatError(f"{location}, CdtDbtInd", f"{indicator!r} is neither DBIT nor CRDT")
    booked = _text(entry, "c:BookgDt/c:Dt", ns) or _text(entry, "c:BookgDt/c:DtTm", ns)
    if booked is None:
        raise StatementFormatError(location, "no BookgDt")
    value = _text(entry, "c:ValDt/c:Dt", ns) or _text(entry, "c:ValDt/c:DtTm", ns)
    details = _find(entry, "c:NtryDtls/c:TxDtls", ns)
    reference = counterparty = None
    provider_ref = _text(entry, "c:AcctSvcrRef", ns) or _text(entry, "c:NtryRef", ns)
    if details is not None:
        reference = _text(details, "c:Refs/c:EndToEndId", ns) or _text(details, "c:RmtInf/c:Ustrd", ns)
        provider_ref = provider_ref or _text(details, "c:Refs/c:AcctSvcrRef", ns)
        counterparty = _text(details, "c:RltdPties/c:Cdtr/c:Nm", ns) or _text(details, "c:RltdPties/c:Dbtr/c:Nm", ns)
    if reference in ("NOTPROVIDED", "NONREF"):
        reference = None
    status = _text(entry, "c:Sts", ns) or _text(entry, "c:Sts/c:Cd", ns) or "BOOK"
    return StatementLine(location=location, booking_date=_date(booked, f"{location}, BookgDt"),
                         value_date=_date(value, f"{location}, ValDt") if value else None,
                         provider_ref=provider_ref, reference=reference, amount_minor=amount, currency=currency,
                         direction=DEBIT if indicator == "DBIT" else CREDIT,
                         reversal=(_text(entry, "c:RvslInd", ns) or "").lower() == "true",
                         counterparty=counterparty, status=status.upper())


def _balance(stmt: etree._Element, code: str, ns: dict) -> int | None:
    for bal in stmt.findall("c:Bal", ns):
        if _text(bal, "c:Tp/c:CdOrPrtry/c:Cd", ns) != code:
            continue
        amount = _find(bal, "c:Amt", ns)
        if amount is None:
            raise StatementFormatError(_where(bal, f"Bal {code}"), "no Amt")
        currency = currency_code(amount.get("Ccy"), _where(bal, f"Bal {code}/Amt/@Ccy"))
        minor = minor_amount(amount.text, currency, _where(bal, f"Bal {code}/Amt"), allow_zero=True)
        return -minor if _text(bal, "c:CdtDbtInd", ns) == "DBIT" else minor
    return None


def _check_summary(stmt: etree._Element, lines: tuple[StatementLine, ...], ns: dict) -> None:
    count = _find(stmt, "c:TxsSummry/c:TtlNtries/c:NbOfNtries", ns)
    if count is not None and (count.text or "").strip() != str(len(lines)):
        raise StatementFormatError(_where(count, "TxsSummry/TtlNtries/NbOfNtries"),
                                   f"says {count.text} entries; the statement has {len(lines)}")
