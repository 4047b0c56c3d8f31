from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient
from sandbox_kit import Receiver, receiver, running


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    async with running() as client:
        yield client


@pytest.fixture
async def callbacks() -> AsyncIterator[Receiver]:
    async with receiver() as r:
        yield r
