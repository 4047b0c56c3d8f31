"""``python -m finance.web [--host H] [--port P]``: serve the finance console with uvicorn.

Defaults from REINTEGRA_FINANCE_CONSOLE_HOST / REINTEGRA_FINANCE_CONSOLE_PORT (127.0.0.1:8093);
the database from DATABASE_URL; the review API from REINTEGRA_REVIEW_API_URL (see settings.py).
The finance pages and API (``finance.web.finance_pages``, ``finance.web.api``, ``finance.web.exports``)
are included when those modules exist, each through its ``router``.
"""

from __future__ import annotations

import argparse
import importlib
import logging

from fastapi import APIRouter

from .settings import load_console_settings

OPTIONAL_ROUTER_MODULES = ("finance.web.finance_pages", "finance.web.api", "finance.web.exports")


def optional_routers() -> list[APIRouter]:
    routers = []
    for name in OPTIONAL_ROUTER_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # the module exists but one of its imports does not: a real error
                raise
            continue
        routers.append(module.router)
    return routers


def main(argv: list[str] | None = None) -> None:
    settings = load_console_settings()
    parser = argparse.ArgumentParser(prog="python -m finance.web", description="Serve the finance console.")
    parser.add_argument("--host", default=settings.host)
    parser.add_argument("--port", type=int, default=settings.port)
    args = parser.parse_args(argv)
    settings = settings.model_copy(update={"host": args.host, "port": args.port})
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    import uvicorn

    from .app import create_app

    forwarded = settings.forwarded_allow_ips
    # log_config=None: uvicorn's loggers go through the root handler configured above.
    uvicorn.run(create_app(settings, routers=optional_routers()), host=args.host, port=args.port,
                log_config=None, lifespan="on", server_header=False,
                proxy_headers=forwarded is not None, forwarded_allow_ips=forwarded or "")


if __name__ == "__main__":
    main()
