"""The notifications tests that need Postgres use the session's (each test makes a schema of its own)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def database_url(infra):
    return infra.database_url
