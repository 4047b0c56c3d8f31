"""Who may call a route: dependencies returning the caller's ``reintegra.auth.Principal``.

    from finance.web.auth_deps import api_principal, page_principal
    from reintegra.auth import FINANCE_APPROVER, FINANCE_VIEWER

    @router.get("/runs")
    async def runs(request: Request, principal: Principal = Depends(page_principal(FINANCE_VIEWER, FINANCE_APPROVER))):
        ...

``page_principal``: the console session's user; not signed in -> 303 to ``/login?next=…``; signed
in without any of the roles -> the 403 page. ``api_principal``: a bearer API token
(``Authorization: Bearer rgt_…``) or else the session cookie; neither -> 401 JSON with
``WWW-Authenticate: Bearer``; without the roles -> 403 JSON. No roles given: any signed-in user.
Roles never imply one another (``admin`` is not a finance role). Every refusal is written to
``auth.audit`` (actor, "METHOD /path" without the query string, outcome, the roles involved).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request
from reintegra.auth import Principal, authenticate_token, parse_roles, record_audit
from reintegra.auth.http import FORBIDDEN, UNAUTHENTICATED, AccessRefused, needs_roles_message

from .refusals import LoginRequired, PageRefused
from .request_context import action_of, current_session
from .runtime import client_ip, get_pool

PrincipalDependency = Callable[[Request], Awaitable[Principal]]


def _accepted(roles: tuple[str, ...]) -> tuple[str, ...]:
    # A typo in a role fails when the route is declared, not per request.
    return tuple(sorted(parse_roles(roles, allow_empty=True)))


async def _audit_refusal(request: Request, actor: str | None, outcome: str, detail: dict) -> None:
    await record_audit(get_pool(request), actor, action_of(request), outcome, detail, client_ip(request))


def _allowed(principal: Principal, accepted: tuple[str, ...]) -> bool:
    return not accepted or principal.has_any_role(*accepted)


def _forbidden_detail(principal: Principal, accepted: tuple[str, ...]) -> dict:
    return {"needs_roles": list(accepted), "has_roles": sorted(principal.roles), "via": principal.via}


def page_principal(*roles: str) -> PrincipalDependency:
    accepted = _accepted(roles)

    async def signed_in_page_user(request: Request) -> Principal:
        session = await current_session(request)
        if session is None:
            await _audit_refusal(request, None, UNAUTHENTICATED, {"reason": "not signed in"})
            query = request.url.query
            raise LoginRequired(request.url.path + (f"?{query}" if query else ""))
        if not _allowed(session.principal, accepted):
            await _audit_refusal(request, session.principal.username, FORBIDDEN,
                                 _forbidden_detail(session.principal, accepted))
            raise PageRefused(403, "403", needs_roles_message(accepted))
        return session.principal

    return signed_in_page_user


def _bearer(request: Request) -> str | None:
    """The token of ``Authorization: Bearer …``; "" for any other Authorization header."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def api_principal(*roles: str) -> PrincipalDependency:
    accepted = _accepted(roles)

    async def api_caller(request: Request) -> Principal:
        token = _bearer(request)
        if token is not None:  # an Authorization header decides alone: no falling back to the cookie
            principal = await authenticate_token(get_pool(request), token) if token else None
            reason = "unknown or revoked token, or disabled user"
        else:
            session = await current_session(request)
            principal = session.principal if session else None
            reason = "no bearer token or console session"
        if principal is None:
            await _audit_refusal(request, None, UNAUTHENTICATED, {"reason": reason})
            raise AccessRefused(401, UNAUTHENTICATED, f"authentication required: {reason}")
        if not _allowed(principal, accepted):
            await _audit_refusal(request, principal.username, FORBIDDEN, _forbidden_detail(principal, accepted))
            raise AccessRefused(403, FORBIDDEN, needs_roles_message(accepted))
        return principal

    return api_caller
