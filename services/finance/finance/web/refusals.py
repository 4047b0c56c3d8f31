"""Exceptions a route or dependency raises to refuse a request; ``error_pages`` renders them
(a page for browsers, ``{"error": {"code", "message"}}`` for API callers)."""

from __future__ import annotations


class LoginRequired(Exception):
    """Not signed in on a page: 303 to ``/login?next=<where they were going>``."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class PageRefused(Exception):
    """A refusal shown as the error page: ``error.title.<code>`` / ``error.text.<code>`` texts."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message  # English, for API callers and logs


class CsrfRefused(PageRefused):
    def __init__(self) -> None:
        super().__init__(403, "csrf", "the form is stale or did not come from this console; reload and retry")
