"""Async client for the payment provider's transfer API (the provider sandbox speaks the same API).

Every transfer carries our idempotency reference, so resending a request whose response was lost
can never pay twice; that is what makes retrying whole batches safe.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, fields
from typing import Any, TypeVar

import aiohttp
from reintegra import jsonfast
from tenacity import (
    AsyncRetrying,
    RetryError,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

BATCH_SIZE = 500
ACCEPTED_STATUSES = frozenset({200, 201})
# A 409 means the reference was already used with a different body: not something a retry fixes,
# but not a verdict on the payment either, so it is reported as non-permanent for a human to resolve.
NON_PERMANENT_REJECTIONS = frozenset({409, 429})

T = TypeVar("T")


@dataclass(frozen=True)
class TransferRequest:
    reference: str
    amount_minor: int
    currency: str
    method: str
    provider: str | None = None
    msisdn: str | None = None
    bank_code: str | None = None
    account_number: str | None = None
    beneficiary_name: str | None = None


@dataclass(frozen=True)
class TransferOutcome:
    reference: str
    accepted: bool
    transfer_id: str | None
    error: str | None
    permanent: bool  # only meaningful when not accepted: True means retrying can never succeed


@dataclass(frozen=True)
class Settlement:
    cursor: int
    reference: str
    transfer_id: str
    status: str  # "settled" | "failed"
    failure_reason: str | None
    amount_minor: int
    currency: str
    settled_at: str


class ProviderError(Exception):
    """The provider could not be used as expected."""


class ProviderUnavailable(ProviderError):
    """Transient failures (5xx, 429, connection errors, timeouts) outlasted the retry budget."""


class ProviderRequestRejected(ProviderError):
    """The provider refused a whole request with a 4xx: a bug on our side, so never retried."""

    def __init__(self, status: int, body: object) -> None:
        super().__init__(f"provider rejected request with HTTP {status}: {body}")
        self.status = status
        self.body = body


class _TransientFailure(Exception):
    pass


class ProviderClient:
    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 10,
        max_attempts: int = 5,
        max_wait_s: float = 2.0,
        max_total_s: float = 20.0,
    ) -> None:
        # Retries stop starting after max_total_s, so a call gives up within roughly
        # max_total_s + timeout_s (30 s by default).
        self._base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._max_attempts = max_attempts
        self._max_wait_s = max_wait_s
        self._max_total_s = max_total_s
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ProviderClient:
        self._open_session()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send_transfers(self, requests: list[TransferRequest]) -> list[TransferOutcome]:
        outcomes: list[TransferOutcome] = []
        for chunk in _chunks(requests, BATCH_SIZE):
            outcomes.extend(await self._send_chunk(chunk))
        return outcomes

    async def settlements_after(self, cursor: int, limit: int = 500) -> tuple[list[Settlement], int]:
        async def fetch() -> Any:
            return await self._request("GET", "/v1/settlements", params={"after": cursor, "limit": limit})

        body = await self._with_retries(fetch)
        names = [f.name for f in fields(Settlement)]
        settlements = [Settlement(**{name: event[name] for name in names}) for event in body["events"]]
        return settlements, body["next_cursor"]

    async def _send_chunk(self, chunk: list[TransferRequest]) -> list[TransferOutcome]:
        payload = {"transfers": [asdict(request) for request in chunk]}

        async def send() -> list[dict]:
            results = (await self._request("POST", "/v1/transfers:batch", json=payload))["results"]
            if [r["reference"] for r in results] != [request.reference for request in chunk]:
                raise ProviderError("batch response does not match the request")
            if any(_is_transient(result["status_code"]) for result in results):
                raise _TransientFailure("transient per-item status in batch response")
            return results

        results = await self._with_retries(send)
        return [_outcome(request, result) for request, result in zip(chunk, results, strict=True)]

    async def _with_retries(self, operation: Callable[[], Awaitable[T]]) -> T:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._max_attempts) | stop_after_delay(self._max_total_s),
            wait=wait_random_exponential(multiplier=0.1, max=self._max_wait_s),
            retry=retry_if_exception_type(_TransientFailure),
        )
        try:
            return await retrying(operation)
        except RetryError as exc:
            last = exc.last_attempt
            raise ProviderUnavailable(
                f"provider unavailable after {last.attempt_number} attempts: {last.exception()}"
            ) from last.exception()

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        session = self._open_session()
        try:
            if "json" in kwargs:  # orjson: batches of hundreds of transfers are encoded on every call
                kwargs["data"] = jsonfast.dumps(kwargs.pop("json"))
                kwargs["headers"] = {**kwargs.get("headers", {}), "Content-Type": "application/json"}
            async with session.request(method, self._base_url + path, **kwargs) as response:
                body = await response.read()
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as exc:
            raise _TransientFailure(f"{type(exc).__name__}: {exc}") from exc
        if _is_transient(response.status):
            raise _TransientFailure(f"HTTP {response.status}")
        if response.status >= 400:
            raise ProviderRequestRejected(response.status, _json_or_text(body))
        try:
            return jsonfast.loads(body)
        except json.JSONDecodeError as exc:
            raise ProviderError(f"provider returned a non-JSON body with HTTP {response.status}") from exc

    def _open_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session


def _outcome(request: TransferRequest, result: dict) -> TransferOutcome:
    status = result["status_code"]
    if status in ACCEPTED_STATUSES:
        return TransferOutcome(request.reference, True, result["transfer"]["transfer_id"], None, False)
    return TransferOutcome(
        request.reference,
        accepted=False,
        transfer_id=None,
        error=_describe_error(result.get("error")),
        permanent=status not in NON_PERMANENT_REJECTIONS,
    )


def _describe_error(error: dict | None) -> str:
    if not error:
        return "unknown_error"
    details = "; ".join(f"{d.get('loc')}: {d.get('msg')}" for d in error.get("details") or [])
    return f"{error.get('error', 'unknown_error')}: {details}" if details else error.get("error", "unknown_error")


def _is_transient(status: int) -> bool:
    return status == 429 or status >= 500


def _json_or_text(body: bytes) -> Any:
    try:
        return jsonfast.loads(body)
    except json.JSONDecodeError:
        return body.decode(errors="replace")


def _chunks(items: list[TransferRequest], size: int) -> Iterator[list[TransferRequest]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
