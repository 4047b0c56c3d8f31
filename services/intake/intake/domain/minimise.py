"""Data minimisation: what leaves intake about a registered case.

Later steps need the programme, the countries, consent and vulnerabilities (eligibility) and a
way to reach the beneficiary (notifications). Name, date of birth and document number stay out.
"""

from __future__ import annotations

from typing import Any


def accepted_case(data: dict[str, Any]) -> dict[str, Any]:
    beneficiary = data["beneficiary"]
    return {
        "case_id": data["case_id"],
        "program_code": data["program_code"],
        "host_country": data["host_country"],
        "origin_country": data["origin_country"],
        "household_size": data["household_size"],
        "vulnerabilities": list(data.get("vulnerabilities") or []),
        "consent": bool(data["consent"]["data_processing"]),
        "contact": {
            "phone": beneficiary.get("phone"),
            "preferred_language": beneficiary.get("preferred_language"),
        },
    }

