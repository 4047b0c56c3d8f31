"""Intake's pure domain: what happens to a valid upstream event, and what leaves intake about a case."""

from __future__ import annotations

import copy
import json

import pytest
from intake.domain import statuses
from intake.domain.minimise import accepted_case
from intake.domain.routing import CASE_REGISTERED, CASE_WITHDRAWN, CaseStatus, Route, route, status_after
from reintegra.contract import samples

FOLLOW_UP_TYPES = [
    "reintegration.return.completed.v1",
    "reintegration.plan.approved.v1",
    "reintegration.milestone.verified.v1",
    "reintegration.delivery.confirmed.v1",
    "reintegration.beneficiary.updated.v1",
    "reintegration.case.withdrawn.v1",
]

ROUTES = (
    [(CASE_REGISTERED, None, Route.REGISTER),
     (CASE_REGISTERED, CaseStatus.ACTIVE, Route.ALREADY_REGISTERED),
     (CASE_REGISTERED, CaseStatus.WITHDRAWN, Route.ALREADY_REGISTERED)]
    + [(t, None, Route.PARK) for t in FOLLOW_UP_TYPES]
    + [(t, CaseStatus.ACTIVE, Route.FORWARD) for t in FOLLOW_UP_TYPES]
    # A withdrawn case is still known: later events go on and disbursement ignores what no longer applies.
    + [(t, CaseStatus.WITHDRAWN, Route.FORWARD) for t in FOLLOW_UP_TYPES]
)


@pytest.mark.parametrize(("event_type", "status", "expected"), ROUTES)
def test_route_table(event_type, status, expected):
    assert route(event_type, status) is expected


def test_route_table_covers_every_contract_type_and_status():
    from reintegra.contract.samples import SAMPLES_BY_TYPE

    assert {CASE_REGISTERED, *FOLLOW_UP_TYPES} == set(SAMPLES_BY_TYPE)
    assert {(t, s) for t, s, _ in ROUTES} == {(t, s) for t in SAMPLES_BY_TYPE for s in (None, *CaseStatus)}


@pytest.mark.parametrize("event_type", [CASE_REGISTERED, *FOLLOW_UP_TYPES])
def test_only_a_withdrawal_withdraws(event_type):
    expected = CaseStatus.WITHDRAWN if event_type == CASE_WITHDRAWN else CaseStatus.ACTIVE
    assert status_after(event_type, CaseStatus.ACTIVE) is expected
    # Once withdrawn, nothing brings the case back.
    assert status_after(event_type, CaseStatus.WITHDRAWN) is CaseStatus.WITHDRAWN


# --- data minimisation ------------------------------------------------------------------------

REGISTERED = samples.sample_case_registered(
    "MA-2026-000777", vulnerabilities=["unaccompanied_minor", "single_parent"], preferred_language="ar",
    full_name="Awa Traoré", date_of_birth="1994-03-02", person_id="P-88412",
)


def test_accepted_case_keeps_what_later_steps_need():
    case = accepted_case(copy.deepcopy(REGISTERED))
    assert case == {
        "case_id": "MA-2026-000777",
        "program_code": "MA-AVRR-2026",
        "host_country": "MA",
        "origin_country": "CI",
        "household_size": 3,
        "vulnerabilities": ["unaccompanied_minor", "single_parent"],
        "consent": True,
        "contact": {"phone": "+2250701020304", "preferred_language": "ar"},
    }


def test_accepted_case_drops_identifying_data():
    case = accepted_case(copy.deepcopy(REGISTERED))
    text = json.dumps(case, ensure_ascii=False)
    for secret in ("Awa Traoré", "1994-03-02", "CI-A1234567", "P-88412"):
        assert secret not in text
    for key in ("full_name", "date_of_birth", "document_number", "person_id", "beneficiary", "email", "sex",
                "nationality"):
        assert key not in text


def test_accepted_case_without_consent_or_vulnerabilities_or_phone():
    data = samples.sample_case_registered("C-1", consent=False, vulnerabilities=[], phone=None)
    case = accepted_case(data)
    assert case["consent"] is False
    assert case["vulnerabilities"] == []
    assert case["contact"] == {"phone": None, "preferred_language": "fr"}
    data.pop("vulnerabilities")
    assert accepted_case(data)["vulnerabilities"] == []


def test_accepted_case_does_not_share_lists_with_the_input():
    data = copy.deepcopy(REGISTERED)
    case = accepted_case(data)
    case["vulnerabilities"].append("elderly")
    assert data["vulnerabilities"] == ["unaccompanied_minor", "single_parent"]


def test_status_payloads():
    assert statuses.accepted("C-1", "MA-AVRR-2026") == {"case_id": "C-1", "status": "accepted",
                                                          "program_code": "MA-AVRR-2026"}
    reasons = [{"code": "consent_missing", "field": "data.consent", "message": "no consent"}]
    rejected = statuses.rejected("C-1", iter(reasons), "ev-1", CASE_REGISTERED)
    assert rejected == {"case_id": "C-1", "status": "rejected", "reasons": reasons,
                        "rejected_event": {"id": "ev-1", "type": CASE_REGISTERED}}
