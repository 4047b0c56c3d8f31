"""Daily account statements per provider: CSV, ISO 20022 camt.053.001.02 and SWIFT MT940.

A statement covers the transfers settled on one UTC day (their booking and value date), as
debits of the programme's account at the provider. The opening balance is the provider's float
less everything settled before that day, so each day opens with the previous day's closing.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from lxml import etree

from .catalogue import Provider
from .money import exponent, format_major
from .store import Store, Transfer

FORMATS = {"csv": "text/csv", "camt053.xml": "application/xml", "mt940": "text/plain"}
CAMT_NS = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"
CSV_HEADER = ["booking_date", "value_date", "transfer_id", "reference", "counterparty", "amount", "currency",
              "direction", "status"]


@dataclass(frozen=True)
class Statement:
    provider: Provider
    day: date
    opening_minor: int
    entries: list[Transfer]

    @property
    def total_minor(self) -> int:
        return sum(t.settled_amount_minor or 0 for t in self.entries)

    @property
    def closing_minor(self) -> int:
        return self.opening_minor - self.total_minor

    @property
    def number(self) -> int:
        return self.day.timetuple().tm_yday


def build(store: Store, provider: Provider, day: date) -> Statement:
    start = datetime.combine(day, time.min, UTC).timestamp()
    end = start + timedelta(days=1).total_seconds()
    opening = provider.float_minor - store.settled_total_before(provider.name, start)
    return Statement(provider, day, opening, store.settled_between(provider.name, start, end))


def render(statement: Statement, fmt: str) -> bytes:
    if fmt == "csv":
        return to_csv(statement)
    if fmt == "camt053.xml":
        return to_camt053(statement)
    if fmt == "mt940":
        return to_mt940(statement)
    raise ValueError(f"unknown statement format {fmt!r}")


def write_all(store: Store, providers: dict[str, Provider], day: date, directory: Path) -> dict[str, dict[str, str]]:
    """Write every provider's statement of `day` in every format; their paths by provider and format."""
    paths: dict[str, dict[str, str]] = {}
    for provider in providers.values():
        statement = build(store, provider, day)
        folder = directory / provider.name
        folder.mkdir(parents=True, exist_ok=True)
        paths[provider.name] = {}
        for fmt in FORMATS:
            path = folder / f"{day.isoformat()}.{fmt}"
            path.write_bytes(render(statement, fmt))
            paths[provider.name][fmt] = str(path)
    return paths


def _booking_date(transfer: Transfer) -> date:
    return datetime.fromtimestamp(transfer.settled_at or 0, UTC).date()


# ---------------------------------------------------------------------- CSV
def to_csv(statement: Statement) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for t in statement.entries:
        booked = _booking_date(t).isoformat()
        writer.writerow([booked, booked, t.transfer_id, t.reference, t.counterparty,
                         format_major(t.settled_amount_minor or 0, t.currency), t.currency, "DBIT", "BOOK"])
    return out.getvalue().encode()


# ---------------------------------------------------------------------- camt.053
def _el(parent: etree._Element, tag: str, text: str | None = None, **attrib: str) -> etree._Element:
    element = etree.SubElement(parent, f"{{{CAMT_NS}}}{tag}", attrib)
    if text is not None:
        element.text = text
    return element


def _path(parent: etree._Element, *tags: str, text: str | None = None) -> etree._Element:
    for tag in tags:
        parent = _el(parent, tag)
    if text is not None:
        parent.text = text
    return parent


def _account_id(parent: etree._Element, identifier: str, is_iban: bool) -> None:
    account_id = _el(parent, "Id")
    if is_iban:
        _el(account_id, "IBAN", identifier)
    else:
        _path(account_id, "Othr", "Id", text=identifier)


def _balance(stmt: etree._Element, code: str, minor: int, currency: str, day: date) -> None:
    bal = _el(stmt, "Bal")
    _path(bal, "Tp", "CdOrPrtry", "Cd", text=code)
    _el(bal, "Amt", format_major(abs(minor), currency), Ccy=currency)
    _el(bal, "CdtDbtInd", "CRDT" if minor >= 0 else "DBIT")
    _path(bal, "Dt", "Dt", text=day.isoformat())


def to_camt053(statement: Statement) -> bytes:
    provider, day, currency = statement.provider, statement.day, statement.provider.currency
    created = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    statement_id = f"{provider.name.upper()}-{day:%Y%m%d}"
    root = etree.Element(f"{{{CAMT_NS}}}Document", nsmap={None: CAMT_NS})
    report = _el(root, "BkToCstmrStmt")
    header = _el(report, "GrpHdr")
    _el(header, "MsgId", statement_id)
    _el(header, "CreDtTm", created)
    stmt = _el(report, "Stmt")
    _el(stmt, "Id", statement_id)
    _el(stmt, "ElctrncSeqNb", str(statement.number))
    _el(stmt, "CreDtTm", created)
    period = _el(stmt, "FrToDt")
    _el(period, "FrDtTm", f"{day.isoformat()}T00:00:00Z")
    _el(period, "ToDtTm", f"{day.isoformat()}T23:59:59Z")
    account = _el(stmt, "Acct")
    _account_id(account, provider.account.identifier, provider.account.iban is not None)
    _el(account, "Ccy", currency)
    _path(account, "Svcr", "FinInstnId", "Nm", text=provider.name)
    _balance(stmt, "OPBD", statement.opening_minor, currency, day)
    _balance(stmt, "CLBD", statement.closing_minor, currency, day)
    summary = _el(stmt, "TxsSummry")
    totals = _el(summary, "TtlNtries")
    _el(totals, "NbOfNtries", str(len(statement.entries)))
    _el(totals, "Sum", format_major(statement.total_minor, currency))
    _el(totals, "TtlNetNtryAmt", format_major(statement.total_minor, currency))
    _el(totals, "CdtDbtInd", "DBIT")
    debits = _el(summary, "TtlDbtNtries")
    _el(debits, "NbOfNtries", str(len(statement.entries)))
    _el(debits, "Sum", format_major(statement.total_minor, currency))
    for t in statement.entries:
        _entry(stmt, t)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _entry(stmt: etree._Element, t: Transfer) -> None:
    booked = _booking_date(t).isoformat()
    amount = format_major(t.settled_amount_minor or 0, t.currency)
    entry = _el(stmt, "Ntry")
    _el(entry, "NtryRef", t.transfer_id)
    _el(entry, "Amt", amount, Ccy=t.currency)
    _el(entry, "CdtDbtInd", "DBIT")
    _el(entry, "Sts", "BOOK")
    _path(entry, "BookgDt", "Dt", text=booked)
    _path(entry, "ValDt", "Dt", text=booked)
    _el(entry, "AcctSvcrRef", t.transfer_id)
    family = _path(entry, "BkTxCd", "Domn")
    _el(family, "Cd", "PMNT")
    family = _el(family, "Fmly")
    _el(family, "Cd", "ICDT")
    _el(family, "SubFmlyCd", "DMCT")
    details = _path(entry, "NtryDtls", "TxDtls")
    refs = _el(details, "Refs")
    _el(refs, "AcctSvcrRef", t.transfer_id)
    _el(refs, "EndToEndId", t.reference)
    _el(_path(details, "AmtDtls", "TxAmt"), "Amt", amount, Ccy=t.currency)
    parties = _el(details, "RltdPties")
    _el(_el(parties, "Cdtr"), "Nm", t.counterparty_name or t.counterparty)
    _account_id(_el(parties, "CdtrAcct"), t.counterparty, is_iban="iban" in (t.request.get("creditor") or {}))
    _path(details, "RmtInf", "Ustrd", text=t.reference)


# ---------------------------------------------------------------------- MT940
def _mt_amount(minor: int, currency: str) -> str:
    text = format_major(abs(minor), currency)
    return text.replace(".", ",") if exponent(currency) else text + ","


def _mt_balance(tag: str, minor: int, currency: str, day: date) -> str:
    return f":{tag}:{'C' if minor >= 0 else 'D'}{day:%y%m%d}{currency}{_mt_amount(minor, currency)}"


def to_mt940(statement: Statement) -> bytes:
    provider, day, currency = statement.provider, statement.day, statement.provider.currency
    lines = [
        f":20:SBX{day:%Y%m%d}",
        f":25:{provider.account.identifier}",
        f":28C:{statement.number}/1",
        _mt_balance("60F", statement.opening_minor, currency, day),
    ]
    for t in statement.entries:
        booked = _booking_date(t)
        # Customer reference is 16x at most: ours when it fits, else NONREF; ours in full follows.
        ours = t.reference if len(t.reference) <= 16 else "NONREF"
        lines.append(f":61:{booked:%y%m%d}{booked:%m%d}D{_mt_amount(t.settled_amount_minor or 0, t.currency)}"
                     f"NTRF{ours}//{t.transfer_id[:16]}")
        lines.append(t.reference[:34])
        lines.append(f":86:/TXID/{t.transfer_id}/EREF/{t.reference}")
        lines.append(f"/BENM/{(t.counterparty_name or t.counterparty)[:58]}")
    lines.append(_mt_balance("62F", statement.closing_minor, currency, day))
    return ("\r\n".join(lines) + "\r\n").encode()
