"""The seven upstream payloads (`data` of each event type) as strict pydantic models.

Strict where the contract is: wrong JSON types are errors, never coerced ("1" is not 1,
1200 is not "1200.00"). Lenient where forward compatibility needs it: unknown fields are
ignored. Each custom error's type is the reason code upstream receives.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Annotated, Any, Literal, NoReturn

import phonenumbers
import pycountry
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from reintegra.contract.reasons import register_union_tags
from reintegra.money import Money, MoneyError, check_amount_text, is_known_currency

CASE_REGISTERED = "reintegration.case.registered.v1"
RETURN_COMPLETED = "reintegration.return.completed.v1"
PLAN_APPROVED = "reintegration.plan.approved.v1"
MILESTONE_VERIFIED = "reintegration.milestone.verified.v1"
DELIVERY_CONFIRMED = "reintegration.delivery.confirmed.v1"
BENEFICIARY_UPDATED = "reintegration.beneficiary.updated.v1"
CASE_WITHDRAWN = "reintegration.case.withdrawn.v1"


def _fail(code: str, message: str) -> NoReturn:
    # Messages are fixed text: never the value, which may be personal data.
    raise PydanticCustomError(code, message)


def _raise_all(title: str, errors: list[tuple[tuple[str | int, ...], str, str]]) -> None:
    """Report several cross-field errors at once, each at its own location."""
    if errors:
        raise ValidationError.from_exception_data(
            title,
            [InitErrorDetails(type=PydanticCustomError(code, message), loc=loc, input=None)
             for loc, code, message in errors],
            hide_input=True,
        )


# --- common value types -------------------------------------------------------------------

CASE_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_TIMESTAMP_RE = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})[Tt]([0-9]{2}:[0-9]{2}:[0-9]{2})(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
_E164_RE = re.compile(r"\+[1-9][0-9]{1,14}")
_SHARE_RE = re.compile(r"[0-9]{1,3}(\.[0-9]{1,12})?")

COUNTRIES = frozenset(c.alpha_2 for c in pycountry.countries)
LANGUAGES = frozenset(lang.alpha_2 for lang in pycountry.languages if hasattr(lang, "alpha_2"))


def is_valid_case_id(value: object) -> bool:
    return isinstance(value, str) and CASE_ID_RE.fullmatch(value) is not None


def parse_timestamp(value: str) -> datetime:
    """RFC 3339 with a mandatory offset; ValueError otherwise (message without the value)."""
    match = _TIMESTAMP_RE.fullmatch(value)
    if match is None:
        raise ValueError("must be an RFC 3339 timestamp with offset, e.g. 2026-09-01T10:00:00Z")
    day, clock, fraction, offset = match.groups()
    # datetime has microseconds; RFC 3339 allows any precision, so extra digits are cut.
    fraction = (fraction or "")[:7]
    offset = "+00:00" if offset in ("Z", "z") else offset
    try:
        return datetime.fromisoformat(f"{day}T{clock}{fraction}{offset}")
    except ValueError:
        raise ValueError("is not a valid date and time") from None


def _timestamp(value: object) -> datetime:
    if not isinstance(value, str):
        _fail("wrong_type", "must be an RFC 3339 timestamp string")
    try:
        return parse_timestamp(value)
    except ValueError as exc:
        _fail("invalid_timestamp", str(exc))


def _date(value: object) -> date:
    if not isinstance(value, str):
        _fail("wrong_type", "must be a date string YYYY-MM-DD")
    if _DATE_RE.fullmatch(value) is None:
        _fail("invalid_date", "must be a date YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        _fail("invalid_date", "is not a calendar date")


def _case_id(value: str) -> str:
    if CASE_ID_RE.fullmatch(value) is None:
        _fail("invalid_case_id", "must be 1-64 characters of A-Z a-z 0-9 _ -")
    return value


def _identifier(value: str) -> str:
    if CASE_ID_RE.fullmatch(value) is None:
        _fail("invalid_value", "must be 1-64 characters of A-Z a-z 0-9 _ -")
    return value


def _name(value: str) -> str:
    if _NAME_RE.fullmatch(value) is None:
        _fail("invalid_value", "must be 1-64 characters of A-Z a-z 0-9 _ . -")
    return value


def _country(value: str) -> str:
    if value not in COUNTRIES:
        _fail("unknown_country", "must be an ISO 3166-1 alpha-2 country code")
    return value


def _language(value: str) -> str:
    if value not in LANGUAGES:
        _fail("unknown_language", "must be an ISO 639-1 language code")
    return value


@lru_cache(maxsize=8192)
def is_valid_phone(value: str) -> bool:
    """E.164, a number that exists per libphonenumber, and written in canonical form."""
    if _E164_RE.fullmatch(value) is None:
        return False
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_valid_number(number) and (
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) == value
    )


def _phone(value: str) -> str:
    if not is_valid_phone(value):
        _fail("invalid_phone", "must be a valid phone number in E.164 format, e.g. +2250701020304")
    return value


def _text(max_length: int):
    def check(value: str) -> str:
        if not value.strip():
            _fail("invalid_value", "must not be blank")
        if len(value) > max_length:
            _fail("invalid_value", f"must be at most {max_length} characters")
        return value

    return check


def _share(value: object) -> Decimal:
    # A JSON number or a decimal string; Decimal keeps 33.33 exact so shares sum exactly.
    if isinstance(value, bool):
        _fail("wrong_type", "must be a number")
    if isinstance(value, int):
        share = Decimal(value)
    elif isinstance(value, float):
        try:
            share = Decimal(repr(value))  # the shortest text that reads back as this float
        except InvalidOperation:
            _fail("invalid_value", "must be a finite number")
    elif isinstance(value, str):
        if _SHARE_RE.fullmatch(value) is None:
            _fail("invalid_value", "must be a number greater than 0 and at most 100")
        share = Decimal(value)
    else:
        _fail("wrong_type", "must be a number")
    if not share.is_finite() or not Decimal(0) < share <= Decimal(100):
        _fail("invalid_value", "must be greater than 0 and at most 100")
    return share


def _item_count(min_items: int, max_items: int):
    # Counted before the items are validated: pydantic's own min_length counts only the
    # items that validated, and would add a confusing error whenever one item is bad.
    def check(value: Any) -> Any:
        if isinstance(value, (list, tuple)) and not min_items <= len(value) <= max_items:
            _fail("invalid_value", f"must have {min_items} to {max_items} items")
        return value

    return check


def _release(value: str) -> str:
    if value != "on_approval":
        prefix, _, milestone = value.partition(":")
        if prefix != "milestone" or _NAME_RE.fullmatch(milestone) is None:
            _fail("invalid_release", "must be on_approval or milestone:<name>")
    return value


def _amount_text(value: object) -> str:
    if not isinstance(value, str):
        _fail("amount_not_string", 'must be a decimal string, e.g. "1200.00" (JSON numbers are not accepted)')
    return value


def _currency(value: str) -> str:
    if not is_known_currency(value):
        _fail("unknown_currency", "must be an ISO 4217 currency code with minor units, e.g. EUR")
    return value


def _string(check, schema: dict[str, Any]):
    """A JSON string checked by `check`, documented in JSON Schema by `schema`."""
    return Annotated[str, Strict(), AfterValidator(check), WithJsonSchema({"type": "string", **schema})]


_ID_SCHEMA = {"pattern": "^[A-Za-z0-9_-]{1,64}$"}
CaseId = _string(_case_id, _ID_SCHEMA)
Identifier = _string(_identifier, _ID_SCHEMA)
Name = _string(_name, {"pattern": "^[A-Za-z0-9_.-]{1,64}$"})
Country = _string(_country, {"pattern": "^[A-Z]{2}$", "description": "ISO 3166-1 alpha-2"})
Language = _string(_language, {"pattern": "^[a-z]{2}$", "description": "ISO 639-1"})
Phone = _string(_phone, {"pattern": r"^\+[1-9][0-9]{1,14}$", "description": "E.164"})
ShortText = _string(_text(64), {"minLength": 1, "maxLength": 64})
Text = _string(_text(200), {"minLength": 1, "maxLength": 200})
LongText = _string(_text(2000), {"minLength": 1, "maxLength": 2000})
Release = _string(_release, {"pattern": "^(on_approval|milestone:[A-Za-z0-9_.-]{1,64})$"})
CurrencyCode = _string(_currency, {"pattern": "^[A-Z]{3}$", "description": "ISO 4217"})
Date = Annotated[date, BeforeValidator(_date), WithJsonSchema({"type": "string", "format": "date"})]
Timestamp = Annotated[
    datetime, BeforeValidator(_timestamp), WithJsonSchema({"type": "string", "format": "date-time"})
]
SharePercent = Annotated[
    Decimal,
    BeforeValidator(_share),
    WithJsonSchema({"oneOf": [
        {"type": "number", "exclusiveMinimum": 0, "maximum": 100},
        {"type": "string", "pattern": r"^[0-9]{1,3}(\.[0-9]{1,12})?$"},
    ]}),
]
PositiveInt = Annotated[int, Strict(), Field(ge=1, le=10_000)]
AmountText = Annotated[
    str, BeforeValidator(_amount_text), WithJsonSchema({"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$"})
]


class _Model(BaseModel):
    # extra="ignore": upstream may add fields without breaking us.
    # hide_input_in_errors: a ValidationError logged anywhere must not carry personal data.
    model_config = ConfigDict(frozen=True, extra="ignore", hide_input_in_errors=True)


class MoneyField(_Model):
    """`{"amount": "1200.00", "currency": "EUR"}`."""

    # currency is declared first so that the amount's check can see it.
    currency: CurrencyCode
    amount: AmountText

    @field_validator("amount")
    @classmethod
    def _amount_fits_currency(cls, amount: str, info: ValidationInfo) -> str:
        currency = info.data.get("currency")
        try:
            if currency is None:  # already reported; still check what can be checked
                check_amount_text(amount)
            else:
                Money.parse(amount, currency)
        except MoneyError as exc:
            _fail(exc.code, exc.message)
        return amount

    @property
    def money(self) -> Money:
        return Money.parse(self.amount, self.currency)


# --- case.registered ----------------------------------------------------------------------

Vulnerability = Literal[
    "victim_of_trafficking", "unaccompanied_minor", "medical_condition", "disability",
    "single_parent", "elderly",
]


class Beneficiary(_Model):
    person_id: Identifier
    full_name: Text
    date_of_birth: Date
    sex: Literal["F", "M", "X"]
    nationality: Country
    document_number: ShortText
    phone: Phone | None = None
    email: Text | None = None
    preferred_language: Language


def _consent_given(value: bool | None) -> bool:
    if value is not True:
        _fail("consent_missing", "consent to data processing is required")
    return value


def _consent_present(value: Consent | None) -> Consent:
    if value is None:
        _fail("consent_missing", "consent to data processing is required")
    return value


def _schema_requires(**properties: dict[str, Any] | None):
    """Mark properties required in the JSON Schema (with an optional replacement schema).

    Consent fields are optional in the model only so that their absence is reported as
    consent_missing; the published schema must still say they are required.
    """

    def edit(schema: dict[str, Any]) -> None:
        for name, replacement in properties.items():
            if replacement is not None:
                schema["properties"][name] = replacement
            else:  # keep pydantic's schema (its $ref), minus the null option and default
                prop = schema["properties"][name]
                prop.pop("default", None)
                prop["anyOf"] = [option for option in prop.get("anyOf", []) if option.get("type") != "null"]
            if name not in schema.setdefault("required", []):
                schema["required"].append(name)

    return edit


class Consent(_Model):
    model_config = ConfigDict(json_schema_extra=_schema_requires(data_processing={"type": "boolean", "const": True}))
    # Absent or false are both "no consent": validate_default makes absence an error too.
    data_processing: Annotated[Annotated[bool, Strict()] | None, AfterValidator(_consent_given)] = Field(
        default=None, validate_default=True
    )
    signed_at: Timestamp


class CaseRegistered(_Model):
    model_config = ConfigDict(json_schema_extra=_schema_requires(consent=None))
    case_id: CaseId
    program_code: ShortText
    beneficiary: Beneficiary
    household_size: Annotated[int, Strict(), Field(ge=1, le=100)]
    host_country: Country
    origin_country: Country
    vulnerabilities: Annotated[tuple[Vulnerability, ...], BeforeValidator(_item_count(0, 20))] = ()
    consent: Annotated[Consent | None, AfterValidator(_consent_present)] = Field(
        default=None, validate_default=True
    )


# --- return.completed ---------------------------------------------------------------------


class ReturnCompleted(_Model):
    case_id: CaseId
    departure_date: Date
    arrival_date: Date
    arrival_country: Country


# --- plan.approved ------------------------------------------------------------------------


class MobileMoneyPayout(_Model):
    method: Literal["mobile_money"]
    provider: Name
    msisdn: Phone


class BankTransferPayout(_Model):
    method: Literal["bank_transfer"]
    bank_code: ShortText
    account_number: ShortText


class CashPickupPayout(_Model):
    method: Literal["cash_pickup"]
    provider: Name


Payout = Annotated[MobileMoneyPayout | BankTransferPayout | CashPickupPayout, Field(discriminator="method")]
PAYOUT_METHODS = ("mobile_money", "bank_transfer", "cash_pickup")
register_union_tags("payout", PAYOUT_METHODS)

Category = Literal[
    "immediate_needs", "business_startup", "vocational_training", "education", "medical",
    "housing", "psychosocial",
]


class Tranche(_Model):
    seq: PositiveInt
    share_percent: SharePercent
    release: Release

    @property
    def milestone(self) -> str | None:
        """The milestone this tranche waits for; None when released on approval."""
        return self.release.partition(":")[2] or None


class Component(_Model):
    component_id: Identifier
    modality: Literal["cash", "in_kind"]
    category: Category
    amount: MoneyField
    vendor_id: Identifier | None = None
    description: LongText | None = None
    tranches: Annotated[tuple[Tranche, ...], BeforeValidator(_item_count(1, 100))] = Field(
        json_schema_extra={"minItems": 1, "maxItems": 100}
    )

    @model_validator(mode="after")
    def _consistent(self) -> Component:
        errors = []
        if self.modality == "in_kind" and self.vendor_id is None:
            errors.append((("vendor_id",), "vendor_required", "an in_kind component needs a vendor_id"))
        if sum(t.share_percent for t in self.tranches) != 100:
            errors.append((("tranches",), "shares_not_100", "share_percent of the tranches must sum to 100"))
        if sorted(t.seq for t in self.tranches) != list(range(1, len(self.tranches) + 1)):
            errors.append((("tranches",), "invalid_tranche_seq", "tranche seq must be unique and run 1, 2, 3, ..."))
        _raise_all("Component", errors)
        return self


class PlanApproved(_Model):
    case_id: CaseId
    plan_id: Identifier
    approved_by: Text
    approved_at: Timestamp
    payout: Payout | None = None
    components: Annotated[tuple[Component, ...], BeforeValidator(_item_count(1, 100))] = Field(
        json_schema_extra={"minItems": 1, "maxItems": 100}
    )

    @model_validator(mode="after")
    def _consistent(self) -> PlanApproved:
        errors = []
        seen: set[str] = set()
        for i, component in enumerate(self.components):
            if component.component_id in seen:
                errors.append((("components", i, "component_id"), "duplicate_component_id",
                               "component_id must be unique within the plan"))
            seen.add(component.component_id)
        currency = self.components[0].amount.currency
        for i, component in enumerate(self.components):
            if component.amount.currency != currency:
                errors.append((("components", i, "amount", "currency"), "mixed_currencies",
                               "all components of a plan must use the same currency"))
        if self.payout is None and any(c.modality == "cash" for c in self.components):
            errors.append((("payout",), "payout_required", "a plan with a cash component needs a payout"))
        _raise_all("PlanApproved", errors)
        return self

    @property
    def currency(self) -> str:
        return self.components[0].amount.currency


# --- the other events ---------------------------------------------------------------------


class MilestoneVerified(_Model):
    case_id: CaseId
    plan_id: Identifier
    milestone: Name
    verified_at: Timestamp
    verified_by: Text


class Invoice(_Model):
    number: ShortText
    amount: MoneyField


class DeliveryConfirmed(_Model):
    case_id: CaseId
    plan_id: Identifier
    component_id: Identifier
    tranche_seq: PositiveInt
    vendor_id: Identifier
    delivered_at: Timestamp
    invoice: Invoice


class BeneficiaryUpdated(_Model):
    """A partial update: a field left out (or null) stays as it was."""

    case_id: CaseId
    phone: Phone | None = None
    preferred_language: Language | None = None
    payout: Payout | None = None


class CaseWithdrawn(_Model):
    case_id: CaseId
    reason: Text
    withdrawn_at: Timestamp


EVENT_TYPES: dict[str, type[_Model]] = {
    CASE_REGISTERED: CaseRegistered,
    RETURN_COMPLETED: ReturnCompleted,
    PLAN_APPROVED: PlanApproved,
    MILESTONE_VERIFIED: MilestoneVerified,
    DELIVERY_CONFIRMED: DeliveryConfirmed,
    BENEFICIARY_UPDATED: BeneficiaryUpdated,
    CASE_WITHDRAWN: CaseWithdrawn,
}

UpstreamPayload = (
    CaseRegistered | ReturnCompleted | PlanApproved | MilestoneVerified | DeliveryConfirmed
    | BeneficiaryUpdated | CaseWithdrawn
)
