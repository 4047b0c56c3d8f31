"""The statement parsers on the provider sandbox's own files: its CSV, camt.053 and MT940 of one day
read to the same lines (same keys), for currencies with 0 and 2 decimals; reversals in each format;
camt.053 batches and prefixed documents; format detection."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time

import pytest
from finance.adapters.statements import detect_format, parse_statement
from finance.domain.statements import CREDIT, DEBIT, StatementLine, line_key, line_keys
from lxml import etree
from provider_sandbox import statements as sandbox_statements
from provider_sandbox.catalogue import Account, load_catalogue
from provider_sandbox.store import Transfer

DAY = date(2026, 12, 1)
NS = {"c": sandbox_statements.CAMT_NS}
FORMATS = ("csv", "camt053.xml", "mt940")


def transfer(provider: str, amount_minor: int, currency: str, n: int, name: str = "Awa Ndiaye") -> Transfer:
    at = datetime.combine(DAY, time(9, n % 60), UTC).timestamp()
    return Transfer(
        transfer_id=f"{provider}-{uuid.uuid4().hex}", provider=provider, reference="RG-" + uuid.uuid4().hex[:24],
        provider_reference="x", amount_minor=amount_minor, currency=currency, counterparty="221770000000",
        counterparty_name=name, request={}, callback_url=None, status="settled", failure_reason=None,
        settled_amount_minor=amount_minor, planned_failure=None, planned_delta_minor=0, pickup_code=None,
        created_at=at, updated_at=at, settled_at=at)


def provider(name: str, currency: str | None = None):
    catalogue = load_catalogue()
    if name in catalogue:
        return catalogue[name]
    # A euro bank, as the sandbox's own two-decimal test builds one.
    return catalogue["sgbci_ci"].model_copy(update={"name": name, "currency": currency,
                                                     "account": Account(iban="FR7630006000011234567890189")})


def statement(name: str, currency: str, amounts: list[int]) -> sandbox_statements.Statement:
    p = provider(name, currency)
    return sandbox_statements.Statement(p, DAY, p.float_minor, [transfer(name, a, currency, n)
                                                               for n, a in enumerate(amounts)])


def rendered(name: str, currency: str, amounts: list[int]) -> dict[str, bytes]:
    s = statement(name, currency, amounts)
    return {fmt: sandbox_statements.render(s, fmt) for fmt in FORMATS}


@pytest.mark.parametrize(("name", "currency", "amounts"), [
    ("wave_sn", "XOF", [150_000, 472_289, 1]),
    ("mtn_momo_cm", "XAF", [250_000]),
    ("orange_money_gn", "GNF", [3_905_000, 12]),
    ("cbao_sn", "XOF", [150_000, 150_000]),
    ("bank_fr", "EUR", [1_250, 1, 99_999_999]),
    ("wave_sn", "XOF", []),
])
def test_the_three_formats_of_a_sandbox_statement_give_the_same_lines(name, currency, amounts):
    s = statement(name, currency, amounts)
    parsed = {fmt: parse_statement(sandbox_statements.render(s, fmt), filename=f"{DAY}.{fmt}") for fmt in FORMATS}
    assert [p.format for p in parsed.values()] == ["csv", "camt053", "mt940"]
    keys = {fmt: line_keys(p.lines) for fmt, p in parsed.items()}
    assert keys["csv"] == keys["camt053.xml"] == keys["mt940"]
    assert len(set(keys["csv"])) == len(amounts)
    by_ref = {t.transfer_id: t for t in s.entries}
    for p in parsed.values():
        assert [x.amount_minor for x in p.lines] == amounts
        for x in p.lines:
            t = by_ref[x.provider_ref]  # the whole transfer id, in MT940 too (from :86: /TXID/)
            assert (x.reference, x.currency, x.direction, x.reversal, x.booking_date, x.value_date, x.status) == (
                t.reference, currency, DEBIT, False, DAY, DAY, "BOOK")
    for p in (parsed["camt053.xml"], parsed["mt940"]):
        assert (p.opening_minor, p.closing_minor) == (s.opening_minor, s.closing_minor)
        assert (p.currency, p.period_start, p.period_end) == (currency, DAY, DAY)
        assert p.account == s.provider.account.identifier
    assert [x.counterparty for x in parsed["camt053.xml"].lines] == ["Awa Ndiaye"] * len(amounts)
    assert [x.counterparty for x in parsed["mt940"].lines] == ["Awa Ndiaye"] * len(amounts)
    assert parsed["camt053.xml"].statement_id == f"{name.upper()}-{DAY:%Y%m%d}"
    assert parsed["mt940"].statement_id == f"SBX{DAY:%Y%m%d}"
    assert [x.location for x in parsed["csv"].lines] == [f"line {n}" for n in range(2, len(amounts) + 2)]
    assert all(x.location.startswith(f"Ntry {n} (line ") for n, x in enumerate(parsed["camt053.xml"].lines, 1))
    assert all(x.location.startswith(f":61: {n} (line ") for n, x in enumerate(parsed["mt940"].lines, 1))


def test_amounts_are_exact_minor_units():
    files = rendered("bank_fr", "EUR", [1, 10, 123_456_789_012])
    for data in files.values():
        assert [x.amount_minor for x in parse_statement(data).lines] == [1, 10, 123_456_789_012]
    assert type(parse_statement(files["mt940"]).opening_minor) is int


def test_a_line_key_is_its_identity_and_not_its_wording():
    [line] = parse_statement(rendered("wave_sn", "XOF", [150_000])["csv"]).lines
    same_elsewhere = StatementLine(location="Ntry 9 (line 99)", booking_date=line.booking_date, value_date=None,
                                   provider_ref=line.provider_ref, reference=None, amount_minor=line.amount_minor,
                                   currency=line.currency.lower(), direction=line.direction, reversal=False,
                                   counterparty="someone else", status="BOOK")
    assert line_key(line, 1) == line_key(same_elsewhere, 1) != line_key(line, 2)
    for change in ({"amount_minor": 150_001}, {"direction": CREDIT}, {"reversal": True}, {"currency": "XAF"},
                   {"booking_date": date(2026, 12, 2)}, {"provider_ref": "other"}):
        assert line_key(StatementLine(**{**line.__dict__, **change}), 1) != line_key(line, 1), change
    assert line_keys([line, same_elsewhere]) == [line_key(line, 1), line_key(line, 2)]


def test_identical_lines_in_one_file_are_two_lines_in_every_format():
    s = statement("wave_sn", "XOF", [150_000])
    twice = sandbox_statements.Statement(s.provider, DAY, s.opening_minor, s.entries * 2)
    keys = {fmt: line_keys(parse_statement(sandbox_statements.render(twice, fmt)).lines) for fmt in FORMATS}
    assert keys["csv"] == keys["camt053.xml"] == keys["mt940"]
    [line] = parse_statement(sandbox_statements.render(s, "csv")).lines
    assert keys["csv"] == [line_key(line, 1), line_key(line, 2)]


def test_a_statement_line_is_positive_and_has_a_direction():
    [line] = parse_statement(rendered("wave_sn", "XOF", [150_000])["csv"]).lines
    for bad in ({"amount_minor": 0}, {"amount_minor": -5}, {"amount_minor": 1.0}, {"direction": "DBIT"}):
        with pytest.raises(ValueError):
            StatementLine(**{**line.__dict__, **bad})


# ---------------------------------------------------------------------- reversals
def camt_edit(data: bytes, edit) -> bytes:
    root = etree.fromstring(data)
    edit(root)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _reverse_first_entry(root: etree._Element) -> None:
    """The entry turned into a reversal (money back), the summary and closing balance to match."""
    entry = root.find(".//c:Ntry", NS)
    indicator = entry.find("c:CdtDbtInd", NS)
    indicator.text = "CRDT"
    reversal = etree.Element(f"{{{sandbox_statements.CAMT_NS}}}RvslInd")
    reversal.text = "true"
    indicator.addnext(reversal)
    root.find(".//c:TxsSummry", NS).getparent().remove(root.find(".//c:TxsSummry", NS))
    amount = int(entry.find("c:Amt", NS).text)
    opening, closing = root.findall(".//c:Bal/c:Amt", NS)
    closing.text = str(int(opening.text) + amount)


def test_a_reversal_is_read_in_each_format():
    header = ",".join(sandbox_statements.CSV_HEADER)
    for row in ("2026-12-01,2026-12-01,t9,RG-1,221770000000,150000,XOF,CRDT,RVSL",
                "2026-12-01,2026-12-01,t9,RG-1,221770000000,150000,XOF,RVSL,BOOK"):
        [line] = parse_statement(f"{header}\n{row}\n".encode()).lines
        assert (line.direction, line.reversal, line.amount_minor) == (CREDIT, True, 150_000)
    files = rendered("wave_sn", "XOF", [150_000])
    [line] = parse_statement(camt_edit(files["camt053.xml"], _reverse_first_entry)).lines
    assert (line.direction, line.reversal, line.amount_minor) == (CREDIT, True, 150_000)
    mt = files["mt940"].replace(b"D150000,", b"RD150000,").replace(b":62F:C261201XOF999850000,",
                                                                      b":62F:C261201XOF1000150000,")
    [line] = parse_statement(mt).lines
    assert (line.direction, line.reversal, line.amount_minor) == (CREDIT, True, 150_000)
    # RC reverses a credit: money leaves again.
    mt = files["mt940"].replace(b"D150000,", b"RC150000,")
    [line] = parse_statement(mt).lines
    assert (line.direction, line.reversal) == (DEBIT, True)


def test_a_reversal_gives_a_key_of_its_own():
    files = rendered("wave_sn", "XOF", [150_000])
    [paid] = parse_statement(files["mt940"]).lines
    [back] = parse_statement(camt_edit(files["camt053.xml"], _reverse_first_entry)).lines
    assert paid.provider_ref == back.provider_ref and line_key(paid, 1) != line_key(back, 1)


# ---------------------------------------------------------------------- camt.053 specifics
def _batch(root: etree._Element) -> None:
    """The first entry's one transaction split in two (a batch booking of two payments)."""
    entry = root.find(".//c:Ntry", NS)
    details = entry.find("c:NtryDtls/c:TxDtls", NS)
    second = etree.fromstring(etree.tostring(details))
    details.addnext(second)
    details.find("c:Refs/c:AcctSvcrRef", NS).text = "BATCH-1"
    details.find("c:Refs/c:EndToEndId", NS).text = "RG-first"
    details.find("c:AmtDtls/c:TxAmt/c:Amt", NS).text = "100000"
    second.find("c:Refs/c:AcctSvcrRef", NS).text = "BATCH-2"
    second.find("c:Refs/c:EndToEndId", NS).text = "RG-second"
    second.find("c:AmtDtls/c:TxAmt/c:Amt", NS).text = "50000"


def test_a_camt053_batch_entry_gives_one_line_per_transaction():
    files = rendered("wave_sn", "XOF", [150_000, 7])
    parsed = parse_statement(camt_edit(files["camt053.xml"], _batch))
    assert [(x.provider_ref, x.reference, x.amount_minor) for x in parsed.lines[:2]] == [
        ("BATCH-1", "RG-first", 100_000), ("BATCH-2", "RG-second", 50_000)]
    assert [x.location.split(" (")[0] for x in parsed.lines] == ["Ntry 1 TxDtls 1", "Ntry 1 TxDtls 2", "Ntry 2"]
    assert parsed.closing_minor == parsed.opening_minor - 150_007


def test_camt053_reads_ntryref_when_there_is_no_account_servicer_reference():
    def drop_servicer_refs(root):
        for ref in root.findall(".//c:AcctSvcrRef", NS):
            ref.getparent().remove(ref)
        root.find(".//c:NtryRef", NS).text = "NTRY-7"
    [line] = parse_statement(camt_edit(rendered("wave_sn", "XOF", [10])["camt053.xml"], drop_servicer_refs)).lines
    assert line.provider_ref == "NTRY-7"


def test_camt053_falls_back_on_the_remittance_information_for_our_reference():
    def not_provided(root):
        root.find(".//c:EndToEndId", NS).text = "NOTPROVIDED"
        root.find(".//c:Ustrd", NS).text = "RG-from-ustrd"
    [line] = parse_statement(camt_edit(rendered("wave_sn", "XOF", [10])["camt053.xml"], not_provided)).lines
    assert line.reference == "RG-from-ustrd"


def test_a_prefixed_camt053_document_is_read_like_the_default_namespace():
    data = rendered("sgbci_ci", "XOF", [150_000, 2_500])["camt053.xml"]
    prefixed = data.replace(b'xmlns="', b'xmlns:camt="').replace(b"<", b"<camt:").replace(b"<camt:/", b"</camt:")
    prefixed = prefixed.replace(b"<camt:?xml", b"<?xml")
    assert b"<camt:Document" in prefixed
    assert line_keys(parse_statement(prefixed).lines) == line_keys(parse_statement(data).lines)


def test_a_camt053_with_a_previous_closing_balance_for_an_opening_one():
    def previous_closing(root):
        root.find(".//c:Bal/c:Tp/c:CdOrPrtry/c:Cd", NS).text = "PRCD"
    data = camt_edit(rendered("wave_sn", "XOF", [10])["camt053.xml"], previous_closing)
    assert parse_statement(data).opening_minor == load_catalogue()["wave_sn"].float_minor


# ---------------------------------------------------------------------- MT940 specifics
def test_mt940_reads_the_entry_date_as_booking_and_the_first_date_as_value():
    mt = rendered("wave_sn", "XOF", [150_000])["mt940"].replace(b":61:2612011201D", b":61:2611301201D")
    [line] = parse_statement(mt).lines
    assert (line.booking_date, line.value_date) == (DAY, date(2026, 11, 30))


def test_mt940_prefers_a_customer_reference_that_fits_and_falls_back_on_the_bank_reference():
    mt = rendered("wave_sn", "XOF", [150_000])["mt940"]
    mt = mt.replace(b"NTRFNONREF//", b"NTRFRG-SHORT-1//")
    mt = b"\r\n".join(line for line in mt.split(b"\r\n") if not line.startswith((b":86:", b"/BENM/")))
    [line] = parse_statement(mt).lines
    assert line.reference == "RG-SHORT-1"
    assert line.provider_ref is not None and len(line.provider_ref) == 16  # the :61: bank reference, cut short


def test_mt940_in_a_swift_envelope_is_read():
    mt = rendered("wave_sn", "XOF", [150_000])["mt940"]
    wrapped = b"{1:F01SGBCCIABXXXX0000000000}{2:I940XXXXXXXXXXXXN}{4:\r\n" + mt + b"-}"
    assert line_keys(parse_statement(wrapped).lines) == line_keys(parse_statement(mt).lines)


# ---------------------------------------------------------------------- detection
@pytest.mark.parametrize(("data", "filename", "fmt"), [
    (b"<?xml version='1.0'?><Document/>", "", "camt053"),
    (b"\xef\xbb\xbf  <Document/>", "statement.csv", "camt053"),  # content before the name
    (b":20:REF\r\n:25:X", "", "mt940"),
    (b"{1:F01BANK}{2:I940}{4:\n:20:REF", "x.txt", "mt940"),
    (b"a;b\n1;2\n", "", "csv"),
    (b"booking_date,amount\n", "export.txt", "csv"),
    (b"anything", "2026-12-01.mt940", "mt940"),
    (b"anything", "2026-12-01.CSV", "csv"),
])
def test_the_format_is_detected_from_content_then_name(data, filename, fmt):
    assert detect_format(data, filename) == fmt


def test_the_sandbox_file_names_detect_their_formats():
    for fmt, data in rendered("wave_sn", "XOF", [1]).items():
        assert detect_format(data, f"2026-12-01.{fmt}") == {"csv": "csv", "camt053.xml": "camt053",
                                                            "mt940": "mt940"}[fmt]


def test_an_explicit_format_overrides_detection():
    data = rendered("wave_sn", "XOF", [1])["mt940"]
    assert parse_statement(data, filename="misnamed.csv", fmt="mt940").format == "mt940"


def test_a_later_camt053_version_with_a_coded_status_is_read():
    data = rendered("wave_sn", "XOF", [150_000])["camt053.xml"]
    v08 = data.replace(b"camt.053.001.02", b"camt.053.001.08").replace(b"<Sts>BOOK</Sts>", b"<Sts><Cd>BOOK</Cd></Sts>")
    [line] = parse_statement(v08).lines
    assert line.status == "BOOK" and line_keys([line]) == line_keys(parse_statement(data).lines)
