"""Data minimisation: what leaves intake about a registered case.

Later steps need the programme, the countries, consent and vulnerabilities, the date of birth
(the age rule) and keyed hashes of the identity (people already assisted), all for eligibility,
and a way to reach the beneficiary (notifications). Document number and person id stay out. The
name leaves intake only as the payee of payments (`contact.payee_name`): a bank transfer needs its
account holder and a cash pickup its recipient; nothing is decided on it.
"""

from __future__ import annotations

from typing import Any


def upstream_reference(source: str, event_id: str, event_type: str) -> dict[str, str]:
    """Which upstream event a forwarded event comes from, so later answers can name it."""
    return {"source": source, "id": event_id, "type": event_type}


def forwarded(data: dict[str, Any], source: str, event_id: str, event_type: str) -> dict[str, Any]:
    """An upstream payload as forwarded: a shallow copy (the input is shared), plus its origin.
    An `upstream_event` the sender put in its payload is replaced: only intake says where an event came from."""
    return {**data, "upstream_event": upstream_reference(source, event_id, event_type)}


def accepted_case(data: dict[str, Any], source: str, identity: dict[str, str],
                  upstream_event: dict[str, str]) -> dict[str, Any]:
    """`identity`: domain.identity.case_identity of the beneficiary."""
    beneficiary = data["beneficiary"]
    return {
        "case_id": data["case_id"],
        "program_code": data["program_code"],
        "source": source,
        "host_country": data["host_country"],
        "origin_country": data["origin_country"],
        "household_size": data["household_size"],
        "date_of_birth": beneficiary["date_of_birth"],
        "vulnerabilities": list(data.get("vulnerabilities") or []),
        "consent": bool(data["consent"]["data_processing"]),
        "contact": {
            "phone": beneficiary.get("phone"),
            "preferred_language": beneficiary.get("preferred_language"),
            "payee_name": beneficiary["full_name"],
        },
        "identity": {"document": identity["document"], "person": identity["person"]},
        "upstream_event": dict(upstream_event),
    }
