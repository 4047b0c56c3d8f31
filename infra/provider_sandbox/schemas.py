"""Request bodies the sandbox accepts, validated with pydantic.

Money is an integer count of minor units (StrictInt rejects floats, strings and bools).
"""

from __future__ import annotations

from typing import Literal

import pycountry
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, field_validator, model_validator

MAX_BATCH_SIZE = 500


class TransferRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    reference: str = Field(min_length=1, max_length=128)
    amount_minor: StrictInt = Field(gt=0, le=10**15)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    method: Literal["mobile_money", "bank_transfer", "cash_pickup"]
    provider: str | None = Field(default=None, max_length=64)
    msisdn: str | None = Field(default=None, pattern=r"^\+?[1-9][0-9]{6,14}$")
    bank_code: str | None = Field(default=None, max_length=32)
    account_number: str | None = Field(default=None, max_length=64)
    beneficiary_name: str | None = Field(default=None, max_length=200)

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, code: str) -> str:
        if pycountry.currencies.get(alpha_3=code) is None:
            raise ValueError(f"unknown ISO 4217 currency {code!r}")
        return code

    @model_validator(mode="after")
    def _destination_matches_method(self) -> TransferRequest:
        required = {
            "mobile_money": ("msisdn",),
            "bank_transfer": ("bank_code", "account_number"),
            "cash_pickup": ("beneficiary_name",),
        }[self.method]
        missing = [name for name in required if not getattr(self, name)]
        if missing:
            raise ValueError(f"method {self.method} requires {', '.join(missing)}")
        return self


class BatchRequest(BaseModel):
    # Items stay raw so one invalid transfer fails alone instead of failing the whole batch.
    model_config = ConfigDict(extra="forbid")

    transfers: list[dict] = Field(min_length=1, max_length=MAX_BATCH_SIZE)


class FaultSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    latency_ms: StrictInt = Field(default=0, ge=0, le=60_000)
    transient_error_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    reject_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    reject_msisdns: frozenset[str] = frozenset()
    seed: StrictInt | None = None

    def to_json(self) -> dict:
        body = self.model_dump()
        body["reject_msisdns"] = sorted(self.reject_msisdns)
        return body


def error_details(error: ValidationError) -> list[dict]:
    return [
        {"loc": ".".join(str(part) for part in item["loc"]), "msg": item["msg"], "type": item["type"]}
        for item in error.errors(include_url=False, include_context=False, include_input=False)
    ]
