"""``python -m eligibility.review_api [--host H] [--port P]``: serve the review API with uvicorn.

Defaults come from REINTEGRA_REVIEW_API_HOST / REINTEGRA_REVIEW_API_PORT (127.0.0.1:8091); the
database from DATABASE_URL, the programmes from REINTEGRA_PROGRAMME_CONFIG (as the service).
"""

from __future__ import annotations

import argparse
import logging

from reintegra.settings import load_settings


def main(argv: list[str] | None = None) -> None:
    settings = load_settings()
    parser = argparse.ArgumentParser(prog="python -m eligibility.review_api",
                                     description="Serve the eligibility review API (four eyes).")
    parser.add_argument("--host", default=settings.review_api_host)
    parser.add_argument("--port", type=int, default=settings.review_api_port)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    import uvicorn

    from eligibility.review_api.app import create_app

    # log_config=None: uvicorn's loggers go through the root handler configured above.
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_config=None, lifespan="on",
                server_header=False)


if __name__ == "__main__":
    main()
