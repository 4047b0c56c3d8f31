"""Why an upstream event was rejected: `{code, field, message}` as the contract sends it back.

Messages never repeat the offending value: the value may be a phone or document number, and
reasons travel in Kafka headers and status events that many people can read.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError


class Reason(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: str
    field: str | None = None
    message: str


# Every code this package produces. Upstream systems may branch on these, so they are a
# contract too: add codes, never rename them.
RECORD_CODES = frozenset({
    "record_too_large", "empty_record", "not_utf8", "not_json", "not_an_object", "invalid_string",
})
ENVELOPE_CODES = frozenset({
    "missing_field", "wrong_type", "invalid_value", "unsupported_specversion", "unknown_event_type",
    "invalid_datacontenttype", "subject_mismatch", "invalid_case_id", "invalid_timestamp",
})
PAYLOAD_CODES = frozenset({
    "amount_not_string", "amount_not_decimal", "amount_not_positive", "amount_too_large",
    "too_many_fraction_digits", "unknown_currency", "unknown_country", "unknown_language",
    "invalid_phone", "invalid_date", "invalid_timestamp", "invalid_case_id", "invalid_release",
    "shares_not_100", "invalid_tranche_seq", "vendor_required", "payout_required",
    "mixed_currencies", "duplicate_component_id", "consent_missing",
    "missing_field", "wrong_type", "invalid_value",
})
INTERNAL_CODES = frozenset({"internal_error", "too_many_errors"})
# Why a valid event was refused or ignored for the case it names (status `case.rejected` with
# `rejected_event`): the case's owner, its state, or the plan the event refers to.
CASE_STATE_CODES = frozenset({
    "id_conflict",  # this (source, id) was applied before with other content
    "case_already_registered",  # a second case.registered for a case that exists
    "case_id_taken",  # the case id is registered by another source
    "not_case_owner",  # the event comes from another source than the one that registered the case
    "case_registration_refused",  # the case's registration was refused; the event is kept until a valid one
    "case_not_eligible",  # the case was rejected by eligibility: nothing more is applied to it
    "case_under_review",  # the case is held for review: the event waits for the reviewer's decision
    "case_withdrawn",  # the case was withdrawn
    "grant_completed",  # every tranche of the grant is done: nothing more can change it
    "plan_mismatch",  # the event names another plan than the case's approved one
    "unknown_tranche",  # no such component/tranche in the approved plan
    "unknown_milestone",  # no tranche of the plan waits for this milestone
    "not_approved_yet",  # a milestone or delivery before the plan was approved
})
REASON_CODES = RECORD_CODES | ENVELOPE_CODES | PAYLOAD_CODES | INTERNAL_CODES | CASE_STATE_CODES

# pydantic's own error types, folded into the few codes upstream needs to tell apart.
_WRONG_TYPE = frozenset({
    "string_type", "int_type", "bool_type", "float_type", "decimal_type", "dict_type",
    "list_type", "tuple_type", "model_type", "model_attributes_type", "dataclass_type",
    "int_from_float", "int_parsing", "bool_parsing", "float_parsing", "none_required",
    "is_instance_of", "string_unicode",
})
_SAFE_MESSAGES = {
    "missing": "is required",
    "union_tag_not_found": "is required",
}

# Tags of discriminated unions appear in pydantic locations ("payout", "mobile_money",
# "msisdn"); upstream knows the JSON, which has no such level.
_UNION_TAG_VALUES: dict[str, frozenset[str]] = {}


def register_union_tags(field_name: str, tags: Iterable[str]) -> None:
    _UNION_TAG_VALUES[field_name] = _UNION_TAG_VALUES.get(field_name, frozenset()) | frozenset(tags)


def json_path(prefix: str | None, loc: Iterable[Any]) -> str | None:
    """`data.components[1].amount.amount` from ("components", 1, "amount", "amount")."""
    path = prefix or ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path = f"{path}.{part}" if path else str(part)
    return path or None


def _clean_loc(loc: tuple[Any, ...]) -> list[Any]:
    cleaned: list[Any] = []
    for i, part in enumerate(loc):
        previous = loc[i - 1] if i else None
        if isinstance(part, str) and isinstance(previous, str) and part in _UNION_TAG_VALUES.get(previous, ()):
            continue
        cleaned.append(part)
    return cleaned


def reason_from_error(error: dict[str, Any], prefix: str | None) -> Reason:
    kind = error["type"]
    loc = _clean_loc(tuple(error["loc"]))
    ctx = error.get("ctx") or {}
    message = _SAFE_MESSAGES.get(kind, error["msg"])
    if kind == "missing":
        code = "missing_field"
    elif kind == "union_tag_not_found":
        code = "missing_field"
        loc.append(str(ctx.get("discriminator", "")).strip("'"))
    elif kind == "union_tag_invalid":
        code = "invalid_value"
        loc.append(str(ctx.get("discriminator", "")).strip("'"))
        message = f"must be one of {ctx.get('expected_tags', '')}"
    elif kind in _WRONG_TYPE:
        code = "wrong_type"
    elif kind in PAYLOAD_CODES:
        code = kind  # our own PydanticCustomError codes
    else:
        code = "invalid_value"
    return Reason(code=code, field=json_path(prefix, loc), message=message)


def reasons_from_validation_error(error: ValidationError, prefix: str | None = "data") -> list[Reason]:
    """Every error of a pydantic validation, each with the JSON path of its field."""
    # include_input=False: inputs may be personal data and must not leak into reasons.
    return [
        reason_from_error(e, prefix)
        for e in error.errors(include_url=False, include_input=False, include_context=True)
    ]
