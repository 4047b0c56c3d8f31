"""Faults switched on per provider through the admin API, and the decisions they lead to.

Rate-based faults draw from a `random.Random` per provider, seeded from the provider's `seed`
(or the sandbox's `--seed` and the provider's name), so a seeded run repeats itself. One-shot
`script` faults are consumed in order and the remainder is saved at once, so a restart does
not replay a fault that already fired.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

from .store import Store

Fault = Literal["error_before", "error_after", "lose_response", "conflict"]
Operation = Literal["create", "lookup"]
Rate = Field(default=0.0, ge=0.0, le=1.0)


class ScriptMatch(BaseModel):
    """Every given field must match; `{}` matches any request."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reference: str | None = None
    msisdn: str | None = None
    account: str | None = None


class ScriptEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    match: ScriptMatch = ScriptMatch()
    operation: Operation = "create"
    fault: Fault
    times: StrictInt = Field(default=1, ge=1, le=1_000_000)

    @model_validator(mode="after")
    def _conflict_is_for_creates(self) -> ScriptEntry:
        if self.fault == "conflict" and self.operation != "create":
            raise ValueError("fault 'conflict' only applies to operation 'create'")
        return self


class FaultSettings(BaseModel):
    """One provider's faults; every field optional, so `{}` means "behave"."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: StrictInt = Field(default=0, ge=0, le=60_000)
    error_before_rate: float = Rate
    error_after_rate: float = Rate
    lose_response_rate: float = Rate
    callback_loss_rate: float = Rate
    callback_duplicates: StrictInt = Field(default=0, ge=0, le=20)
    callback_delay_ms: StrictInt = Field(default=0, ge=0, le=3_600_000)
    callback_reorder: bool = False
    settled_amount_delta_minor: StrictInt = 0
    unregistered_msisdns: list[str] = []
    closed_accounts: list[str] = []
    seed: StrictInt | None = None
    script: list[ScriptEntry] = []

    def to_json(self) -> dict:
        return self.model_dump(mode="json", exclude_defaults=True)


@dataclass(frozen=True)
class Subject:
    """What a request is about, for matching script entries and fault lists."""

    reference: str | None = None  # ours
    provider_reference: str | None = None
    msisdn: str | None = None
    account: str | None = None


def normalize_msisdn(value: str) -> str:
    return value.strip().lstrip("+")


def normalize_account(value: str) -> str:
    return value.replace(" ", "").upper()


def _matches(match: ScriptMatch, subject: Subject) -> bool:
    if match.reference is not None and match.reference not in (subject.reference, subject.provider_reference):
        return False
    if match.msisdn is not None and (
        subject.msisdn is None or normalize_msisdn(match.msisdn) != normalize_msisdn(subject.msisdn)
    ):
        return False
    return match.account is None or (
        subject.account is not None and normalize_account(match.account) == normalize_account(subject.account)
    )


class Faults:
    def __init__(self, store: Store, providers: list[str], seed: int | None) -> None:
        self._store = store
        self._seed = seed
        self._settings = {name: FaultSettings() for name in providers}
        self._rngs = {name: self._rng(name, None) for name in providers}
        for name, saved in store.load_faults().items():
            if name in self._settings:
                self._settings[name] = settings = FaultSettings.model_validate_json(saved)
                self._rngs[name] = self._rng(name, settings.seed)

    def _rng(self, provider: str, seed: int | None) -> random.Random:
        if seed is not None:
            return random.Random(seed)
        return random.Random(f"{self._seed}:{provider}") if self._seed is not None else random.Random()

    def get(self, provider: str) -> FaultSettings:
        return self._settings[provider]

    def all(self) -> dict[str, FaultSettings]:
        return dict(self._settings)

    def replace(self, provider: str, settings: FaultSettings) -> None:
        self._settings[provider] = settings
        self._rngs[provider] = self._rng(provider, settings.seed)
        self._store.save_faults(provider, settings.model_dump_json(exclude_defaults=True))

    def clear(self) -> None:
        with self._store.tx():
            for name in self._settings:
                self._settings[name] = FaultSettings()
                self._rngs[name] = self._rng(name, None)
                self._store.save_faults(name, None)

    def decide(self, provider: str, operation: Operation, subject: Subject) -> Fault | None:
        """The fault to inject into this request, if any: a script entry first, else a rate."""
        settings = self._settings[provider]
        for entry in settings.script:
            if entry.operation == operation and _matches(entry.match, subject):
                entry.times -= 1
                if entry.times == 0:
                    settings.script.remove(entry)
                self._store.save_faults(provider, settings.model_dump_json(exclude_defaults=True))
                return entry.fault
        rng = self._rngs[provider]
        if settings.error_before_rate and rng.random() < settings.error_before_rate:
            return "error_before"
        if settings.error_after_rate and rng.random() < settings.error_after_rate:
            return "error_after"
        if settings.lose_response_rate and rng.random() < settings.lose_response_rate:
            return "lose_response"
        return None

    def planned_failure(self, provider: str, dialect: str, subject: Subject) -> str | None:
        """The reason this transfer will fail at settlement, or None if it will settle."""
        settings = self._settings[provider]
        if dialect == "bank":
            closed = {normalize_account(a) for a in settings.closed_accounts}
            return "AC04" if subject.account and normalize_account(subject.account) in closed else None
        unregistered = {normalize_msisdn(m) for m in settings.unregistered_msisdns}
        return "PAYEE_NOT_FOUND" if subject.msisdn and normalize_msisdn(subject.msisdn) in unregistered else None

    def callback_copies_lost(self, provider: str, copies: int) -> list[bool]:
        """For each copy of a callback, whether it is lost (never sent)."""
        rate, rng = self._settings[provider].callback_loss_rate, self._rngs[provider]
        return [bool(rate) and rng.random() < rate for _ in range(copies)]
