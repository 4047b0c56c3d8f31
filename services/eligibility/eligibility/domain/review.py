"""A person's decision on a held case, with four eyes (pure).

- The reviewer is never the plan's author (`approved_by`): who proposed a payment cannot approve it.
- Above the programme's `second_approval_above`, a first approval only moves the review to
  `awaiting_second_approval`; a second, different reviewer must confirm.
- A rejection needs one reviewer (no money moves). Every action needs a comment.
- An approval then flows on exactly as an automatic one (`approve_grant` / `apply_revision`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Protocol

from reintegra.contract.status import CASE_REJECTED, ELIGIBILITY_REJECTED, event_refused
from reintegra.money import Money, minor_units

from eligibility.domain.case_file import CaseFile
from eligibility.domain.process import (
    OPEN_REVIEW,
    Context,
    DecisionRecord,
    Emitted,
    apply_revision,
    approve_grant,
    evaluate_plan,
    review_row,
    status_data,
)
from eligibility.domain.rules import APPROVED, GRANT, REJECTED, REPLACEMENT, REVISION, Decision, RuleResult

APPROVE, REJECT = "approve", "reject"
MAX_COMMENT = 2000


class Reviewer(Protocol):
    username: str

    def is_same_person(self, upstream_actor: str) -> bool: ...


class ReviewRefused(Exception):
    def __init__(self, code: str, message: str, http_status: int) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = http_status


def act_on_review(case: CaseFile, action: str, reviewer: Reviewer, comment: str, ctx: Context, now: str) -> Emitted:
    review = case.review
    if review is None:
        raise ReviewRefused("no_such_review", f"case {case.case_id} has no review", 404)
    if review["status"] not in OPEN_REVIEW:
        raise ReviewRefused("review_closed", f"the review of case {case.case_id} is {review['status']}", 409)
    if action not in (APPROVE, REJECT):
        raise ReviewRefused("invalid_action", "action must be approve or reject", 422)
    comment = (comment or "").strip()
    if not comment:
        raise ReviewRefused("comment_required", "a decision needs a comment saying why", 422)
    if len(comment) > MAX_COMMENT:
        raise ReviewRefused("comment_too_long", f"a comment has at most {MAX_COMMENT} characters", 422)
    author = review["plan"].get("approved_by") or ""
    if author and reviewer.is_same_person(author):
        raise ReviewRefused("reviewer_is_plan_author",
                            "four eyes: the caseworker who approved the plan cannot review it", 403)
    approvals = review.get("approvals") or []
    if any(a["by"].casefold() == reviewer.username.casefold() for a in approvals):
        raise ReviewRefused("same_reviewer_twice", "four eyes: a second, different reviewer must confirm", 403)
    programme = ctx.programmes.get(review["program_code"])
    if action == APPROVE and programme is None:
        raise ReviewRefused("programme_unknown", f"programme {review['program_code']} is no longer configured", 409)
    if action == APPROVE and review["kind"] != GRANT:
        _still_fits(case, review, ctx)

    out = Emitted()
    entry = {"by": reviewer.username, "at": now, "comment": comment, "action": action}
    if action == REJECT:
        outcome = "rejected"
        _reject(case, review, reviewer.username, out)
    elif review["second_approval_needed"] and not approvals:
        outcome = "awaiting_second_approval"
    else:
        outcome = "approved"
    case.review = {**review, "status": outcome, "approvals": approvals + [entry]}
    if outcome == "approved":
        decided_by = ",".join(a["by"] for a in case.review["approvals"])
        decision = _reviewed(review, APPROVED, case.review["approvals"])
        out.decisions.append(DecisionRecord(case.case_id, review["plan_id"], review["kind"], decision, decided_by))
        if review["kind"] == GRANT:
            approve_grant(case, review["plan"], decision, ctx, out, decided_by=decided_by)
        else:
            apply_revision(case, review["plan"], decision, ctx, out, decided_by=decided_by)
    out.reviews.append(review_row(case))
    out.review_actions.append({"case_id": case.case_id, "plan_id": review["plan_id"], "actor": reviewer.username,
                               "action": action, "outcome": outcome, "comment": comment,
                               "programme_version": review.get("programme_version")})
    return out


def _still_fits(case: CaseFile, review: dict[str, Any], ctx: Context) -> None:
    """The grant may have moved on while the plan waited (a milestone released tranches, another
    revision was applied): the held plan must still fit the whole grant as it is now."""
    kind = REVISION if review["plan_id"] == case.grant_plan_id else REPLACEMENT
    decision = evaluate_plan(case, review["plan"], kind, ctx)
    if decision.outcome == REJECTED:
        problems = "; ".join(f"{r.code}: {r.message}" for r in decision.rules if r.outcome == "reject")
        raise ReviewRefused("plan_no_longer_fits",
                            f"the grant changed since the review opened ({problems}): the plan can only be rejected",
                            409)


def _reviewed(review: dict[str, Any], outcome: str, approvals: list[dict[str, Any]]) -> Decision:
    """The decision record of a review: the held rules plus who decided."""
    rules = tuple(RuleResult(**r) for r in review.get("rules") or ())
    total = review.get("programme_total")
    money = _total_money(total) if total else None
    people = tuple({"code": f"reviewed_{a['action']}", "field": None, "message": f"{a['action']} by {a['by']}"}
                   for a in approvals)
    return Decision(outcome, rules, review.get("programme_version"), money, None, people)


def _total_money(total: dict[str, str]) -> Money:
    """A stored total back as Money. Not Money.parse, which wants an amount > 0: a grant revised down
    to its released 0-cent tranches totals 0.00."""
    currency = total["currency"]
    return Money(int(Decimal(total["amount"]).scaleb(minor_units(currency))), currency)


def _reject(case: CaseFile, review: dict[str, Any], username: str, out: Emitted) -> None:
    reasons = [{"code": "rejected_by_reviewer", "field": None, "message": "a reviewer rejected the plan"}]
    decision = Decision(REJECTED, (), review.get("programme_version"), None, None, tuple(reasons))
    out.decisions.append(DecisionRecord(case.case_id, review["plan_id"], review["kind"], decision, username))
    if review["kind"] == GRANT:
        case.decision = REJECTED
        data = status_data(case, review["plan"], decision, REJECTED, decided_by=username)
        out.statuses.append((ELIGIBILITY_REJECTED, data))
    else:  # a revision or replacement refused: the approved grant stays as it was
        out.statuses.append((CASE_REJECTED, event_refused(case.case_id, reasons, review["plan"].get("upstream_event"))))
