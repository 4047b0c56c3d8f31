"""Intake's pure domain: what happens to a valid upstream event, and what leaves intake about a case."""

from __future__ import annotations

import copy
import json

import pytest
from intake.domain import refusals, statuses
from intake.domain.identity import case_identity
from intake.domain.minimise import accepted_case, forwarded, upstream_reference
from intake.domain.routing import (
    CASE_REGISTERED,
    CASE_WITHDRAWN,
    REFUSING_ROUTES,
    CaseStatus,
    KnownCase,
    Route,
    route,
    status_after,
)
from reintegra.contract import samples
from reintegra.contract.reasons import CASE_STATE_CODES, REASON_CODES
from reintegra.contract.status import CaseRejected, event_refused

FOLLOW_UP_TYPES = [
    "reintegration.return.completed.v1",
    "reintegration.plan.approved.v1",
    "reintegration.milestone.verified.v1",
    "reintegration.delivery.confirmed.v1",
    "reintegration.beneficiary.updated.v1",
    "reintegration.case.withdrawn.v1",
]

OWNER = "urn:casesys:ma-rabat"
OTHER = "urn:casesys:sn-dakar"
ACTIVE = KnownCase(OWNER, CaseStatus.ACTIVE)
WITHDRAWN = KnownCase(OWNER, CaseStatus.WITHDRAWN)

# (type, source of the event, the case as intake knows it, registration refused?, route)
ROUTES = (
    [(CASE_REGISTERED, OWNER, None, refused, Route.REGISTER) for refused in (False, True)]
    + [(CASE_REGISTERED, OTHER, None, refused, Route.REGISTER) for refused in (False, True)]
    + [(CASE_REGISTERED, OWNER, case, False, Route.ALREADY_REGISTERED) for case in (ACTIVE, WITHDRAWN)]
    + [(CASE_REGISTERED, OTHER, case, False, Route.CASE_ID_TAKEN) for case in (ACTIVE, WITHDRAWN)]
    + [(t, s, None, False, Route.PARK) for t in FOLLOW_UP_TYPES for s in (OWNER, OTHER)]
    # Kept all the same: a corrected registration may follow. Upstream is told why it waits.
    + [(t, s, None, True, Route.PARK_REGISTRATION_REFUSED) for t in FOLLOW_UP_TYPES for s in (OWNER, OTHER)]
    + [(t, OWNER, ACTIVE, False, Route.FORWARD) for t in FOLLOW_UP_TYPES]
    # A withdrawn case is still known: later events go on and disbursement ignores what no longer applies.
    + [(t, OWNER, WITHDRAWN, False, Route.FORWARD) for t in FOLLOW_UP_TYPES]
    + [(t, OTHER, case, False, Route.NOT_CASE_OWNER) for t in FOLLOW_UP_TYPES for case in (ACTIVE, WITHDRAWN)]
)


@pytest.mark.parametrize(("event_type", "source", "case", "refused", "expected"), ROUTES)
def test_route_table(event_type, source, case, refused, expected):
    assert route(event_type, source, case, registration_refused=refused) is expected


def test_route_table_covers_every_contract_type_source_and_case_state():
    from reintegra.contract.samples import SAMPLES_BY_TYPE

    assert {CASE_REGISTERED, *FOLLOW_UP_TYPES} == set(SAMPLES_BY_TYPE)
    # A registered case has no refused registration: a valid one cleared it.
    states = [(None, False), (None, True), (ACTIVE, False), (WITHDRAWN, False)]
    assert {(t, s, c, r) for t, s, c, r, _ in ROUTES} == {
        (t, s, c, r) for t in SAMPLES_BY_TYPE for s in (OWNER, OTHER) for c, r in states}


def test_a_known_case_never_routes_to_parking_whatever_the_refused_flag():
    for event_type in (CASE_REGISTERED, *FOLLOW_UP_TYPES):
        assert route(event_type, OWNER, ACTIVE, registration_refused=True) is \
            route(event_type, OWNER, ACTIVE, registration_refused=False)


@pytest.mark.parametrize("event_type", [CASE_REGISTERED, *FOLLOW_UP_TYPES])
def test_only_a_withdrawal_withdraws(event_type):
    expected = CaseStatus.WITHDRAWN if event_type == CASE_WITHDRAWN else CaseStatus.ACTIVE
    assert status_after(event_type, CaseStatus.ACTIVE) is expected
    # Once withdrawn, nothing brings the case back.
    assert status_after(event_type, CaseStatus.WITHDRAWN) is CaseStatus.WITHDRAWN


# --- refusal reasons --------------------------------------------------------------------------


@pytest.mark.parametrize(("decision", "code", "field"), [
    (Route.ALREADY_REGISTERED, "case_already_registered", "subject"),
    (Route.CASE_ID_TAKEN, "case_id_taken", "subject"),
    (Route.NOT_CASE_OWNER, "not_case_owner", "source"),
])
def test_each_refusing_route_has_its_reason(decision, code, field):
    reason = refusals.for_route(decision, "MA-1")
    assert (reason.code, reason.field) == (code, field)
    assert "MA-1" in reason.message


def test_refusing_routes_are_exactly_those_with_a_reason():
    assert REFUSING_ROUTES == {Route.ALREADY_REGISTERED, Route.CASE_ID_TAKEN, Route.NOT_CASE_OWNER}
    for decision in set(Route) - REFUSING_ROUTES:
        with pytest.raises(ValueError):
            refusals.for_route(decision, "MA-1")


def test_every_refusal_code_is_a_contract_code_and_names_no_source():
    reasons = [refusals.for_route(r, "MA-1") for r in REFUSING_ROUTES] + [
        refusals.id_conflict(), refusals.not_case_owner("MA-1"), refusals.registration_refused("MA-1"),
        refusals.unusable_document_number()]
    assert {r.code for r in reasons} <= REASON_CODES
    assert {r.code for r in reasons} - {"invalid_value"} <= CASE_STATE_CODES
    for reason in reasons:
        assert "urn:" not in reason.message


def test_registration_refused_says_the_event_is_kept():
    reason = refusals.registration_refused("MA-1")
    assert reason.code == "case_registration_refused"
    assert "kept" in reason.message and "valid registration" in reason.message


# --- data minimisation ------------------------------------------------------------------------

REGISTERED = samples.sample_case_registered(
    "MA-2026-000777", vulnerabilities=["unaccompanied_minor", "single_parent"], preferred_language="ar",
    full_name="Awa Traoré", date_of_birth="1994-03-02", person_id="P-88412", document_number="CI-A1234567",
)
KEY = b"k" * 32
IDENTITY = case_identity(KEY, OWNER, REGISTERED["beneficiary"])
UPSTREAM = upstream_reference(OWNER, "ev-1", CASE_REGISTERED)


def minimised(data: dict) -> dict:
    return accepted_case(data, OWNER, case_identity(KEY, OWNER, data["beneficiary"]), UPSTREAM)


def test_accepted_case_keeps_what_later_steps_need():
    case = minimised(copy.deepcopy(REGISTERED))
    assert case == {
        "case_id": "MA-2026-000777",
        "program_code": "MA-AVRR-2026",
        "source": OWNER,
        "host_country": "MA",
        "origin_country": "CI",
        "household_size": 3,
        "date_of_birth": "1994-03-02",
        "vulnerabilities": ["unaccompanied_minor", "single_parent"],
        "consent": True,
        "contact": {"phone": "+2250701020304", "preferred_language": "ar", "payee_name": "Awa Traoré"},
        "identity": IDENTITY,
        "upstream_event": {"source": OWNER, "id": "ev-1", "type": CASE_REGISTERED},
    }
    assert set(case["identity"]) == {"document", "person"}
    assert all(len(h) == 64 and h == h.lower() and int(h, 16) >= 0 for h in case["identity"].values())


def test_accepted_case_drops_identifying_data_and_names_the_person_only_as_payee():
    case = minimised(copy.deepcopy(REGISTERED))
    payee = case["contact"].pop("payee_name")
    assert payee == "Awa Traoré"  # a bank transfer's account holder, a cash pickup's recipient
    text = json.dumps(case, ensure_ascii=False)
    for secret in ("Awa Traoré", "Awa", "CI-A1234567", "CIA1234567", "P-88412", "88412"):
        assert secret not in text
    for key in ("full_name", "document_number", "person_id", "beneficiary", "email", "sex", "nationality"):
        assert key not in text


def test_accepted_case_without_consent_or_vulnerabilities_or_phone():
    data = samples.sample_case_registered("C-1", consent=False, vulnerabilities=[], phone=None)
    case = minimised(data)
    assert case["consent"] is False
    assert case["vulnerabilities"] == []
    assert case["contact"] == {"phone": None, "preferred_language": "fr", "payee_name": "Awa Traoré"}
    data.pop("vulnerabilities")
    assert minimised(data)["vulnerabilities"] == []


def test_the_payee_name_is_the_registered_name_as_written():
    # Banks compare it with the account holder: no trimming of accents, case or spacing.
    data = samples.sample_case_registered("C-1", full_name="N'Guessan Aya-Marie KOUASSI")
    assert minimised(data)["contact"]["payee_name"] == "N'Guessan Aya-Marie KOUASSI"


def test_accepted_case_does_not_share_lists_or_dicts_with_its_inputs():
    data = copy.deepcopy(REGISTERED)
    identity, upstream = dict(IDENTITY), dict(UPSTREAM)
    case = accepted_case(data, OWNER, identity, upstream)
    case["vulnerabilities"].append("elderly")
    case["identity"]["document"] = "x"
    case["upstream_event"]["id"] = "x"
    assert data["vulnerabilities"] == ["unaccompanied_minor", "single_parent"]
    assert identity == IDENTITY and upstream == UPSTREAM


def test_forwarded_adds_the_upstream_event_and_leaves_the_input_alone():
    data = samples.sample_return_completed("C-1")
    original = copy.deepcopy(data)
    out = forwarded(data, OWNER, "ev-2", "reintegration.return.completed.v1")
    assert out == {**original, "upstream_event": {"source": OWNER, "id": "ev-2",
                                                  "type": "reintegration.return.completed.v1"}}
    assert data == original


def test_forwarded_replaces_an_upstream_event_the_sender_wrote_itself():
    data = dict(samples.sample_return_completed("C-1"), upstream_event={"source": "urn:forged", "id": "x"})
    assert forwarded(data, OWNER, "ev-2", "t")["upstream_event"] == {"source": OWNER, "id": "ev-2", "type": "t"}


def test_status_payloads():
    assert statuses.accepted("C-1", "MA-AVRR-2026") == {"case_id": "C-1", "status": "accepted",
                                                          "program_code": "MA-AVRR-2026"}
    reasons = [{"code": "consent_missing", "field": "data.consent", "message": "no consent"}]
    rejected = statuses.rejected("C-1", iter(reasons), "ev-1", CASE_REGISTERED, OWNER)
    assert rejected == {"case_id": "C-1", "status": "rejected", "reasons": reasons,
                        "rejected_event": {"id": "ev-1", "type": CASE_REGISTERED, "source": OWNER}}
    assert rejected == event_refused("C-1", reasons, {"id": "ev-1", "type": CASE_REGISTERED, "source": OWNER})
    CaseRejected.model_validate(rejected)


def test_status_of_a_record_without_identity():
    rejected = statuses.rejected("C-1", [], None, None, None)
    assert rejected["rejected_event"] == {"id": None, "type": None, "source": None}
    CaseRejected.model_validate(rejected)
