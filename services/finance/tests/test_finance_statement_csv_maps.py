"""CSV statements read with a column map per provider (statement_formats.yaml): the default map is
the sandbox's header, other layouts (a French bank's, a mobile-money export) read their own
conventions, a broken map is refused by name, and any line written in a layout reads back the same."""

from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal

import pytest
from finance.adapters.statements import parse_statement
from finance.adapters.statements.column_maps import FIELDS, CsvColumnMap, column_map_for, named_map
from finance.domain.statements import CREDIT, DEBIT, StatementFormatError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from provider_sandbox import statements as sandbox_statements
from reintegra.money import minor_units


def test_the_default_map_is_the_sandbox_header():
    default = column_map_for("any_provider_not_listed")
    assert default.name == "default"
    assert sorted(default.columns.values()) == sorted(sandbox_statements.CSV_HEADER)
    assert (default.delimiter, default.date_format, default.decimal_separator) == (",", "%Y-%m-%d", ".")


def test_a_french_bank_export():
    data = ("Date opération;Date valeur;Référence banque;Libellé;Bénéficiaire;Débit;Crédit;Devise\n"
            "01/12/2026;02/12/2026;SG-881;RG-aaaa;Awa Ndiaye;1 472 289;;XOF\n"
            "01/12/2026;01/12/2026;SG-882;RETOUR RG-bbbb;;;12\u202f500;xof\n"
            "31/12/2026;31/12/2026;SG-883;RG-cccc;Awa Ndiaye;1 234,56;;EUR\n").encode("utf-8-sig")
    lines = parse_statement(data, filename="releve.csv", column_map=named_map("fr_bank_export")).lines
    assert [(x.location, x.provider_ref, x.reference, x.amount_minor, x.currency, x.direction, x.value_date)
            for x in lines] == [
        ("line 2", "SG-881", "RG-aaaa", 1_472_289, "XOF", DEBIT, date(2026, 12, 2)),
        ("line 3", "SG-882", "RETOUR RG-bbbb", 12_500, "XOF", CREDIT, date(2026, 12, 1)),
        ("line 4", "SG-883", "RG-cccc", 123_456, "EUR", DEBIT, date(2026, 12, 31))]
    assert lines[1].counterparty is None and not any(x.reversal for x in lines)


def test_a_mobile_money_export_with_its_own_words_and_a_reversal_column():
    data = (b"Date,Transaction ID,External Reference,MSISDN,Amount,Currency,Type,Reversed\n"
            b"01.12.2026,MP1,RG-1,221770000000,15000,XOF,cash_out,NO\n"
            b"01.12.2026,MP2,RG-1,221770000000,15000,XOF,REFUND,yes\n"
            b"01.12.2026,MP3,,221770000001,500000,XOF,DEPOSIT,\n")
    lines = parse_statement(data, fmt="csv", column_map=named_map("momo_merchant_export")).lines
    assert [(x.provider_ref, x.direction, x.reversal, x.value_date, x.status) for x in lines] == [
        ("MP1", DEBIT, False, None, "BOOK"), ("MP2", CREDIT, True, None, "BOOK"), ("MP3", CREDIT, False, None, "BOOK")]
    assert lines[2].reference is None
    refused = (b"Date,Transaction ID,External Reference,MSISDN,Amount,Currency,Type,Reversed\n"
               b"01.12.2026,MP1,RG-1,221770000000,15000,XOF,DBIT,NO\n")
    with pytest.raises(StatementFormatError) as error:
        parse_statement(refused, fmt="csv", column_map=named_map("momo_merchant_export"))
    assert error.value.location == "line 2, column Type" and "CASH_OUT" in error.value.message


def test_a_file_without_a_column_of_its_layout_is_refused_by_name():
    with pytest.raises(StatementFormatError) as error:
        parse_statement(b"Date;Montant\n01/12/2026;100\n", fmt="csv", column_map=named_map("fr_bank_export"))
    assert error.value.location == "line 1"
    assert "no column 'Date opération' (booking_date)" in error.value.message and "fr_bank_export" in error.value.message


def test_a_layout_without_direction_lists_payments_and_their_reversals():
    layout = CsvColumnMap("minimal", {"booking_date": "date", "amount": "amount", "currency": "ccy",
                                      "status": "status"})
    lines = parse_statement(b"date,amount,ccy,status\n2026-12-01,5,XOF,BOOK\n2026-12-01,5,XOF,RVSL\n", fmt="csv",
                            column_map=layout).lines
    assert [(x.direction, x.reversal, x.status) for x in lines] == [(DEBIT, False, "BOOK"), (CREDIT, True, "RVSL")]


def write_formats(tmp_path, text: str) -> str:
    path = tmp_path / "statement_formats.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


DEFAULT = "  default: {columns: {booking_date: d, amount: a, currency: c}}\n"


def test_providers_get_their_layout_from_the_file(tmp_path, monkeypatch):
    path = write_formats(tmp_path, "formats:\n" + DEFAULT + "  semi: {delimiter: ';', columns: {booking_date: d, "
                         "amount: a, currency: c}}\nproviders: {sgbci_ci: semi}\n")
    assert column_map_for("sgbci_ci", path).delimiter == ";"
    assert column_map_for("wave_sn", path).name == "default"
    monkeypatch.setenv("REINTEGRA_STATEMENT_FORMATS", path)
    assert column_map_for("sgbci_ci").name == "semi"


@pytest.mark.parametrize(("text", "why"), [
    (DEFAULT + "  x: {columns: {booking_date: d, amount: a, currency: c, colour: x}}\n", "unknown field(s) colour"),
    (DEFAULT + "  x: {delimeter: ';', columns: {booking_date: d, amount: a, currency: c}}\n",
     "unknown option(s) delimeter"),
    (DEFAULT + "  x: {columns: {booking_date: d, currency: c}}\n", "booking_date, currency and amount"),
    (DEFAULT + "  x: {columns: {booking_date: d, amount: a, debit: b, credit: k, currency: c}}\n", "not both"),
    (DEFAULT + "  x: {delimiter: ';;', columns: {booking_date: d, amount: a, currency: c}}\n", "one character"),
    (DEFAULT + "  x: {encoding: klingon, columns: {booking_date: d, amount: a, currency: c}}\n", "unknown encoding"),
    (DEFAULT + "  x: {decimal_separator: ',', thousands_separator: ',', columns: {booking_date: d, amount: a, "
     "currency: c}}\n", "cannot separate thousands"),
    (DEFAULT + "  x: {date_format: dd/mm/yyyy, columns: {booking_date: d, amount: a, currency: c}}\n",
     "not a strptime date format"),
    (DEFAULT + "  x: {debit_words: DBIT, columns: {booking_date: d, amount: a, currency: c}}\n", "list of words"),
    (DEFAULT + "  x: {debit_words: [IN], credit_words: [in], columns: {booking_date: d, amount: a, currency: c}}\n",
     "both debit and credit"),
    (DEFAULT + "  x: [booking_date]\n", "a mapping with `columns`"),
    ("  other: {columns: {booking_date: d, amount: a, currency: c}}\n", "no `default` format"),
])
def test_a_broken_formats_file_is_refused_naming_the_format(tmp_path, text, why):
    path = write_formats(tmp_path, "formats:\n" + text)
    with pytest.raises(StatementFormatError) as error:
        column_map_for("wave_sn", path)
    assert why in error.value.message
    assert error.value.location.startswith(path)
    assert error.value.location.endswith("format x") or why == "no `default` format"


def test_a_provider_naming_an_undefined_layout_is_refused(tmp_path):
    path = write_formats(tmp_path, "formats:\n" + DEFAULT + "providers: {wave_sn: nowhere}\n")
    with pytest.raises(StatementFormatError, match="provider wave_sn uses format 'nowhere'"):
        column_map_for("wave_sn", path)
    with pytest.raises(StatementFormatError, match="no statement format 'nowhere'"):
        named_map("nowhere")


def test_every_field_of_the_shipped_layouts_is_known():
    for name in ("default", "fr_bank_export", "momo_merchant_export"):
        assert set(named_map(name).columns) <= set(FIELDS)


# ---------------------------------------------------------------------- property: lines round-trip
CURRENCIES = ("XOF", "XAF", "GNF", "EUR", "USD")
cells = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp")), min_size=1,
                max_size=30) | st.sampled_from(["Awa, Ndiaye", "Awa\nNdiaye", 'say "hi"', "RG-1;2", "N'Diaye"])
lines = st.lists(st.fixed_dictionaries({
    "booked": st.dates(date(2000, 1, 1), date(2099, 12, 31)),
    "value": st.none() | st.dates(date(2000, 1, 1), date(2099, 12, 31)),
    "ref": cells, "reference": st.none() | cells, "counterparty": st.none() | cells,
    "minor": st.integers(1, 10**15), "currency": st.sampled_from(CURRENCIES),
    "direction": st.sampled_from([DEBIT, CREDIT]), "reversal": st.booleans(),
}), max_size=8)


def major(minor: int, currency: str, decimal: str = ".", thousands: str = "") -> str:
    digits = minor_units(currency)
    whole, _, fraction = f"{Decimal(minor).scaleb(-digits):.{digits}f}".partition(".")
    grouped = f"{int(whole):,}".replace(",", thousands)
    return grouped + (decimal + fraction if fraction else "")


def write(rows: list[dict], layout: CsvColumnMap) -> bytes:
    c = layout.columns
    out = io.StringIO()
    writer = csv.writer(out, delimiter=layout.delimiter, lineterminator="\r\n")
    writer.writerow(list(c.values()))
    for r in rows:
        amount = major(r["minor"], r["currency"], layout.decimal_separator, layout.thousands_separator)
        cell = {"booking_date": r["booked"].strftime(layout.date_format),
                "value_date": r["value"].strftime(layout.date_format) if r["value"] else "",
                "provider_ref": r["ref"], "reference": r["reference"] or "", "counterparty": r["counterparty"] or "",
                "currency": r["currency"].lower() if r["minor"] % 2 else r["currency"], "amount": amount,
                "debit": amount if r["direction"] == DEBIT else "", "credit": amount if r["direction"] == CREDIT else "",
                "direction": "DBIT" if r["direction"] == DEBIT else "CRDT",
                "status": "RVSL" if r["reversal"] else "BOOK"}
        writer.writerow([cell[name] for name in c])
    return out.getvalue().encode(layout.encoding)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=lines, layout_name=st.sampled_from(["default", "fr_bank_export"]))
def test_csv_lines_round_trip(rows, layout_name):
    layout = named_map(layout_name)
    rows = [{**r, "reversal": r["reversal"] and "status" in layout.columns,
             "ref": r["ref"].strip() or "x"} for r in rows]
    rows = [{**r, **{k: (r[k].strip() or None) if r[k] else None for k in ("reference", "counterparty")}} for r in rows]
    parsed = parse_statement(write(rows, layout), fmt="csv", column_map=layout)
    assert [(x.booking_date, x.value_date, x.provider_ref, x.reference, x.counterparty, x.amount_minor, x.currency,
             x.direction, x.reversal) for x in parsed.lines] == [
        (r["booked"], r["value"], r["ref"], r["reference"], r["counterparty"], r["minor"], r["currency"],
         r["direction"], r["reversal"]) for r in rows]
