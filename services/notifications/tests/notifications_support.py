"""Builders for the notifications tests: a schema of its own, notices in it, the SMS file read back."""

from __future__ import annotations

import contextlib
import re
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
from notifications import repository
from notifications.repository import Notice
from reintegra.db import create_pool
from scratch_schemas import scratch_schema

MIGRATIONS = Path(repository.__file__).parent / "migrations"
PHONE = "+2250701020304"
REJECTED_PHONE = "+0001234567"  # the file gateway refuses numbers starting with +000 for good
# `<time>  id=<notice id>  to=<masked number>  lang=<language>  case=<case id>  <text>`, as other tests read it.
LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ  id=(\S+)  to=(\S+)  lang=(\S+)  case=(\S+)  (.*)$")


@contextlib.asynccontextmanager
async def notices_schema(database_url: str, migrations: Path = MIGRATIONS) -> AsyncIterator[str]:
    async with scratch_schema(database_url, "notifications", migrations) as schema:
        yield schema


async def pool_for(database_url: str, schema: str) -> asyncpg.Pool:
    return await create_pool(database_url, schema, max_size=2)


def notice(notice_id: str, case_id: str = "MA-2026-000123", phone: str | None = PHONE,
           body: str = "Paiement reçu : 720,00 EUR.") -> Notice:
    return Notice(notice_id, case_id, "payment_settled", "fr", phone, body, None, None)


async def add_notices(pool: asyncpg.Pool, notices: list[Notice]) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await repository.insert_notices(conn, notices)


async def statuses(pool: asyncpg.Pool) -> dict[str, asyncpg.Record]:
    rows = await pool.fetch("SELECT * FROM notices ORDER BY created_at, notice_id")
    return {r["notice_id"]: r for r in rows}


def sms_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def written_ids(path: Path) -> Counter:
    """notice id → lines written for it (every line must have today's format)."""
    ids: Counter = Counter()
    for line in sms_lines(path):
        match = LINE.match(line)
        assert match, f"not an SMS line: {line!r}"
        ids[match.group(1)] += 1
    return ids
