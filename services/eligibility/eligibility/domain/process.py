"""How each event changes a case file and what eligibility emits in response (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from reintegra.contract.status import (
    CASE_REJECTED,
    ELIGIBILITY_APPROVED,
    ELIGIBILITY_REJECTED,
    ELIGIBILITY_REVIEW_REQUIRED,
    event_refused,
)

from eligibility.domain.age import age_on
from eligibility.domain.case_file import CaseFile
from eligibility.domain.fx import PEGS_ONLY, Rates
from eligibility.domain.grant import newly_due
from eligibility.domain.identities import IdentityBook, identity_hashes
from eligibility.domain.programmes import Programme
from eligibility.domain.rules import (
    APPROVED,
    GRANT,
    REJECTED,
    REPLACEMENT,
    REVIEW_REQUIRED,
    REVISION,
    Application,
    Decision,
    plan_date,
    plan_total,
)
from eligibility.domain.rules import evaluate as evaluate_rules

CASE_ACCEPTED = "reintegra.intake.case.accepted.v1"
RETURN_COMPLETED = "reintegration.return.completed.v1"
PLAN_APPROVED = "reintegration.plan.approved.v1"
BENEFICIARY_UPDATED = "reintegration.beneficiary.updated.v1"
CASE_WITHDRAWN = "reintegration.case.withdrawn.v1"
MILESTONE_VERIFIED = "reintegration.milestone.verified.v1"
DELIVERY_CONFIRMED = "reintegration.delivery.confirmed.v1"

GRANT_APPROVED = "reintegra.eligibility.grant.approved.v1"
PLAN_REVISED = "reintegra.eligibility.plan.revised.v1"
CONTACT_UPDATED = "reintegra.eligibility.beneficiary.updated.v1"

STATUS_TYPES = {
    APPROVED: ELIGIBILITY_APPROVED,
    REJECTED: ELIGIBILITY_REJECTED,
    REVIEW_REQUIRED: ELIGIBILITY_REVIEW_REQUIRED,
}
OPEN_REVIEW = ("open", "awaiting_second_approval")


@dataclass(frozen=True)
class DecisionRecord:
    """One decision for the audit log: what, under which programme version, by rules or by whom."""

    case_id: str
    plan_id: str
    kind: str
    decision: Decision
    decided_by: str  # "rules", or the reviewers' usernames joined by ","


@dataclass
class Emitted:
    statuses: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (type, data) to upstream
    downstream: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (type, data) to disbursement
    notices: list[dict[str, Any]] = field(default_factory=list)  # SMS requests
    decisions: list[DecisionRecord] = field(default_factory=list)
    reviews: list[dict[str, Any]] = field(default_factory=list)  # review queue rows to upsert
    review_actions: list[dict[str, Any]] = field(default_factory=list)  # reviewer actions to append


@dataclass
class Context:
    programmes: Mapping[str, Programme]
    identities: IdentityBook = field(default_factory=IdentityBook)
    rates: Rates = PEGS_ONLY


def apply_event(case: CaseFile, event_type: str, data: dict[str, Any], ctx: Context) -> Emitted:
    out = Emitted()
    if event_type == CASE_ACCEPTED:
        case.accepted = data
        case.contact = {**data.get("contact", {}), **{k: v for k, v in case.contact.items() if v}}
    elif case.withdrawn:
        _refuse(case, data, out, "case_withdrawn", "the case was withdrawn")
        return out
    elif event_type == RETURN_COMPLETED:
        if case.grant is None:
            case.returned = data
    elif event_type == PLAN_APPROVED:
        _plan(case, data, ctx, out)
    elif event_type == BENEFICIARY_UPDATED:
        # Only phone and language change here; the rest of the contact (the payee's name that payments
        # need) stays as intake sent it.
        case.contact = {
            **case.contact,
            "phone": data.get("phone") or case.contact.get("phone"),
            "preferred_language": data.get("preferred_language") or case.contact.get("preferred_language"),
        }
        out.downstream.append((CONTACT_UPDATED, {**data, "contact": case.contact}))
    elif event_type in (MILESTONE_VERIFIED, DELIVERY_CONFIRMED):
        if case.grant is None and case.decision == REJECTED:
            _refuse(case, data, out, "case_not_eligible", "the case was not found eligible: nothing is paid for it")
            return out
        if event_type == MILESTONE_VERIFIED:
            _milestone(case, data)
        out.downstream.append((event_type, data))  # disbursement applies it, or keeps it until the grant
    elif event_type == CASE_WITHDRAWN:
        case.withdrawn = True
        if case.review and case.review["status"] in OPEN_REVIEW:
            _close_review(case, "withdrawn", out)
        out.downstream.append((event_type, data))
    if _ready_to_decide(case):
        _decide(case, ctx, out)
    return out


def _ready_to_decide(case: CaseFile) -> bool:
    """The three facts are in (the case, its return, a plan) and nothing is decided yet."""
    return (case.decision is None and case.grant is None and not case.withdrawn
            and case.accepted is not None and case.returned is not None and case.plan is not None)


def _refuse(case: CaseFile, data: dict[str, Any], out: Emitted, code: str, message: str) -> None:
    _refuse_with(case, data, out, [{"code": code, "field": None, "message": message}])


def _refuse_with(case: CaseFile, data: dict[str, Any], out: Emitted, reasons: list[dict[str, Any]]) -> None:
    """A `case.rejected` answer for one upstream event that changes nothing."""
    out.statuses.append((CASE_REJECTED, event_refused(case.case_id, reasons, data.get("upstream_event"))))


def _milestone(case: CaseFile, data: dict[str, Any]) -> None:
    names = case.milestones.setdefault(data["plan_id"], [])
    if data["milestone"] not in names:
        names.append(data["milestone"])
    if case.grant and data["plan_id"] == case.grant_plan_id:
        for item in newly_due(case.released, case.grant["plan"], case.milestones):
            case.released[item.key] = item


def _plan(case: CaseFile, plan: dict[str, Any], ctx: Context, out: Emitted) -> None:
    if case.review and case.review["status"] in OPEN_REVIEW and _same_plan(plan, case.review["plan"]):
        return  # the held plan again, under another event id: its review goes on as it is
    if case.grant is None and case.decision is not None and case.plan and _same_plan(plan, case.plan):
        return  # the decided plan again (a rejection stands; a reviewer's rejection is not reopened)
    if case.grant is None:
        # A first plan, or a new one after a rejection or while under review: (re)decide.
        if case.review and case.review["status"] in OPEN_REVIEW:
            _close_review(case, "superseded", out)
        case.plan = plan
        case.decision = None
        return
    if _same_plan(plan, case.grant["plan"]):
        return  # the approved plan again, under another event id: nothing changes
    if case.review and case.review["status"] in OPEN_REVIEW:
        # Upstream's latest plan replaces the one waiting for a reviewer, whatever becomes of it.
        _close_review(case, "superseded", out)
    kind = REVISION if plan["plan_id"] == case.grant_plan_id else REPLACEMENT
    decision = evaluate_plan(case, plan, kind, ctx)
    out.decisions.append(DecisionRecord(case.case_id, plan["plan_id"], kind, decision, "rules"))
    if decision.outcome == REJECTED:
        _refuse_with(case, plan, out, list(decision.reasons))
    elif decision.outcome == REVIEW_REQUIRED:
        _open_review(case, plan, kind, decision, ctx, out)
    else:
        apply_revision(case, plan, decision, ctx, out, decided_by="rules")


def _same_plan(a: dict[str, Any], b: dict[str, Any]) -> bool:
    strip = ("upstream_event",)
    return {k: v for k, v in a.items() if k not in strip} == {k: v for k, v in b.items() if k not in strip}


def evaluate_plan(case: CaseFile, plan: dict[str, Any], kind: str, ctx: Context) -> Decision:
    assert case.accepted is not None and case.returned is not None
    hashes = identity_hashes(case.accepted)
    app = Application(case.accepted, case.returned, plan, kind, case.released,
                      ctx.identities.other_cases(case.case_id, hashes) if kind == GRANT else (),
                      case.grant_plan_id)
    return evaluate_rules(app, ctx.programmes.get(case.accepted["program_code"]), ctx.rates)


def _decide(case: CaseFile, ctx: Context, out: Emitted) -> None:
    assert case.plan is not None
    decision = evaluate_plan(case, case.plan, GRANT, ctx)
    case.decision = decision.outcome
    out.decisions.append(DecisionRecord(case.case_id, case.plan["plan_id"], GRANT, decision, "rules"))
    if decision.outcome == APPROVED:
        approve_grant(case, case.plan, decision, ctx, out, decided_by="rules")
    elif decision.outcome == REVIEW_REQUIRED:
        _open_review(case, case.plan, GRANT, decision, ctx, out)
    else:
        out.statuses.append((ELIGIBILITY_REJECTED, status_data(case, case.plan, decision, REJECTED)))


def status_data(case: CaseFile, plan: dict[str, Any], decision: Decision | None, outcome: str, *,
                kind: str = GRANT, decided_by: str = "rules") -> dict[str, Any]:
    data: dict[str, Any] = {"case_id": case.case_id, "status": f"eligibility_{outcome}", "plan_id": plan["plan_id"],
                            "plan_total": plan_total(plan).to_contract(), "decided_by": decided_by}
    if kind != GRANT:
        data["revision"] = kind
    if decision is not None:
        if decision.programme_version:
            data["programme_version"] = decision.programme_version
        if decision.programme_total is not None:
            data["programme_total"] = decision.programme_total.to_contract()
        if decision.reasons and outcome != APPROVED:
            data["reasons"] = list(decision.reasons)
    return data


def approve_grant(case: CaseFile, plan: dict[str, Any], decision: Decision | None, ctx: Context, out: Emitted, *,
                  decided_by: str) -> None:
    """The grant is approved (by the rules or by reviewers): the same effects either way."""
    assert case.accepted is not None
    code = case.accepted["program_code"]
    programme = ctx.programmes.get(code)
    case.decision = APPROVED
    case.plan = plan
    case.grant = {"plan": plan, "program_code": code, "programme_version": programme.version if programme else None,
                  "decided_by": decided_by}
    for item in newly_due(case.released, plan, case.milestones):
        case.released[item.key] = item
    ctx.identities.approve(case.case_id, identity_hashes(case.accepted), code)
    out.statuses.append((ELIGIBILITY_APPROVED, status_data(case, plan, decision, APPROVED, decided_by=decided_by)))
    grant: dict[str, Any] = {"case_id": case.case_id, "program_code": code, "plan": plan, "contact": case.contact,
                             # Where the person returned: the payout's country when the payout does not tell.
                             "country": (case.returned or {}).get("arrival_country") or case.accepted.get("origin_country")}
    if decision is not None and decision.programme_total is not None:
        grant["programme_total"] = decision.programme_total.to_contract()
        grant["programme_version"] = decision.programme_version
    if programme is not None:
        # Disbursement opens the programme's budget with it the first time it sees the programme;
        # finance raises it afterwards (reintegra budget raise).
        grant["programme_currency"] = programme.currency
        grant["programme_budget"] = programme.budget.to_contract()
    out.downstream.append((GRANT_APPROVED, grant))
    out.notices.append({
        "kind": "eligibility_approved",
        "case_id": case.case_id,
        "phone": case.contact.get("phone"),
        "language": case.contact.get("preferred_language"),
        "params": {"plan_total": plan_total(plan).to_contract()},
    })


def apply_revision(case: CaseFile, plan: dict[str, Any], decision: Decision | None, ctx: Context, out: Emitted, *,
                   decided_by: str) -> None:
    """A revision or a replacement plan that fits the whole grant: disbursement applies it."""
    assert case.grant is not None
    kind = REVISION if plan["plan_id"] == case.grant_plan_id else REPLACEMENT
    case.grant = {**case.grant, "plan": plan, "decided_by": decided_by}
    case.plan = plan
    for item in newly_due(case.released, plan, case.milestones):
        case.released[item.key] = item
    out.statuses.append((ELIGIBILITY_APPROVED,
                         status_data(case, plan, decision, APPROVED, kind=kind, decided_by=decided_by)))
    out.downstream.append((PLAN_REVISED, {"case_id": case.case_id, "plan": plan, "contact": case.contact,
                                          "program_code": case.grant["program_code"]}))


def _open_review(case: CaseFile, plan: dict[str, Any], kind: str, decision: Decision, ctx: Context,
                 out: Emitted) -> None:
    assert case.accepted is not None and case.returned is not None
    programme = ctx.programmes.get(case.accepted["program_code"])
    total = decision.programme_total
    # Unknown total (no exchange rate) is treated as large: two people look at it.
    second = programme is not None and (total is None or programme.second_approval_above < total)
    case.review = {
        "status": "open", "kind": kind, "plan": plan, "plan_id": plan["plan_id"],
        "program_code": case.accepted["program_code"], "programme_version": decision.programme_version,
        "reasons": list(decision.reasons), "rules": [r.to_json() for r in decision.rules],
        "programme_total": total.to_contract() if total is not None else None,
        "second_approval_needed": second, "approvals": [],
    }
    out.reviews.append(review_row(case))
    out.statuses.append((ELIGIBILITY_REVIEW_REQUIRED, status_data(case, plan, decision, REVIEW_REQUIRED, kind=kind)))


def _close_review(case: CaseFile, status: str, out: Emitted) -> None:
    assert case.review is not None
    case.review = {**case.review, "status": status}
    out.reviews.append(review_row(case))


def review_facts(case: CaseFile, plan: dict[str, Any]) -> dict[str, Any]:
    """What a reviewer needs to decide, and nothing that identifies the person."""
    accepted, returned = case.accepted or {}, case.returned or {}
    born = accepted.get("date_of_birth")
    age = age_on(date.fromisoformat(born), plan_date(plan)) if born else None
    return {
        "program_code": accepted.get("program_code"), "host_country": accepted.get("host_country"),
        "origin_country": accepted.get("origin_country"), "household_size": accepted.get("household_size"),
        "vulnerabilities": accepted.get("vulnerabilities") or [], "age_on_plan_date": age,
        "arrival_country": returned.get("arrival_country"), "arrival_date": returned.get("arrival_date"),
        "plan_approved_at": plan.get("approved_at"), "plan_approved_by": plan.get("approved_by"),
        "payout_method": (plan.get("payout") or {}).get("method"),
        "components": [{"component_id": c["component_id"], "modality": c["modality"], "category": c["category"],
                        "amount": c["amount"], "tranches": len(c["tranches"])} for c in plan["components"]],
    }


def review_row(case: CaseFile) -> dict[str, Any]:
    review = case.review
    assert review is not None
    plan = review["plan"]
    return {
        "case_id": case.case_id, "plan_id": review["plan_id"], "program_code": review["program_code"],
        "programme_version": review["programme_version"], "status": review["status"], "kind": review["kind"],
        "reasons": review["reasons"], "facts": review_facts(case, plan),
        "plan_total": plan_total(plan).to_contract(), "programme_total": review.get("programme_total"),
        "second_approval_needed": review["second_approval_needed"],
    }
