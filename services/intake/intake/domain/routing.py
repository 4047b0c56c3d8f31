"""What intake does with one valid upstream event, given what it knows of the case."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

CASE_REGISTERED = "reintegration.case.registered.v1"
CASE_WITHDRAWN = "reintegration.case.withdrawn.v1"


class CaseStatus(str, Enum):
    ACTIVE = "active"
    WITHDRAWN = "withdrawn"


@dataclass(frozen=True, slots=True)
class KnownCase:
    """A registered case. It belongs to the upstream system (`source`) that registered it: only
    that system may send events for it."""

    source: str
    status: CaseStatus


class Route(str, Enum):
    REGISTER = "register"  # a new case: store it, accept it, release what was parked for it
    PARK = "park"  # the case is not known yet: keep the event until it is
    # The case's registration was refused: keep the event (a valid registration may follow) and say so.
    PARK_REGISTRATION_REFUSED = "park_registration_refused"
    FORWARD = "forward"  # a known case, from its owner: hand the event on
    ALREADY_REGISTERED = "already_registered"  # the owner registers its case again under another event id
    CASE_ID_TAKEN = "case_id_taken"  # another source registered this case id first
    NOT_CASE_OWNER = "not_case_owner"  # an event for a case another source registered


REFUSING_ROUTES = frozenset({Route.ALREADY_REGISTERED, Route.CASE_ID_TAKEN, Route.NOT_CASE_OWNER})


def route(event_type: str, event_source: str, case: KnownCase | None, *, registration_refused: bool = False) -> Route:
    """`registration_refused`: the case is not registered and a registration of it was refused."""
    if case is None:
        if event_type == CASE_REGISTERED:
            return Route.REGISTER
        return Route.PARK_REGISTRATION_REFUSED if registration_refused else Route.PARK
    if event_type == CASE_REGISTERED:
        return Route.ALREADY_REGISTERED if event_source == case.source else Route.CASE_ID_TAKEN
    return Route.FORWARD if event_source == case.source else Route.NOT_CASE_OWNER


def status_after(event_type: str, current: CaseStatus) -> CaseStatus:
    return CaseStatus.WITHDRAWN if event_type == CASE_WITHDRAWN else current
