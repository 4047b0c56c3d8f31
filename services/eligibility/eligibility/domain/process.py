"""How each event changes a case file and what eligibility emits in response (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reintegra.contract.status import ELIGIBILITY_APPROVED, ELIGIBILITY_REJECTED, ELIGIBILITY_REVIEW_REQUIRED

from eligibility.domain.case_file import CaseFile
from eligibility.domain.programmes import Programme
from eligibility.domain.rules import APPROVED, Decision, ceiling_reasons, evaluate, plan_total, ready_to_decide

CASE_ACCEPTED = "reintegra.intake.case.accepted.v1"
RETURN_COMPLETED = "reintegration.return.completed.v1"
PLAN_APPROVED = "reintegration.plan.approved.v1"
BENEFICIARY_UPDATED = "reintegration.beneficiary.updated.v1"
CASE_WITHDRAWN = "reintegration.case.withdrawn.v1"
# Passed on unchanged to disbursement, which acts on them.
FOLLOW_UPS = {"reintegration.milestone.verified.v1", "reintegration.delivery.confirmed.v1", CASE_WITHDRAWN}

GRANT_APPROVED = "reintegra.eligibility.grant.approved.v1"
PLAN_REVISED = "reintegra.eligibility.plan.revised.v1"
CONTACT_UPDATED = "reintegra.eligibility.beneficiary.updated.v1"

STATUS_TYPES = {
    "approved": ELIGIBILITY_APPROVED,
    "rejected": ELIGIBILITY_REJECTED,
    "review_required": ELIGIBILITY_REVIEW_REQUIRED,
}


@dataclass
class Emitted:
    statuses: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (type, data) to upstream
    downstream: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (type, data) to disbursement
    notices: list[dict[str, Any]] = field(default_factory=list)  # SMS requests
    decisions: list[tuple[str | None, Decision]] = field(default_factory=list)  # (plan_id, decision) for audit


def apply_event(
    case: CaseFile, event_type: str, data: dict[str, Any], programmes: Mapping[str, Programme]
) -> Emitted:
    out = Emitted()
    if event_type == CASE_ACCEPTED:
        case.accepted = data
        case.contact = {**data.get("contact", {}), **{k: v for k, v in case.contact.items() if v}}
    elif event_type == RETURN_COMPLETED:
        case.returned = data
    elif event_type == PLAN_APPROVED:
        _plan(case, data, programmes, out)
    elif event_type == BENEFICIARY_UPDATED:
        case.contact = {
            "phone": data.get("phone") or case.contact.get("phone"),
            "preferred_language": data.get("preferred_language") or case.contact.get("preferred_language"),
        }
        out.downstream.append((CONTACT_UPDATED, {**data, "contact": case.contact}))
    elif event_type in FOLLOW_UPS:
        if event_type == CASE_WITHDRAWN:
            case.withdrawn = True
        out.downstream.append((event_type, data))
    if ready_to_decide(case):
        _decide(case, programmes, out)
    return out


def _plan(case: CaseFile, plan: dict[str, Any], programmes: Mapping[str, Programme], out: Emitted) -> None:
    if case.decision != APPROVED:
        case.plan = plan  # a first plan, or a new plan after a rejection or review: (re)decide
        case.decision = None
        return
    programme = programmes.get(case.accepted["program_code"]) if case.accepted else None
    rejections, reviews = ceiling_reasons(plan, programme) if programme else ([], [])
    if rejections or reviews:
        decision = Decision("review_required", tuple(r | {"code": "revision_" + r["code"]} for r in rejections + reviews))
        out.decisions.append((plan["plan_id"], decision))
        out.statuses.append((STATUS_TYPES["review_required"], _status_data(case, plan, decision)))
        return
    case.plan = plan
    case.decided_plan = plan
    out.downstream.append((PLAN_REVISED, {"case_id": case.case_id, "plan": plan, "contact": case.contact}))


def _status_data(case: CaseFile, plan: dict[str, Any], decision: Decision) -> dict[str, Any]:
    data: dict[str, Any] = {"case_id": case.case_id, "status": f"eligibility_{decision.outcome}",
                            "plan_id": plan["plan_id"], "plan_total": plan_total(plan).to_contract()}
    if decision.reasons:
        data["reasons"] = list(decision.reasons)
    return data


def _decide(case: CaseFile, programmes: Mapping[str, Programme], out: Emitted) -> None:
    assert case.accepted is not None and case.plan is not None
    decision = evaluate(case, programmes.get(case.accepted["program_code"]))
    case.decision = decision.outcome
    out.decisions.append((case.plan["plan_id"], decision))
    out.statuses.append((STATUS_TYPES[decision.outcome], _status_data(case, case.plan, decision)))
    if decision.outcome != APPROVED:
        return
    case.decided_plan = case.plan
    out.downstream.append((GRANT_APPROVED, {
        "case_id": case.case_id,
        "program_code": case.accepted["program_code"],
        "plan": case.plan,
        "contact": case.contact,
    }))
    out.notices.append({
        "kind": "eligibility_approved",
        "case_id": case.case_id,
        "phone": case.contact.get("phone"),
        "language": case.contact.get("preferred_language"),
        "params": {"plan_total": plan_total(case.plan).to_contract()},
    })
