"""HTTP plumbing shared by the dialects: JSON in and out, headers, lost responses, timestamps."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from aiohttp import web
from pydantic import StringConstraints, ValidationError
from yarl import URL

from ..catalogue import Provider
from ..context import SANDBOX, Sandbox

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=140)]
Reference = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")]


class BadRequest(Exception):
    """A request the provider refuses before doing anything; `details` as in a 422."""

    def __init__(self, details: list[dict[str, str]]) -> None:
        super().__init__(details[0]["msg"] if details else "invalid request")
        self.details = details


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def not_found(error: str, message: str) -> web.HTTPNotFound:
    return web.HTTPNotFound(text=orjson.dumps({"error": error, "message": message}).decode(),
                            content_type="application/json")


def sandbox(request: web.Request) -> Sandbox:
    return request.app[SANDBOX]


def provider_for(request: web.Request, dialect: str) -> Provider:
    """The provider named in the path, if it speaks `dialect`; else a JSON 404."""
    name = request.match_info["name"]
    provider = sandbox(request).providers.get(name)
    if provider is None:
        raise not_found("unknown_provider", f"no provider named {name!r}")
    if provider.dialect != dialect:
        raise not_found("not_found", f"{name} speaks the {provider.dialect} dialect")
    return provider


async def read_json(request: web.Request) -> tuple[Any, str]:
    """The parsed body and a hash of its canonical form (what "the same body" means)."""
    raw = await request.read()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest([{"loc": "body", "msg": "body is not valid JSON", "type": "json_invalid"}]) from exc
    canonical = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    return body, hashlib.sha256(canonical).hexdigest()


def callback_url(request: web.Request) -> str | None:
    raw = request.headers.get("X-Callback-Url")
    if raw is None or raw == "":
        return None
    try:
        url = URL(raw)
    except ValueError:
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise BadRequest([{"loc": "header.X-Callback-Url", "msg": "must be an absolute http(s) URL",
                           "type": "url_parsing"}])
    return raw


def required_header(request: web.Request, name: str, max_length: int = 255) -> str:
    value = request.headers.get(name, "").strip()
    if not value or len(value) > max_length:
        raise BadRequest([{"loc": f"header.{name}", "msg": f"{name} is required (1 to {max_length} characters)",
                           "type": "missing"}])
    return value


def error_details(error: ValidationError) -> list[dict[str, str]]:
    return [
        {"loc": ".".join(str(part) for part in item["loc"]) or "body", "msg": item["msg"], "type": item["type"]}
        for item in error.errors(include_url=False, include_context=False, include_input=False)
    ]


def lose_response(request: web.Request) -> web.Response:
    """Close the connection without an answer: the client cannot tell whether it worked."""
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=500)  # never reaches the client


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def random_digits(count: int) -> str:
    return str(secrets.randbelow(9 * 10 ** (count - 1)) + 10 ** (count - 1))


def random_hex(count: int) -> str:
    return secrets.token_hex((count + 1) // 2)[:count]
