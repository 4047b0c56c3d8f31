"""How events change a case and what eligibility emits (issue 6): decisions, people already
assisted, revisions on the whole grant, milestones per plan, withdrawn and rejected cases."""

from __future__ import annotations

import copy
import itertools

import pytest
from eligibility.domain.case_file import CaseFile
from eligibility.domain.identities import IdentityBook
from eligibility.domain.process import (
    BENEFICIARY_UPDATED,
    CASE_ACCEPTED,
    CASE_WITHDRAWN,
    CONTACT_UPDATED,
    DELIVERY_CONFIRMED,
    GRANT_APPROVED,
    MILESTONE_VERIFIED,
    PLAN_APPROVED,
    PLAN_REVISED,
    RETURN_COMPLETED,
    apply_event,
)
from eligibility.domain.review import act_on_review
from eligibility_support import (
    ALL_RULES,
    APPROVED_T,
    CASE,
    CASE_REJECTED_T,
    MA,
    PAYEE,
    PLAN,
    PROGRAMMES,
    REJECTED_T,
    REVIEW_T,
    accepted,
    cash,
    codes,
    component,
    context,
    decide,
    delivery,
    identity,
    in_kind_plan,
    milestone,
    only_status,
    plan,
    released_total_minor,
    returned,
    reviewer,
)
from reintegra.contract.samples import sample_beneficiary_updated, sample_case_withdrawn
from reintegra.money import Money

M = "milestone:business_established"


def types(pairs):
    return [t for t, _ in pairs]


def released(case: CaseFile) -> dict[tuple[str, str, int], int]:
    return {(i.plan_id, i.component_id, i.seq): i.amount_minor for i in case.released.values()}


def silent(out) -> bool:
    return (out.statuses, out.downstream, out.notices, out.decisions, out.reviews) == ([], [], [], [], [])


# --- when a decision is made and what it emits ---------------------------------------------------------


THREE = [(CASE_ACCEPTED, accepted()), (RETURN_COMPLETED, returned()), (PLAN_APPROVED, plan())]


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))), ids=lambda o: "-".join(map(str, o)))
def test_a_decision_only_once_all_three_facts_are_in_whatever_their_order(order):
    case, ctx = CaseFile(case_id=CASE), context()
    outs = [apply_event(case, *copy.deepcopy(THREE[i]), ctx) for i in order]
    assert all(silent(o) for o in outs[:2])
    assert types(outs[2].statuses) == [APPROVED_T]
    assert types(outs[2].downstream) == [GRANT_APPROVED]
    assert len(outs[2].notices) == 1
    assert case.decision == "approved"


def test_an_approval_emits_the_status_the_grant_and_one_notice():
    case, out = decide()
    [(type_, data)] = out.statuses
    version = PROGRAMMES[MA].version
    assert type_ == APPROVED_T
    assert data == {"case_id": CASE, "status": "eligibility_approved", "plan_id": PLAN,
                    "plan_total": {"amount": "1500.00", "currency": "EUR"}, "decided_by": "rules",
                    "programme_version": version, "programme_total": {"amount": "1500.00", "currency": "EUR"}}
    [(down_type, grant)] = out.downstream
    assert down_type == GRANT_APPROVED
    assert grant == {"case_id": CASE, "program_code": MA, "plan": plan(), "programme_version": version,
                     "contact": {"phone": "+2250701020304", "preferred_language": "fr", "payee_name": PAYEE},
                     "programme_total": {"amount": "1500.00", "currency": "EUR"},
                     # What disbursement needs for the money: the budget to open the programme with,
                     # its currency, and where the person returned (the payout's country by default).
                     "programme_currency": "EUR", "programme_budget": {"amount": "2000000.00", "currency": "EUR"},
                     "country": "CI"}
    assert out.notices == [{"kind": "eligibility_approved", "case_id": CASE, "phone": "+2250701020304",
                            "language": "fr", "params": {"plan_total": {"amount": "1500.00", "currency": "EUR"}}}]
    [record] = out.decisions
    assert (record.case_id, record.plan_id, record.kind, record.decided_by) == (CASE, PLAN, "grant", "rules")
    assert record.decision.programme_version == version
    assert {r.rule for r in record.decision.rules} == ALL_RULES
    # The on-approval tranches are released: c1 (300 cash) and 60 % of c2 (720).
    assert released(case) == {(PLAN, "c1", 1): 30000, (PLAN, "c2", 1): 72000}


def test_a_rejection_emits_only_the_status():
    case, out = decide(plan_data=in_kind_plan("1800.01"))
    [(type_, data)] = out.statuses
    assert type_ == REJECTED_T and data["status"] == "eligibility_rejected"
    assert codes(data) == ["plan_over_ceiling"]
    assert "1800.01" in data["reasons"][0]["message"] and "1800.00" in data["reasons"][0]["message"]
    assert (out.downstream, out.notices, out.reviews) == ([], [], [])
    assert case.decision == "rejected" and case.grant is None and case.released == {}
    assert out.decisions[0].decision.programme_version == PROGRAMMES[MA].version


def test_a_review_emits_the_status_and_a_review_row_nothing_downstream():
    case, out = decide(accepted(vulnerabilities=["unaccompanied_minor"]))
    [(type_, data)] = out.statuses
    assert type_ == REVIEW_T and data["status"] == "eligibility_review_required"
    assert codes(data) == ["vulnerability_review"]
    assert (out.downstream, out.notices) == ([], [])
    [row] = out.reviews
    assert row["status"] == "open" and row["kind"] == "grant" and row["plan_id"] == PLAN
    assert row["programme_version"] == PROGRAMMES[MA].version
    assert case.grant is None and case.released == {}


def test_nothing_is_decided_twice():
    case, ctx = CaseFile(case_id=CASE), context()
    decide(ctx=ctx, case=case)
    for type_, data in [(RETURN_COMPLETED, returned()), (CASE_ACCEPTED, accepted()),
                        (MILESTONE_VERIFIED, milestone(name="other"))]:
        out = apply_event(case, type_, data, ctx)
        assert out.statuses == [] and out.notices == [] and out.decisions == []
        assert GRANT_APPROVED not in types(out.downstream)


@pytest.mark.parametrize("first", [in_kind_plan("9000.00", plan_id="PL-1"),
                                   plan([component("c1", "100", currency="GNF")], plan_id="PL-1")],
                         ids=["rejected", "held"])
def test_a_new_plan_after_a_rejection_or_a_review_is_decided_again(first):
    case, ctx = CaseFile(case_id=CASE), context()
    decide(plan_data=first, ctx=ctx, case=case)
    out = apply_event(case, PLAN_APPROVED, plan(plan_id="PL-2"), ctx)
    [(type_, data)] = out.statuses
    assert type_ == APPROVED_T and data["plan_id"] == "PL-2"
    assert types(out.downstream) == [GRANT_APPROVED]
    assert out.downstream[0][1]["plan"]["plan_id"] == "PL-2"


def test_a_rejected_return_country_stays_rejected_with_a_new_plan():
    case, ctx = CaseFile(case_id=CASE), context()
    decide(returned_data=returned(country="SN"), ctx=ctx, case=case)
    out = apply_event(case, PLAN_APPROVED, plan(plan_id="PL-2"), ctx)
    type_, data = only_status(out)
    assert type_ == REJECTED_T and codes(data) == ["return_country_mismatch"]
    assert out.downstream == []


def test_the_notice_goes_to_the_contact_updated_before_the_decision():
    case, ctx = CaseFile(case_id=CASE), context()
    apply_event(case, CASE_ACCEPTED, accepted(), ctx)
    apply_event(case, BENEFICIARY_UPDATED, {"case_id": CASE, "phone": "+2250709998877", "preferred_language": "en"},
                ctx)
    apply_event(case, RETURN_COMPLETED, returned(), ctx)
    out = apply_event(case, PLAN_APPROVED, plan(), ctx)
    [notice] = out.notices
    assert (notice["phone"], notice["language"]) == ("+2250709998877", "en")
    assert out.downstream[0][1]["contact"] == {"phone": "+2250709998877", "preferred_language": "en",
                                               "payee_name": PAYEE}


def test_a_beneficiary_update_is_forwarded_with_the_merged_contact():
    case, ctx = CaseFile(case_id=CASE), context()
    decide(ctx=ctx, case=case)
    update = sample_beneficiary_updated(CASE, preferred_language=None)
    out = apply_event(case, BENEFICIARY_UPDATED, update, ctx)
    [(type_, data)] = out.downstream
    assert type_ == CONTACT_UPDATED
    assert data["payout"] == update["payout"]
    assert data["contact"] == {"phone": "+2250709998877", "preferred_language": "fr", "payee_name": PAYEE}


def test_a_beneficiary_update_keeps_the_payee_name_for_later_payments():
    case, ctx = CaseFile(case_id=CASE), context()
    decide(ctx=ctx, case=case)
    out = apply_event(case, BENEFICIARY_UPDATED, sample_beneficiary_updated(CASE, phone=None, preferred_language="ar"),
                      ctx)
    assert out.downstream[0][1]["contact"] == {"phone": "+2250701020304", "preferred_language": "ar",
                                               "payee_name": PAYEE}
    assert case.contact["payee_name"] == PAYEE
    # The revision after it forwards the same contact to disbursement.
    revision = plan([cash("c1", "300.00"), component("c2", "1200.00", tranches=((60, "on_approval"), (40, M))),
                     component("c4", "100.00", category="education")], upstream_id="ev-plan-2")
    [(down_type, down)] = apply_event(case, PLAN_APPROVED, revision, ctx).downstream
    assert down_type == PLAN_REVISED and down["contact"] == case.contact


def test_an_update_before_the_case_is_accepted_keeps_the_payee_name_intake_sends():
    case, ctx = CaseFile(case_id=CASE), context()
    apply_event(case, BENEFICIARY_UPDATED, {"case_id": CASE, "phone": "+2250709998877"}, ctx)
    apply_event(case, CASE_ACCEPTED, accepted(language="en"), ctx)
    assert case.contact == {"phone": "+2250709998877", "preferred_language": "en", "payee_name": PAYEE}
    apply_event(case, BENEFICIARY_UPDATED, {"case_id": CASE, "preferred_language": "fr"}, ctx)
    [_, out] = [apply_event(case, RETURN_COMPLETED, returned(), ctx), apply_event(case, PLAN_APPROVED, plan(), ctx)]
    [(down_type, grant)] = out.downstream
    assert down_type == GRANT_APPROVED
    assert grant["contact"] == {"phone": "+2250709998877", "preferred_language": "fr", "payee_name": PAYEE}


def test_a_case_accepted_without_a_payee_name_keeps_a_contact_without_one():
    # Cases intake accepted before it forwarded the name: nothing is invented for them.
    case, ctx = CaseFile(case_id=CASE), context()
    decide(accepted(payee_name=None), ctx=ctx, case=case)
    out = apply_event(case, BENEFICIARY_UPDATED, sample_beneficiary_updated(CASE), ctx)
    assert out.downstream[0][1]["contact"] == {"phone": "+2250709998877", "preferred_language": "fr"}


def test_the_case_file_round_trips_through_json():
    case, ctx = CaseFile(case_id=CASE), context()
    decide(ctx=ctx, case=case)
    apply_event(case, MILESTONE_VERIFIED, milestone(), ctx)
    assert CaseFile.from_json(copy.deepcopy(case.to_json())) == case


# --- people already assisted ------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["document", "person"])
def test_the_same_person_approved_in_another_case_is_held(which):
    ident = identity("awa")
    book = IdentityBook({ident[which]: ["MA-2026-000999"]})
    _, out = decide(accepted(ident=ident), ctx=context(book))
    type_, data = only_status(out)
    assert type_ == REVIEW_T
    assert codes(data) == ["possible_duplicate_beneficiary"]
    assert "MA-2026-000999" in data["reasons"][0]["message"]
    assert out.downstream == [] and out.notices == []
    assert book.new_approvals == []


def test_another_person_is_not_held():
    book = IdentityBook({identity("fatou")["document"]: ["MA-2026-000999"],
                         identity("fatou")["person"]: ["MA-2026-000999"]})
    _, out = decide(accepted(person="awa"), ctx=context(book))
    assert types(out.statuses) == [APPROVED_T]


def test_the_case_itself_is_not_a_duplicate_of_itself():
    ident = identity("awa")
    book = IdentityBook({ident["document"]: [CASE], ident["person"]: [CASE]})
    _, out = decide(accepted(ident=ident), ctx=context(book))
    assert types(out.statuses) == [APPROVED_T]


def test_an_approval_records_both_identity_hashes():
    book = IdentityBook()
    decide(ctx=context(book))
    ident = identity("awa")
    assert sorted(book.new_approvals) == sorted([(ident["document"], CASE, MA), (ident["person"], CASE, MA)])


def _case_in_batch(case_id, ctx, **kwargs):
    case = CaseFile(case_id=case_id)
    _, out = decide(accepted(case_id, **kwargs), returned(case_id), plan(case_id=case_id), ctx=ctx, case=case)
    return case, out


@pytest.mark.parametrize("shared", ["document", "person", "both"])
def test_two_cases_of_one_person_in_one_batch_the_first_approved_the_second_held(shared):
    ctx = context(IdentityBook())
    first, second = identity("awa"), identity("other")
    if shared in ("document", "both"):
        second["document"] = first["document"]
    if shared in ("person", "both"):
        second["person"] = first["person"]
    _, out_a = _case_in_batch("MA-2026-000001", ctx, ident=first)
    _, out_b = _case_in_batch("MA-2026-000002", ctx, ident=second)
    assert types(out_a.statuses) == [APPROVED_T]
    type_, data = only_status(out_b)
    assert type_ == REVIEW_T and codes(data) == ["possible_duplicate_beneficiary"]
    assert "MA-2026-000001" in data["reasons"][0]["message"]
    assert out_b.downstream == []


def test_a_rejected_case_of_the_same_person_does_not_hold_the_next():
    ctx = context(IdentityBook())
    _, out_a = _case_in_batch("MA-2026-000001", ctx, consent=False)
    _, out_b = _case_in_batch("MA-2026-000002", ctx)
    assert types(out_a.statuses) == [REJECTED_T]
    assert types(out_b.statuses) == [APPROVED_T]


def test_two_people_in_one_batch_are_both_approved():
    ctx = context(IdentityBook())
    _, out_a = _case_in_batch("MA-2026-000001", ctx, person="awa")
    _, out_b = _case_in_batch("MA-2026-000002", ctx, person="fatou")
    assert types(out_a.statuses) == types(out_b.statuses) == [APPROVED_T]


# --- revisions: judged on the whole grant ------------------------------------------------------------


def granted(first_plan, ctx=None, **accepted_kwargs):
    ctx = ctx or context()
    case = CaseFile(case_id=CASE)
    _, out = decide(accepted(**accepted_kwargs), returned(), first_plan, ctx=ctx, case=case)
    assert types(out.statuses) == [APPROVED_T], out.statuses
    return case, ctx


# The spec's example: an adult (ceiling 1800); the approved plan's 1000 on-approval tranche is released.
APPROVED_PLAN = plan([component("c1", "1000.00"), component("c2", "800.00", tranches=((100, M),))])


def test_the_spec_example_a_replaced_released_component_counts_twice():
    case, ctx = granted(APPROVED_PLAN)
    assert released(case) == {(PLAN, "c1", 1): 100000}
    grant_before, released_before = copy.deepcopy(case.grant), dict(case.released)
    revision = plan([component("c3", "1000.00"), component("c2", "800.00", tranches=((100, M),))],
                    upstream_id="ev-plan-2")
    out = apply_event(case, PLAN_APPROVED, revision, ctx)
    [(type_, data)] = out.statuses
    assert type_ == CASE_REJECTED_T
    assert data["status"] == "rejected" and "plan_over_ceiling" in codes(data)
    assert data["rejected_event"]["id"] == "ev-plan-2"
    assert (out.downstream, out.notices) == ([], [])
    assert case.grant == grant_before and case.released == released_before
    assert [d.kind for d in out.decisions] == ["revision"]
    assert out.decisions[0].decision.programme_total == Money(280000, "EUR")


def test_the_spec_example_simplest_form():
    case, ctx = granted(plan([component("c1", "1000.00")]))
    out = apply_event(case, PLAN_APPROVED, plan([component("c2", "1000.00")]), ctx)
    type_, data = only_status(out)
    assert type_ == CASE_REJECTED_T and codes(data) == ["plan_over_ceiling"]
    assert case.grant["plan"]["components"][0]["component_id"] == "c1"


def test_released_amounts_are_fixed_when_a_revision_changes_them():
    # The revision lowers c1 (released at 1000) to 500 and raises c2 (not released) to 1300: the plan totals
    # 1800 but the grant is 1000 + 1300 = 2300.
    case, ctx = granted(APPROVED_PLAN)
    revision = plan([component("c1", "500.00"), component("c2", "1300.00", tranches=((100, M),))])
    out = apply_event(case, PLAN_APPROVED, revision, ctx)
    type_, data = only_status(out)
    assert type_ == CASE_REJECTED_T and codes(data) == ["plan_over_ceiling"]


def test_a_revision_that_fits_the_whole_grant_is_applied():
    case, ctx = granted(APPROVED_PLAN)
    revision = plan([component("c1", "1000.00"), component("c2", "500.00", tranches=((100, M),)),
                     component("c4", "300.00", category="education")], upstream_id="ev-plan-2")
    out = apply_event(case, PLAN_APPROVED, revision, ctx)
    type_, data = only_status(out)
    assert type_ == APPROVED_T
    assert data["revision"] == "revision" and data["plan_id"] == PLAN
    assert data["programme_total"] == {"amount": "1800.00", "currency": "EUR"}
    [(down_type, down)] = out.downstream
    assert down_type == PLAN_REVISED and down["plan"] == revision
    assert case.grant["plan"] == revision
    # c4 is due on approval: released now; c1 stays as released.
    assert released(case) == {(PLAN, "c1", 1): 100000, (PLAN, "c4", 1): 30000}


def test_a_revision_lowering_a_released_tranche_keeps_its_released_amount():
    case, ctx = granted(APPROVED_PLAN)
    revision = plan([component("c1", "400.00"), component("c2", "800.00", tranches=((100, M),))])
    out = apply_event(case, PLAN_APPROVED, revision, ctx)
    assert types(out.statuses) == [APPROVED_T]
    assert released(case) == {(PLAN, "c1", 1): 100000}
    assert out.decisions[0].decision.programme_total == Money(180000, "EUR")


def test_the_cash_share_is_judged_on_the_whole_grant():
    # 400 cash released + 1000 in kind; a revision adding 100 cash: 500 of 1500 is over 30 % (450) and 400.
    case, ctx = granted(plan([cash("c1", "400.00"), component("c2", "1000.00", tranches=((100, M),))]))
    revision = plan([cash("c1", "400.00"), component("c2", "1000.00", tranches=((100, M),)),
                     cash("c3", "100.00", tranches=((100, M),))])
    out = apply_event(case, PLAN_APPROVED, revision, ctx)
    type_, data = only_status(out)
    assert type_ == CASE_REJECTED_T and codes(data) == ["cash_share_exceeded"]
    # Lowering the released cash in the revision does not make room: 400 stays released.
    revision = plan([cash("c1", "100.00"), component("c2", "1000.00", tranches=((100, M),)),
                     cash("c3", "100.00", tranches=((100, M),))])
    type_, data = only_status(apply_event(case, PLAN_APPROVED, revision, ctx))
    assert type_ == CASE_REJECTED_T and codes(data) == ["cash_share_exceeded"]


def test_a_revision_for_a_minor_with_a_top_up_uses_that_ceiling():
    case, ctx = granted(in_kind_plan("3000.00"), date_of_birth="2012-05-05", vulnerabilities=["disability"])
    # 2800 minor ceiling + 500 top-up = 3300; c2 waits for a milestone, so it is not released yet.
    ok = plan([component("c1", "3000.00"), component("c2", "300.00", tranches=((100, M),))])
    assert types(apply_event(case, PLAN_APPROVED, ok, ctx).statuses) == [APPROVED_T]
    over = plan([component("c1", "3000.00"), component("c2", "300.01", tranches=((100, M),))])
    assert types(apply_event(case, PLAN_APPROVED, over, ctx).statuses) == [CASE_REJECTED_T]


def test_a_revision_in_a_currency_without_a_rate_is_held():
    case, ctx = granted(plan([component("c1", "1000.00")]))
    out = apply_event(case, PLAN_APPROVED, plan([component("c2", "900000", currency="GNF")]), ctx)
    type_, data = only_status(out)
    assert type_ == REVIEW_T and codes(data) == ["exchange_rate_missing"]
    assert out.downstream == []
    assert case.grant["plan"]["components"][0]["amount"]["currency"] == "EUR"


def test_another_plan_id_while_a_grant_is_open_is_held_as_a_replacement():
    case, ctx = granted(APPROVED_PLAN)
    grant_before = copy.deepcopy(case.grant)
    out = apply_event(case, PLAN_APPROVED, in_kind_plan("500.00", plan_id="PL-9"), ctx)
    type_, data = only_status(out)
    assert type_ == REVIEW_T
    assert codes(data) == ["plan_replaced"]
    assert data["plan_id"] == "PL-9"
    assert out.downstream == [] and out.notices == []
    assert case.grant == grant_before
    [row] = out.reviews
    assert row["kind"] == "replacement" and row["status"] == "open"


def test_a_replacement_over_the_ceiling_with_the_released_tranches_is_rejected():
    case, ctx = granted(APPROVED_PLAN)  # 1000 released
    out = apply_event(case, PLAN_APPROVED, in_kind_plan("800.01", plan_id="PL-9"), ctx)
    type_, data = only_status(out)
    assert type_ == CASE_REJECTED_T
    assert "plan_over_ceiling" in codes(data)


@pytest.mark.parametrize("stage", ["after_approval", "after_revision"])
def test_a_re_sent_identical_plan_changes_nothing_and_emits_nothing(stage):
    case, ctx = granted(APPROVED_PLAN)
    current = APPROVED_PLAN
    if stage == "after_revision":
        current = plan([component("c1", "1000.00"), component("c2", "700.00", tranches=((100, M),))])
        assert types(apply_event(case, PLAN_APPROVED, current, ctx).statuses) == [APPROVED_T]
    before = copy.deepcopy(case.to_json())
    again = copy.deepcopy(current)
    again["upstream_event"] = {**again["upstream_event"], "id": "ev-plan-redelivered"}
    out = apply_event(case, PLAN_APPROVED, again, ctx)
    assert silent(out)
    assert case.to_json() == before


@pytest.mark.parametrize("held", ["grant", "revision", "replacement"])
def test_a_re_sent_identical_held_plan_changes_nothing_and_emits_nothing(held):
    ctx = context()
    case = CaseFile(case_id=CASE)
    if held == "grant":
        held_plan = plan()
        decide(accepted(vulnerabilities=["unaccompanied_minor"]), returned(), held_plan, ctx=ctx, case=case)
    else:
        case, ctx = granted(APPROVED_PLAN)
        held_plan = (plan([component("c3", "100", currency="GNF")])
                     if held == "revision" else in_kind_plan("500.00", plan_id="PL-9"))
        assert types(apply_event(case, PLAN_APPROVED, held_plan, ctx).statuses) == [REVIEW_T]
    assert case.review["status"] == "open"
    before = copy.deepcopy(case.to_json())
    again = copy.deepcopy(held_plan)
    again["upstream_event"] = {**again["upstream_event"], "id": "ev-plan-redelivered"}
    out = apply_event(case, PLAN_APPROVED, again, ctx)
    assert silent(out)
    assert case.to_json() == before


# --- milestones count per plan ----------------------------------------------------------------------------


def test_a_milestone_of_the_plan_releases_its_tranche():
    case, ctx = granted(APPROVED_PLAN)
    out = apply_event(case, MILESTONE_VERIFIED, milestone(PLAN), ctx)
    assert types(out.downstream) == [MILESTONE_VERIFIED] and out.statuses == []
    assert released(case) == {(PLAN, "c1", 1): 100000, (PLAN, "c2", 1): 80000}


def test_a_milestone_of_another_plan_releases_nothing_of_this_plan():
    case, ctx = granted(APPROVED_PLAN)
    out = apply_event(case, MILESTONE_VERIFIED, milestone("PL-OTHER"), ctx)
    assert types(out.downstream) == [MILESTONE_VERIFIED]
    assert released(case) == {(PLAN, "c1", 1): 100000}
    # ... nor later, when this plan is revised.
    revision = plan([component("c1", "1000.00"), component("c2", "700.00", tranches=((100, M),))])
    apply_event(case, PLAN_APPROVED, revision, ctx)
    assert released(case) == {(PLAN, "c1", 1): 100000}


def test_another_milestone_name_releases_nothing():
    case, ctx = granted(APPROVED_PLAN)
    apply_event(case, MILESTONE_VERIFIED, milestone(PLAN, "training_completed"), ctx)
    assert released(case) == {(PLAN, "c1", 1): 100000}


def test_a_milestone_verified_before_a_revision_releases_the_revised_tranche_of_the_same_plan():
    first = plan([component("c1", "1000.00"), component("c2", "700.00", tranches=((100, M),))])
    case, ctx = granted(first)
    apply_event(case, MILESTONE_VERIFIED, milestone(PLAN), ctx)  # c2 700 released
    revision = plan([component("c1", "1000.00"), component("c2", "700.00", tranches=((100, M),)),
                     component("c5", "100.00", tranches=((100, M),))])
    assert types(apply_event(case, PLAN_APPROVED, revision, ctx).statuses) == [APPROVED_T]
    assert released_total_minor(case) == 180000
    assert released(case)[(PLAN, "c5", 1)] == 10000


def test_a_milestone_verified_before_the_grant_is_approved_counts_for_its_plan():
    ctx = context()
    case = CaseFile(case_id=CASE)
    apply_event(case, MILESTONE_VERIFIED, milestone(PLAN), ctx)
    apply_event(case, MILESTONE_VERIFIED, milestone("PL-OTHER", "other_milestone"), ctx)
    decide(ctx=ctx, case=case, plan_data=APPROVED_PLAN)
    assert released(case) == {(PLAN, "c1", 1): 100000, (PLAN, "c2", 1): 80000}


# --- withdrawn and rejected cases -------------------------------------------------------------------------


def _withdrawn_case():
    case, ctx = granted(APPROVED_PLAN)
    out = apply_event(case, CASE_WITHDRAWN, sample_case_withdrawn(CASE), ctx)
    assert types(out.downstream) == [CASE_WITHDRAWN] and out.statuses == []
    return case, ctx


WITHDRAWN_EVENTS = [
    (PLAN_APPROVED, plan([component("c1", "1000.00"), component("c2", "100.00")])),
    (PLAN_APPROVED, in_kind_plan("100.00", plan_id="PL-9")),
    (MILESTONE_VERIFIED, milestone(PLAN)),
    (DELIVERY_CONFIRMED, delivery(PLAN)),
    (BENEFICIARY_UPDATED, sample_beneficiary_updated(CASE)),
    (RETURN_COMPLETED, returned()),
    (CASE_WITHDRAWN, sample_case_withdrawn(CASE)),
]


@pytest.mark.parametrize(("type_", "data"), WITHDRAWN_EVENTS,
                         ids=["revision", "replacement", "milestone", "delivery", "beneficiary", "return",
                              "withdrawn_again"])
def test_events_for_a_withdrawn_case_are_refused_with_case_withdrawn(type_, data):
    case, ctx = _withdrawn_case()
    before = released(case)
    out = apply_event(case, type_, copy.deepcopy(data), ctx)
    status_type, status = only_status(out)
    assert status_type == CASE_REJECTED_T
    assert codes(status) == ["case_withdrawn"]
    assert (out.downstream, out.notices, out.decisions) == ([], [], [])
    assert released(case) == before


def test_a_case_withdrawn_before_its_decision_is_never_decided():
    ctx, case = context(), CaseFile(case_id=CASE)
    apply_event(case, CASE_ACCEPTED, accepted(), ctx)
    apply_event(case, RETURN_COMPLETED, returned(), ctx)
    apply_event(case, CASE_WITHDRAWN, sample_case_withdrawn(CASE), ctx)
    out = apply_event(case, PLAN_APPROVED, plan(), ctx)
    assert types(out.statuses) == [CASE_REJECTED_T] and codes(out.statuses[0][1]) == ["case_withdrawn"]
    assert case.decision is None and case.grant is None and out.decisions == []


def test_a_withdrawal_closes_an_open_review():
    ctx, case = context(), CaseFile(case_id=CASE)
    decide(accepted(vulnerabilities=["unaccompanied_minor"]), ctx=ctx, case=case)
    out = apply_event(case, CASE_WITHDRAWN, sample_case_withdrawn(CASE), ctx)
    assert case.review["status"] == "withdrawn"
    assert [r["status"] for r in out.reviews] == ["withdrawn"]


@pytest.mark.parametrize(("type_", "data"), [(MILESTONE_VERIFIED, milestone(PLAN)), (DELIVERY_CONFIRMED, delivery())],
                         ids=["milestone", "delivery"])
def test_milestones_and_deliveries_for_a_rejected_case_are_refused(type_, data):
    ctx, case = context(), CaseFile(case_id=CASE)
    decide(plan_data=in_kind_plan("9000.00"), ctx=ctx, case=case)
    out = apply_event(case, type_, data, ctx)
    status_type, status = only_status(out)
    assert status_type == CASE_REJECTED_T and codes(status) == ["case_not_eligible"]
    assert status["rejected_event"]["id"] == data["upstream_event"]["id"]
    assert out.downstream == []
    assert case.released == {}


@pytest.mark.parametrize(("type_", "data"), [(MILESTONE_VERIFIED, milestone(PLAN)), (DELIVERY_CONFIRMED, delivery())],
                         ids=["milestone", "delivery"])
def test_milestones_and_deliveries_of_a_granted_case_are_forwarded(type_, data):
    case, ctx = granted(APPROVED_PLAN)
    out = apply_event(case, type_, copy.deepcopy(data), ctx)
    assert out.downstream == [(type_, data)] and out.statuses == []


def test_a_milestone_of_a_case_under_review_is_kept_not_refused():
    ctx, case = context(), CaseFile(case_id=CASE)
    decide(accepted(vulnerabilities=["unaccompanied_minor"]), ctx=ctx, case=case)
    out = apply_event(case, MILESTONE_VERIFIED, milestone(PLAN), ctx)
    assert out.statuses == [] and types(out.downstream) == [MILESTONE_VERIFIED]
    assert case.released == {}


@pytest.mark.parametrize("rejected_by", ["rules", "reviewer"])
def test_a_re_sent_identical_rejected_plan_changes_nothing_and_emits_nothing(rejected_by):
    ctx, case = context(), CaseFile(case_id=CASE)
    if rejected_by == "rules":
        the_plan = in_kind_plan("9000.00")
        decide(plan_data=the_plan, ctx=ctx, case=case)
    else:
        the_plan = plan()
        decide(accepted(vulnerabilities=["unaccompanied_minor"]), plan_data=the_plan, ctx=ctx, case=case)
        act_on_review(case, "reject", reviewer("r.amal"), "not in the child's interest", ctx, "2026-11-01T10:00:00Z")
    assert case.decision == "rejected"
    before = copy.deepcopy(case.to_json())
    again = copy.deepcopy(the_plan)
    again["upstream_event"] = {**again["upstream_event"], "id": "ev-plan-redelivered"}
    out = apply_event(case, PLAN_APPROVED, again, ctx)
    assert silent(out)
    assert case.to_json() == before
    # Another plan is decided again.
    out = apply_event(case, PLAN_APPROVED, in_kind_plan("900.00", plan_id="PL-2"), ctx)
    assert out.decisions and out.statuses


def test_a_released_amount_stays_fixed_through_later_milestones():
    case, ctx = granted(APPROVED_PLAN)  # c1 1000 released
    revision = plan([component("c1", "400.00"), component("c2", "800.00", tranches=((100, M),))])
    assert types(apply_event(case, PLAN_APPROVED, revision, ctx).statuses) == [APPROVED_T]
    apply_event(case, MILESTONE_VERIFIED, milestone(PLAN), ctx)
    assert released(case) == {(PLAN, "c1", 1): 100000, (PLAN, "c2", 1): 80000}
