"""Malformed statements are refused whole, with StatementFormatError saying where: CSV "line N,
column C", camt.053 "element <path> (line N)", MT940 "line N, :tag:". Never a library's bare error."""

from __future__ import annotations

import logging
import re
import uuid
from datetime import UTC, date, datetime, time

import pytest
from finance.adapters.statements import parse_statement
from finance.adapters.statements.column_maps import named_map
from finance.domain.statements import StatementFormatError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from provider_sandbox import statements as sandbox_statements
from provider_sandbox.catalogue import load_catalogue
from provider_sandbox.store import Transfer

DAY = date(2026, 12, 1)
NS = {"c": sandbox_statements.CAMT_NS}
HEADER = ",".join(sandbox_statements.CSV_HEADER) + "\n"
ROW = "2026-12-01,2026-12-01,t1,RG-1,221770000000,{amount},{currency},{direction},BOOK\n"


def rendered(fmt: str, amounts: tuple[int, ...] = (150_000, 200_000)) -> bytes:
    provider = load_catalogue()["wave_sn"]
    at = datetime.combine(DAY, time(9), UTC).timestamp()
    entries = [Transfer(
        transfer_id=f"wave_sn-{uuid.uuid4().hex}", provider="wave_sn", reference="RG-" + uuid.uuid4().hex[:24],
        provider_reference="x", amount_minor=a, currency="XOF", counterparty="221770000000",
        counterparty_name="Awa Ndiaye", request={}, callback_url=None, status="settled", failure_reason=None,
        settled_amount_minor=a, planned_failure=None, planned_delta_minor=0, pickup_code=None,
        created_at=at, updated_at=at, settled_at=at) for a in amounts]
    return sandbox_statements.render(sandbox_statements.Statement(provider, DAY, provider.float_minor, entries), fmt)


def refused(data: bytes, **options) -> StatementFormatError:
    with pytest.raises(StatementFormatError) as caught:
        parse_statement(data, **options)
    assert str(caught.value) == f"{caught.value.location}: {caught.value.message}"
    return caught.value


def row(amount: str = "100", currency: str = "XOF", direction: str = "DBIT") -> str:
    return ROW.format(amount=amount, currency=currency, direction=direction)


# ---------------------------------------------------------------------- any format
@pytest.mark.parametrize("data", [b"", b"   \n\r\n"])
def test_an_empty_file_is_refused(data):
    error = refused(data, filename="2026-12-01.csv")
    assert (error.location, error.message) == ("line 1", "the file is empty")


def test_an_unknown_or_undetectable_format_is_refused():
    assert refused(b"x", fmt="pdf").location == "format"
    assert "not a CSV, camt.053 or MT940" in refused(b"just words", filename="notes").message
    assert refused(b"%PDF-1.7 ...", filename="statement.pdf").message.startswith("a PDF")


# ---------------------------------------------------------------------- CSV
BAD_CSV = [
    (HEADER + row("12x00"), "line 2, column amount", "not an amount"),
    (HEADER + row("-100"), "line 2, column amount", "not an amount"),
    (HEADER + row("1e5"), "line 2, column amount", "not an amount"),
    (HEADER + row(""), "line 2, column amount", "not an amount"),
    (HEADER + row("12.5"), "line 2, column amount", "more decimals than XOF allows (0)"),
    (HEADER + row("12.505", "EUR"), "line 2, column amount", "more decimals than EUR allows (2)"),
    (HEADER + row("0"), "line 2, column amount", "more than nothing"),
    (HEADER + row("99999999999999999999"), "line 2, column amount", "beyond"),
    (HEADER + row(currency="ZZZ"), "line 2, column currency", "not an ISO 4217 currency"),
    (HEADER + row(currency="XAU"), "line 2, column currency", "not an ISO 4217 currency"),
    (HEADER + row(currency=""), "line 2, column currency", "no currency"),
    (HEADER + row(direction="SIDEWAYS"), "line 2, column direction", "neither a debit"),
    (HEADER + row().replace("2026-12-01,", "01/12/2026,", 1), "line 2, column booking_date", "not a date"),
    (HEADER + row().replace(",2026-12-01,", ",2026-02-30,", 1), "line 2, column value_date", "not a date"),
    (HEADER + row() + "2026-12-01,t2\n", "line 3", "2 columns where the header has 9"),
    (HEADER + row() + '2026-12-01,2026-12-01,t2,"RG-2\n', "line 3", "not CSV"),
    ("booking_date,transfer_id,amount\n2026-12-01,t1,100\n", "line 1", "no column 'value_date'"),
    (HEADER.replace("reference,", "currency,") + row(), "line 1", "no column 'reference'"),
    (HEADER.rstrip("\n") + ",amount\n" + row().rstrip("\n") + ",1\n", "line 1", "appears twice"),
    (",,,\n\n", "line 1", "no header line"),
]


@pytest.mark.parametrize(("text", "where", "why"), BAD_CSV)
def test_a_malformed_csv_is_refused_saying_where(text, where, why):
    error = refused(text.encode(), fmt="csv")
    assert error.location == where
    assert why in error.message


def test_a_csv_line_is_counted_in_the_file_even_after_a_quoted_line_break():
    text = HEADER + '2026-12-01,2026-12-01,t1,RG-1,"Awa\nNdiaye",100,XOF,DBIT,BOOK\n' + row("1O0")
    assert refused(text.encode(), fmt="csv").location == "line 4, column amount"


def test_a_csv_that_is_not_in_its_encoding_names_its_line():
    latin1 = (HEADER + row() + "2026-12-01,2026-12-01,t1,RG-1,Abidjan é,100,XOF,DBIT,BOOK\n").encode("latin-1")
    error = refused(latin1, fmt="csv")
    assert error.location == "line 3" and "not utf-8 text" in error.message
    error = refused("Date opération;Débit\n".encode("latin-1"), fmt="csv", column_map=named_map("fr_bank_export"))
    assert error.location == "line 1" and "utf-8-sig" in error.message


FR_HEADER = "Date opération;Date valeur;Référence banque;Libellé;Bénéficiaire;Débit;Crédit;Devise\n"


@pytest.mark.parametrize(("line", "where", "why"), [
    ("01/12/2026;01/12/2026;SG-1;RG-1;Awa;1 000;2 000;XOF", "line 2, column Débit", "not both"),
    ("01/12/2026;01/12/2026;SG-1;RG-1;Awa;;;XOF", "line 2, column Débit", "not neither"),
    ("01/12/2026;01/12/2026;SG-1;RG-1;Awa;1 47 289;;XOF", "line 2, column Débit", "not an amount"),
    ("01/12/2026;01/12/2026;SG-1;RG-1;Awa;;12,5;XOF", "line 2, column Crédit", "more decimals"),
    ("01/12/2026;01/12/2026;SG-1;RG-1;Awa;1.000;;XOF", "line 2, column Débit", "not an amount"),
    ("2026-12-01;01/12/2026;SG-1;RG-1;Awa;1 000;;XOF", "line 2, column Date opération", "not a date (%d/%m/%Y)"),
])
def test_a_malformed_line_in_a_provider_layout_names_its_columns(line, where, why):
    error = refused((FR_HEADER + line + "\n").encode("utf-8-sig"), fmt="csv", column_map=named_map("fr_bank_export"))
    assert error.location == where
    assert why in error.message


# ---------------------------------------------------------------------- camt.053
def camt(edit=None, amounts: tuple[int, ...] = (150_000, 200_000)) -> bytes:
    root = etree.fromstring(rendered("camt053.xml", amounts))
    if edit:
        edit(root)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def at(data: bytes, xpath: str, path: str) -> str:
    """The location a refusal gives for the element at `xpath` of `data`."""
    [element] = etree.fromstring(data).xpath(xpath, namespaces=NS)
    return f"element {path} (line {element.sourceline})"


def first_entry(root):
    return root.find("c:BkToCstmrStmt/c:Stmt/c:Ntry", NS)


def drop(parent, path):
    element = parent.find(path, NS)
    element.getparent().remove(element)


def set_text(path, text, *, nth=0):
    def edit(root):
        root.findall(path, NS)[nth].text = text
    return edit


def test_xml_that_is_not_well_formed_is_refused_with_its_line():
    error = refused(b"<?xml version='1.0'?>\n<Document>\n<unclosed>\n</Document>")
    assert error.location == "line 4, column 12" and "not well-formed XML" in error.message
    error = refused(camt().replace(b"Awa Ndiaye", "Awa Ndiay\xe9".encode("latin-1")))
    assert error.location.startswith("line ") and "not well-formed XML" in error.message


@pytest.mark.parametrize(("data", "where"), [
    (b"<?xml version='1.0'?><Document xmlns='urn:iso:std:iso:20022:tech:xsd:pain.001.001.03'/>",
     "element Document (line 1)"),
    (b"<Document xmlns='urn:iso:std:iso:20022:tech:xsd:camt.054.001.02'/>", "element Document (line 1)"),
    (b"<Document/>", "element Document (line 1)"),
    (b"<?xml version='1.0'?>\n<Statement xmlns='urn:iso:std:iso:20022:tech:xsd:camt.053.001.02'/>",
     "element Statement (line 2)"),
    (b"<?xml version='1.0'?>\n<Document xmlns='urn:iso:std:iso:20022:tech:xsd:camt.053.002.02'/>",
     "element Document (line 2)"),
])
def test_xml_that_is_not_camt053_is_refused(data, where):
    error = refused(data)
    assert error.location == where and "not a camt.053 document" in error.message


def test_a_doctype_is_refused():
    data = camt().replace(b"?>", b"?>\n<!DOCTYPE d [<!ENTITY x 'RG-1'>]>", 1)
    error = refused(data)
    assert error.location == "line 1" and "DOCTYPE" in error.message


def test_a_camt053_without_exactly_one_statement_is_refused():
    def second_statement(root):
        stmt = root.find(".//c:Stmt", NS)
        stmt.addnext(etree.fromstring(etree.tostring(stmt)))
    error = refused(camt(second_statement))
    assert error.location.startswith("element BkToCstmrStmt (line ") and "2 Stmt elements" in error.message
    data = camt(lambda root: drop(root, "c:BkToCstmrStmt"))
    error = refused(data)
    assert error.location == at(data, "/c:Document", "Document") and "no BkToCstmrStmt" in error.message


CAMT_ENTRY_ERRORS = [
    (lambda r: drop(first_entry(r), "c:Amt"), "//c:Ntry[1]", "Stmt/Ntry[1]", "no Amt"),
    (lambda r: first_entry(r).find("c:Amt", NS).attrib.pop("Ccy"), "//c:Ntry[1]/c:Amt", "Stmt/Ntry[1]/Amt/@Ccy",
     "no currency"),
    (lambda r: first_entry(r).find("c:Amt", NS).set("Ccy", "ABC"), "//c:Ntry[1]/c:Amt", "Stmt/Ntry[1]/Amt/@Ccy",
     "not an ISO 4217 currency"),
    (lambda r: first_entry(r).find("c:Amt", NS).set("Ccy", "XAF"), "//c:Ntry[1]/c:Amt", "Stmt/Ntry[1]/Amt/@Ccy",
     "XAF in a statement in XOF"),
    (set_text(".//c:Ntry/c:Amt", "15O000"), "//c:Ntry[1]/c:Amt", "Stmt/Ntry[1]/Amt", "not an amount"),
    (set_text(".//c:Ntry/c:Amt", "-150000"), "//c:Ntry[1]/c:Amt", "Stmt/Ntry[1]/Amt", "not an amount"),
    (set_text(".//c:Ntry/c:Amt", "150000.5"), "//c:Ntry[1]/c:Amt", "Stmt/Ntry[1]/Amt", "more decimals"),
    (set_text(".//c:Ntry/c:CdtDbtInd", "DEBIT"), "//c:Ntry[1]/c:CdtDbtInd", "Stmt/Ntry[1]/CdtDbtInd",
     "DBIT or CRDT"),
    (lambda r: drop(first_entry(r), "c:CdtDbtInd"), "//c:Ntry[1]", "Stmt/Ntry[1]", "CdtDbtInd is None"),
    (lambda r: drop(first_entry(r), "c:BookgDt"), "//c:Ntry[1]", "Stmt/Ntry[1]", "no date"),
    (set_text(".//c:Ntry/c:BookgDt/c:Dt", "2026-13-01"), "//c:Ntry[1]/c:BookgDt", "Stmt/Ntry[1]/BookgDt",
     "not an ISO date"),
    (set_text(".//c:Ntry/c:ValDt/c:Dt", "1/12/2026", nth=1), "//c:Ntry[2]/c:ValDt", "Stmt/Ntry[2]/ValDt",
     "not an ISO date"),
]


@pytest.mark.parametrize(("edit", "xpath", "path", "why"), CAMT_ENTRY_ERRORS)
def test_a_malformed_camt053_entry_is_refused_naming_the_element(edit, xpath, path, why):
    data = camt(edit)
    error = refused(data)
    assert error.location == at(data, xpath, path)
    assert why in error.message


def test_a_reversal_indicator_that_is_not_a_boolean_is_refused():
    def maybe(root):
        reversal = etree.Element(f"{{{sandbox_statements.CAMT_NS}}}RvslInd")
        reversal.text = "maybe"
        first_entry(root).find("c:CdtDbtInd", NS).addnext(reversal)
    data = camt(maybe)
    assert refused(data).location == at(data, "//c:Ntry[1]/c:RvslInd", "Stmt/Ntry[1]/RvslInd")


@pytest.mark.parametrize(("edit", "xpath", "path", "why"), [
    (set_text(".//c:TtlNtries/c:NbOfNtries", "3"), "//c:TtlNtries/c:NbOfNtries", "Stmt/TxsSummry/TtlNtries/NbOfNtries",
     "says 3 entries; the statement has 2"),
    (set_text(".//c:TtlDbtNtries/c:NbOfNtries", "1"), "//c:TtlDbtNtries/c:NbOfNtries",
     "Stmt/TxsSummry/TtlDbtNtries/NbOfNtries", "says 1 entries; the statement has 2"),
    (set_text(".//c:TtlNtries/c:Sum", "350001"), "//c:TtlNtries/c:Sum", "Stmt/TxsSummry/TtlNtries/Sum",
     "says 350001; the entries come to 350000"),
    (set_text(".//c:Bal/c:Amt", "999650001", nth=1), "//c:Bal[2]/c:Amt", "Stmt/Bal[2]/Amt",
     "give 999650000, not the closing balance 999650001"),
    (set_text(".//c:Bal/c:Amt", "1000000000.5"), "//c:Bal[1]/c:Amt", "Stmt/Bal[1]/Amt", "more decimals"),
    (lambda r: drop(r.find(".//c:Bal", NS), "c:CdtDbtInd"), "//c:Bal[1]", "Stmt/Bal[1]", "CdtDbtInd is None"),
    (lambda r: drop(r.find(".//c:Bal", NS), "c:Amt"), "//c:Bal[1]", "Stmt/Bal[1]", "no Amt"),
    (set_text(".//c:Bal/c:Tp/c:CdOrPrtry/c:Cd", "OPBD", nth=1), "//c:Bal[2]", "Stmt/Bal[2]", "a second OPBD"),
])
def test_a_camt053_whose_totals_or_balances_disagree_is_refused(edit, xpath, path, why):
    data = camt(edit)
    error = refused(data)
    assert error.location == at(data, xpath, path)
    assert why in error.message


def test_a_camt053_batch_whose_details_do_not_add_up_is_refused():
    def batch(root, second_amount):
        details = root.find(".//c:Ntry/c:NtryDtls/c:TxDtls", NS)
        second = etree.fromstring(etree.tostring(details))
        details.addnext(second)
        details.find("c:AmtDtls/c:TxAmt/c:Amt", NS).text = "100000"
        if second_amount is None:
            drop(second, "c:AmtDtls")
        else:
            second.find("c:AmtDtls/c:TxAmt/c:Amt", NS).text = second_amount
    data = camt(lambda r: batch(r, "49999"))
    error = refused(data)
    assert error.location == at(data, "//c:Ntry[1]/c:Amt", "Stmt/Ntry[1]/Amt")
    assert "come to 149999" in error.message
    data = camt(lambda r: batch(r, None))
    error = refused(data)
    assert error.location == at(data, "//c:Ntry[1]/c:NtryDtls/c:TxDtls[2]", "Stmt/Ntry[1]/NtryDtls/TxDtls[2]")


# ---------------------------------------------------------------------- MT940
def mt(old: bytes = b"", new: bytes = b"", amounts: tuple[int, ...] = (150_000,)) -> bytes:
    data = rendered("mt940", amounts)
    assert old in data, data
    return data.replace(old, new, 1) if old else data


def cut(data: bytes, tag: bytes) -> bytes:
    """The file without the lines of `tag` (its continuation lines too)."""
    kept, skipping = [], False
    for line in data.split(b"\r\n"):
        if line.startswith(b":"):
            skipping = line.startswith(tag)
        if not skipping:
            kept.append(line)
    return b"\r\n".join(kept)


# The sandbox's MT940 of one entry: :20: :25: :28C: :60F: on lines 1-4, :61: on 5 (its supplementary
# details on 6), :86: on 7-8, :62F: on 9.
MT940_ERRORS = [
    (b"hello\nworld\n", "line 1", "not an MT940 statement"),
    (mt(b":20:", b":21:"), "line 1", "no :20: (transaction reference)"),
    (cut(mt(), b":25:"), "line 1", "no :25: (account)"),
    (cut(mt(), b":28C:"), "line 1", "no :28C: (statement number)"),
    (cut(mt(), b":60F:"), "line 1", "no :60F: (opening balance)"),
    (cut(mt(), b":62F:"), "line 8", "no :62F: (closing balance): the file is cut short"),
    (mt()[:mt().index(b":61:") + 10], "line 5", "no :62F: (closing balance): the file is cut short"),
    (mt() + mt(), "line 10", "a second :20:"),
    (mt(b"D150000,", b"X150000,"), "line 5, :61:", "not a valid :61: field"),
    (mt(b":61:261201", b":61:260230"), "line 5, :61:", "day is out of range"),
    (mt(b"D150000,", b"D1,5,0"), "line 5, :61:", "not a number"),
    (mt(b"D150000,", b"D150000,5"), "line 5, :61:", "more decimals than XOF allows (0)"),
    (mt(b"D150000,", b"D0,"), "line 5, :61:", "the amount is 0"),
    (re.sub(rb":61:[^\r]*", b":61:2612011201D150000,", mt()), "line 5, :61:", "no transaction type"),
    (mt(b":60F:C261201XOF", b":60F:C261201ZZZ"), "line 4, :60F:", "not an ISO 4217 currency"),
    (mt(b":60F:C261201XOF", b":60F:C261301XOF"), "line 4, :60F:", "month must be in 1..12"),
    (mt(b":62F:C261201XOF", b":62F:C261201XAF"), "line 9, :62F:", "XAF; the opening balance is in XOF"),
    (mt(b":62F:C261201XOF999850000,", b":62F:C261201XOF999850001,"), "line 9, :62F:",
     "not the closing balance 999850001"),
    (mt(b":28C:335/1", b":28C:three"), "line 3, :28C:", "not a valid :28C: field"),
    (mt(b":61:", b":62F:C261201XOF1000000000,\r\n:61:"), "line 10", "a second :62F:"),
    (mt(b"Ndiaye", "Ndiay\xe9".encode("latin-1")), "line 8", "not UTF-8 text"),
]


@pytest.mark.parametrize(("data", "where", "why"), MT940_ERRORS)
def test_a_malformed_mt940_is_refused_saying_where(data, where, why):
    error = refused(data, fmt="mt940")
    assert error.location == where
    assert why in error.message


def test_an_mt940_entry_outside_its_balances_is_refused():
    data = mt()
    lines = data.split(b"\r\n")
    before = b"\r\n".join(lines[:3] + lines[4:8] + lines[3:4] + lines[8:])  # :61: before :60F:
    assert refused(before, fmt="mt940").location == "line 4, :61:"
    after = b"\r\n".join(lines[:4] + lines[8:9] + lines[4:8] + lines[9:])  # :61: after :62F:
    assert refused(after, fmt="mt940").location == "line 6, :61:"


# ---------------------------------------------------------------------- anything at all
SAMPLES = {fmt: rendered(fmt) for fmt in ("csv", "camt053.xml", "mt940")}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fmt=st.sampled_from(sorted(SAMPLES)), data=st.data())
def test_a_damaged_statement_is_read_or_refused_never_a_library_error(fmt, data):
    original = SAMPLES[fmt]
    start = data.draw(st.integers(0, len(original)))
    end = data.draw(st.integers(start, min(len(original), start + 12)))
    damaged = original[:start] + data.draw(st.binary(max_size=6) | st.sampled_from([b":", b"<", b",", b"\r\n"])) \
        + original[end:]
    try:
        parsed = parse_statement(damaged, filename=f"x.{fmt}")
    except StatementFormatError as error:
        assert error.location and error.message
    else:
        assert all(line.amount_minor > 0 for line in parsed.lines)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=300), fmt=st.sampled_from([None, "csv", "camt053", "mt940"]))
def test_random_bytes_are_refused_or_read_never_a_library_error(data, fmt):
    try:
        parse_statement(data, fmt=fmt)
    except StatementFormatError:
        pass


def test_an_unreadable_mt940_field_is_not_logged_with_its_personal_data(caplog):
    caplog.set_level(logging.DEBUG)
    refused(mt(b"D150000,", b"X150000,"), fmt="mt940")
    assert "Awa Ndiaye" not in caplog.text
