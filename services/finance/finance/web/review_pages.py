"""Eligibility reviews (role ``reviewer``): the queue, one case, approve or reject with a reason.

Everything goes through the review API (``review_gateway``) with the token issued to this
reviewer at sign-in, so the API's checks (the role, four eyes) are the ones that hold; its
refusals are shown as readable messages, and an API that cannot be reached as a notice, not a 500.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from reintegra.auth import REVIEWER, Principal, record_audit
from starlette.responses import Response

from .auth_deps import page_principal
from .i18n import CATALOGS, DEFAULT_LOCALE, translate
from .rendering import redirect_after_post, render
from .request_context import action_of, cached_session, request_locale
from .review_gateway import Action, ReviewApiError, ReviewApiUnavailable, ReviewGateway
from .runtime import client_ip, console, get_pool

router = APIRouter()
reviewer = page_principal(REVIEWER)

STATUSES = ("open", "awaiting_second_approval", "approved", "rejected", "superseded", "withdrawn")
MAX_COMMENT_LENGTH = 2000  # the review API's limit


class _Problem(Exception):
    def __init__(self, status: int, message_key: str, **fields: object) -> None:
        super().__init__(message_key)
        self.status = status
        self.message_key = message_key
        self.fields = fields


def _gateway(request: Request) -> ReviewGateway:
    gateway = console(request).review_gateway
    if gateway is None:
        raise _Problem(503, "reviews.unavailable")
    return gateway


def _token(request: Request) -> str:
    session = cached_session(request)
    token = session.review_token if session else None
    if token is None:
        raise _Problem(403, "reviews.no_token")
    return token


_FAILURES = (ReviewApiError, ReviewApiUnavailable, _Problem)


def _problem_from(exc: Exception) -> _Problem:
    if isinstance(exc, _Problem):
        return exc
    if isinstance(exc, ReviewApiUnavailable):
        return _Problem(503, "reviews.unavailable")
    key = f"review.refused.{exc.code}"
    if key in CATALOGS[DEFAULT_LOCALE]:
        return _Problem(exc.status, key)
    return _Problem(exc.status, "reviews.api_error", message=exc.message or exc.code)


def _message(request: Request, problem: _Problem) -> str:
    return translate(request_locale(request), problem.message_key, **problem.fields)


@router.get("/reviews")
async def reviews_page(request: Request, status: str = "", principal: Principal = Depends(reviewer)) -> Response:
    status = status if status in STATUSES else ""
    context = {"statuses": STATUSES, "status": status, "reviews": [], "problem": None}
    try:
        context["reviews"] = await _gateway(request).list_reviews(_token(request), status or None)
    except _FAILURES as exc:
        problem = _problem_from(exc)
        return render(request, "reviews.html", {**context, "problem": _message(request, problem)},
                      status_code=problem.status)
    return render(request, "reviews.html", context)


async def _review_page(request: Request, case_id: str, *, problem: _Problem | None = None,
                       comment: str = "") -> Response:
    """The case, with ``problem`` (a refused action) shown above it when given."""
    review = None
    try:
        review = await _gateway(request).get_review(_token(request), case_id)
        if review is None and problem is None:
            problem = _Problem(404, "review.refused.no_such_review")
    except _FAILURES as exc:
        problem = problem or _problem_from(exc)
    context = {"case_id": case_id, "review": review, "comment": comment, "max_comment": MAX_COMMENT_LENGTH,
               "problem": _message(request, problem) if problem else None}
    return render(request, "review.html", context, status_code=problem.status if problem else 200)


# {case_id:path}: a case id may hold a "/" (sent as %2F, which the server decodes before routing).
@router.get("/reviews/{case_id:path}")
async def review_page(request: Request, case_id: str, principal: Principal = Depends(reviewer)) -> Response:
    return await _review_page(request, case_id)


@router.post("/reviews/{case_id:path}/approve")
async def approve(request: Request, case_id: str, comment: str = Form("", max_length=10 * MAX_COMMENT_LENGTH),
                  principal: Principal = Depends(reviewer)) -> Response:
    return await _act(request, case_id, "approve", comment, principal)


@router.post("/reviews/{case_id:path}/reject")
async def reject(request: Request, case_id: str, comment: str = Form("", max_length=10 * MAX_COMMENT_LENGTH),
                 principal: Principal = Depends(reviewer)) -> Response:
    return await _act(request, case_id, "reject", comment, principal)


async def _act(request: Request, case_id: str, action: Action, comment: str, principal: Principal) -> Response:
    comment = comment.strip()
    if not comment or len(comment) > MAX_COMMENT_LENGTH:
        return await _review_page(request, case_id, problem=_Problem(422, "review.comment_required"),
                                  comment=comment[:MAX_COMMENT_LENGTH])
    outcome = None
    try:
        review = await _gateway(request).act(_token(request), case_id, action, comment)
        outcome = str(review.get("status", ""))
    except _FAILURES as exc:
        problem = _problem_from(exc)
    await record_audit(get_pool(request), principal.username, action_of(request), outcome or "refused",
                       {"case_id": case_id[:200], **({} if outcome else {"reason": problem.message_key})},
                       client_ip(request))
    if outcome is None:
        return await _review_page(request, case_id, problem=problem, comment=comment)
    done = f"review.done.{outcome}"
    return redirect_after_post(request, f"/reviews/{quote(case_id, safe='')}",
                               flash=done if done in CATALOGS[DEFAULT_LOCALE] else "review.done.other",
                               status=outcome)
