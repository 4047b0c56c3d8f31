"""What the console's routes share, on ``app.state.console`` (also ``app.state.pool``,
``app.state.templates`` and ``app.state.settings`` for routers that want only those)."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from fastapi import HTTPException, Request
from starlette.templating import Jinja2Templates

from .review_gateway import ReviewGateway
from .sessions import SessionStore
from .settings import ConsoleSettings
from .throttle import LoginThrottle


@dataclass
class ConsoleRuntime:
    settings: ConsoleSettings
    secret: bytes
    templates: Jinja2Templates
    throttle: LoginThrottle
    pool: asyncpg.Pool | None = None  # set by the lifespan
    sessions: SessionStore | None = None
    review_gateway: ReviewGateway | None = None


def console(request: Request) -> ConsoleRuntime:
    return request.app.state.console


def get_pool(request: Request) -> asyncpg.Pool:
    """A dependency: the pool (search_path ``finance``); 503 while the console is starting."""
    pool = console(request).pool
    if pool is None:
        raise HTTPException(503, "the console is starting")
    return pool


def get_sessions(request: Request) -> SessionStore:
    sessions = console(request).sessions
    if sessions is None:
        raise HTTPException(503, "the console is starting")
    return sessions


def client_ip(request: Request) -> str:
    """The peer's address (uvicorn rewrites it from X-Forwarded-For only for trusted proxies)."""
    return request.client.host if request.client else "unknown"
