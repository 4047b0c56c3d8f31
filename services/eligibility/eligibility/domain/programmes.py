"""Programme rules as configuration, validated strictly: a typo must stop the service, not a payment.

The file is read once at start-up. Any unknown key, wrong type or impossible value raises
ProgrammeConfigError naming the file and the key's path (`programmes.MA-AVRR-2026.ceilings.adult`).
Each programme carries a version, a content hash of its own settings, which every decision records.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from reintegra.money import Money, MoneyError, is_known_currency

VULNERABILITIES = frozenset({
    "victim_of_trafficking", "unaccompanied_minor", "medical_condition", "disability", "single_parent", "elderly",
})
CATEGORIES = frozenset({
    "immediate_needs", "business_startup", "vocational_training", "education", "medical", "housing", "psychosocial",
})

Vulnerability = Literal["victim_of_trafficking", "unaccompanied_minor", "medical_condition", "disability",
                        "single_parent", "elderly"]
Category = Literal["immediate_needs", "business_startup", "vocational_training", "education", "medical", "housing",
                   "psychosocial"]
CountryCode = Annotated[StrictStr, Field(pattern=r"^[A-Z]{2}$")]
AmountText = Annotated[StrictStr, Field(description='a decimal string in the programme currency, e.g. "1800.00"')]


def _config_date(value: Any) -> date:
    """A YAML date or an ISO date string; not a timestamp, a number or a boolean."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError("must be a date, e.g. 2026-01-01")


ConfigDate = Annotated[date, BeforeValidator(_config_date)]


def _no_repeats(values: list[Any]) -> list[Any]:
    repeated = sorted({str(v) for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f"lists {', '.join(repeated)} more than once")
    return values


class ProgrammeConfigError(ValueError):
    pass


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _Ceilings(_Strict):
    adult: AmountText
    minor: AmountText


class _TopUp(_Strict):
    amount: AmountText
    when_any: Annotated[list[Vulnerability], Field(min_length=1)]

    unique_entries = field_validator("when_any")(_no_repeats)


class _CashShare(_Strict):
    max_percent: Annotated[StrictInt, Field(ge=0, le=100)]
    or_up_to: AmountText  # the cash allowed whatever the plan total ("or €400, whichever is larger")


class _ProgrammeSpec(_Strict):
    name: StrictStr
    host_country: CountryCode
    currency: Annotated[StrictStr, Field(pattern=r"^[A-Z]{3}$")]
    opens_on: ConfigDate  # a YAML date or an ISO string
    closes_on: ConfigDate
    budget: AmountText
    origin_countries: Annotated[list[CountryCode], Field(min_length=1)]
    return_to_origin_required: StrictBool = True
    arrival_window_days: Annotated[StrictInt, Field(ge=0, le=3650)]
    adult_age: Annotated[StrictInt, Field(ge=1, le=30)] = 18
    ceilings: _Ceilings
    top_up: _TopUp | None = None
    cash_share: _CashShare
    categories: Annotated[list[Category], Field(min_length=1)]
    review_vulnerabilities: list[Vulnerability] = []
    second_approval_above: AmountText

    # Field validators, so that an error names the key it is about (`...closes_on`), not the programme.
    unique_entries = field_validator("origin_countries", "categories", "review_vulnerabilities")(_no_repeats)

    @field_validator("closes_on")
    @classmethod
    def _after_opening(cls, closes_on: date, info: ValidationInfo) -> date:
        opens_on = info.data.get("opens_on")
        if opens_on is not None and closes_on < opens_on:
            raise ValueError(f"closes_on {closes_on} is before opens_on {opens_on}")
        return closes_on

    @field_validator("origin_countries")
    @classmethod
    def _not_the_host(cls, origins: list[str], info: ValidationInfo) -> list[str]:
        if info.data.get("host_country") in origins:
            raise ValueError("the host country cannot also be an origin country")
        return origins


class _ProgrammeFile(_Strict):
    programmes: Annotated[dict[Annotated[StrictStr, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")], _ProgrammeSpec],
                          Field(min_length=1)]


@dataclass(frozen=True)
class Programme:
    code: str
    name: str
    version: str  # "sha256:<16 hex>" of the programme's own settings
    host_country: str
    currency: str
    opens_on: date
    closes_on: date
    budget: Money
    origin_countries: frozenset[str]
    return_to_origin_required: bool
    arrival_window_days: int
    adult_age: int
    adult_ceiling: Money
    minor_ceiling: Money
    top_up: Money | None
    top_up_when: frozenset[str]
    cash_max_percent: int
    cash_up_to: Money
    categories: frozenset[str]
    review_vulnerabilities: frozenset[str]
    second_approval_above: Money


def programme_version(raw_spec: Mapping[str, Any]) -> str:
    """A content hash: the same settings give the same version on every instance and restart."""
    canonical = json.dumps(raw_spec, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def _amount(source: str, where: str, text: str, currency: str) -> Money:
    try:
        return Money.parse(text, currency)
    except MoneyError as exc:
        raise ProgrammeConfigError(f"{source}: {where}: {exc.message}") from None


def programmes_from_config(config: Any, source: str = "programme config") -> dict[str, Programme]:
    """Validate a parsed YAML document; `source` (the file name) prefixes every error."""
    try:
        parsed = _ProgrammeFile.model_validate(config)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)
        details = "; ".join(f"{_path(e['loc'])}: {e['msg']}" for e in first[:5])
        more = f" (and {len(first) - 5} more)" if len(first) > 5 else ""
        raise ProgrammeConfigError(f"{source}: {details}{more}") from None
    result = {}
    for code, spec in parsed.programmes.items():
        where = f"programmes.{code}"
        cur = spec.currency
        if not is_known_currency(cur):
            raise ProgrammeConfigError(f"{source}: {where}.currency: {cur} is not an ISO 4217 currency")
        top_up = spec.top_up
        result[code] = Programme(
            code=code,
            name=spec.name,
            version=programme_version(config["programmes"][code]),
            host_country=spec.host_country,
            currency=cur,
            opens_on=spec.opens_on,
            closes_on=spec.closes_on,
            budget=_amount(source, f"{where}.budget", spec.budget, cur),
            origin_countries=frozenset(spec.origin_countries),
            return_to_origin_required=spec.return_to_origin_required,
            arrival_window_days=spec.arrival_window_days,
            adult_age=spec.adult_age,
            adult_ceiling=_amount(source, f"{where}.ceilings.adult", spec.ceilings.adult, cur),
            minor_ceiling=_amount(source, f"{where}.ceilings.minor", spec.ceilings.minor, cur),
            top_up=_amount(source, f"{where}.top_up.amount", top_up.amount, cur) if top_up else None,
            top_up_when=frozenset(top_up.when_any) if top_up else frozenset(),
            cash_max_percent=spec.cash_share.max_percent,
            cash_up_to=_amount(source, f"{where}.cash_share.or_up_to", spec.cash_share.or_up_to, cur),
            categories=frozenset(spec.categories),
            review_vulnerabilities=frozenset(spec.review_vulnerabilities),
            second_approval_above=_amount(source, f"{where}.second_approval_above", spec.second_approval_above, cur),
        )
    return result
