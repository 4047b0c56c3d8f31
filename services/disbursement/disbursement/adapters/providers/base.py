"""The interface every provider adapter implements, and what goes through it.

An adapter freezes a payment order into the exact request it sends (so every attempt sends the
same bytes), creates it, looks it up by reference, and reads callbacks. It never resends on its
own: after an unknown outcome the dispatcher asks the provider first (docs/providers.md).

Every `send` / `lookup` holds one of the provider's `concurrency` slots for its whole length (its
token fetch, a 401 retry, a 409 lookup included) and ends within `deadline_s` (2 × timeout_s) of
getting it: a slow provider holds up only its own calls, and no call outlasts its lease.
"""

from __future__ import annotations

import abc
import asyncio
import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

import aiohttp
from reintegra import jsonfast
from reintegra.money import Money, MoneyError

from disbursement.domain.providers import ProviderInfo

log = logging.getLogger(__name__)

ACCEPTED = (200, 201, 202)
REFUSED_STATUSES = (400, 422)  # the provider read the request and will never execute it
# What a provider's resource that cannot be read raises while we read it.
READ_ERRORS = (ValueError, KeyError, TypeError, AttributeError, IndexError)
MALFORMED = "unreadable answer: "
# Connection errors raised before a byte of the request left: resending once cannot pay twice.
_NOT_SENT = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
_RETRY_PAUSE_S = 0.05


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
    REFUSED = "refused"  # refused at creation (400/422): nothing was executed
    NOT_FOUND = "not_found"  # the provider has nothing under that reference
    UNKNOWN = "unknown"  # may or may not have been executed (timeout, reset, 5xx, 429, unreadable 2xx)


@dataclass(frozen=True)
class ProviderStatus:
    provider: str
    reference: str
    outcome: Outcome
    transfer_id: str | None = None
    amount_minor: int | None = None  # what the provider says was (or will be) paid
    currency: str | None = None
    reason: str | None = None
    pickup_code: str | None = None
    detail: str | None = None
    raw: str | None = None  # the provider's answer, when it could not be read (set aside)


@dataclass(frozen=True)
class FrozenRequest:
    """The create request exactly as sent: path, non-secret headers and body text. Stored before
    the first call; every attempt sends these bytes."""

    reference: str
    path: str
    headers: dict[str, str]
    body: str

    def to_json(self) -> dict[str, Any]:
        return {"reference": self.reference, "path": self.path, "headers": dict(self.headers), "body": self.body}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | str | bytes) -> FrozenRequest:
        if isinstance(data, str | bytes):  # a JSON column read back as text
            data = jsonfast.loads(data)
        return cls(data["reference"], data["path"], dict(data["headers"]), data["body"])


class InvalidPayee(Exception):
    """The order cannot be sent as it is (no wallet, a bad IBAN, another currency): nothing is sent."""

    def __init__(self, reason_code: str, message: str) -> None:
        super().__init__(message)
        self.reason_code = reason_code
        self.message = message


class CallbackRejected(Exception):
    """A callback whose signature does not verify: answered 401, stored nowhere."""


class MalformedCallback(Exception):
    """A signed callback that is not a status we can read: set aside."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TransportError(Exception):
    """No answer: connection refused or reset, timeout, no access token."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any  # parsed JSON, raw text when not JSON, None when empty


class ProviderAdapter(abc.ABC):
    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        self._limit = asyncio.Semaphore(max(config.concurrency, 1))
        self._session: aiohttp.ClientSession | None = None

    @property
    def deadline_s(self) -> float:
        """How long one send or lookup may take once it has its slot (token, retry, 409 lookup)."""
        return 2 * self.config.timeout_s

    # --- the interface ---------------------------------------------------------------------
    @abc.abstractmethod
    def freeze(self, order: PaymentOrder) -> FrozenRequest:
        """The exact request for `order` (pure: the same order gives the same bytes); InvalidPayee
        when it cannot be sent."""

    async def send(self, frozen: FrozenRequest, callback_url: str | None) -> ProviderStatus:
        """Create the transfer. Never a failure on a 409 (it exists: its status is returned)."""
        return await self._bounded(frozen.reference, "create", lambda: self.create(frozen, callback_url))

    async def lookup(self, reference: str) -> ProviderStatus:
        return await self._bounded(reference, "lookup", lambda: self.find(reference))

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> ProviderStatus:
        signature = (header(headers, "X-Signature") or "").strip().lower()
        secret = self.config.callback_secret
        if not secret:
            raise CallbackRejected(f"{self.config.name} has no callback secret: no callback can be trusted")
        expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(signature.encode(), expected.encode()):
            raise CallbackRejected(f"callback to {self.config.name} without a valid signature")
        try:
            return self.status_from(self.callback_resource(jsonfast.loads(body)))
        except READ_ERRORS as exc:
            raise MalformedCallback(f"{type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- what each dialect implements ------------------------------------------------------
    @abc.abstractmethod
    async def create(self, frozen: FrozenRequest, callback_url: str | None) -> ProviderStatus:
        """The create call, inside the slot and deadline `send` holds."""

    @abc.abstractmethod
    async def find(self, reference: str) -> ProviderStatus:
        """The lookup call, inside the slot and deadline `send` or `lookup` holds."""

    @abc.abstractmethod
    def status_from(self, body: Any) -> ProviderStatus:
        """The status a provider's transfer resource describes; one of READ_ERRORS when it cannot."""

    def callback_resource(self, body: Any) -> Any:
        """The transfer resource inside a callback body (the body itself by default)."""
        return body

    # --- helpers for the dialects ------------------------------------------------------------
    def unknown(self, reference: str, detail: str) -> ProviderStatus:
        return ProviderStatus(self.config.name, reference, Outcome.UNKNOWN, detail=detail)

    def malformed(self, reference: str, error: Exception, body: Any) -> ProviderStatus:
        """An answer that cannot be read: unknown for the payment, and set aside (`raw`)."""
        raw = body if isinstance(body, str) else jsonfast.dumps_text(body)
        return ProviderStatus(self.config.name, reference, Outcome.UNKNOWN,
                              detail=f"{MALFORMED}{type(error).__name__}: {error}", raw=raw[:10_000])

    def check_order(self, order: PaymentOrder) -> str:
        """The order's amount as the provider's decimal string, once it is one this provider can pay."""
        if order.currency != self.config.currency:
            raise InvalidPayee("currency_not_supported",
                               f"{self.config.name} pays in {self.config.currency}, not {order.currency}")
        try:
            amount = Money(order.amount_minor, order.currency)
        except MoneyError as exc:
            raise InvalidPayee("amount_invalid", f"the amount cannot be paid: {exc}") from exc
        if amount.minor <= 0:
            raise InvalidPayee("amount_invalid", f"the amount {amount} is not a payment")
        return amount.format_amount()

    @staticmethod
    def create_headers(frozen: FrozenRequest, callback_url: str | None, auth: Mapping[str, str]) -> dict[str, str]:
        """The frozen request's headers, the credentials, and where to report (when we listen)."""
        headers = {**frozen.headers, **auth}
        if callback_url:
            headers["X-Callback-Url"] = callback_url
        return headers

    async def after_create(self, frozen: FrozenRequest, answer: Answer,
                           accepted: Callable[[Answer], ProviderStatus]) -> ProviderStatus:
        """What a create's answer means, the same for every dialect (docs/providers.md)."""
        reference = frozen.reference
        if answer.status in ACCEPTED:
            try:
                return accepted(answer)
            except READ_ERRORS as exc:  # accepted, but what it became is unclear: ask later
                return self.malformed(reference, exc, answer.body)
        code, message = error_text(answer.body)
        if answer.status == 409:  # it exists (whatever the body): what matters is its state
            found = await self.find(reference)
            if found.outcome == Outcome.NOT_FOUND:
                return replace(found, detail=f"answered 409 {code or ''} yet has nothing under this reference")
            return found
        if answer.status in REFUSED_STATUSES:
            return ProviderStatus(self.config.name, reference, Outcome.REFUSED,
                                  reason=code or f"http_{answer.status}", detail=message)
        return self.unknown(reference, f"create answered HTTP {answer.status} {code or ''} {message}".strip())

    def after_lookup(self, reference: str, answer: Answer, read: Callable[[Any], ProviderStatus]) -> ProviderStatus:
        if answer.status == 404:
            return ProviderStatus(self.config.name, reference, Outcome.NOT_FOUND)
        if answer.status != 200:
            code, message = error_text(answer.body)
            return self.unknown(reference, f"lookup answered HTTP {answer.status} {code or ''} {message}".strip())
        try:
            return read(answer.body)
        except READ_ERRORS as exc:
            return self.malformed(reference, exc, answer.body)

    async def request(self, method: str, path: str, *, headers: Mapping[str, str] | None = None,
                      body: str | None = None, params: Mapping[str, str] | None = None) -> Answer:
        """One HTTP call within the provider's timeouts. No answer raises TransportError; a
        connection that could not even be opened is tried once more (nothing was sent)."""
        session = self._open()
        sent_headers = dict(headers or {})
        if body is not None:
            sent_headers.setdefault("Content-Type", "application/json")
        data = body.encode() if body is not None else None
        url = self.config.base_url.rstrip("/") + path
        for attempt in (1, 2):
            try:
                async with session.request(method, url, headers=sent_headers, data=data, params=params) as response:
                    return _answer(response.status, await response.read())
            except _NOT_SENT as exc:
                if attempt == 2:
                    raise TransportError(_describe(exc)) from exc
                await asyncio.sleep(_RETRY_PAUSE_S)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                raise TransportError(_describe(exc)) from exc
        raise AssertionError("unreachable")

    async def _bounded(self, reference: str, what: str,
                       call: Callable[[], Awaitable[ProviderStatus]]) -> ProviderStatus:
        async with self._limit:
            try:
                async with asyncio.timeout(self.deadline_s):
                    return await call()
            except TimeoutError:
                return self.unknown(reference, f"{what}: no answer from {self.config.name} within {self.deadline_s:g} s")
            except TransportError as exc:
                return self.unknown(reference, f"{what}: {exc}")
            except Exception as exc:  # a bug must not read as a refusal: the outcome is unknown
                log.exception("%s %s of %s failed", self.config.name, what, reference)
                return self.unknown(reference, f"{what}: {type(exc).__name__}: {exc}")

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=self.config.timeout_s, sock_connect=self.config.connect_timeout_s)
            connector = aiohttp.TCPConnector(limit=max(self.config.concurrency, 1))
            self._session = aiohttp.ClientSession(timeout=timeout, connector=connector)
        return self._session


def _answer(status: int, raw: bytes) -> Answer:
    if not raw.strip():
        return Answer(status, None)
    try:
        return Answer(status, jsonfast.loads(raw))
    except ValueError:
        return Answer(status, raw.decode(errors="replace"))


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header whatever its case (aiohttp's CIMultiDict or a plain dict)."""
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
        details = body.get("details")
        if isinstance(details, list) and details:
            message = "; ".join(f"{d.get('loc')}: {d.get('msg')}" if isinstance(d, dict) else str(d) for d in details)
        return (str(code) if code else None), str(message)
    return None, str(body or "")[:300]


class KeyedAdapter(ProviderAdapter):
    """A dialect authenticated by a static key on every call (bank, pickup), whose create answers
    with the transfer resource."""

    @abc.abstractmethod
    def auth_headers(self) -> dict[str, str]: ...

    async def create(self, frozen: FrozenRequest, callback_url: str | None) -> ProviderStatus:
        answer = await self.request("POST", frozen.path, body=frozen.body,
                                    headers=self.create_headers(frozen, callback_url, self.auth_headers()))
        return await self.after_create(frozen, answer, lambda a: self.status_from(a.body))
