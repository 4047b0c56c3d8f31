"""Why intake refuses a valid event, in words upstream can act on.

Messages name the case id at most, never personal data or another system's source.
"""

from __future__ import annotations

from reintegra.contract.reasons import Reason

from intake.domain.routing import Route


def id_conflict() -> Reason:
    return Reason(code="id_conflict", field="id",
                  message="this (source, id) was already applied with different content; use a new id for a new event")


def for_route(decision: Route, case_id: str) -> Reason:
    """The reason of a refusing route (see routing.REFUSING_ROUTES)."""
    if decision is Route.ALREADY_REGISTERED:
        return Reason(code="case_already_registered", field="subject",
                      message=f"case {case_id} is already registered by another event")
    if decision is Route.CASE_ID_TAKEN:
        return Reason(code="case_id_taken", field="subject",
                      message=f"case id {case_id} is already registered by another source; choose another case id")
    if decision is Route.NOT_CASE_OWNER:
        return not_case_owner(case_id)
    raise ValueError(f"{decision} does not refuse an event")


def not_case_owner(case_id: str) -> Reason:
    return Reason(code="not_case_owner", field="source",
                  message=f"case {case_id} is registered by another source; only that source may send its events")


def registration_refused(case_id: str) -> Reason:
    return Reason(code="case_registration_refused", field="subject",
                  message=f"the registration of case {case_id} was refused; this event is kept and will be "
                  "applied if a valid registration of the case arrives")


def unusable_document_number() -> Reason:
    return Reason(code="invalid_value", field="data.beneficiary.document_number",
                  message="must contain at least one letter or digit")
