"""Eligibility rules: approve, reject or send for review, with reason codes (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reintegra.money import Money

from eligibility.domain.case_file import CaseFile
from eligibility.domain.programmes import Programme

APPROVED = "approved"
REJECTED = "rejected"
REVIEW_REQUIRED = "review_required"


@dataclass(frozen=True)
class Decision:
    outcome: str
    reasons: tuple[dict[str, Any], ...] = ()


def _reason(code: str, field: str | None, message: str) -> dict[str, Any]:
    return {"code": code, "field": field, "message": message}


def plan_total(plan: dict[str, Any]) -> Money:
    amounts = [Money.parse(c["amount"]["amount"], c["amount"]["currency"]) for c in plan["components"]]
    total = amounts[0]
    for amount in amounts[1:]:
        total = total + amount
    return total


def ready_to_decide(case: CaseFile) -> bool:
    """All three facts are in: the accepted case, the completed return and a plan."""
    return (
        case.decision is None
        and not case.withdrawn
        and case.accepted is not None
        and case.returned is not None
        and case.plan is not None
    )


def ceiling_reasons(plan: dict[str, Any], programme: Programme) -> tuple[list[dict], list[dict]]:
    """(rejections, reviews) for the plan total against the programme ceiling."""
    total = plan_total(plan)
    ceiling = programme.ceilings.get(total.currency)
    if ceiling is None:
        return [], [_reason("no_ceiling_for_currency", "plan.components",
                            f"programme {programme.code} sets no ceiling in {total.currency}")]
    if total.minor > ceiling.minor:
        amount, limit = total.to_contract()["amount"], ceiling.to_contract()["amount"]
        return [_reason("plan_over_ceiling", "plan.components",
                        f"plan total {amount} {total.currency} exceeds the ceiling {limit} {total.currency}")], []
    return [], []


def evaluate(case: CaseFile, programme: Programme | None) -> Decision:
    assert case.accepted is not None and case.returned is not None and case.plan is not None
    rejections: list[dict] = []
    reviews: list[dict] = []
    if not case.accepted.get("consent"):
        rejections.append(_reason("consent_missing", "consent.data_processing", "no consent to data processing"))
    if programme is None:
        reviews.append(_reason("unknown_programme", "program_code",
                               f"programme {case.accepted['program_code']} is not configured"))
        return Decision(REJECTED if rejections else REVIEW_REQUIRED, tuple(rejections or reviews))
    if programme.require_return_to_origin and case.returned["arrival_country"] != case.accepted["origin_country"]:
        rejections.append(_reason("return_country_mismatch", "arrival_country",
                                  "the return did not end in the beneficiary's country of origin"))
    over, no_ceiling = ceiling_reasons(case.plan, programme)
    rejections += over
    reviews += no_ceiling
    flagged = sorted(set(case.accepted.get("vulnerabilities") or ()) & programme.review_vulnerabilities)
    if flagged:
        reviews.append(_reason("vulnerability_review", "vulnerabilities",
                               f"needs a caseworker's review: {', '.join(flagged)}"))
    if rejections:
        return Decision(REJECTED, tuple(rejections))
    if reviews:
        return Decision(REVIEW_REQUIRED, tuple(reviews))
    return Decision(APPROVED)
