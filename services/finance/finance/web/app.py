"""The finance console's FastAPI app: server-rendered pages (Jinja2 + htmx), secure by default.

    app = create_app(settings, routers=(finance_pages.router, api.router), template_dirs=(...,))

The lifespan brings schemas ``finance`` and ``auth`` up to date, then opens the asyncpg pool
(search_path ``finance``) and the review API client. Routers reach them through
``app.state.console`` (``runtime.console(request)``), or ``app.state.pool``, ``.templates`` and
``.settings``. Every route gets the CSRF check (an app-wide dependency) and every response the
security headers; there are no docs pages (nothing unauthenticated but /login, /healthz, /static).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote

import jinja2
from fastapi import APIRouter, Depends, FastAPI
from fastapi.staticfiles import StaticFiles
from reintegra.db import create_pool
from reintegra.errors import is_transient
from starlette.templating import Jinja2Templates
from tenacity import AsyncRetrying, retry_if_exception, wait_exponential_jitter

from finance.schema import bring_up_to_date

from . import home_pages, login_pages, review_pages, users_pages
from .console_secret import load_console_secret
from .csrf import verify_csrf
from .error_pages import install_error_handlers, server_error
from .formats import install_filters
from .review_gateway import HttpReviewGateway
from .runtime import ConsoleRuntime
from .security_headers import SecurityHeaders
from .sessions import SessionStore
from .settings import ConsoleSettings, load_console_settings
from .throttle import LoginThrottle, ThrottleLimits

log = logging.getLogger("finance.web")

WEB_DIR = Path(__file__).parent
TEMPLATES_DIR = WEB_DIR / "templates"
STATIC_DIR = WEB_DIR / "static"
STARTUP_WAIT_S = 60.0  # Postgres may still be starting beside us
SWEEP_INTERVAL_S = 60.0


def make_templates(template_dirs: Iterable[Path | str] = ()) -> Jinja2Templates:
    """Extra directories first, so that a page there may replace one of the shell's."""
    loader = jinja2.ChoiceLoader([jinja2.FileSystemLoader(str(d)) for d in template_dirs]
                                 + [jinja2.FileSystemLoader(str(TEMPLATES_DIR))])
    env = jinja2.Environment(loader=loader, autoescape=True, trim_blocks=True, lstrip_blocks=True)
    install_filters(env)
    env.filters["segment"] = lambda value: quote(str(value), safe="")  # one path segment, "/" included
    return Jinja2Templates(env=env)


def _startup_transient(exc: BaseException) -> bool:
    if is_transient(exc):
        return True
    import psycopg

    return isinstance(exc, psycopg.OperationalError)


async def _open(runtime: ConsoleRuntime) -> None:
    settings = runtime.settings
    deadline = time.monotonic() + STARTUP_WAIT_S
    async for attempt in AsyncRetrying(retry=retry_if_exception(_startup_transient),
                                       stop=lambda state: time.monotonic() >= deadline,
                                       wait=wait_exponential_jitter(multiplier=0.2, max=3.0), reraise=True):
        with attempt:
            await bring_up_to_date(settings.database_url)
            runtime.pool = await create_pool(settings.database_url, "finance", settings.db_pool_max)
    runtime.sessions = SessionStore(runtime.pool, runtime.secret, idle_s=settings.session_idle_s,
                                    lifetime_s=settings.session_lifetime_s)
    if runtime.review_gateway is None:
        runtime.review_gateway = HttpReviewGateway(settings.review_api_url, timeout_s=settings.review_api_timeout_s)


async def _sweep_forever(runtime: ConsoleRuntime) -> None:
    """Ended sessions go (their reviewer tokens revoked) even when nobody comes back to them."""
    while True:
        try:
            if runtime.sessions is not None and runtime.pool is not None:
                await runtime.sessions.sweep()
                await runtime.throttle.prune(runtime.pool)
        except Exception as exc:  # noqa: BLE001 - retried at the next interval
            log.warning("session sweep failed: %s", type(exc).__name__)
        await asyncio.sleep(SWEEP_INTERVAL_S)


def create_app(settings: ConsoleSettings | None = None, *, routers: Iterable[APIRouter] = (),
               template_dirs: Iterable[Path | str] = ()) -> FastAPI:
    settings = settings or load_console_settings()
    runtime = ConsoleRuntime(
        settings=settings, secret=load_console_secret(settings), templates=make_templates(template_dirs),
        throttle=LoginThrottle(ThrottleLimits(
            window_s=settings.login_window_s, lockout_s=settings.login_lockout_s,
            per_user=settings.login_max_failures_per_user, per_ip=settings.login_max_failures_per_ip)))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sweeper = None
        try:
            await _open(runtime)
            app.state.pool = runtime.pool
            sweeper = asyncio.create_task(_sweep_forever(runtime))
            log.info("finance console ready (review API %s)", settings.review_api_url)
            yield
        finally:
            if sweeper is not None:
                sweeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sweeper
            if runtime.review_gateway is not None:
                await runtime.review_gateway.aclose()
            if runtime.pool is not None:
                await runtime.pool.close()
                runtime.pool = app.state.pool = None

    app = FastAPI(title="Reintegra finance console", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None, dependencies=[Depends(verify_csrf)])
    app.state.console = runtime
    app.state.settings = settings
    app.state.templates = runtime.templates
    app.state.pool = None
    install_error_handlers(app)
    app.add_middleware(SecurityHeaders, server_error=server_error, hsts=settings.cookies_secure)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for router in (login_pages.router, home_pages.router, users_pages.router, review_pages.router, *routers):
        app.include_router(router)
    return app
