"""FastAPI integration: a dependency that authenticates a bearer token and checks roles.

    from reintegra.auth import REVIEWER
    from reintegra.auth.http import add_auth_error_handler, require_roles

    app = FastAPI()
    add_auth_error_handler(app)          # renders refusals as {"error": {"code", "message"}}
    reviewer = require_roles(lambda: app.state.pool, REVIEWER)

    @app.get("/reviews")
    async def reviews(principal: Principal = Depends(reviewer)): ...

No or unknown token: 401 with ``WWW-Authenticate: Bearer``; a valid token without any of the
roles: 403. ``admin`` does not imply other roles. Both refusals are written to ``auth.audit``
(actor, method and path without the query string, outcome), never the token.

Without ``add_auth_error_handler`` the status codes and headers are the same but the body is
FastAPI's ``{"detail": {"error": ...}}``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg
from fastapi import FastAPI, HTTPException, Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .audit import record_audit
from .principal import Principal
from .roles import parse_roles
from .store import authenticate_token

UNAUTHENTICATED = "unauthenticated"
FORBIDDEN = "forbidden"

# auto_error=False: a missing header must go through our refusal (audited, our error body).
_bearer = HTTPBearer(auto_error=False, description="An API token: `Authorization: Bearer rgt_…`")


class AccessRefused(HTTPException):
    """401 or 403 with the project's error body; an HTTPException, so it is a refusal even in an
    app that did not install the handler."""

    def __init__(self, status_code: int, code: str, message: str) -> None:
        headers = {"WWW-Authenticate": "Bearer"} if status_code == 401 else None
        super().__init__(status_code=status_code, detail=error_body(code, message), headers=headers)
        self.code = code
        self.message = message


def error_body(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


async def _render_refusal(request: Request, exc: AccessRefused) -> JSONResponse:
    return JSONResponse(error_body(exc.code, exc.message), status_code=exc.status_code, headers=exc.headers)


def add_auth_error_handler(app: FastAPI) -> None:
    app.add_exception_handler(AccessRefused, _render_refusal)


def needs_roles_message(roles: tuple[str, ...]) -> str:
    return "needs role " + " or ".join(roles)


def require_roles(
    pool_getter: Callable[[], asyncpg.Pool], *roles: str
) -> Callable[..., Awaitable[Principal]]:
    """A dependency returning the caller's Principal when their token is valid and they hold at
    least one of ``roles``. ``pool_getter`` is called per request (the pool is usually created
    after the routes are declared); any search_path will do, every table name is qualified."""
    accepted = tuple(sorted(parse_roles(roles)))  # a typo in a role fails at import, not per request

    async def authenticated_principal(
        request: Request, credentials: HTTPAuthorizationCredentials | None = Security(_bearer)
    ) -> Principal:
        pool = pool_getter()
        action = f"{request.method} {request.url.path}"  # no query string: it may carry secrets
        remote = request.client.host if request.client else None
        principal = await authenticate_token(pool, credentials.credentials) if credentials else None
        if principal is None:
            reason = "no bearer token" if credentials is None else "unknown or revoked token, or disabled user"
            await record_audit(pool, None, action, UNAUTHENTICATED, {"reason": reason}, remote)
            raise AccessRefused(401, UNAUTHENTICATED, f"authentication required: {reason}")
        if not principal.has_any_role(*accepted):
            await record_audit(pool, principal.username, action, FORBIDDEN,
                               {"needs_roles": list(accepted), "has_roles": sorted(principal.roles)}, remote)
            raise AccessRefused(403, FORBIDDEN, needs_roles_message(accepted))
        return principal

    return authenticated_principal
