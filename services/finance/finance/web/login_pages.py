"""Sign-in, sign-out and the language switch.

A sign-in attempt is throttled (``throttle``), answered alike for an unknown user and a wrong
password, recorded in ``finance.login_attempts`` and audited (actor: the username tried; never the
password). A success starts a new session (any session the browser had is ended: no fixation)
and, for a reviewer, issues the review API token the console acts with on their behalf.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from urllib.parse import parse_qs, quote, urlsplit

import asyncpg
from fastapi import APIRouter, Form, Request
from reintegra.auth import REVIEWER, AuthError, IssuedToken, Principal, issue_api_token, record_audit, verify_password
from starlette.responses import RedirectResponse, Response

from . import cookies
from .i18n import supported_locale, translate
from .refusals import PageRefused
from .rendering import redirect, render, safe_next, set_flash
from .request_context import action_of, current_session, request_locale
from .runtime import client_ip, console, get_pool, get_sessions
from .throttle import username_key

router = APIRouter()

REVIEW_TOKEN_NAME = "console session"
MAX_FIELD_LENGTH = 2048  # longer than any username or password the auth package accepts


@router.get("/login")
async def login_page(request: Request, next: str = "/") -> Response:
    if await current_session(request) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return render(request, "login.html", {"next": safe_next(next), "username": "", "message": None})


@router.post("/login")
async def sign_in(request: Request, username: str = Form("", max_length=MAX_FIELD_LENGTH),
                  password: str = Form("", max_length=MAX_FIELD_LENGTH), next: str = Form("/")) -> Response:
    runtime, sessions = console(request), get_sessions(request)
    next_path, key, remote, action = safe_next(next), username_key(username), client_ip(request), action_of(request)
    refusal = cookie_value = None
    async with get_pool(request).acquire() as conn, conn.transaction():
        await runtime.throttle.serialise(conn, key)
        lock = await runtime.throttle.lock(conn, key, remote)
        if lock is not None:
            await record_audit(conn, key, action, "throttled", {"locked_by": lock.by}, remote)
            refusal = (429, "login.throttled", {"minutes": lock.minutes_left(datetime.now(UTC))})
        else:
            principal = await verify_password(conn, username.strip(), password)
            await runtime.throttle.record(conn, key, remote, principal is not None)
            if principal is None:
                await record_audit(conn, key, action, "refused", {"reason": "wrong username or password"}, remote)
                refusal = (401, "login.failed", {})
            else:
                review_token = await _review_token(conn, principal)
                cookie_value, _ = await sessions.start(conn, principal, locale=_chosen_locale(request),
                                                       review_token=review_token)
                await record_audit(conn, principal.username, action, "ok",
                                   {"review_token": review_token is not None}, remote)
    if refusal is not None:
        status, message_key, fields = refusal
        message = translate(request_locale(request), message_key, **fields)
        return render(request, "login.html", {"next": next_path, "username": username.strip()[:64],
                                              "message": message}, status_code=status)
    await sessions.end(cookies.read_cookie(request, runtime.settings, cookies.SESSION))  # the old one, if any
    response = RedirectResponse(next_path, status_code=303)
    cookies.set_cookie(response, runtime.settings, cookies.SESSION, cookie_value)
    cookies.delete_cookie(response, runtime.settings, cookies.ANONYMOUS_CSRF)
    return response


async def _review_token(conn: asyncpg.Connection, principal: Principal) -> IssuedToken | None:
    if not principal.has_any_role(REVIEWER):
        return None
    with contextlib.suppress(AuthError):  # disabled meanwhile: the session will not load either
        return await issue_api_token(conn, principal.username, REVIEW_TOKEN_NAME)
    return None


def _chosen_locale(request: Request) -> str | None:
    return supported_locale(cookies.read_cookie(request, console(request).settings, cookies.LANGUAGE))


@router.post("/logout")
async def sign_out(request: Request) -> Response:
    runtime = console(request)
    session = await current_session(request)
    await get_sessions(request).end(cookies.read_cookie(request, runtime.settings, cookies.SESSION))
    if session is not None:
        await record_audit(get_pool(request), session.principal.username, action_of(request), "ok", {},
                           client_ip(request))
    response = redirect(request, "/login")
    set_flash(request, response, "login.signed_out")
    cookies.delete_cookie(response, runtime.settings, cookies.SESSION)
    return response


@router.post("/language")
async def switch_language(request: Request, lang: str = Form(...), next: str = Form("/")) -> Response:
    locale = supported_locale(lang)
    if locale is None:
        raise PageRefused(400, "400", "unknown language")
    session = await current_session(request)
    if session is not None:
        await get_sessions(request).set_locale(session, locale)
    response = RedirectResponse(_back_to(next), status_code=303)
    cookies.set_cookie(response, console(request).settings, cookies.LANGUAGE, locale,
                       max_age=cookies.LANGUAGE_MAX_AGE_S)
    return response


def _back_to(next_path: str) -> str:
    """Where the switch was used; the sign-in page keeps its own ``next`` (safe_next refuses /login)."""
    parts = urlsplit(next_path or "")
    if parts.path != "/login" or parts.netloc or parts.scheme:
        return safe_next(next_path)
    inner = safe_next(parse_qs(parts.query).get("next", ["/"])[0])
    return "/login" + (f"?next={quote(inner, safe='/')}" if inner != "/" else "")
