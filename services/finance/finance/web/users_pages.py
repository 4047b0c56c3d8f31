"""Users (role ``admin``): list them, create one with roles and a password, disable one.

Changes go through ``reintegra.auth`` and are audited in the same transaction (refusals too, after
the rollback), like ``reintegra users``; the audit names the user changed and the roles, never the
password. Disabling ends the user's console sessions at once.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from reintegra.auth import (
    ADMIN,
    MIN_PASSWORD_LENGTH,
    ROLES,
    AuthError,
    DuplicateUserError,
    PasswordRuleError,
    Principal,
    UnknownRoleError,
    UnknownUserError,
    create_user,
    disable_user,
    list_users,
    record_audit,
)
from starlette.responses import Response

from .auth_deps import page_principal
from .i18n import translate
from .rendering import redirect_after_post, render
from .request_context import action_of, request_locale
from .runtime import client_ip, get_pool, get_sessions

router = APIRouter()
admin = page_principal(ADMIN)

MAX_FIELD_LENGTH = 2048


def _refusal(exc: AuthError) -> tuple[int, str]:
    if isinstance(exc, DuplicateUserError):
        return 409, "users.error.duplicate"
    if isinstance(exc, PasswordRuleError):
        return 422, "users.error.password"
    if isinstance(exc, UnknownRoleError):
        return 422, "users.error.roles"
    return 422, "users.error.invalid"


async def _page(request: Request, principal: Principal, *, form: dict | None = None, error: str | None = None,
                status_code: int = 200) -> Response:
    users = await list_users(get_pool(request))
    return render(request, "users.html", {
        "users": users, "roles": ROLES, "me": principal.username, "min_password": MIN_PASSWORD_LENGTH,
        "form": form or {"username": "", "display_name": "", "roles": []}, "error": error,
    }, status_code=status_code)


@router.get("/users")
async def users_page(request: Request, principal: Principal = Depends(admin)) -> Response:
    return await _page(request, principal)


@router.post("/users")
async def create_user_from_form(
    request: Request,
    principal: Principal = Depends(admin),
    username: str = Form("", max_length=MAX_FIELD_LENGTH),
    display_name: str = Form("", max_length=MAX_FIELD_LENGTH),
    password: str = Form("", max_length=MAX_FIELD_LENGTH),
    roles: list[str] = Form(default=[]),
) -> Response:
    pool, action, remote = get_pool(request), action_of(request), client_ip(request)
    username = username.strip()
    detail = {"username": username[:64], "roles": sorted(set(roles))[:10]}
    try:
        async with pool.acquire() as conn, conn.transaction():
            user = await create_user(conn, username, roles, password=password or None,
                                     display_name=display_name or None)
            await record_audit(conn, principal.username, action, "ok",
                               {**detail, "username": user.username, "password": user.has_password}, remote)
    except AuthError as exc:
        await record_audit(pool, principal.username, action, "refused", {**detail, "error": type(exc).__name__},
                           remote)
        status, key = _refusal(exc)
        message = translate(request_locale(request), key, min=MIN_PASSWORD_LENGTH)
        form = {"username": username, "display_name": display_name, "roles": list(roles)}
        return await _page(request, principal, form=form, error=message, status_code=status)
    return redirect_after_post(request, "/users", flash="users.created", username=user.username)


@router.post("/users/{username}/disable")
async def disable_user_from_form(request: Request, username: str, principal: Principal = Depends(admin)) -> Response:
    pool, action, remote = get_pool(request), action_of(request), client_ip(request)
    if username.strip().lower() == principal.username.lower():
        await record_audit(pool, principal.username, action, "refused", {"username": username[:64],
                                                                         "error": "own account"}, remote)
        return redirect_after_post(request, "/users", flash="users.error.self", level="error")
    try:
        async with pool.acquire() as conn, conn.transaction():
            user = await disable_user(conn, username)
            ended = await get_sessions(request).end_for_user(conn, user.user_id)
            await record_audit(conn, principal.username, action, "ok",
                               {"username": user.username, "sessions_ended": ended}, remote)
    except UnknownUserError:
        await record_audit(pool, principal.username, action, "refused",
                           {"username": username[:64], "error": "UnknownUserError"}, remote)
        return redirect_after_post(request, "/users", flash="users.error.unknown", level="error")
    return redirect_after_post(request, "/users", flash="users.disabled", username=user.username)
