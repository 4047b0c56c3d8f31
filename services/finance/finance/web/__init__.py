"""The finance web console and HTTP API (FastAPI, Jinja2, htmx): ``python -m finance.web``.

The shell (this package's modules but ``finance_pages``, ``api``, ``exports``): settings,
sessions, CSRF, login throttling, the authorisation dependencies (``auth_deps``), ``render``
(``rendering``), French and English (``i18n``, ``messages``), Babel formats (``formats``), the
users and eligibility review pages. See ``app.create_app``.
"""
