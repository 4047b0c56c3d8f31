"""What intake does with one valid upstream event, given what it knows of the case."""

from __future__ import annotations

from enum import Enum

CASE_REGISTERED = "reintegration.case.registered.v1"
CASE_WITHDRAWN = "reintegration.case.withdrawn.v1"


class CaseStatus(str, Enum):
    ACTIVE = "active"
    WITHDRAWN = "withdrawn"


class Route(str, Enum):
    REGISTER = "register"  # a new case: store it, accept it, release what was parked for it
    PARK = "park"  # the case is not known yet: keep the event until it is
    FORWARD = "forward"  # a known case: hand the event on
    ALREADY_REGISTERED = "already_registered"  # a second registration under another event id


def route(event_type: str, case_status: CaseStatus | None) -> Route:
    if event_type == CASE_REGISTERED:
        return Route.REGISTER if case_status is None else Route.ALREADY_REGISTERED
    if case_status is None:
        return Route.PARK
    return Route.FORWARD


def status_after(event_type: str, current: CaseStatus) -> CaseStatus:
    return CaseStatus.WITHDRAWN if event_type == CASE_WITHDRAWN else current
