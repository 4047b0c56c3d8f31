"""The notifications tests that need Postgres use the session's (each test makes a schema of its own)."""

from __future__ import annotations

import pytest
from notifications_support import MIGRATIONS
from scratch_schemas import scratch_pool


@pytest.fixture(scope="session")
def database_url(infra):
    return infra.database_url


@pytest.fixture
async def pool(database_url):
    """A pool on a freshly migrated notifications schema of the test's own, dropped after."""
    async with scratch_pool(database_url, "notifications", MIGRATIONS) as pool:
        yield pool
