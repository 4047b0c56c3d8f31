"""``render`` and ``redirect_after_post``: how every console page answers.

    return render(request, "finance_runs.html", {"runs": runs})
    return redirect_after_post(request, "/users", flash="users.created", username=user.username)

``render`` adds what ``base.html`` needs: ``principal``, ``csrf_token``, ``locale``, ``t`` (the
translator), ``nav`` (entries the user's roles may see), ``languages``, ``flash``. Call it after
``page_principal`` ran (it reads the session that dependency loaded).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request
from itsdangerous import BadSignature, URLSafeSerializer
from starlette.responses import RedirectResponse, Response

from . import cookies
from .csrf import FIELD as CSRF_FIELD
from .csrf import HEADER as CSRF_HEADER
from .csrf import csrf_token
from .i18n import LANGUAGE_NAMES, translator
from .navigation import visible_entries
from .request_context import cached_session, is_htmx, request_locale
from .runtime import console

FLASH_LEVELS = ("ok", "error")
MAX_NEXT_LENGTH = 2000


def safe_next(value: object, default: str = "/") -> str:
    """``value`` when it is a path on this console ("/runs?x=1"), else ``default``: never another
    host ("//evil", "https://evil", "/\\evil"), never the sign-in or sign-out page."""
    if not isinstance(value, str) or not value or len(value) > MAX_NEXT_LENGTH:
        return default
    if not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or parts.path in ("/login", "/logout"):
        return default
    return value


def _flash_serializer(request: Request) -> URLSafeSerializer:
    return URLSafeSerializer(console(request).secret, salt="reintegra.finance.console.flash",
                             signer_kwargs={"digest_method": hashlib.sha256})


def _take_flash(request: Request, t) -> dict[str, str] | None:
    raw = cookies.read_cookie(request, console(request).settings, cookies.FLASH)
    if not raw:
        return None
    try:
        level, key, fields = _flash_serializer(request).loads(raw)
    except (BadSignature, ValueError, TypeError):
        return None
    if level not in FLASH_LEVELS or not isinstance(key, str) or not isinstance(fields, dict):
        return None
    return {"level": level, "text": t(key, **fields)}


def page_context(request: Request, context: Mapping[str, Any] | None = None) -> dict[str, Any]:
    session = cached_session(request)
    principal = session.principal if session else None
    locale = request_locale(request)
    t = translator(locale)
    token, _ = csrf_token(request)
    path = request.url.path
    return {
        "request": request,
        "principal": principal,
        "csrf_token": token,
        "csrf_field": CSRF_FIELD,
        "csrf_header": CSRF_HEADER,
        "locale": locale,
        "t": t,
        "nav": [{"label": t(e.label_key), "path": e.path, "current": e.is_current(path)}
                for e in visible_entries(principal)],
        "languages": list(LANGUAGE_NAMES.items()),
        "here": path + (f"?{request.url.query}" if request.url.query else ""),
        "flash": _take_flash(request, t),
        **(context or {}),
    }


def render(request: Request, template: str, context: Mapping[str, Any] | None = None, *,
           status_code: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    runtime = console(request)
    full_context = page_context(request, context)
    response = runtime.templates.TemplateResponse(request, template, full_context, status_code=status_code,
                                                  headers=dict(headers or {}))
    finish_response(request, response)
    if full_context["flash"] is not None:
        cookies.delete_cookie(response, runtime.settings, cookies.FLASH)
    return response


def finish_response(request: Request, response: Response) -> None:
    """Sets the anonymous CSRF cookie the page's forms were given a token for, if it is new."""
    _, new_anonymous = csrf_token(request)
    if new_anonymous:
        cookies.set_cookie(response, console(request).settings, cookies.ANONYMOUS_CSRF, new_anonymous)


def redirect_after_post(request: Request, url: str, *, flash: str | None = None, level: str = "ok",
                        **fields: Any) -> Response:
    """303 to ``url`` (an htmx request gets ``HX-Redirect`` instead, so the whole page loads), with
    an optional one-shot message: the key ``flash`` of the catalogs, formatted with ``fields``."""
    response = redirect(request, safe_next(url))
    if flash is not None:
        set_flash(request, response, flash, level=level, **fields)
    return response


def redirect(request: Request, url: str) -> Response:
    """303 to ``url`` as given (callers check it), or ``HX-Redirect`` for htmx."""
    if is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def set_flash(request: Request, response: Response, key: str, *, level: str = "ok", **fields: Any) -> None:
    """The message the next page rendered shows once (a signed cookie: nobody can plant text)."""
    if level not in FLASH_LEVELS:
        raise ValueError(f"flash level {level!r}: one of {FLASH_LEVELS}")
    value = _flash_serializer(request).dumps([level, key, {k: str(v) for k, v in fields.items()}])
    cookies.set_cookie(response, console(request).settings, cookies.FLASH, value, max_age=120)
