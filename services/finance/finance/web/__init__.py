"""The web console and HTTP API (FastAPI, Jinja2, htmx)."""
