"""Security headers on every response, and the 500 page for anything a route did not handle.

A plain ASGI middleware rather than an exception handler for 500: Starlette renders those in its
outermost middleware, past every other one, so they would leave without these headers.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("finance.web")

# No inline script or style, no eval: templates load /static files only (htmx is configured
# accordingly in base.html).
CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:",
    "font-src 'self'", "connect-src 'self'", "object-src 'none'", "base-uri 'none'",
    "form-action 'self'", "frame-ancestors 'none'",
))
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
STATIC_PREFIX = "/static/"


class SecurityHeaders:
    def __init__(self, app: ASGIApp, *, server_error: Callable[[Request, BaseException], Awaitable[Response]],
                 hsts: bool = False) -> None:
        self.app = app
        self.server_error = server_error
        self.headers = {**HEADERS, **({"Strict-Transport-Security": "max-age=31536000"} if hsts else {})}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        # Pages may show personal data: no copy in any cache. Static files: revalidated (ETag).
        cache_control = "no-cache" if scope["path"].startswith(STATIC_PREFIX) else "no-store"

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                for name, value in self.headers.items():
                    headers[name] = value
                if "cache-control" not in headers:
                    headers["Cache-Control"] = cache_control
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as exc:
            if started:  # too late for a page: the client sees a cut response
                raise
            response = await self.server_error(Request(scope, receive), exc)
            await response(scope, receive, send_with_headers)
