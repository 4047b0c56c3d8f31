"""A person's decision on a held case, with four eyes (issue 6, domain/review.py `act_on_review`)."""

from __future__ import annotations

import copy

import pytest
from eligibility.domain.case_file import CaseFile
from eligibility.domain.identities import IdentityBook
from eligibility.domain.process import (
    CASE_WITHDRAWN,
    GRANT_APPROVED,
    MILESTONE_VERIFIED,
    PLAN_APPROVED,
    PLAN_REVISED,
    apply_event,
)
from eligibility.domain.review import ReviewRefused, act_on_review
from eligibility_support import (
    APPROVED_T,
    AUTHOR,
    CASE,
    CASE_REJECTED_T,
    MA,
    MINOR_DOB,
    PLAN,
    REJECTED_T,
    REVIEW_T,
    accepted,
    codes,
    component,
    context,
    decide,
    identity,
    in_kind_plan,
    milestone,
    plan,
    released_total_minor,
    returned,
    reviewer,
)
from reintegra.contract.samples import sample_case_withdrawn

NOW = "2026-11-01T10:00:00Z"
M = "milestone:business_established"


def types(pairs):
    return [t for t, _ in pairs]


def held(plan_data=None, ctx=None, **accepted_kwargs):
    """A case held for review (an unaccompanied minor, the spec's 'always review')."""
    ctx = ctx or context()
    accepted_kwargs.setdefault("vulnerabilities", ["unaccompanied_minor"])
    case = CaseFile(case_id=accepted_kwargs.get("case_id", CASE))
    _, out = decide(accepted(**accepted_kwargs), returned(case.case_id),
                    plan_data if plan_data is not None else plan(case_id=case.case_id), ctx=ctx, case=case)
    assert types(out.statuses) == [REVIEW_T], out.statuses
    return case, ctx


def act(case, action, who, ctx, comment="checked with the best-interests panel"):
    return act_on_review(case, action, reviewer(who) if isinstance(who, str) else who, comment, ctx, NOW)


def refused(case, action, who, ctx, comment="a reason"):
    before = copy.deepcopy(case.to_json())
    with pytest.raises(ReviewRefused) as caught:
        act(case, action, who, ctx, comment)
    assert case.to_json() == before, "a refused action changes nothing"
    return caught.value.http_status, caught.value.code


def test_no_review_is_404():
    ctx = context()
    case, _ = decide(ctx=ctx)  # approved by the rules: no review
    assert refused(case, "approve", "alice", ctx) == (404, "no_such_review")
    assert refused(CaseFile(case_id="MA-2026-000404"), "reject", "alice", ctx) == (404, "no_such_review")


@pytest.mark.parametrize("action", ["approve", "reject"])
@pytest.mark.parametrize("who", [reviewer("k.benali"), reviewer("K.Benali"), reviewer("kb", AUTHOR),
                                 reviewer("kb", "CASEWORKER:K.BENALI")],
                         ids=["username", "username_case", "upstream_id", "upstream_id_case"])
def test_the_reviewer_is_never_the_plans_author(action, who):
    case, ctx = held()
    assert refused(case, action, who, ctx) == (403, "reviewer_is_plan_author")


@pytest.mark.parametrize("comment", ["", "   ", "\n\t", None])
@pytest.mark.parametrize("action", ["approve", "reject"])
def test_an_empty_comment_is_422(action, comment):
    case, ctx = held()
    assert refused(case, action, "alice", ctx, comment) == (422, "comment_required")


def test_an_unknown_action_is_refused():
    case, ctx = held()
    assert refused(case, "escalate", "alice", ctx)[0] == 422


# (plan total, reviewers needed): MA's second_approval_above is 1500.
THRESHOLDS = [("100.00", 1), ("1499.99", 1), ("1500.00", 1), ("1500.01", 2), ("1800.00", 2)]


@pytest.mark.parametrize(("total", "needed"), THRESHOLDS)
def test_above_the_threshold_an_approval_needs_a_second_reviewer(total, needed):
    case, ctx = held(in_kind_plan(total))
    out = act(case, "approve", "alice", ctx)
    if needed == 1:
        assert case.review["status"] == "approved"
        assert types(out.statuses) == [APPROVED_T] and types(out.downstream) == [GRANT_APPROVED]
        return
    assert case.review["status"] == "awaiting_second_approval"
    assert (out.statuses, out.downstream, out.notices) == ([], [], [])
    assert [r["status"] for r in out.reviews] == ["awaiting_second_approval"]
    assert case.grant is None and case.released == {}
    assert ctx.identities.new_approvals == []
    out = act(case, "approve", "bob", ctx)
    assert case.review["status"] == "approved"
    assert types(out.statuses) == [APPROVED_T] and types(out.downstream) == [GRANT_APPROVED]
    assert out.statuses[0][1]["decided_by"] == "alice,bob"


def test_a_minor_total_above_the_threshold_needs_two():
    case, ctx = held(in_kind_plan("2800.00"), date_of_birth=MINOR_DOB)
    act(case, "approve", "alice", ctx)
    assert case.review["status"] == "awaiting_second_approval"


@pytest.mark.parametrize("again", ["alice", "ALICE", "Alice"])
def test_the_same_reviewer_twice_is_403(again):
    case, ctx = held(in_kind_plan("1500.01"))
    act(case, "approve", "alice", ctx)
    assert refused(case, "approve", again, ctx) == (403, "same_reviewer_twice")
    assert case.review["status"] == "awaiting_second_approval"


def test_a_reviewer_approval_has_the_same_effects_as_an_automatic_one():
    the_plan = in_kind_plan("1500.01")
    auto_ctx = context()
    auto_case, auto_out = decide(accepted(), returned(), the_plan, ctx=auto_ctx)
    assert types(auto_out.statuses) == [APPROVED_T]

    case, ctx = held(the_plan)
    first = act(case, "approve", "alice", ctx)
    second = act(case, "approve", "bob", ctx)
    out_statuses = first.statuses + second.statuses
    out_downstream = first.downstream + second.downstream
    out_notices = first.notices + second.notices

    def without_decider(statuses):
        return [(t, {k: v for k, v in d.items() if k != "decided_by"}) for t, d in statuses]

    assert without_decider(out_statuses) == without_decider(auto_out.statuses)
    assert out_downstream == auto_out.downstream
    assert out_notices == auto_out.notices
    assert case.decision == auto_case.decision == "approved"
    assert case.grant["plan"] == auto_case.grant["plan"]
    assert case.grant["programme_version"] == auto_case.grant["programme_version"]
    assert case.released == auto_case.released
    # The identity is recorded as approved, as after an automatic approval.
    assert sorted(ctx.identities.new_approvals) == sorted(auto_ctx.identities.new_approvals)
    ident = identity("awa")
    assert sorted(ctx.identities.new_approvals) == sorted([(ident["document"], CASE, MA), (ident["person"], CASE, MA)])
    [record] = second.decisions
    assert record.decided_by == "alice,bob" and record.decision.outcome == "approved"
    assert [a["by"] for a in case.review["approvals"]] == ["alice", "bob"]
    assert [a["outcome"] for a in first.review_actions + second.review_actions] == \
        ["awaiting_second_approval", "approved"]


def test_a_person_approved_by_reviewers_holds_their_next_case_in_the_batch():
    ctx = context(IdentityBook())
    case, _ = held(ctx=ctx)
    act(case, "approve", "alice", ctx)
    other = CaseFile(case_id="MA-2026-000777")
    _, out = decide(accepted("MA-2026-000777"), returned("MA-2026-000777"), plan(case_id="MA-2026-000777"),
                    ctx=ctx, case=other)
    [(type_, data)] = out.statuses
    assert type_ == REVIEW_T and codes(data) == ["possible_duplicate_beneficiary"]
    assert CASE in data["reasons"][0]["message"]


@pytest.mark.parametrize("total", ["100.00", "1800.00"])
def test_a_rejection_needs_one_reviewer(total):
    case, ctx = held(in_kind_plan(total))
    out = act(case, "reject", "alice", ctx)
    [(type_, data)] = out.statuses
    assert type_ == REJECTED_T and data["status"] == "eligibility_rejected"
    assert (out.downstream, out.notices) == ([], [])
    assert case.review["status"] == "rejected" and case.decision == "rejected" and case.grant is None
    assert ctx.identities.new_approvals == []
    # Nothing is paid for it afterwards.
    out = apply_event(case, MILESTONE_VERIFIED, milestone(), ctx)
    assert codes(out.statuses[0][1]) == ["case_not_eligible"]


def test_a_second_reviewer_may_reject_after_a_first_approval():
    case, ctx = held(in_kind_plan("1600.00"))
    act(case, "approve", "alice", ctx)
    out = act(case, "reject", "bob", ctx)
    assert types(out.statuses) == [REJECTED_T] and out.downstream == []
    assert case.grant is None


@pytest.mark.parametrize("closing", ["approve", "reject", "withdraw"])
@pytest.mark.parametrize("action", ["approve", "reject"])
def test_acting_on_a_closed_review_is_409(closing, action):
    case, ctx = held()
    if closing in ("approve", "reject"):
        act(case, closing, "alice", ctx)
    else:
        apply_event(case, CASE_WITHDRAWN, sample_case_withdrawn(CASE), ctx)
    assert case.review["status"] != "open"
    assert refused(case, action, "carol", ctx) == (409, "review_closed")


def test_a_withdrawal_between_the_two_approvals_closes_the_review():
    case, ctx = held(in_kind_plan("1600.00"))
    act(case, "approve", "alice", ctx)
    apply_event(case, CASE_WITHDRAWN, sample_case_withdrawn(CASE), ctx)
    assert refused(case, "approve", "bob", ctx) == (409, "review_closed")
    assert case.grant is None


def test_a_redelivered_held_plan_keeps_the_first_approval():
    the_plan = in_kind_plan("1600.00")
    case, ctx = held(the_plan)
    act(case, "approve", "alice", ctx)
    again = copy.deepcopy(the_plan)
    again["upstream_event"]["id"] = "ev-plan-redelivered"
    out = apply_event(case, PLAN_APPROVED, again, ctx)
    assert out.statuses == [] and out.reviews == []
    out = act(case, "approve", "bob", ctx)
    assert types(out.statuses) == [APPROVED_T]


# --- held revisions and replacements ------------------------------------------------------------------


APPROVED_PLAN = plan([component("c1", "1000.00"), component("c2", "800.00", tranches=((100, M),))])


def granted():
    ctx, case = context(), CaseFile(case_id=CASE)
    _, out = decide(accepted(), returned(), APPROVED_PLAN, ctx=ctx, case=case)
    assert types(out.statuses) == [APPROVED_T]
    return case, ctx


def test_a_held_replacement_approved_is_applied_like_a_revision():
    case, ctx = granted()
    replacement = plan([component("n1", "500.00")], plan_id="PL-9")
    assert types(apply_event(case, PLAN_APPROVED, replacement, ctx).statuses) == [REVIEW_T]
    # The whole grant, 1000 released + 500, is exactly 1500: one reviewer.
    assert case.review["second_approval_needed"] is False
    out = act(case, "approve", "alice", ctx)
    [(type_, data)] = out.statuses
    assert type_ == APPROVED_T and data["revision"] == "replacement" and data["plan_id"] == "PL-9"
    [(down_type, down)] = out.downstream
    assert down_type == PLAN_REVISED and down["plan"] == replacement
    assert case.grant["plan"] == replacement
    assert released_total_minor(case) == 150000


def test_a_held_replacement_above_the_threshold_needs_two():
    case, ctx = granted()
    apply_event(case, PLAN_APPROVED, plan([component("n1", "500.01")], plan_id="PL-9"), ctx)
    assert case.review["second_approval_needed"] is True
    assert act(case, "approve", "alice", ctx).downstream == []
    assert types(act(case, "approve", "bob", ctx).downstream) == [PLAN_REVISED]


def test_a_held_replacement_rejected_leaves_the_grant_as_it_was():
    case, ctx = granted()
    grant_before, released_before = copy.deepcopy(case.grant), dict(case.released)
    apply_event(case, PLAN_APPROVED, in_kind_plan("100.00", plan_id="PL-9"), ctx)
    out = act(case, "reject", "alice", ctx)
    [(type_, data)] = out.statuses
    assert type_ == CASE_REJECTED_T and data["status"] == "rejected"
    assert out.downstream == []
    assert case.grant == grant_before and case.released == released_before
    assert case.decision == "approved"
    # The grant's own milestones still release it.
    apply_event(case, MILESTONE_VERIFIED, milestone(PLAN), ctx)
    assert released_total_minor(case) == 180000


def test_a_held_replacement_that_no_longer_fits_is_not_applied():
    """The grant moved on while the replacement waited: its milestone released the old plan's 800.
    1000 + 800 released + the replacement's 400 = 2200 > 1800: approving must not release it."""
    case, ctx = granted()
    apply_event(case, PLAN_APPROVED, plan([component("n1", "400.00")], plan_id="PL-9"), ctx)
    assert case.review["second_approval_needed"] is False  # 1400 when it was held: one reviewer
    apply_event(case, MILESTONE_VERIFIED, milestone(PLAN), ctx)
    assert released_total_minor(case) == 180000
    grant_before = copy.deepcopy(case.grant)
    try:
        out = act(case, "approve", "alice", ctx)
    except ReviewRefused as refusal:
        assert refusal.http_status == 409
    else:
        assert APPROVED_T not in types(out.statuses) and out.downstream == []
    assert released_total_minor(case) == 180000
    assert case.grant == grant_before


def test_approving_a_held_revision_whose_whole_grant_totals_zero():
    """Found by the property test: 0.01 split 1 % / 99 % releases a 0-cent tranche on approval; a revision
    moving the shares leaves a grant of 0.00 (the released 0 stays, the rest rounds to 0). Its review
    carries a programme total of 0.00, which the approval must read back without failing."""
    first = plan([component("c1", "0.01", tranches=((1, "on_approval"), (99, M)))])
    case, ctx = held(first, vulnerabilities=[], date_of_birth=None)  # age unknown: every plan is reviewed
    act(case, "approve", "alice", ctx)
    assert case.grant is not None and released_total_minor(case) == 0
    revision = plan([component("c1", "0.01", tranches=((99, "on_approval"), (1, M)))])
    assert types(apply_event(case, PLAN_APPROVED, revision, ctx).statuses) == [REVIEW_T]
    assert case.review["programme_total"] == {"amount": "0.00", "currency": "EUR"}
    out = act(case, "approve", "bob", ctx)
    assert types(out.statuses) == [APPROVED_T] and types(out.downstream) == [PLAN_REVISED]
    assert out.decisions[0].decision.programme_total.minor == 0


def test_a_held_replacement_is_not_applied_over_a_revision_that_filled_the_grant():
    """Found by the property test: a replacement waits for its second reviewer while a revision of the
    approved plan is applied by the rules and released; the replacement no longer fits beside it."""
    case, ctx = granted()  # 1000 released of 1800
    replacement = plan([component("n1", "600.00")], plan_id="PL-9")  # 1600 with the released: two reviewers
    apply_event(case, PLAN_APPROVED, replacement, ctx)
    act(case, "approve", "alice", ctx)
    assert case.review["status"] == "awaiting_second_approval"
    revision = plan([component("c1", "1000.00"), component("c3", "700.00")])  # c3 on approval: 1700 released
    assert types(apply_event(case, PLAN_APPROVED, revision, ctx).statuses) == [APPROVED_T]
    assert released_total_minor(case) == 170000
    try:
        out = act(case, "approve", "bob", ctx)
    except ReviewRefused as refusal:
        assert refusal.http_status == 409
    else:
        assert APPROVED_T not in types(out.statuses) and out.downstream == []
    assert released_total_minor(case) == 170000
    assert case.grant["plan"] == revision


def test_a_newer_revision_supersedes_the_one_waiting_for_a_reviewer():
    """Upstream's latest plan is what counts: once the rules apply a newer revision, the older one
    held for review can no longer be approved over it."""
    case, ctx = granted()
    apply_event(case, PLAN_APPROVED, plan([component("n1", "400.00")], plan_id="PL-9"), ctx)  # held: replacement
    assert case.review["status"] == "open"
    newer = copy.deepcopy(case.grant["plan"])
    newer["approved_at"] = newer["approved_at"].replace("T09", "T10")
    out = apply_event(case, PLAN_APPROVED, newer, ctx)
    assert case.review["status"] == "superseded"
    assert [r["status"] for r in out.reviews] == ["superseded"]
    with pytest.raises(ReviewRefused) as refused:
        act(case, "approve", "alice", ctx)
    assert refused.value.code == "review_closed"


def test_a_revision_of_an_unaccompanied_minors_plan_is_reviewed_again():
    """The best-interests determination covered the plan as it was: a change goes back to a person,
    and only the reviewer's approval sends it on."""
    case, ctx = held()
    act(case, "approve", "alice", ctx)
    assert case.grant is not None
    revision = copy.deepcopy(case.grant["plan"])
    revision["components"][0]["category"] = "vocational_training"
    out = apply_event(case, PLAN_APPROVED, revision, ctx)
    assert types(out.statuses) == [REVIEW_T] and out.downstream == []
    assert "vulnerability_review" in {r["code"] for r in out.statuses[0][1]["reasons"]}
    assert case.review["kind"] == "revision" and case.grant["plan"] != revision
    out = act(case, "approve", "bob", ctx)
    assert types(out.statuses) == [APPROVED_T] and [t for t, _ in out.downstream] == [PLAN_REVISED]
