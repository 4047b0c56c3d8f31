"""Per-request facts every part of the console asks for: the session and the locale.

The session is loaded once per request (``current_session``, async) and cached on
``request.state``; synchronous code (``render``) reads the cached one.
"""

from __future__ import annotations

from fastapi import Request

from . import cookies
from .i18n import DEFAULT_LOCALE, negotiate, supported_locale
from .runtime import console
from .sessions import ConsoleSession

_NOT_LOADED = object()


async def current_session(request: Request) -> ConsoleSession | None:
    cached = getattr(request.state, "console_session", _NOT_LOADED)
    if cached is not _NOT_LOADED:
        return cached
    runtime = console(request)
    session = None
    # A request proves who it is one way only: with an Authorization header (an API call, exempt
    # from CSRF checks) the session cookie is ignored.
    if runtime.sessions is not None and "authorization" not in request.headers:
        session = await runtime.sessions.load(cookies.read_cookie(request, runtime.settings, cookies.SESSION))
    request.state.console_session = session
    return session


def cached_session(request: Request) -> ConsoleSession | None:
    cached = getattr(request.state, "console_session", None)
    return cached if isinstance(cached, ConsoleSession) else None


def request_locale(request: Request) -> str:
    """The user's choice (session, else the pre-sign-in cookie), else Accept-Language, else English."""
    session = cached_session(request)
    chosen = session.locale if session else None
    if chosen is None:
        chosen = cookies.read_cookie(request, console(request).settings, cookies.LANGUAGE)
    return (supported_locale(chosen) or negotiate(request.headers.get("accept-language"))
            or DEFAULT_LOCALE)


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def wants_json(request: Request) -> bool:
    """API callers get JSON errors; browsers get pages."""
    if request.url.path.startswith("/api/") or "authorization" in request.headers:
        return True
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def action_of(request: Request) -> str:
    """What the audit trail records: method and path, never the query string (it may carry data)."""
    return f"{request.method} {request.url.path}"
