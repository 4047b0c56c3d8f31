"""Notifications: SMS texts in the beneficiary's language, and the file gateway's idempotency."""

from __future__ import annotations

import logging
from pathlib import Path

import notifications
import pytest
from notifications.adapters.sms_gateway import FileSmsGateway, Sms
from notifications.app import load_templates
from notifications.domain.messages import Templates, UnknownNoticeKind, format_money, render

NNBSP = "\u202f"  # French thousands separator
TEMPLATES = load_templates()
CASE = "MA-2026-000123"
PLAN_TOTAL = {"plan_total": {"amount": "1500.00", "currency": "EUR"}}
SETTLED = {"amount": {"amount": "720.00", "currency": "EUR"}, "reference": "RG-0123456789abcdef01234567",
           "component_id": "c2", "tranche_seq": 1}
# As disbursement asks for them (domain/case.py `_notify`): the paid amount, the reference, the tranche.
REF = "RG-89abcdef0123456789abcdef"
PICKUP = {"amount": {"amount": "250000", "currency": "XAF"}, "reference": REF, "component_id": "c1",
          "tranche_seq": 1, "pickup_code": "0042-7781"}
FAILED = {"amount": {"amount": "196787", "currency": "XOF"}, "reference": REF, "component_id": "c1", "tranche_seq": 1}


# --- rendering --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("fr", f"Bonjour. Votre aide à la réintégration (1{NNBSP}500,00 EUR) est approuvée. Dossier {CASE}. "
               "Vous recevrez un SMS à chaque paiement."),
        ("en", f"Hello. Your reintegration assistance (1,500.00 EUR) is approved. Case {CASE}. "
               "You will get an SMS for each payment."),
        ("ar", f"مرحبا. تمت الموافقة على مساعدة إعادة الإدماج الخاصة بك (1,500.00 EUR). الملف {CASE}."),
    ],
)
def test_eligibility_approved_in_each_language(language, expected):
    assert render(TEMPLATES, "eligibility_approved", language, CASE, PLAN_TOTAL) == (language, expected)


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("fr", f"Paiement reçu : 720,00 EUR (réf. RG-0123456789abcdef01234567). Dossier {CASE}."),
        ("en", f"Payment received: 720.00 EUR (ref. RG-0123456789abcdef01234567). Case {CASE}."),
        ("ar", f"تم استلام الدفعة: 720.00 EUR (مرجع RG-0123456789abcdef01234567). الملف {CASE}."),
    ],
)
def test_payment_settled_in_each_language(language, expected):
    assert render(TEMPLATES, "payment_settled", language, CASE, SETTLED) == (language, expected)


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("fr", f"Votre argent est prêt au retrait : 250{NNBSP}000 XAF. Code de retrait : 0042-7781 (réf. {REF}). "
               f"Ne le communiquez à personne. Dossier {CASE}."),
        ("en", f"Your cash is ready for pickup: 250,000 XAF. Pickup code: 0042-7781 (ref. {REF}). "
               f"Do not share it with anyone. Case {CASE}."),
        ("ar", f"أموالك جاهزة للاستلام: 250,000 XAF. رمز الاستلام: 0042-7781 (مرجع {REF}). "
               f"لا تشاركه مع أي شخص. الملف {CASE}."),
    ],
)
def test_pickup_ready_in_each_language(language, expected):
    assert render(TEMPLATES, "pickup_ready", language, CASE, PICKUP) == (language, expected)


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("fr", f"Le paiement de 196{NNBSP}787 XOF (réf. {REF}) n'a pas pu être effectué. "
               f"Votre conseiller vous contactera. Dossier {CASE}."),
        ("en", f"The payment of 196,787 XOF (ref. {REF}) could not be made. Your caseworker will contact you. "
               f"Case {CASE}."),
        ("ar", f"تعذر إجراء الدفعة 196,787 XOF (مرجع {REF}). سيتصل بك الموظف المكلف بملفك. الملف {CASE}."),
    ],
)
def test_payment_failed_in_each_language(language, expected):
    assert render(TEMPLATES, "payment_failed", language, CASE, FAILED) == (language, expected)


@pytest.mark.parametrize("code", ["0042-7781", "00123456", "1234567", "1234567.50", "A1B2 C3D4", "x7{0}y", "٠١٢٣"])
@pytest.mark.parametrize("language", ["fr", "en", "ar", None])
def test_a_pickup_code_is_written_exactly_as_issued(code, language):
    # Never grouped like an amount, never masked like a phone, leading zeros and braces kept.
    used, text = render(TEMPLATES, "pickup_ready", language, CASE, {**PICKUP, "pickup_code": code})
    label = {"fr": "Code de retrait : ", "en": "Pickup code: ", "ar": "رمز الاستلام: "}[used]
    assert f"{label}{code} (" in text
    assert "•" not in text


async def test_the_sms_gateway_writes_the_pickup_code_unmasked(tmp_path):
    # The file gateway stands in for the SMS itself: the beneficiary must get the code whole.
    _, text = render(TEMPLATES, "pickup_ready", "fr", CASE, PICKUP)
    path = tmp_path / "outbox.log"
    await FileSmsGateway(path).send([sms("n-1", text=text)])
    [line] = lines(path)
    assert line.endswith(text) and "0042-7781" in line


def test_a_pickup_notice_without_its_code_is_not_rendered():
    # A pickup SMS without the code is useless: the handler dead-letters it (unrenderable_notice).
    with pytest.raises(KeyError, match="pickup_code"):
        render(TEMPLATES, "pickup_ready", "fr", CASE, {k: v for k, v in PICKUP.items() if k != "pickup_code"})


async def test_rendering_and_sending_log_nothing(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    _, text = render(TEMPLATES, "pickup_ready", "en", CASE, PICKUP)
    await FileSmsGateway(tmp_path / "outbox.log").send([sms("n-1", text=text)])
    assert all("0042-7781" not in r.getMessage() for r in caplog.records)


def test_the_notifications_service_has_no_logger_that_could_write_a_text():
    # The rendered text holds pickup codes: it goes to the notices table and the gateway, never to logs.
    package = Path(notifications.__file__).parent
    for module in package.rglob("*.py"):
        source = module.read_text(encoding="utf-8")
        assert "import logging" not in source and "getLogger" not in source and "print(" not in source, module


@pytest.mark.parametrize("language", [None, "de", "", "FR", "sw"])
def test_unknown_language_falls_back_to_the_configured_language(language):
    used, text = render(TEMPLATES, "payment_settled", language, CASE, SETTLED)
    assert used == TEMPLATES.fallback_language == "fr"
    assert text == render(TEMPLATES, "payment_settled", "fr", CASE, SETTLED)[1]


def test_fallback_language_comes_from_the_templates():
    templates = Templates("en", {"k": {"en": "Hi {case_id}", "fr": "Salut {case_id}"}})
    assert render(templates, "k", "es", "C-1", {}) == ("en", "Hi C-1")


def test_every_shipped_template_renders_without_leftover_placeholders():
    params = {"eligibility_approved": PLAN_TOTAL, "payment_settled": SETTLED, "pickup_ready": PICKUP,
              "payment_failed": FAILED}
    assert set(TEMPLATES.by_kind) == set(params)
    for kind, texts in TEMPLATES.by_kind.items():
        assert {"fr", "en", "ar"} <= set(texts)
        for language in texts:
            used, text = render(TEMPLATES, kind, language, CASE, params[kind])
            assert used == language
            assert CASE in text and "{" not in text and "}" not in text


def test_unknown_kind_is_an_error():
    with pytest.raises(UnknownNoticeKind):
        render(TEMPLATES, "loan_offer", "fr", CASE, {})


def test_missing_param_is_a_key_error():
    # The handler turns this into a dead letter (unrenderable_notice).
    with pytest.raises(KeyError):
        render(TEMPLATES, "payment_settled", "fr", CASE, {"amount": {"amount": "1.00", "currency": "EUR"}})


# --- money formatting -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("money", "language", "expected"),
    [
        ({"amount": "250000", "currency": "XOF"}, "fr", f"250{NNBSP}000 XOF"),
        ({"amount": "250000", "currency": "XOF"}, "en", "250,000 XOF"),
        ({"amount": "1300000", "currency": "XOF"}, "fr", f"1{NNBSP}300{NNBSP}000 XOF"),
        ({"amount": "7", "currency": "GNF"}, "en", "7 GNF"),
        ({"amount": "18000000", "currency": "GNF"}, "ar", "18,000,000 GNF"),
        ({"amount": "1200", "currency": "EUR"}, "en", "1,200.00 EUR"),
        ({"amount": "1200.5", "currency": "EUR"}, "fr", f"1{NNBSP}200,50 EUR"),
        ({"amount": "0.05", "currency": "EUR"}, "fr", "0,05 EUR"),
        ({"amount": "999.99", "currency": "EUR"}, "fr", "999,99 EUR"),
        ({"amount": "1234567.89", "currency": "EUR"}, "en", "1,234,567.89 EUR"),
        ({"amount": "1.234", "currency": "KWD"}, "en", "1.234 KWD"),
    ],
)
def test_format_money(money, language, expected):
    assert format_money(money, language) == expected


@pytest.mark.parametrize(("language", "decimal_mark", "group"), [("fr", ",", NNBSP), ("en", ".", ","), ("ar", ".", ",")])
def test_xof_never_gets_decimals_and_eur_always_two(language, decimal_mark, group):
    xof = format_money({"amount": "100001", "currency": "XOF"}, language)
    assert xof == f"100{group}001 XOF"
    assert decimal_mark not in xof.replace(group, "")
    assert format_money({"amount": "3", "currency": "EUR"}, language) == f"3{decimal_mark}00 EUR"
    assert format_money({"amount": "3.1", "currency": "EUR"}, language) == f"3{decimal_mark}10 EUR"


# --- file SMS gateway -------------------------------------------------------------------------


def sms(message_id: str, phone: str = "+2250701020304", text: str = "Paiement reçu : 720,00 EUR.") -> Sms:
    return Sms(message_id=message_id, to=phone, language="fr", case_id=CASE, text=text)


def lines(path):
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


async def test_file_gateway_writes_one_line_per_message(tmp_path):
    path = tmp_path / "sms" / "outbox.log"  # the folder does not exist yet
    gateway = FileSmsGateway(path)
    await gateway.send([sms("n-1"), sms("n-2", text="مرحبا")])
    written = lines(path)
    assert len(written) == 2
    assert "id=n-1" in written[0] and "Paiement reçu : 720,00 EUR." in written[0]
    assert "id=n-2" in written[1] and written[1].endswith("مرحبا")
    assert all(f"case={CASE}" in line and "lang=fr" in line for line in written)


async def test_file_gateway_never_writes_a_message_twice(tmp_path):
    path = tmp_path / "outbox.log"
    gateway = FileSmsGateway(path)
    await gateway.send([sms("n-1")])
    await gateway.send([sms("n-1"), sms("n-2")])
    await gateway.send([sms("n-2")])
    await gateway.send([])
    assert [line.split("  ")[1] for line in lines(path)] == ["id=n-1", "id=n-2"]


async def test_file_gateway_remembers_what_an_earlier_instance_wrote(tmp_path):
    path = tmp_path / "outbox.log"
    await FileSmsGateway(path).send([sms("n-1"), sms("n-2")])
    # A restarted service (new instance, same file) resends what it had not marked sent.
    restarted = FileSmsGateway(path)
    await restarted.send([sms("n-1"), sms("n-2"), sms("n-3")])
    assert [line.split("  ")[1] for line in lines(path)] == ["id=n-1", "id=n-2", "id=n-3"]


async def test_file_gateway_writes_a_repeated_id_within_one_batch_once(tmp_path):
    path = tmp_path / "outbox.log"
    await FileSmsGateway(path).send([sms("n-1"), sms("n-1")])
    assert len(lines(path)) == 1


async def test_file_gateway_masks_the_phone(tmp_path):
    path = tmp_path / "outbox.log"
    await FileSmsGateway(path).send([sms("n-1", phone="+2250701020304")])
    [line] = lines(path)
    assert "+2250701020304" not in line
    assert "0701020" not in line
    to = next(part for part in line.split("  ") if part.startswith("to="))
    assert to.startswith("to=+225") and to.endswith("304")
