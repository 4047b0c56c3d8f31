"""The eligibility review API, as the console sees it: the queue, one case, approve and reject,
over HTTP as the signed-in reviewer (their token). The console never reads eligibility's tables.

Every failure is one of two exceptions: ``ReviewApiUnavailable`` (cannot be reached, timed out,
answered 502/503/504) and ``ReviewApiError`` (it answered with its error body: four-eyes refusals,
closed reviews, bad input).
"""

from __future__ import annotations

from typing import Any, Literal, Protocol
from urllib.parse import quote

import httpx

Action = Literal["approve", "reject"]
UNAVAILABLE_STATUSES = frozenset({502, 503, 504})


class ReviewApiUnavailable(Exception):
    pass


class ReviewApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class ReviewGateway(Protocol):
    async def list_reviews(self, token: str, status: str | None = None) -> list[dict[str, Any]]: ...

    async def get_review(self, token: str, case_id: str) -> dict[str, Any] | None: ...

    async def act(self, token: str, case_id: str, action: Action, comment: str) -> dict[str, Any]: ...

    async def aclose(self) -> None: ...


class HttpReviewGateway:
    def __init__(self, base_url: str, *, timeout_s: float = 10.0, transport: httpx.AsyncBaseTransport | None = None):
        self._client = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout_s, transport=transport,
                                         follow_redirects=False, headers={"Accept": "application/json"})

    async def list_reviews(self, token: str, status: str | None = None) -> list[dict[str, Any]]:
        params = {"limit": "200", **({"status": status} if status else {})}
        return (await self._call("GET", "/v1/reviews", token, params=params))["reviews"]

    async def get_review(self, token: str, case_id: str) -> dict[str, Any] | None:
        try:
            return await self._call("GET", f"/v1/reviews/{quote(case_id, safe='')}", token)
        except ReviewApiError as exc:
            if exc.code == "no_such_review":
                return None
            raise

    async def act(self, token: str, case_id: str, action: Action, comment: str) -> dict[str, Any]:
        return await self._call("POST", f"/v1/reviews/{quote(case_id, safe='')}/{action}", token,
                                json={"comment": comment})

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _call(self, method: str, path: str, token: str, **kwargs: Any) -> Any:
        try:
            response = await self._client.request(method, path, headers={"Authorization": f"Bearer {token}"},
                                                  **kwargs)
        except httpx.HTTPError as exc:
            raise ReviewApiUnavailable(type(exc).__name__) from exc
        if response.status_code in UNAVAILABLE_STATUSES:
            raise ReviewApiUnavailable(f"HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_success and isinstance(body, dict):
            return body
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict) and "code" in error:
            raise ReviewApiError(response.status_code, str(error["code"]), str(error.get("message", "")))
        raise ReviewApiError(response.status_code, f"http_{response.status_code}",
                             f"the review API answered HTTP {response.status_code}")
