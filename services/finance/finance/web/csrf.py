"""CSRF protection, applied to every route as an app-wide dependency (``verify_csrf``).

Every non-GET request carries the token: a hidden ``csrf_token`` field in forms, the
``X-CSRF-Token`` header in htmx requests (``static/console.js`` copies it from the page's meta
tag). Signed in, the token is the session's own secret; before sign-in (login and language
forms) it is derived from a random cookie, keyed with the console secret. A request whose
Origin (or, without one, Referer) is another site's is refused whatever its token; so is
``Sec-Fetch-Site: cross-site|same-site``. ``Origin: null`` counts as no Origin: browsers send it
for same-origin posts under the console's ``Referrer-Policy: no-referrer``. Requests with an
``Authorization`` header are API calls with a bearer token: browsers never add one on their own,
so they need no token (and their session cookie is ignored). Refusals are 403 and audited.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from fastapi import Request
from reintegra.auth import record_audit

from . import cookies
from .refusals import CsrfRefused
from .request_context import action_of, cached_session, current_session
from .runtime import client_ip, console

FIELD = "csrf_token"
HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
REFUSED = "csrf_refused"


def _anonymous_token(secret: bytes, cookie_value: str) -> str:
    return hmac.new(secret, b"anonymous-csrf:" + cookie_value.encode(), hashlib.sha256).hexdigest()


def csrf_token(request: Request) -> tuple[str, str | None]:
    """The token for this request's forms, and a new anonymous cookie value to set (or None)."""
    session = cached_session(request)
    if session is not None:
        return session.csrf_secret, None
    runtime = console(request)
    cookie_value = cookies.read_cookie(request, runtime.settings, cookies.ANONYMOUS_CSRF)
    new_value = None
    if not cookie_value or len(cookie_value) > 100:
        cookie_value = new_value = getattr(request.state, "new_anonymous_csrf", None) or secrets.token_urlsafe(32)
        request.state.new_anonymous_csrf = new_value  # one value per request, however often asked
    return _anonymous_token(runtime.secret, cookie_value), new_value


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower() if parts.scheme and parts.netloc else None


def foreign_origin(request: Request) -> str | None:
    """Why the request comes from another site, or None. Neither Origin nor Referer: the token decides."""
    site = request.headers.get("sec-fetch-site")
    if site in ("cross-site", "same-site"):
        return f"Sec-Fetch-Site {site}"
    own = {f"{request.url.scheme}://{request.url.netloc}".lower(),
           *(o.rstrip("/").lower() for o in console(request).settings.allowed_origins)}
    origin = request.headers.get("origin")
    # "null": what browsers send for a same-origin form post under Referrer-Policy: no-referrer
    # (and for sandboxed or data: documents, which Sec-Fetch-Site above names cross-site).
    if origin is not None and origin != "null":
        return None if _origin(origin) in own else "foreign Origin"
    referer = request.headers.get("referer")
    if referer is not None:
        return None if _origin(referer) in own else "foreign Referer"
    return None


async def _supplied_token(request: Request) -> str | None:
    header = request.headers.get(HEADER)
    if header:
        return header
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        value = (await request.form()).get(FIELD)  # cached: the route's Form() reads the same
        return value if isinstance(value, str) else None
    return None


async def verify_csrf(request: Request) -> None:
    if request.method in SAFE_METHODS or "authorization" in request.headers:
        return
    session = await current_session(request)
    reason = foreign_origin(request)
    if reason is None:
        expected, _ = csrf_token(request)
        supplied = await _supplied_token(request)
        if not supplied:
            reason = "no CSRF token"
        elif not hmac.compare_digest(supplied.encode(), expected.encode()):
            reason = "wrong CSRF token"
    if reason is None:
        return
    pool = console(request).pool
    if pool is not None:
        await record_audit(pool, session.principal.username if session else None, action_of(request), REFUSED,
                           {"reason": reason}, client_ip(request))
    raise CsrfRefused()
