"""The interface every provider adapter implements, and what goes through it.

An adapter freezes a payment order into the exact request it sends (so every attempt sends the
same bytes), creates it, looks it up by reference, and reads callbacks. It never resends on its
own: after an unknown outcome the dispatcher asks the provider first (docs/providers.md).
"""

from __future__ import annotations

import abc
import asyncio
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import aiohttp
from reintegra import jsonfast

from disbursement.domain.providers import ProviderInfo


@dataclass(frozen=True)
class ProviderConfig:
    name: str
    kind: str  # mobile_money | bank_transfer | cash_pickup
    dialect: str  # momo | bank | pickup
    country: str
    currency: str
    base_url: str
    api_user: str | None = None
    api_key: str | None = field(default=None, repr=False)
    subscription_key: str | None = field(default=None, repr=False)
    callback_secret: str | None = field(default=None, repr=False)
    concurrency: int = 16
    timeout_s: float = 5.0
    connect_timeout_s: float = 2.0

    def info(self) -> ProviderInfo:
        return ProviderInfo(self.name, self.kind, self.country, self.currency)


@dataclass(frozen=True)
class Payee:
    name: str | None = None
    msisdn: str | None = None
    iban: str | None = None
    account_number: str | None = None
    bank_code: str | None = None
    bic: str | None = None


@dataclass(frozen=True)
class PaymentOrder:
    reference: str
    amount_minor: int
    currency: str
    payee: Payee
    note: str


class Outcome(StrEnum):
    PENDING = "pending"  # accepted, not final
    SETTLED = "settled"
    FAILED = "failed"  # a final failure the provider reported after accepting it
    REFUSED = "refused"  # refused at creation: nothing was executed
    NOT_FOUND = "not_found"  # the provider has nothing under that reference
    UNKNOWN = "unknown"  # may or may not have been executed (timeout, reset, 5xx, 429)


@dataclass(frozen=True)
class ProviderStatus:
    provider: str
    reference: str
    outcome: Outcome
    transfer_id: str | None = None
    amount_minor: int | None = None
    currency: str | None = None
    reason: str | None = None
    pickup_code: str | None = None
    detail: str | None = None


@dataclass(frozen=True)
class FrozenRequest:
    """The create request exactly as sent: path, non-secret headers and body text."""

    reference: str
    path: str
    headers: dict[str, str]
    body: str

    def to_json(self) -> dict[str, Any]:
        return {"reference": self.reference, "path": self.path, "headers": dict(self.headers), "body": self.body}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FrozenRequest:
        return cls(data["reference"], data["path"], dict(data["headers"]), data["body"])


class InvalidPayee(Exception):
    """The order cannot be sent as it is (no wallet, a bad IBAN, another currency): nothing is sent."""

    def __init__(self, reason_code: str, message: str) -> None:
        super().__init__(message)
        self.reason_code = reason_code


class CallbackRejected(Exception):
    """A callback whose signature does not verify: answered 401, stored nowhere."""


class MalformedCallback(Exception):
    """A signed callback that is not a status we can read: set aside."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any  # parsed JSON, raw text when not JSON, None when empty


class ProviderAdapter(abc.ABC):
    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        self._limit = asyncio.Semaphore(max(config.concurrency, 1))
        self._session: aiohttp.ClientSession | None = None

    # --- the interface ---------------------------------------------------------------------
    @abc.abstractmethod
    def freeze(self, order: PaymentOrder) -> FrozenRequest: ...

    @abc.abstractmethod
    async def send(self, frozen: FrozenRequest, callback_url: str | None) -> ProviderStatus: ...

    @abc.abstractmethod
    async def lookup(self, reference: str) -> ProviderStatus: ...

    @abc.abstractmethod
    def status_from(self, body: Any) -> ProviderStatus:
        """The status a provider's transfer resource (or callback body) describes; ValueError when
        it cannot be read."""

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> ProviderStatus:
        signature = _header(headers, "X-Signature") or ""
        expected = "sha256=" + hmac.new((self.config.callback_secret or "").encode(), body, hashlib.sha256).hexdigest()
        if not self.config.callback_secret or not hmac.compare_digest(signature.encode(), expected.encode()):
            raise CallbackRejected(f"callback to {self.config.name} without a valid signature")
        try:
            return self.status_from(self.callback_resource(jsonfast.loads(body)))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise MalformedCallback(f"{type(exc).__name__}: {exc}") from exc

    def callback_resource(self, body: Any) -> Any:
        """The transfer resource inside a callback body (the body itself by default)."""
        return body

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- helpers for the dialects ------------------------------------------------------------
    def unknown(self, reference: str, detail: str) -> ProviderStatus:
        return ProviderStatus(self.config.name, reference, Outcome.UNKNOWN, detail=detail)

    async def request(self, method: str, path: str, *, headers: Mapping[str, str] | None = None,
                      body: str | None = None, params: Mapping[str, str] | None = None) -> Answer:
        """One HTTP call within the provider's concurrency limit and timeouts. Transport failures
        raise TransportError (the outcome of a create is then unknown)."""
        session = self._open()
        sent_headers = dict(headers or {})
        if body is not None:
            sent_headers.setdefault("Content-Type", "application/json")
        async with self._limit:
            try:
                async with session.request(method, self.config.base_url.rstrip("/") + path, headers=sent_headers,
                                           data=body.encode() if body is not None else None,
                                           params=params) as response:
                    raw = await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                raise TransportError(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__) from exc
        if not raw:
            return Answer(status, None)
        try:
            return Answer(status, jsonfast.loads(raw))
        except ValueError:
            return Answer(status, raw.decode(errors="replace"))

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=self.config.timeout_s, connect=self.config.connect_timeout_s)
            connector = aiohttp.TCPConnector(limit=max(self.config.concurrency, 1))
            self._session = aiohttp.ClientSession(timeout=timeout, connector=connector)
        return self._session


class TransportError(Exception):
    """No answer: connection refused or reset, timeout."""


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)


def error_text(body: Any) -> tuple[str | None, str]:
    """(code, message) of a provider's error body, whatever its dialect."""
    if isinstance(body, dict):
        code = body.get("code") or body.get("error")
        message = body.get("message") or ""
        if body.get("details"):
            message = "; ".join(f"{d.get('loc')}: {d.get('msg')}" for d in body["details"] if isinstance(d, dict))
        return (str(code) if code else None), str(message)
    return None, str(body or "")[:300]


def is_transient(status: int) -> bool:
    return status == 429 or status >= 500
