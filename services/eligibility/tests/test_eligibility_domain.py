"""Eligibility's pure domain: when a case is decided, how, and what is emitted for it."""

from __future__ import annotations

import copy
import itertools
from pathlib import Path

import eligibility
import pytest
import yaml
from eligibility.domain.case_file import CaseFile
from eligibility.domain.process import (
    BENEFICIARY_UPDATED,
    CASE_ACCEPTED,
    CASE_WITHDRAWN,
    CONTACT_UPDATED,
    GRANT_APPROVED,
    PLAN_APPROVED,
    PLAN_REVISED,
    RETURN_COMPLETED,
    STATUS_TYPES,
    apply_event,
)
from eligibility.domain.programmes import Programme, ProgrammeConfigError, programmes_from_config
from reintegra.money import Money

PROGRAMME_YAML = Path(eligibility.__file__).parent / "programmes.yaml"
CASE = "MA-2026-000123"
PROGRAMME = "MA-AVRR-2026"
MILESTONE_VERIFIED = "reintegration.milestone.verified.v1"
DELIVERY_CONFIRMED = "reintegration.delivery.confirmed.v1"

APPROVED_T = STATUS_TYPES["approved"]
REJECTED_T = STATUS_TYPES["rejected"]
REVIEW_T = STATUS_TYPES["review_required"]


def programmes(**overrides) -> dict[str, Programme]:
    spec = {
        "name": "Test programme",
        "ceilings": {"EUR": "2000.00", "XOF": "1300000"},
        "require_return_to_origin": True,
        "review_vulnerabilities": ["unaccompanied_minor", "victim_of_trafficking"],
        **overrides,
    }
    return programmes_from_config({"programmes": {PROGRAMME: spec}})


PROGRAMMES = programmes()


def accepted(*, program_code: str = PROGRAMME, origin: str = "CI", vulnerabilities=("single_parent",),
             consent: bool = True, phone: str | None = "+2250701020304", language: str | None = "fr") -> dict:
    """What intake forwards for a registered case (already minimised)."""
    return {"case_id": CASE, "program_code": program_code, "host_country": "MA", "origin_country": origin,
            "household_size": 3, "vulnerabilities": list(vulnerabilities), "consent": consent,
            "contact": {"phone": phone, "preferred_language": language}}


def returned(country: str = "CI") -> dict:
    return {"case_id": CASE, "departure_date": "2026-10-02", "arrival_date": "2026-10-03", "arrival_country": country}


def plan(plan_id: str = "PL-5531", *, amounts=("300.00", "1200.00"), currency: str = "EUR") -> dict:
    components = []
    for n, amount in enumerate(amounts, start=1):
        components.append({"component_id": f"c{n}", "modality": "cash", "category": "immediate_needs",
                           "amount": {"amount": amount, "currency": currency},
                           "tranches": [{"seq": 1, "share_percent": 100, "release": "on_approval"}]})
    return {"case_id": CASE, "plan_id": plan_id, "approved_by": "caseworker:k.benali",
            "approved_at": "2026-10-20T09:30:00Z",
            "payout": {"method": "mobile_money", "provider": "orange_money_ci", "msisdn": "+2250701020304"},
            "components": components}


def run(events, progs=PROGRAMMES, case: CaseFile | None = None):
    """Apply (type, data) events in order; returns the case and every Emitted, one per event."""
    case = case or CaseFile(case_id=CASE)
    return case, [apply_event(case, type_, data, progs) for type_, data in events]


def all_statuses(outs):
    return [s for out in outs for s in out.statuses]


def all_downstream(outs):
    return [d for out in outs for d in out.downstream]


def reason_codes(status_data: dict) -> list[str]:
    return [r["code"] for r in status_data.get("reasons", [])]


def decide(accepted_data=None, returned_data=None, plan_data=None, progs=PROGRAMMES):
    case, outs = run([(CASE_ACCEPTED, accepted_data or accepted()), (RETURN_COMPLETED, returned_data or returned()),
                      (PLAN_APPROVED, plan_data or plan())], progs)
    statuses = all_statuses(outs)
    assert len(statuses) == 1, statuses
    return case, outs, statuses[0]


# --- when a decision is made ------------------------------------------------------------------

THREE = [(CASE_ACCEPTED, accepted()), (RETURN_COMPLETED, returned()), (PLAN_APPROVED, plan())]


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))), ids=lambda o: "-".join(map(str, o)))
def test_decision_only_once_all_three_facts_are_in_whatever_their_order(order):
    events = [copy.deepcopy(THREE[i]) for i in order]
    case, outs = run(events)
    assert [o.statuses for o in outs[:2]] == [[], []]
    assert [o.downstream for o in outs[:2]] == [[], []]
    assert [o.notices for o in outs[:2]] == [[], []]
    assert case.decision == "approved"
    assert [t for t, _ in outs[2].statuses] == [APPROVED_T]
    assert [t for t, _ in outs[2].downstream] == [GRANT_APPROVED]
    assert len(outs[2].notices) == 1


def test_approved_emits_status_grant_and_one_notice():
    case, outs, (type_, data) = decide()
    out = outs[-1]
    assert type_ == APPROVED_T
    assert data == {"case_id": CASE, "status": "eligibility_approved", "plan_id": "PL-5531",
                    "plan_total": {"amount": "1500.00", "currency": "EUR"}}
    [(down_type, grant)] = out.downstream
    assert down_type == GRANT_APPROVED
    assert grant["case_id"] == CASE and grant["program_code"] == PROGRAMME
    assert grant["plan"] == plan()
    assert grant["contact"] == {"phone": "+2250701020304", "preferred_language": "fr"}
    assert out.notices == [{"kind": "eligibility_approved", "case_id": CASE, "phone": "+2250701020304",
                            "language": "fr", "params": {"plan_total": {"amount": "1500.00", "currency": "EUR"}}}]
    assert [(p, d.outcome) for p, d in out.decisions] == [("PL-5531", "approved")]
    assert case.decided_plan == plan()


def test_nothing_is_decided_twice():
    case, outs, _ = decide()
    # The same facts again (redelivered under other ids) or follow-ups do not decide again.
    for type_, data in [(RETURN_COMPLETED, returned()), (CASE_ACCEPTED, accepted()),
                        (MILESTONE_VERIFIED, {"case_id": CASE, "milestone": "m"})]:
        out = apply_event(case, type_, data, PROGRAMMES)
        assert out.statuses == [] and out.notices == [] and out.decisions == []
        assert GRANT_APPROVED not in [t for t, _ in out.downstream]


def test_plan_at_the_ceiling_is_approved():
    _, _, (type_, data) = decide(plan_data=plan(amounts=("2000.00",)))
    assert type_ == APPROVED_T


def test_plan_over_the_ceiling_is_rejected():
    case, outs, (type_, data) = decide(plan_data=plan(amounts=("800.00", "1200.01")))
    assert type_ == REJECTED_T
    assert data["status"] == "eligibility_rejected"
    assert data["plan_total"] == {"amount": "2000.01", "currency": "EUR"}
    assert reason_codes(data) == ["plan_over_ceiling"]
    assert all(set(r) == {"code", "field", "message"} for r in data["reasons"])
    assert "2000.01" in data["reasons"][0]["message"] and "2000.00" in data["reasons"][0]["message"]
    assert outs[-1].downstream == [] and outs[-1].notices == []
    assert case.decision == "rejected"


def test_xof_ceiling_applies_to_xof_plans():
    assert decide(plan_data=plan(amounts=("1300000",), currency="XOF"))[2][0] == APPROVED_T
    _, _, (type_, data) = decide(plan_data=plan(amounts=("1000000", "300001"), currency="XOF"))
    assert type_ == REJECTED_T and reason_codes(data) == ["plan_over_ceiling"]
    assert data["plan_total"] == {"amount": "1300001", "currency": "XOF"}


def test_currency_without_a_ceiling_goes_to_review():
    _, outs, (type_, data) = decide(plan_data=plan(amounts=("500000",), currency="GNF"))
    assert type_ == REVIEW_T
    assert data["status"] == "eligibility_review_required"
    assert reason_codes(data) == ["no_ceiling_for_currency"]
    assert outs[-1].downstream == [] and outs[-1].notices == []


@pytest.mark.parametrize("vulnerability", ["unaccompanied_minor", "victim_of_trafficking"])
def test_flagged_vulnerabilities_go_to_review(vulnerability):
    _, outs, (type_, data) = decide(accepted(vulnerabilities=["single_parent", vulnerability]))
    assert type_ == REVIEW_T
    assert reason_codes(data) == ["vulnerability_review"]
    assert vulnerability in data["reasons"][0]["message"]
    assert outs[-1].downstream == [] and outs[-1].notices == []


def test_unflagged_vulnerabilities_do_not_need_review():
    assert decide(accepted(vulnerabilities=["single_parent", "elderly", "disability"]))[2][0] == APPROVED_T


def test_return_to_another_country_is_rejected():
    _, _, (type_, data) = decide(returned_data=returned("SN"))
    assert type_ == REJECTED_T and reason_codes(data) == ["return_country_mismatch"]


def test_return_to_another_country_is_fine_when_the_programme_does_not_require_origin():
    progs = programmes(require_return_to_origin=False)
    assert decide(returned_data=returned("SN"), progs=progs)[2][0] == APPROVED_T


def test_rejection_wins_over_review_and_lists_every_rejection_reason():
    _, _, (type_, data) = decide(accepted(vulnerabilities=["unaccompanied_minor"]), returned("SN"),
                                 plan(amounts=("5000.00",)))
    assert type_ == REJECTED_T
    assert sorted(reason_codes(data)) == ["plan_over_ceiling", "return_country_mismatch"]


def test_no_consent_is_rejected():
    _, _, (type_, data) = decide(accepted(consent=False))
    assert type_ == REJECTED_T and reason_codes(data) == ["consent_missing"]


def test_unknown_programme_goes_to_review():
    _, outs, (type_, data) = decide(accepted(program_code="XX-UNKNOWN-1"))
    assert type_ == REVIEW_T and reason_codes(data) == ["unknown_programme"]
    assert outs[-1].downstream == []


# --- revisions and new plans ------------------------------------------------------------------


def test_revision_within_the_ceiling_after_approval_is_forwarded_as_plan_revised():
    case, _, _ = decide()
    revised = plan("PL-5531", amounts=("500.00", "1500.00"))
    out = apply_event(case, PLAN_APPROVED, revised, PROGRAMMES)
    assert out.statuses == [] and out.notices == []
    [(type_, data)] = out.downstream
    assert type_ == PLAN_REVISED
    assert data["plan"] == revised and data["case_id"] == CASE
    assert data["contact"] == {"phone": "+2250701020304", "preferred_language": "fr"}
    assert case.decision == "approved" and case.decided_plan == revised


def test_revision_over_the_ceiling_after_approval_needs_review_and_is_not_forwarded():
    case, _, _ = decide()
    revised = plan("PL-5531", amounts=("500.00", "1500.01"))
    out = apply_event(case, PLAN_APPROVED, revised, PROGRAMMES)
    assert out.downstream == [] and out.notices == []
    [(type_, data)] = out.statuses
    assert type_ == REVIEW_T
    assert data["status"] == "eligibility_review_required"
    assert reason_codes(data) == ["revision_plan_over_ceiling"]
    assert data["plan_total"] == {"amount": "2000.01", "currency": "EUR"}
    # The approved plan stays the one disbursement acts on.
    assert case.decided_plan == plan()
    assert case.decision == "approved"


def test_revision_in_a_currency_without_ceiling_needs_review():
    case, _, _ = decide()
    out = apply_event(case, PLAN_APPROVED, plan(amounts=("100",), currency="GNF"), PROGRAMMES)
    [(type_, data)] = out.statuses
    assert type_ == REVIEW_T and reason_codes(data) == ["revision_no_ceiling_for_currency"]
    assert out.downstream == []


@pytest.mark.parametrize(
    ("first_plan", "first_type"),
    [(plan("PL-1", amounts=("9000.00",)), REJECTED_T), (plan("PL-1", amounts=("100",), currency="GNF"), REVIEW_T)],
)
def test_a_new_plan_after_a_rejection_or_review_is_decided_again(first_plan, first_type):
    case, _, (type_, _) = decide(plan_data=first_plan)
    assert type_ == first_type
    out = apply_event(case, PLAN_APPROVED, plan("PL-2"), PROGRAMMES)
    [(type_, data)] = out.statuses
    assert type_ == APPROVED_T and data["plan_id"] == "PL-2"
    assert [t for t, _ in out.downstream] == [GRANT_APPROVED]
    assert out.downstream[0][1]["plan"]["plan_id"] == "PL-2"
    assert len(out.notices) == 1


def test_a_rejected_return_country_stays_rejected_with_a_new_plan():
    case, _, _ = decide(returned_data=returned("SN"))
    out = apply_event(case, PLAN_APPROVED, plan("PL-2"), PROGRAMMES)
    [(type_, data)] = out.statuses
    assert type_ == REJECTED_T and reason_codes(data) == ["return_country_mismatch"]
    assert out.downstream == []


# --- withdrawal, contact changes and follow-ups ------------------------------------------------


def test_withdrawn_before_a_decision_is_never_decided():
    withdrawal = {"case_id": CASE, "reason": "beneficiary_request", "withdrawn_at": "2026-11-10T08:00:00Z"}
    case, outs = run([(CASE_ACCEPTED, accepted()), (RETURN_COMPLETED, returned()), (CASE_WITHDRAWN, withdrawal),
                      (PLAN_APPROVED, plan()), (PLAN_APPROVED, plan("PL-2"))])
    assert all_statuses(outs) == []
    assert all(o.notices == [] and o.decisions == [] for o in outs)
    assert all_downstream(outs) == [(CASE_WITHDRAWN, withdrawal)]
    assert case.withdrawn and case.decision is None


@pytest.mark.parametrize("type_", [MILESTONE_VERIFIED, DELIVERY_CONFIRMED, CASE_WITHDRAWN])
def test_follow_ups_are_forwarded_unchanged(type_):
    case, _, _ = decide()
    data = {"case_id": CASE, "plan_id": "PL-5531", "anything": {"nested": [1, 2]}}
    out = apply_event(case, type_, copy.deepcopy(data), PROGRAMMES)
    assert out.downstream == [(type_, data)]
    assert out.statuses == [] and out.notices == []


def test_beneficiary_update_is_forwarded_with_the_merged_contact():
    case, _, _ = decide()
    update = {"case_id": CASE, "phone": "+2250709998877",
              "payout": {"method": "mobile_money", "provider": "mtn_momo_ci", "msisdn": "+2250709998877"}}
    out = apply_event(case, BENEFICIARY_UPDATED, update, PROGRAMMES)
    [(type_, data)] = out.downstream
    assert type_ == CONTACT_UPDATED
    assert data["payout"] == update["payout"]
    # The language was not in the update: the known one is kept.
    assert data["contact"] == {"phone": "+2250709998877", "preferred_language": "fr"}
    assert case.contact == data["contact"]


def test_notice_goes_to_the_contact_updated_before_the_decision():
    _, outs = run([(CASE_ACCEPTED, accepted()),
                   (BENEFICIARY_UPDATED, {"case_id": CASE, "phone": "+2250709998877", "preferred_language": "en"}),
                   (RETURN_COMPLETED, returned()), (PLAN_APPROVED, plan())])
    [notice] = outs[-1].notices
    assert (notice["phone"], notice["language"]) == ("+2250709998877", "en")
    assert outs[-1].downstream[0][1]["contact"] == {"phone": "+2250709998877", "preferred_language": "en"}


def test_case_file_round_trips_through_json():
    case, _, _ = decide()
    assert CaseFile.from_json(copy.deepcopy(case.to_json())) == case


# --- programme configuration ------------------------------------------------------------------


def test_shipped_programmes_yaml_loads():
    with PROGRAMME_YAML.open(encoding="utf-8") as f:
        progs = programmes_from_config(yaml.safe_load(f))
    assert PROGRAMME in progs
    p = progs[PROGRAMME]
    assert p.code == PROGRAMME
    assert p.ceilings == {"EUR": Money(200000, "EUR"), "XOF": Money(1300000, "XOF"), "GNF": Money(18000000, "GNF")}
    assert p.require_return_to_origin is True
    assert p.review_vulnerabilities == frozenset({"unaccompanied_minor", "victim_of_trafficking"})


def test_the_app_loader_reads_the_shipped_file():
    from eligibility.app import load_programmes

    assert load_programmes(None)[PROGRAMME].ceilings["EUR"] == Money(200000, "EUR")


def test_defaults_and_unquoted_yaml_numbers():
    progs = programmes_from_config(yaml.safe_load("""
programmes:
  P1:
    ceilings: {EUR: 1500.5, XOF: 900000}
"""))
    p = progs["P1"]
    assert p.name == "P1"
    assert p.ceilings == {"EUR": Money(150050, "EUR"), "XOF": Money(900000, "XOF")}
    assert p.require_return_to_origin is True
    assert p.review_vulnerabilities == frozenset()


@pytest.mark.parametrize(
    "config",
    [
        None,
        {},
        {"programmes": None},
        {"programmes": ["MA-AVRR-2026"]},
        {"programmes": {"P": None}},
        {"programmes": {"P": {"ceilings": ["EUR", "2000.00"]}}},
        {"programmes": {"P": {"ceilings": {"ZZZ": "2000.00"}}}},
        {"programmes": {"P": {"ceilings": {"eur": "2000.00"}}}},
        {"programmes": {"P": {"ceilings": {"EUR": "-5"}}}},
        {"programmes": {"P": {"ceilings": {"EUR": "0"}}}},
        {"programmes": {"P": {"ceilings": {"EUR": "2000.001"}}}},
        {"programmes": {"P": {"ceilings": {"XOF": "1000.5"}}}},
        {"programmes": {"P": {"ceilings": {"EUR": "two thousand"}}}},
        {"programmes": {"P": {"ceilings": {"EUR": None}}}},
        {"programmes": {"P": {"review_vulnerabilities": 5}}},
    ],
)
def test_bad_config_is_refused(config):
    with pytest.raises(ProgrammeConfigError):
        programmes_from_config(config)


def test_review_vulnerabilities_as_a_bare_string_is_refused():
    config = yaml.safe_load("programmes:\n  P:\n    ceilings: {EUR: '2000.00'}\n    review_vulnerabilities: unaccompanied_minor\n")
    with pytest.raises(ProgrammeConfigError):
        programmes_from_config(config)
