"""ISO 20022 camt.053 (bank-to-customer statement) files, one statement (one account) per file.

pycamt (1.1.1) reads the entries: account servicer reference, EndToEndId, remittance information,
reversal indicator, status, dates, parties. lxml reads the same document for each element's line in
the file and for what pycamt leaves out or gets wrong: NtryRef; the entry's own amount and
credit/debit indicator (pycamt overwrites both with the first of the entry's details, whose Amt can
be an instructed amount in another currency); the balances (pycamt turns debit balances into
floats); the transaction summary. An entry with several transaction details (a batch) gives one
line per detail, whose amounts must add up to the entry's."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from lxml import etree
from pycamt.parser import Camt053Parser

from finance.domain.statements import CREDIT, DEBIT, ParsedStatement, StatementFormatError, StatementLine

from .amounts import currency_code, minor_amount

_NAMESPACE = re.compile(r"urn:iso:std:iso:20022:tech:xsd:camt\.053\.001\.\d{2}")
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(T.+)?")
_NOT_A_REFERENCE = {"", "NOTPROVIDED", "NONREF"}
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


@dataclass(frozen=True)
class _Balance:
    minor: int  # signed: a credit balance is positive
    currency: str
    amount: etree._Element
    path: str


@dataclass(frozen=True)
class _Entry:
    """An Ntry as the balances and the summary count it, whatever lines it gives."""

    amount_minor: int
    direction: str


def _at(element: etree._Element, path: str) -> str:
    return f"element {path} (line {element.sourceline})"


def _text(parent: etree._Element, path: str, ns: dict) -> str | None:
    element = parent.find(path, ns)
    return element.text.strip() if element is not None and element.text and element.text.strip() else None


def _document(data: bytes) -> etree._Element:
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        line, column = exc.position if exc.position else ("?", "?")
        raise StatementFormatError(f"line {line}, column {column}", f"not well-formed XML: {exc.msg}") from None
    if root.getroottree().docinfo.doctype:
        raise StatementFormatError("line 1", "a DOCTYPE, which camt.053 documents do not have (nor entities)")
    name = etree.QName(root)
    if name.localname != "Document" or not _NAMESPACE.fullmatch(name.namespace or ""):
        raise StatementFormatError(_at(root, name.localname), "not a camt.053 document (namespace "
                                   f"{name.namespace or 'none'}; urn:iso:std:iso:20022:tech:xsd:camt.053.001.nn)")
    return root


def _default_namespace(root: etree._Element) -> bytes:
    """The document with its namespace as the default one: pycamt looks elements up with the
    document's own prefixes and, in a prefixed document (<c:Document>), finds none."""
    namespace = etree.QName(root).namespace

    def copy(element: etree._Element, parent: etree._Element | None) -> etree._Element:
        new = (etree.Element(element.tag, nsmap={None: namespace}) if parent is None
               else etree.SubElement(parent, element.tag))
        new.attrib.update(element.attrib)
        new.text, new.tail = element.text, element.tail
        for child in element.iterchildren(etree.Element):  # comments and processing instructions left out
            copy(child, new)
        return new

    return etree.tostring(copy(root, None))


def _pycamt_transactions(root: etree._Element, data: bytes) -> list[dict]:
    try:
        parser = Camt053Parser(data if root.prefix is None else _default_namespace(root))
        return parser.get_transactions()
    except Exception as exc:  # noqa: BLE001 - pycamt raises bare errors: refused with a location
        raise StatementFormatError(_at(root, "Document"), f"unreadable camt.053: {exc!r}") from None


def parse_camt053(data: bytes) -> ParsedStatement:
    root = _document(data)
    ns = {"c": etree.QName(root).namespace}
    report = root.find("c:BkToCstmrStmt", ns)
    if report is None:
        raise StatementFormatError(_at(root, "Document"), "no BkToCstmrStmt: not a bank-to-customer statement")
    statements = report.findall("c:Stmt", ns)
    if len(statements) != 1:
        raise StatementFormatError(_at(report, "BkToCstmrStmt"), f"{len(statements)} Stmt elements; one "
                                   "statement (one account) per file")
    stmt = statements[0]
    account_currency = _text(stmt, "c:Acct/c:Ccy", ns)
    if account_currency:
        account_currency = currency_code(account_currency, _at(stmt.find("c:Acct/c:Ccy", ns), "Stmt/Acct/Ccy"))
    balances = _balances(stmt, ns, account_currency)
    currency = account_currency or next((b.currency for b in balances.values()), None)
    entries, lines = _entries(stmt, ns, currency, _pycamt_transactions(root, data))
    _check_summary(stmt, entries, currency, ns)
    opening = balances.get("OPBD") or balances.get("PRCD")  # a previous closing stands for a missing opening
    closing = balances.get("CLBD")
    if opening and closing:
        net = sum(e.amount_minor if e.direction == CREDIT else -e.amount_minor for e in entries)
        if opening.minor + net != closing.minor:
            raise StatementFormatError(_at(closing.amount, f"{closing.path}/Amt"), f"the opening balance "
                                       f"{opening.minor} and the entries ({net:+}) give {opening.minor + net}, "
                                       f"not the closing balance {closing.minor}")
    account = _text(stmt, "c:Acct/c:Id/c:IBAN", ns) or _text(stmt, "c:Acct/c:Id/c:Othr/c:Id", ns)
    start = end = None
    period = stmt.find("c:FrToDt", ns)
    if period is not None:
        start = _date(_text(period, "c:FrDtTm", ns), _at(period, "Stmt/FrToDt/FrDtTm"), required=False)
        end = _date(_text(period, "c:ToDtTm", ns), _at(period, "Stmt/FrToDt/ToDtTm"), required=False)
    return ParsedStatement("camt053", _text(stmt, "c:Id", ns), account, currency, start, end,
                           opening.minor if opening else None, closing.minor if closing else None, tuple(lines))


def _balances(stmt: etree._Element, ns: dict, account_currency: str | None) -> dict[str, _Balance]:
    """OPBD, PRCD and CLBD: the others (available balances, ...) say nothing about the entries."""
    found: dict[str, _Balance] = {}
    for k, bal in enumerate(stmt.findall("c:Bal", ns), start=1):
        code, path = _text(bal, "c:Tp/c:CdOrPrtry/c:Cd", ns), f"Stmt/Bal[{k}]"
        if code not in ("OPBD", "PRCD", "CLBD"):
            continue
        if code in found:
            raise StatementFormatError(_at(bal, path), f"a second {code} balance")
        currency, minor = _money(bal, path, ns, account_currency, allow_zero=True)
        sign = -1 if _indicator(bal, path, ns) == DEBIT else 1
        found[code] = _Balance(sign * minor, currency, bal.find("c:Amt", ns), path)
    return found


def _money(element: etree._Element, path: str, ns: dict, expected_currency: str | None,
           allow_zero: bool = False) -> tuple[str, int]:
    amount = element.find("c:Amt", ns)
    if amount is None or not (amount.text or "").strip():
        raise StatementFormatError(_at(element, path), "no Amt (amount)")
    currency = currency_code(amount.get("Ccy"), _at(amount, f"{path}/Amt/@Ccy"))
    if expected_currency and currency != expected_currency:
        raise StatementFormatError(_at(amount, f"{path}/Amt/@Ccy"), f"{currency} in a statement in {expected_currency}")
    return currency, minor_amount(amount.text, currency, _at(amount, f"{path}/Amt"), allow_zero=allow_zero)


def _indicator(element: etree._Element, path: str, ns: dict) -> str:
    indicator = element.find("c:CdtDbtInd", ns)
    text = (indicator.text or "").strip() if indicator is not None else None
    if text not in ("DBIT", "CRDT"):
        where = _at(indicator, f"{path}/CdtDbtInd") if indicator is not None else _at(element, path)
        raise StatementFormatError(where, f"CdtDbtInd is {text!r}; DBIT or CRDT")
    return DEBIT if text == "DBIT" else CREDIT


def _date(text: str | None, location: str, *, required: bool = True) -> date | None:
    if not text:
        if required:
            raise StatementFormatError(location, "no date")
        return None
    try:
        if not _DATE.fullmatch(text):
            raise ValueError(text)
        return date.fromisoformat(text[:10])  # a DtTm's day as the bank wrote it
    except ValueError:
        raise StatementFormatError(location, f"{text!r} is not an ISO date (YYYY-MM-DD)") from None


def _child_at(entry: etree._Element, tag: str, path: str, ns: dict) -> str:
    child = entry.find(f"c:{tag}", ns)
    return _at(child, f"{path}/{tag}") if child is not None else _at(entry, path)


def _entries(stmt: etree._Element, ns: dict, currency: str | None,
             transactions: list[dict]) -> tuple[list[_Entry], list[StatementLine]]:
    """Each Ntry with the pycamt transactions it gave: one per TxDtls, or one for an entry without."""
    elements = stmt.findall("c:Ntry", ns)
    details = [[d for block in e.findall(".//c:NtryDtls", ns) for d in block.findall(".//c:TxDtls", ns)]
               for e in elements]
    if sum(max(1, len(d)) for d in details) != len(transactions):
        raise StatementFormatError(_at(stmt, "Stmt"), "entries nested where camt.053 does not put them")
    entries, lines, offset = [], [], 0
    for n, (element, tx_details) in enumerate(zip(elements, details, strict=True), start=1):
        count = max(1, len(tx_details))
        entry, entry_lines = _entry(element, n, tx_details, transactions[offset:offset + count], ns, currency)
        entries.append(entry)
        lines.extend(entry_lines)
        offset += count
    return entries, lines


def _entry(element: etree._Element, n: int, tx_details: list[etree._Element], transactions: list[dict], ns: dict,
           statement_currency: str | None) -> tuple[_Entry, list[StatementLine]]:
    path = f"Stmt/Ntry[{n}]"
    common = transactions[0]  # the entry's own fields are in each of its transactions
    currency, amount = _money(element, path, ns, statement_currency)
    direction = _indicator(element, path, ns)
    reversal_text = (common.get("ReversalIndicator") or "false").strip().lower()
    if reversal_text not in _BOOLEANS:
        raise StatementFormatError(_child_at(element, "RvslInd", path, ns), f"RvslInd is {reversal_text!r}; true or "
                                   "false")
    shared = {
        "booking_date": _date(common.get("BookingDate"), _child_at(element, "BookgDt", path, ns)),
        "value_date": _date(common.get("ValueDate"), _child_at(element, "ValDt", path, ns), required=False),
        "currency": currency, "reversal": _BOOLEANS[reversal_text],
        "status": (common.get("Status") or "BOOK").strip().upper(),
    }
    # The account servicer's reference (pycamt's TransactionID), else NtryRef, which pycamt leaves out.
    entry_ref = _reference(common.get("TransactionID")) or _text(element, "c:NtryRef", ns)
    if len(tx_details) <= 1:
        line = StatementLine(location=f"Ntry {n} (line {element.sourceline})", provider_ref=entry_ref,
                             reference=_our_reference(common), amount_minor=amount, direction=direction,
                             counterparty=_counterparty(common, direction), **shared)
        return _Entry(amount, direction), [line]
    own_ref = _text(element, "c:AcctSvcrRef", ns) or _text(element, "c:NtryRef", ns)
    lines, net = [], 0
    for k, (detail, tx) in enumerate(zip(tx_details, transactions, strict=True), start=1):
        detail_path = f"{path}/NtryDtls/TxDtls[{k}]"
        amount_element = detail if detail.find("c:Amt", ns) is not None else detail.find("c:AmtDtls/c:TxAmt", ns)
        if amount_element is None:
            raise StatementFormatError(_at(detail, detail_path), "no Amt or AmtDtls/TxAmt: a detail of a batch "
                                       "entry has its own amount")
        _, detail_amount = _money(amount_element, detail_path, ns, currency)
        detail_direction = (_indicator(detail, detail_path, ns) if detail.find("c:CdtDbtInd", ns) is not None
                            else direction)
        net += detail_amount if detail_direction == direction else -detail_amount
        lines.append(StatementLine(
            location=f"Ntry {n} TxDtls {k} (line {detail.sourceline})",
            provider_ref=_text(detail, "c:Refs/c:AcctSvcrRef", ns) or own_ref, reference=_our_reference(tx),
            amount_minor=detail_amount, direction=detail_direction, counterparty=_counterparty(tx, detail_direction),
            **shared))
    if net != amount:
        raise StatementFormatError(_at(element.find("c:Amt", ns), f"{path}/Amt"), f"the entry is {amount} but "
                                   f"its {len(tx_details)} transaction details come to {net}")
    return _Entry(amount, direction), lines


def _reference(text: str | None) -> str | None:
    text = (text or "").strip()
    return None if text.upper() in _NOT_A_REFERENCE else text


def _our_reference(tx: dict) -> str | None:
    return _reference(tx.get("EndToEndId")) or _reference(tx.get("RemittanceInformation"))


def _counterparty(tx: dict, direction: str) -> str | None:
    names = (tx.get("CreditorName"), tx.get("DebtorName"))
    for name in names if direction == DEBIT else reversed(names):
        if name and name.strip():
            return name.strip()
    return None


def _check_summary(stmt: etree._Element, entries: list[_Entry], currency: str | None, ns: dict) -> None:
    summary = stmt.find("c:TxsSummry", ns)
    if summary is None:
        return
    groups = {"TtlNtries": entries, "TtlCdtNtries": [e for e in entries if e.direction == CREDIT],
              "TtlDbtNtries": [e for e in entries if e.direction == DEBIT]}
    for tag, group in groups.items():
        block = summary.find(f"c:{tag}", ns)
        if block is None:
            continue
        count = block.find("c:NbOfNtries", ns)
        if count is not None and (count.text or "").strip() != str(len(group)):
            raise StatementFormatError(_at(count, f"Stmt/TxsSummry/{tag}/NbOfNtries"),
                                       f"says {(count.text or '').strip()} entries; the statement has {len(group)}")
        total = block.find("c:Sum", ns)
        if total is not None and currency:
            said = minor_amount(total.text, currency, _at(total, f"Stmt/TxsSummry/{tag}/Sum"), allow_zero=True)
            if said != sum(e.amount_minor for e in group):
                raise StatementFormatError(_at(total, f"Stmt/TxsSummry/{tag}/Sum"), f"says {said}; the entries "
                                           f"come to {sum(e.amount_minor for e in group)}")
