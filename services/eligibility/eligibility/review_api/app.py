"""FastAPI app of the review queue: list, show, approve, reject (all JSON, role ``reviewer``).

    GET  /healthz                          {"status": "ok"}               (no token)
    GET  /v1/reviews?status=open&limit=100 {"reviews": [review, ...]}
    GET  /v1/reviews/{case_id}             review with its actions, plan and the person's other approved cases
    POST /v1/reviews/{case_id}/approve     {"comment": "..."}  ->  the updated review
    POST /v1/reviews/{case_id}/reject      {"comment": "..."}  ->  the updated review

Every error is ``{"error": {"code", "message"}}`` with the matching status: 401/403 from the
auth dependency, 403 for a four-eyes refusal (``reviewer_is_plan_author``, ``same_reviewer_twice``),
404 ``no_such_review``, 409 ``review_closed``, 422 for a malformed body, 503 when Postgres stays
unavailable. Errors never echo what the client sent (a comment may name a person), and the log
has one line per action: actor, case, action, outcome.
"""

import asyncio
import logging
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

import asyncpg
from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from reintegra.auth import REVIEWER, apply_auth_migrations
from reintegra.auth.http import add_auth_error_handler, require_roles
from reintegra.db import create_pool
from reintegra.errors import is_transient
from reintegra.settings import Settings, load_settings
from starlette.exceptions import HTTPException as StarletteHTTPException
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from eligibility import review_service
from eligibility.app import load_programmes
from eligibility.domain.review import ReviewRefused

log = logging.getLogger("eligibility.review_api")

SCHEMA = "eligibility"
# The eligibility service applies the schema's migrations when it starts; the API waits for them
# (bounded) instead of crashing when both start at once.
SCHEMA_WAIT_S = 120.0
SCHEMA_POLL_S = 0.5
# A serialization failure or deadlock between two reviewers acting at once: retried a few times.
ACTION_ATTEMPTS = 4

Action = Literal["approve", "reject"]
CaseId = Annotated[str, Path(min_length=1, max_length=200)]
T = TypeVar("T")


class ReviewComment(BaseModel):
    """Body of approve and reject: why, in the reviewer's words (stored with the audit row)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    comment: str = Field(min_length=1, max_length=2000)


@dataclass
class _Runtime:
    settings: Settings
    pool: asyncpg.Pool | None = None
    programmes: Any = None


class StartupError(RuntimeError):
    pass


# --------------------------------------------------------------------------- errors
def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None,
                   **extra: Any) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, **extra}}, status_code=status, headers=headers)


_HTTP_CODES = {400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 409: "conflict", 413: "too_large", 415: "unsupported_media_type",
               422: "invalid_request", 429: "too_many_requests", 503: "unavailable"}


async def _http_exception(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """401/403 from the auth dependency, 404/405 from routing: all in the one error shape."""
    detail = exc.detail
    if isinstance(detail, dict) and isinstance(detail.get("error"), dict):
        detail = detail["error"]
    if isinstance(detail, dict) and "code" in detail:
        code, message = str(detail["code"]), str(detail.get("message", ""))
    else:
        code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        message = detail if isinstance(detail, str) else code.replace("_", " ")
    return error_response(exc.status_code, code, message, headers=getattr(exc, "headers", None))


def _field(loc: tuple | list) -> str:
    return ".".join(str(part) for part in loc) or "request"


def _invalid(errors: Sequence[Mapping[str, Any]], prefix: tuple = ()) -> JSONResponse:
    # Only where and what: pydantic's `input` (and `ctx`) would echo the client's data back.
    details = [{"field": _field((*prefix, *e.get("loc", ()))), "message": _message(e)} for e in errors]
    message = "; ".join(f"{d['field']}: {d['message']}" for d in details) or "invalid request"
    return error_response(422, "invalid_request", message, details=details)


def _message(error: Mapping[str, Any]) -> str:
    if error.get("type") == "json_invalid":
        return "the body is not valid JSON"
    if error.get("type") == "model_type":
        return 'expected a JSON object such as {"comment": "..."}'
    return str(error.get("msg", "invalid"))


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    return _invalid(exc.errors())


def _log_failure(what: str, exc: BaseException) -> None:
    """The exception's type and where it happened, never its message (it may quote a row)."""
    frames = "".join(traceback.format_tb(exc.__traceback__))
    log.error("%s failed: %s\n%s", what, type(exc).__name__, frames)


# --------------------------------------------------------------------------- start-up
def _startup_transient(exc: BaseException) -> bool:
    if is_transient(exc):
        return True
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg comes with the migrations
        return False
    return isinstance(exc, psycopg.OperationalError)


async def _wait_for_reviews_table(pool: asyncpg.Pool, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    logged = False
    while True:
        try:
            found = await pool.fetchval("SELECT to_regclass($1)::text", f"{SCHEMA}.reviews")
        except Exception as exc:  # noqa: BLE001 - transient ones are waited out, the rest raised
            if not _startup_transient(exc):
                raise
            found = None
        if found:
            return
        if time.monotonic() >= deadline:
            raise StartupError(f"{SCHEMA}.reviews does not exist after {timeout_s:.0f} s: "
                               "is the eligibility service running against this database?")
        if not logged:
            log.info("waiting for %s.reviews (the eligibility service applies its migrations)", SCHEMA)
            logged = True
        await asyncio.sleep(SCHEMA_POLL_S)


async def _start(runtime: _Runtime) -> None:
    settings = runtime.settings
    runtime.programmes = load_programmes(settings.programme_config)  # a bad file stops us before any wait
    deadline = time.monotonic() + SCHEMA_WAIT_S
    async for attempt in AsyncRetrying(
        retry=retry_if_exception(_startup_transient),
        stop=lambda state: time.monotonic() >= deadline,
        wait=wait_exponential_jitter(initial=0.2, max=3.0),
        reraise=True,
    ):
        with attempt:
            await apply_auth_migrations(settings.database_url)
            runtime.pool = await create_pool(settings.database_url, SCHEMA, settings.db_pool_max)
    await _wait_for_reviews_table(runtime.pool, max(1.0, deadline - time.monotonic()))
    log.info("review API ready (schema %s, %d programme(s))", SCHEMA, len(runtime.programmes))


# --------------------------------------------------------------------------- the app
def create_app(settings: Settings | None = None) -> FastAPI:
    runtime = _Runtime(settings or load_settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            await _start(runtime)
            yield
        finally:
            if runtime.pool is not None:
                await runtime.pool.close()
                runtime.pool = None

    app = FastAPI(title="Reintegra eligibility review API", version="1", lifespan=lifespan,
                  docs_url=None, redoc_url=None)  # no unauthenticated pages beyond /healthz
    app.state.runtime = runtime
    add_auth_error_handler(app)  # 401/403 refusals of require_roles, audited by it
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(RequestValidationError, _validation_error)

    def get_pool() -> asyncpg.Pool:
        if runtime.pool is None:
            raise StarletteHTTPException(503, "the review API is starting")
        return runtime.pool

    reviewer = Depends(require_roles(get_pool, REVIEWER))

    async def in_transaction(fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(is_transient),
            stop=stop_after_attempt(ACTION_ATTEMPTS),
            wait=wait_exponential_jitter(initial=0.05, max=1.0),
            reraise=True,
        ):
            with attempt:
                async with get_pool().acquire() as conn, conn.transaction():
                    return await fn(conn)
        raise AssertionError("unreachable")  # pragma: no cover

    def failed(what: str, exc: Exception) -> JSONResponse:
        if isinstance(exc, ReviewRefused):
            return error_response(exc.http_status, exc.code, exc.message)
        _log_failure(what, exc)
        if is_transient(exc):
            return error_response(503, "unavailable", "the database is busy or unreachable; retry shortly")
        return error_response(500, "internal_error", "the request failed; the review API's log says where")

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/reviews")
    async def list_reviews(
        principal: Any = reviewer,
        status: str | None = Query(None, max_length=64, description="open, awaiting_second_approval, approved, "
                                   "rejected, superseded, withdrawn; default: open and awaiting_second_approval"),
        limit: int = Query(100, ge=1, le=1000),
    ) -> Any:
        try:
            reviews = await in_transaction(
                lambda conn: review_service.list_reviews(conn, status=status, limit=limit))
        except Exception as exc:  # noqa: BLE001 - answered in the error shape, logged without data
            return failed("list reviews", exc)
        return {"reviews": reviews}

    @app.get("/v1/reviews/{case_id}")
    async def get_review(case_id: CaseId, principal: Any = reviewer) -> Any:
        try:
            review = await in_transaction(lambda conn: review_service.get_review(conn, case_id))
        except Exception as exc:  # noqa: BLE001
            return failed("show review", exc)
        if review is None:
            return error_response(404, "no_such_review", "no review exists for this case")
        return review

    async def act(case_id: str, action: Action, request: Request, principal: Any) -> Any:
        # The body is read after the auth dependency ran: an anonymous caller learns nothing
        # about what a valid body looks like.
        try:
            body = ReviewComment.model_validate_json(await request.body() or b"null")
        except ValidationError as exc:
            return _invalid(exc.errors(), prefix=("body",))

        def apply(conn: asyncpg.Connection) -> Awaitable[dict]:
            return review_service.apply_review_action(
                conn, case_id, action, principal, body.comment, runtime.programmes)

        actor = getattr(principal, "username", "?")
        try:
            review = await in_transaction(apply)
        except Exception as exc:  # noqa: BLE001
            outcome = exc.code if isinstance(exc, ReviewRefused) else f"error:{type(exc).__name__}"
            log.info("review action actor=%s case_id=%s action=%s outcome=%s", actor, case_id, action, outcome)
            return failed(f"{action} review", exc)
        log.info("review action actor=%s case_id=%s action=%s outcome=%s",
                 actor, case_id, action, (review or {}).get("status"))
        return review

    # The body is the ReviewComment model, parsed in `act` (after authentication).
    body_doc = {"requestBody": {"required": True, "content": {"application/json": {
        "schema": ReviewComment.model_json_schema()}}}}

    @app.post("/v1/reviews/{case_id}/approve", openapi_extra=body_doc)
    async def approve(case_id: CaseId, request: Request, principal: Any = reviewer) -> Any:
        return await act(case_id, "approve", request, principal)

    @app.post("/v1/reviews/{case_id}/reject", openapi_extra=body_doc)
    async def reject(case_id: CaseId, request: Request, principal: Any = reviewer) -> Any:
        return await act(case_id, "reject", request, principal)

    return app
