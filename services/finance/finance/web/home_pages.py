"""The landing page after sign-in: who you are and the sections your roles open."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from reintegra.auth import Principal
from starlette.responses import Response

from .auth_deps import page_principal
from .rendering import render

router = APIRouter()


@router.get("/")
async def home(request: Request, principal: Principal = Depends(page_principal())) -> Response:
    return render(request, "home.html", {"roles": sorted(principal.roles)})
