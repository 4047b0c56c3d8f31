"""The statement parsers: the sandbox's own CSV, camt.053 and MT940 read to the same lines; a
provider's own CSV layout; every malformed input refused with where it is wrong."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time

import pytest
from finance.adapters.statements import detect_format, parse_statement
from finance.adapters.statements.column_maps import CsvColumnMap, named_map
from finance.domain.statements import CREDIT, DEBIT, StatementFormatError, line_key
from provider_sandbox import statements as sandbox_statements
from provider_sandbox.catalogue import load_catalogue
from provider_sandbox.store import Transfer

DAY = date(2026, 12, 1)
HEADER = "booking_date,value_date,transfer_id,reference,counterparty,amount,currency,direction,status\n"


def transfer(provider: str, amount_minor: int, currency: str, n: int) -> Transfer:
    at = datetime.combine(DAY, time(9, n), UTC).timestamp()
    return Transfer(
        transfer_id=f"{provider}-{uuid.uuid4().hex}", provider=provider, reference="RG-" + uuid.uuid4().hex[:24],
        provider_reference="x", amount_minor=amount_minor, currency=currency, counterparty="221770000000",
        counterparty_name="Awa Ndiaye", request={}, callback_url=None, status="settled", failure_reason=None,
        settled_amount_minor=amount_minor, planned_failure=None, planned_delta_minor=0, pickup_code=None,
        created_at=at, updated_at=at, settled_at=at)


def rendered(provider: str, currency: str, amounts: list[int]) -> dict[str, bytes]:
    catalogue = load_catalogue()[provider]
    statement = sandbox_statements.Statement(catalogue, DAY, catalogue.float_minor,
                                             [transfer(provider, a, currency, n) for n, a in enumerate(amounts)])
    return {fmt: sandbox_statements.render(statement, fmt) for fmt in ("csv", "camt053.xml", "mt940")}


@pytest.mark.parametrize(("provider", "currency", "amounts"), [
    ("wave_sn", "XOF", [150_000, 472_289, 1]),
    ("mtn_momo_cm", "XAF", [250_000]),
    ("orange_money_gn", "GNF", [3_905_000, 12]),
])
def test_the_three_formats_of_a_sandbox_statement_give_the_same_lines(provider, currency, amounts):
    files = rendered(provider, currency, amounts)
    parsed = {fmt: parse_statement(data, filename=f"{DAY}.{fmt}") for fmt, data in files.items()}
    assert [p.format for p in parsed.values()] == ["csv", "camt053", "mt940"]
    keys = {fmt: [line_key(x, 1) for x in p.lines] for fmt, p in parsed.items()}
    assert keys["csv"] == keys["camt053.xml"] == keys["mt940"]
    for p in parsed.values():
        assert [x.amount_minor for x in p.lines] == amounts
        assert {(x.currency, x.direction, x.reversal, x.booking_date) for x in p.lines} == {(currency, DEBIT, False,
                                                                                            DAY)}
        assert all(x.reference and x.reference.startswith("RG-") and len(x.reference) == 27 for x in p.lines)
    camt, mt = parsed["camt053.xml"], parsed["mt940"]
    assert camt.opening_minor - sum(amounts) == camt.closing_minor
    assert (mt.opening_minor, mt.closing_minor) == (camt.opening_minor, camt.closing_minor)


def test_cents_are_exact_in_every_format():
    files = rendered("sgbci_ci", "XOF", [100])
    assert parse_statement(files["csv"]).lines[0].amount_minor == 100
    csv = (HEADER + "2026-12-01,2026-12-01,t1,RG-1,FR76,1234.56,EUR,DBIT,BOOK\n").encode()
    assert parse_statement(csv).lines[0].amount_minor == 123456


def test_a_provider_layout_with_french_conventions():
    layout = named_map("fr_bank_export")
    data = ("Date opération;Date valeur;Référence banque;Libellé;Bénéficiaire;Débit;Crédit;Devise\n"
            "01/12/2026;02/12/2026;SG-881;RG-aaaa;Awa Ndiaye;1 472 289;;XOF\n"
            "01/12/2026;01/12/2026;SG-882;RETOUR RG-bbbb;;;12 500;XOF\n").encode("utf-8-sig")
    lines = parse_statement(data, fmt="csv", column_map=layout).lines
    assert [(x.provider_ref, x.amount_minor, x.direction, x.value_date) for x in lines] == [
        ("SG-881", 1_472_289, DEBIT, date(2026, 12, 2)), ("SG-882", 12_500, CREDIT, date(2026, 12, 1))]


def reversed_camt(data: bytes) -> bytes:
    """The statement's one entry turned into a reversal (money back), its closing balance to match."""
    from lxml import etree

    root = etree.fromstring(data)
    ns = {"c": sandbox_statements.CAMT_NS}
    entry = root.find(".//c:Ntry", ns)
    indicator = entry.find("c:CdtDbtInd", ns)
    indicator.text = "CRDT"
    reversal = etree.Element(f"{{{sandbox_statements.CAMT_NS}}}RvslInd")
    reversal.text = "true"
    indicator.addnext(reversal)
    amount = int(entry.find("c:Amt", ns).text)
    balances = root.findall(".//c:Bal/c:Amt", ns)
    balances[1].text = str(int(balances[0].text) + amount)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def test_reversals_are_read_in_each_format():
    csv = (HEADER + "2026-12-01,2026-12-01,t9,RG-1,221770000000,150000,XOF,CRDT,RVSL\n").encode()
    [line] = parse_statement(csv).lines
    assert (line.direction, line.reversal) == (CREDIT, True)
    files = rendered("wave_sn", "XOF", [150_000])
    [line] = parse_statement(reversed_camt(files["camt053.xml"])).lines
    assert (line.direction, line.reversal) == (CREDIT, True)
    mt = files["mt940"].replace(b"D150000,", b"RD150000,")
    mt = mt.replace(b":62F:C261201XOF999850000,", b":62F:C261201XOF1000150000,")
    [line] = parse_statement(mt).lines
    assert (line.direction, line.reversal) == (CREDIT, True)


BAD_CSV = [
    (HEADER + "2026-12-01,2026-12-01,t1,RG-1,x,12x00,XOF,DBIT,BOOK\n", "line 2, column amount", "not an amount"),
    (HEADER + "2026-12-01,2026-12-01,t1,RG-1,x,-100,XOF,DBIT,BOOK\n", "line 2, column amount", "not an amount"),
    (HEADER + "2026-12-01,2026-12-01,t1,RG-1,x,12.5,XOF,DBIT,BOOK\n", "line 2, column amount", "more decimals"),
    (HEADER + "2026-12-01,2026-12-01,t1,RG-1,x,0,XOF,DBIT,BOOK\n", "line 2, column amount", "more than nothing"),
    (HEADER + "01/12/2026,2026-12-01,t1,RG-1,x,100,XOF,DBIT,BOOK\n", "line 2, column booking_date", "not a date"),
    (HEADER + "2026-12-01,2026-12-01,t1,RG-1,x,100,ZZZ,DBIT,BOOK\n", "line 2, column currency", "ISO 4217"),
    (HEADER + "2026-12-01,2026-12-01,t1,RG-1,x,100,XOF,SIDEWAYS,BOOK\n", "line 2, column direction", "neither"),
    (HEADER + "2026-12-01,2026-12-01,t1,RG-1,x,100,XOF,DBIT,BOOK\n2026-12-01,t2\n", "line 3", "columns"),
    ("booking_date,transfer_id,amount\n2026-12-01,t1,100\n", "line 1", "no column 'value_date'"),
]


@pytest.mark.parametrize(("text", "where", "why"), BAD_CSV)
def test_a_malformed_csv_is_refused_saying_where(text, where, why):
    with pytest.raises(StatementFormatError) as refused:
        parse_statement(text.encode(), fmt="csv")
    assert refused.value.location == where
    assert why in refused.value.message


def test_a_csv_that_is_not_utf8_names_its_line():
    with pytest.raises(StatementFormatError, match="line 2"):
        parse_statement((HEADER + "2026-12-01,2026-12-01,t1,RG-1,").encode() + "Abidjan é\n".encode("latin-1"),
                        fmt="csv")


def camt_with(old: bytes, new: bytes) -> bytes:
    data = rendered("wave_sn", "XOF", [150_000, 200_000])["camt053.xml"]
    assert old in data
    return data.replace(old, new, 1)


@pytest.mark.parametrize(("data", "where", "why"), [
    (b"<Document><unclosed></Document>", "line 1", "not well-formed"),
    (b"<?xml version='1.0'?><Document xmlns='urn:iso:std:iso:20022:tech:xsd:pain.001.001.03'/>",
     "element Document (line 1)", "not a camt.053"),
    (camt_with(b'<Amt Ccy="XOF">150000</Amt>', b'<Amt Ccy="XOF">15O000</Amt>'), "Ntry 1", "not an amount"),
    (camt_with(b'<Amt Ccy="XOF">150000</Amt>', b'<Amt Ccy="ABC">150000</Amt>'), "Ntry 1", "ISO 4217"),
    (camt_with(b"<NbOfNtries>2</NbOfNtries>", b"<NbOfNtries>3</NbOfNtries>"), "TxsSummry/TtlNtries/NbOfNtries",
     "says 3 entries"),
    (camt_with(b'<Amt Ccy="XOF">200000</Amt>', b'<Amt Ccy="XOF">200001</Amt>'), "Stmt/Bal", "closing balance"),
])
def test_a_malformed_camt053_is_refused_naming_the_element(data, where, why):
    with pytest.raises(StatementFormatError) as refused:
        parse_statement(data)
    assert where in refused.value.location and "line" in refused.value.location
    assert why in refused.value.message


def mt_with(old: bytes, new: bytes) -> bytes:
    data = rendered("wave_sn", "XOF", [150_000])["mt940"]
    assert old in data, data
    return data.replace(old, new, 1)


@pytest.mark.parametrize(("data", "where", "why"), [
    (b"hello\n", "line 1", "no MT940 field"),
    (mt_with(b":62F:", b":99Z:"), "line", "no :62F:"),
    (mt_with(b":20:", b":21:"), "line 1", "no :20:"),
    (mt_with(b":62F:C261201XOF999850000,", b":62F:C261201XOF999850001,"), ":62F:", "closing balance"),
])
def test_a_malformed_mt940_is_refused_saying_where(data, where, why):
    with pytest.raises(StatementFormatError) as refused:
        parse_statement(data, fmt="mt940")
    assert where in refused.value.location
    assert why in refused.value.message


def test_empty_files_and_unknown_formats_are_refused():
    with pytest.raises(StatementFormatError, match="empty"):
        parse_statement(b"   \n")
    with pytest.raises(StatementFormatError, match="unknown statement format"):
        parse_statement(b"x", fmt="pdf")
    assert detect_format(b"<?xml", "x") == "camt053"
    assert detect_format(b":20:REF", "") == "mt940"
    assert detect_format(b"a,b\n", "s.csv") == "csv"


def test_a_layout_naming_an_unknown_field_is_refused():
    with pytest.raises(StatementFormatError, match="unknown field"):
        CsvColumnMap("broken", {"booking_date": "d", "currency": "c", "amount": "a", "colour": "x"})
    with pytest.raises(StatementFormatError, match="booking_date, currency and amount"):
        CsvColumnMap("broken", {"booking_date": "d", "currency": "c"})
