"""Builders for eligibility's domain tests: events shaped as intake forwards them.

Everything here builds inputs; nothing computes an expected result, so the tests state their
expectations from the spec (issue 6) themselves.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from typing import Any

from eligibility.app import load_programmes
from eligibility.domain.case_file import CaseFile
from eligibility.domain.identities import IdentityBook
from eligibility.domain.process import (
    CASE_ACCEPTED,
    DELIVERY_CONFIRMED,
    MILESTONE_VERIFIED,
    PLAN_APPROVED,
    RETURN_COMPLETED,
    Context,
    Emitted,
    apply_event,
)
from reintegra.auth.principal import Principal
from reintegra.contract.samples import (
    mobile_money_payout,
    sample_delivery_confirmed,
    sample_milestone_verified,
    sample_return_completed,
)
from reintegra.contract.status import (
    CASE_REJECTED,
    ELIGIBILITY_APPROVED,
    ELIGIBILITY_REJECTED,
    ELIGIBILITY_REVIEW_REQUIRED,
)

MA = "MA-AVRR-2026"
LY = "LY-AVRR-2026"
CASE = "MA-2026-000123"
PLAN = "PL-5531"
AUTHOR = "caseworker:k.benali"
ADULT_DOB = "1994-03-02"  # 32 in 2026
MINOR_DOB = "2012-05-05"  # 14 in 2026
ARRIVAL = "2026-10-03"
APPROVED_AT = "2026-10-20T09:30:00Z"

APPROVED_T, REJECTED_T, REVIEW_T, CASE_REJECTED_T = (
    ELIGIBILITY_APPROVED, ELIGIBILITY_REJECTED, ELIGIBILITY_REVIEW_REQUIRED, CASE_REJECTED)

PROGRAMMES = load_programmes(None)  # the shipped programmes.yaml

# Every rule a decision under a known programme records (the spec's list, one result each).
ALL_RULES = frozenset({
    "consent", "programme_known", "programme_open", "host_country", "origin_covered", "return_to_origin",
    "arrival_window", "categories", "plan_consistent", "exchange_rate", "ceiling", "cash_share",
    "vulnerability_review", "duplicate_beneficiary",
})


PAYEE = "Awa Traoré"  # intake's contact.payee_name: the account holder or pickup recipient of payments


def identity_hash(label: str) -> str:
    """A stand-in for intake's keyed hash: 64 hex characters, one per label."""
    return hashlib.sha256(label.encode()).hexdigest()


def identity(person: str = "awa") -> dict[str, str]:
    return {"document": identity_hash(f"document:{person}"), "person": identity_hash(f"person:{person}")}


def accepted(case_id: str = CASE, *, program_code: str = MA, host_country: str | None = None,
             origin_country: str | None = None, vulnerabilities: Iterable[str] = (), consent: bool = True,
             date_of_birth: str | None = ADULT_DOB, person: str = "awa", ident: dict | None = None,
             phone: str | None = "+2250701020304", language: str | None = "fr",
             payee_name: str | None = PAYEE) -> dict[str, Any]:
    """The minimised case intake forwards on `case.accepted`; payee_name=None: as intake sent it before
    it forwarded the payee's name."""
    default_host, default_origin = ("LY", "NG") if program_code == LY else ("MA", "CI")
    return {
        "case_id": case_id, "program_code": program_code,
        "host_country": host_country or default_host, "origin_country": origin_country or default_origin,
        "household_size": 3, "vulnerabilities": list(vulnerabilities), "consent": consent,
        "contact": {"phone": phone, "preferred_language": language,
                    **({"payee_name": payee_name} if payee_name is not None else {})},
        "source": "urn:casesys:ma-rabat", "date_of_birth": date_of_birth,
        "identity": ident if ident is not None else identity(person),
        "upstream_event": {"source": "urn:casesys:ma-rabat", "id": f"ev-reg-{case_id}",
                           "type": "reintegration.case.registered.v1"},
    }


def returned(case_id: str = CASE, *, arrival_date: str = ARRIVAL, country: str = "CI") -> dict[str, Any]:
    return sample_return_completed(case_id, arrival_date=arrival_date, departure_date=arrival_date,
                                   arrival_country=country)


def component(component_id: str, amount: str, *, modality: str = "in_kind", category: str | None = None,
              currency: str = "EUR", tranches: Sequence[tuple[int, str]] = ((100, "on_approval"),),
              vendor_id: str | None = "V-ABJ-017") -> dict[str, Any]:
    """One plan component; `tranches` are (share_percent, release), numbered 1, 2, 3, ..."""
    result: dict[str, Any] = {
        "component_id": component_id, "modality": modality,
        "category": category or ("immediate_needs" if modality == "cash" else "business_startup"),
        "amount": {"amount": amount, "currency": currency},
        "tranches": [{"seq": n, "share_percent": share, "release": release}
                     for n, (share, release) in enumerate(tranches, start=1)],
    }
    if modality == "in_kind" and vendor_id is not None:
        result["vendor_id"] = vendor_id
    return result


def cash(component_id: str, amount: str, **kwargs: Any) -> dict[str, Any]:
    return component(component_id, amount, modality="cash", **kwargs)


def plan(components: Sequence[dict[str, Any]] | None = None, *, plan_id: str = PLAN, case_id: str = CASE,
         approved_at: str = APPROVED_AT, approved_by: str = AUTHOR, payout: Any = "default",
         upstream_id: str = "ev-plan-1") -> dict[str, Any]:
    """A plan as intake forwards it. Default components: the contract's 300 cash + 1200 in kind."""
    if components is None:
        components = [cash("c1", "300.00"),
                      component("c2", "1200.00", tranches=((60, "on_approval"), (40, "milestone:business_established")))]
    result: dict[str, Any] = {"case_id": case_id, "plan_id": plan_id, "approved_by": approved_by,
                              "approved_at": approved_at}
    if payout == "default":
        result["payout"] = mobile_money_payout()
    elif payout is not None:
        result["payout"] = payout
    result["components"] = copy.deepcopy(list(components))
    result["upstream_event"] = {"source": "urn:casesys:ma-rabat", "id": upstream_id,
                                "type": "reintegration.plan.approved.v1"}
    return result


def in_kind_plan(amount: str, **kwargs: Any) -> dict[str, Any]:
    """A one-component, all in-kind plan (no cash, so the cash share cannot interfere)."""
    return plan([component("c1", amount)], **kwargs)


def milestone(plan_id: str = PLAN, name: str = "business_established", case_id: str = CASE) -> dict[str, Any]:
    data = sample_milestone_verified(case_id, plan_id, milestone=name)
    data["upstream_event"] = {"source": "urn:casesys:ma-rabat", "id": f"ev-ms-{plan_id}-{name}",
                              "type": MILESTONE_VERIFIED}
    return data


def delivery(plan_id: str = PLAN, case_id: str = CASE) -> dict[str, Any]:
    data = sample_delivery_confirmed(case_id, plan_id)
    data["upstream_event"] = {"source": "urn:casesys:ma-rabat", "id": "ev-del-1", "type": DELIVERY_CONFIRMED}
    return data


def day_after(iso_day: str, days: int) -> str:
    return (date.fromisoformat(iso_day) + timedelta(days=days)).isoformat()


def context(identities: IdentityBook | None = None, programmes=None) -> Context:
    return Context(programmes if programmes is not None else PROGRAMMES, identities or IdentityBook())


def decide(accepted_data: dict | None = None, returned_data: dict | None = None, plan_data: dict | None = None,
           ctx: Context | None = None, case: CaseFile | None = None) -> tuple[CaseFile, Emitted]:
    """The three facts in the usual order; returns the case and what the last one emitted."""
    accepted_data = accepted_data if accepted_data is not None else accepted()
    ctx = ctx or context()
    case = case or CaseFile(case_id=accepted_data["case_id"])
    apply_event(case, CASE_ACCEPTED, accepted_data, ctx)
    apply_event(case, RETURN_COMPLETED,
                returned_data if returned_data is not None else returned(accepted_data["case_id"]), ctx)
    out = apply_event(case, PLAN_APPROVED, plan_data if plan_data is not None else plan(
        case_id=accepted_data["case_id"]), ctx)
    return case, out


def only_status(out: Emitted) -> tuple[str, dict[str, Any]]:
    assert len(out.statuses) == 1, out.statuses
    return out.statuses[0]


def codes(data: dict[str, Any]) -> list[str]:
    return sorted(r["code"] for r in data.get("reasons", []))


def rule(decision, name: str):
    [result] = [r for r in decision.rules if r.rule == name]
    return result


def reviewer(username: str, *upstream_ids: str) -> Principal:
    return Principal(user_id=abs(hash(username)) % 10_000, username=username, display_name=username.title(),
                     roles=frozenset({"reviewer"}), upstream_ids=frozenset(upstream_ids), via="token")


def released_total_minor(case: CaseFile) -> int:
    assert {i.currency for i in case.released.values()} <= {"EUR"}
    return sum(i.amount_minor for i in case.released.values())
