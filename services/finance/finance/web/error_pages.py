"""Refusals and failures as the 403/404/500 pages (or JSON for API callers); never a stack trace.

Unexpected exceptions are logged with their type and frames only: an exception's message may
quote a row (a beneficiary's name), and the log must not.
"""

from __future__ import annotations

import logging
import traceback
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from reintegra.auth.http import add_auth_error_handler, error_body
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import RedirectResponse, Response

from .refusals import LoginRequired, PageRefused
from .rendering import render
from .request_context import current_session, is_htmx, wants_json

log = logging.getLogger("finance.web")

_CODES = {400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
          405: "method_not_allowed", 413: "too_large", 422: "invalid_request", 429: "too_many_requests",
          500: "internal_error", 503: "unavailable"}
PAGE_STATUSES = frozenset({400, 403, 404, 405, 422, 500, 503})  # error.title.<status> exists for these


async def error_response(request: Request, status: int, code: str | None = None, message: str = "") -> Response:
    code = code or _CODES.get(status, f"http_{status}")
    if wants_json(request):
        return JSONResponse(error_body(code, message or code.replace("_", " ")), status_code=status)
    try:
        await current_session(request)  # the nav and language of the signed-in user, when there is one
    except Exception as exc:  # noqa: BLE001 - the error page must render even with Postgres down
        log.warning("error page without session: %s", type(exc).__name__)
        request.state.console_session = None
    page = code if code == "csrf" else str(status if status in PAGE_STATUSES else 500)
    return render(request, "error.html", {"status": status, "page": page}, status_code=status)


async def _login_required(request: Request, exc: LoginRequired) -> Response:
    url = "/login?next=" + quote(exc.next_path, safe="/")
    if is_htmx(request):  # a fragment request: make the whole page go to the sign-in page
        return Response(status_code=401, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


async def _page_refused(request: Request, exc: PageRefused) -> Response:
    return await error_response(request, exc.status, exc.code if exc.code == "csrf" else None, exc.message)


async def _http_exception(request: Request, exc: StarletteHTTPException) -> Response:
    message = exc.detail if isinstance(exc.detail, str) else ""
    response = await error_response(request, exc.status_code, None, message)
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


async def _invalid_request(request: Request, exc: RequestValidationError) -> Response:
    # Where and what only: pydantic's `input` would echo what the client sent.
    fields = sorted({".".join(str(part) for part in e.get("loc", ())) for e in exc.errors()})
    return await error_response(request, 422, "invalid_request", "invalid " + ", ".join(fields))


async def server_error(request: Request, exc: BaseException) -> Response:
    frames = "".join(traceback.format_tb(exc.__traceback__))
    log.error("%s %s failed: %s\n%s", request.method, request.url.path, type(exc).__name__, frames)
    return await error_response(request, 500, "internal_error", "the console could not answer; its log says where")


def install_error_handlers(app: FastAPI) -> None:
    add_auth_error_handler(app)  # api_principal's 401/403 as {"error": {"code", "message"}}
    app.add_exception_handler(LoginRequired, _login_required)
    app.add_exception_handler(PageRefused, _page_refused)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(RequestValidationError, _invalid_request)
