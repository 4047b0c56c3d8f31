"""Valid upstream events for tests and the demo generator.

With default arguments every `sample_*` returns exactly the example of the contract page,
so the examples and the code cannot drift apart unnoticed (the tests compare them).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from reintegra.contract.upstream import (
    BENEFICIARY_UPDATED,
    CASE_REGISTERED,
    CASE_WITHDRAWN,
    DELIVERY_CONFIRMED,
    MILESTONE_VERIFIED,
    PLAN_APPROVED,
    RETURN_COMPLETED,
)
from reintegra.events import new_event
from reintegra.money import minor_units

DEFAULT_CASE_ID = "MA-2026-000123"
DEFAULT_PLAN_ID = "PL-5531"
DEFAULT_SOURCE = "urn:casesys:ma-rabat"
DEFAULT_PHONE = "+2250701020304"
DEFAULT_VENDOR = "V-ABJ-017"
DEFAULT_MILESTONE = "business_established"
DEFAULT_PERSON_ID = "P-88412"
DEFAULT_DOCUMENT_NUMBER = "CI-A1234567"

Payload = dict[str, Any]


def _units(whole: int, currency: str) -> str:
    """"300.00" for EUR, "300" for XOF: a whole amount written with the currency's digits."""
    digits = minor_units(currency)
    return f"{whole}.{'0' * digits}" if digits else str(whole)


def mobile_money_payout(msisdn: str = DEFAULT_PHONE, provider: str = "orange_money_ci") -> Payload:
    return {"method": "mobile_money", "provider": provider, "msisdn": msisdn}


def _derived(prefix: str, case_id: str) -> str:
    """`DOC-MA-2026-000777`: an identifier of this case alone, within the contract's 64 characters."""
    value = f"{prefix}-{case_id}"
    if len(value) > 64:
        value = f"{prefix}-{hashlib.sha256(case_id.encode()).hexdigest()[:64 - len(prefix) - 1]}"
    return value


def sample_case_registered(
    case_id: str = DEFAULT_CASE_ID,
    *,
    phone: str | None = DEFAULT_PHONE,
    preferred_language: str = "fr",
    host_country: str = "MA",
    origin_country: str = "CI",
    vulnerabilities: list[str] | None = None,
    household_size: int = 3,
    consent: bool = True,
    person_id: str | None = None,
    document_number: str | None = None,
    full_name: str = "Awa Traoré",
    date_of_birth: str = "1994-03-02",
) -> Payload:
    """For the contract's case id, the contract's beneficiary. For any other case, the document
    number and person id not given are the case's own (`DOC-<case_id>`, `P-<case_id>`): cases
    built here are different people unless a test says otherwise."""
    default_case = case_id == DEFAULT_CASE_ID
    if person_id is None:
        person_id = DEFAULT_PERSON_ID if default_case else _derived("P", case_id)
    if document_number is None:
        document_number = DEFAULT_DOCUMENT_NUMBER if default_case else _derived("DOC", case_id)
    return {
        "case_id": case_id,
        "program_code": "MA-AVRR-2026",
        "beneficiary": {
            "person_id": person_id, "full_name": full_name, "date_of_birth": date_of_birth,
            "sex": "F", "nationality": origin_country, "document_number": document_number,
            "phone": phone, "email": None, "preferred_language": preferred_language,
        },
        "household_size": household_size,
        "host_country": host_country,
        "origin_country": origin_country,
        "vulnerabilities": ["single_parent"] if vulnerabilities is None else list(vulnerabilities),
        "consent": {"data_processing": consent, "signed_at": "2026-09-01T10:00:00Z"},
    }


def sample_return_completed(
    case_id: str = DEFAULT_CASE_ID,
    *,
    departure_date: str = "2026-10-02",
    arrival_date: str = "2026-10-03",
    arrival_country: str = "CI",
) -> Payload:
    return {"case_id": case_id, "departure_date": departure_date, "arrival_date": arrival_date,
            "arrival_country": arrival_country}


def sample_plan_approved(
    case_id: str = DEFAULT_CASE_ID,
    plan_id: str = DEFAULT_PLAN_ID,
    *,
    currency: str = "EUR",
    cash_amount: str | None = "default",
    inkind: bool | str = True,
    vendor_id: str = DEFAULT_VENDOR,
    milestone: str = DEFAULT_MILESTONE,
    payout: Payload | None | str = "default",
    approved_at: str = "2026-10-20T09:30:00Z",
) -> Payload:
    """The contract's two-component plan.

    cash_amount: amount of the cash component "c1", None for no cash component.
    inkind: False for no in-kind component "c2", True for the default amount, or its amount.
    Default amounts are 300 and 1200 written with the currency's digits.
    payout: None to leave it out (then a cash component makes the plan invalid).
    """
    components: list[Payload] = []
    if cash_amount is not None:
        components.append({
            "component_id": "c1", "modality": "cash", "category": "immediate_needs",
            "amount": {"amount": _units(300, currency) if cash_amount == "default" else cash_amount,
                       "currency": currency},
            "tranches": [{"seq": 1, "share_percent": 100, "release": "on_approval"}],
        })
    if inkind is not False:
        components.append({
            "component_id": "c2", "modality": "in_kind", "category": "business_startup",
            "amount": {"amount": _units(1200, currency) if inkind is True else inkind, "currency": currency},
            "vendor_id": vendor_id,
            "description": "Tailoring kit: sewing machine, fabric, tools",
            "tranches": [{"seq": 1, "share_percent": 60, "release": "on_approval"},
                         {"seq": 2, "share_percent": 40, "release": f"milestone:{milestone}"}],
        })
    plan: Payload = {"case_id": case_id, "plan_id": plan_id, "approved_by": "caseworker:k.benali",
                     "approved_at": approved_at}
    if payout == "default":
        plan["payout"] = mobile_money_payout()
    elif payout is not None:
        plan["payout"] = payout
    plan["components"] = components
    return plan


def sample_milestone_verified(
    case_id: str = DEFAULT_CASE_ID,
    plan_id: str = DEFAULT_PLAN_ID,
    *,
    milestone: str = DEFAULT_MILESTONE,
    verified_at: str = "2027-01-15T14:00:00Z",
) -> Payload:
    return {"case_id": case_id, "plan_id": plan_id, "milestone": milestone,
            "verified_at": verified_at, "verified_by": "monitor:a.kone"}


def sample_delivery_confirmed(
    case_id: str = DEFAULT_CASE_ID,
    plan_id: str = DEFAULT_PLAN_ID,
    *,
    component_id: str = "c2",
    tranche_seq: int = 1,
    vendor_id: str = DEFAULT_VENDOR,
    amount: str = "720.00",
    currency: str = "EUR",
    invoice_number: str = "INV-2026-4410",
    delivered_at: str = "2026-11-02T11:00:00Z",
) -> Payload:
    return {"case_id": case_id, "plan_id": plan_id, "component_id": component_id,
            "tranche_seq": tranche_seq, "vendor_id": vendor_id, "delivered_at": delivered_at,
            "invoice": {"number": invoice_number, "amount": {"amount": amount, "currency": currency}}}


def sample_beneficiary_updated(
    case_id: str = DEFAULT_CASE_ID,
    *,
    phone: str | None = "+2250709998877",
    preferred_language: str | None = "fr",
    payout: Payload | None | str = "default",
) -> Payload:
    update: Payload = {"case_id": case_id}
    if phone is not None:
        update["phone"] = phone
    if preferred_language is not None:
        update["preferred_language"] = preferred_language
    if payout == "default":
        update["payout"] = mobile_money_payout("+2250709998877", "mtn_momo_ci")
    elif payout is not None:
        update["payout"] = payout
    return update


def sample_case_withdrawn(
    case_id: str = DEFAULT_CASE_ID,
    *,
    reason: str = "beneficiary_request",
    withdrawn_at: str = "2026-11-10T08:00:00Z",
) -> Payload:
    return {"case_id": case_id, "reason": reason, "withdrawn_at": withdrawn_at}


SAMPLES_BY_TYPE = {
    CASE_REGISTERED: sample_case_registered,
    RETURN_COMPLETED: sample_return_completed,
    PLAN_APPROVED: sample_plan_approved,
    MILESTONE_VERIFIED: sample_milestone_verified,
    DELIVERY_CONFIRMED: sample_delivery_confirmed,
    BENEFICIARY_UPDATED: sample_beneficiary_updated,
    CASE_WITHDRAWN: sample_case_withdrawn,
}


def cloudevent(
    type: str,  # noqa: A002 - the CloudEvents attribute name
    subject: str,
    data: Payload,
    source: str = DEFAULT_SOURCE,
    id: str | None = None,  # noqa: A002
    time: str | None = None,
) -> Payload:
    """A structured-mode CloudEvent as upstream sends it."""
    return new_event(type, source, subject, data, event_id=id, time=time)


Record = tuple[bytes | None, bytes, list[tuple[str, bytes]]]


def structured_record(event: Payload, traceparent: str | None = None) -> Record:
    """(key, value, headers) of a Kafka record carrying `event` in structured mode."""
    headers = [("content-type", b"application/cloudevents+json")]
    if traceparent:
        headers.append(("traceparent", traceparent.encode()))
    return _key(event), _json_bytes(event), headers


def binary_record(event: Payload, traceparent: str | None = None) -> Record:
    """(key, value, headers) of a Kafka record carrying `event` in binary mode."""
    headers = [("content-type", event.get("datacontenttype", "application/json").encode())]
    headers += [(f"ce_{name}", str(value).encode("utf-8")) for name, value in event.items()
                if name not in ("data", "datacontenttype")]
    if traceparent:
        headers.append(("traceparent", traceparent.encode()))
    return _key(event), _json_bytes(event["data"]), headers


def _key(event: Payload) -> bytes | None:
    """The record key upstream uses: the case_id, which is the subject."""
    subject = event.get("subject")
    return subject.encode("utf-8") if isinstance(subject, str) else None


def _json_bytes(value: Any) -> bytes:
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate has no UTF-8 form; JSON can still carry it as a \u escape.
        return json.dumps(value, separators=(",", ":")).encode("ascii")
