"""The console's cookies: HttpOnly, Path=/, SameSite=Strict, Secure per setting.

SameSite=Strict: a page of another site can neither post to the console with its cookies nor
open a signed-in page in it (a link from a mail opens the sign-in page; signing in is cheap). With
Secure cookies the names take the ``__Host-`` prefix, which browsers accept only from a secure
origin, for Path=/ and without Domain: no other host can plant a session cookie.
"""

from __future__ import annotations

from fastapi import Request
from starlette.responses import Response

from .settings import ConsoleSettings

SESSION = "reintegra_console_session"
ANONYMOUS_CSRF = "reintegra_console_csrf"  # the CSRF secret before sign-in (login, language forms)
LANGUAGE = "reintegra_console_lang"  # the language chosen before sign-in
FLASH = "reintegra_console_flash"  # a signed one-shot message shown after a redirect

LANGUAGE_MAX_AGE_S = 365 * 24 * 3600


def cookie_name(settings: ConsoleSettings, name: str) -> str:
    return f"__Host-{name}" if settings.cookies_secure else name


def read_cookie(request: Request, settings: ConsoleSettings, name: str) -> str | None:
    return request.cookies.get(cookie_name(settings, name))


def set_cookie(response: Response, settings: ConsoleSettings, name: str, value: str, *,
               max_age: int | None = None) -> None:
    """Without max_age the browser drops it when it closes (the session cookie's case)."""
    response.set_cookie(cookie_name(settings, name), value, max_age=max_age, path="/",
                        secure=settings.cookies_secure, httponly=True, samesite="strict")


def delete_cookie(response: Response, settings: ConsoleSettings, name: str) -> None:
    response.delete_cookie(cookie_name(settings, name), path="/", secure=settings.cookies_secure,
                           httponly=True, samesite="strict")
