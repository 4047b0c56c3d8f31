"""Throwaway Postgres schemas for tests that run a service's repository against the real database."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
from reintegra.db import apply_migrations, create_pool


def new_schema(database_url: str, prefix: str, migrations: Path) -> str:
    """A schema of its own (a unique name), migrated: tests sharing the database stay apart."""
    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    apply_migrations(database_url, schema, migrations)
    return schema


async def drop_schemas(database_url: str, *schemas: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        for schema in schemas:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def scratch_schema(database_url: str, prefix: str, migrations: Path) -> AsyncIterator[str]:
    schema = new_schema(database_url, prefix, migrations)
    try:
        yield schema
    finally:
        await drop_schemas(database_url, schema)


@contextlib.asynccontextmanager
async def scratch_pool(database_url: str, prefix: str, migrations: Path, *, max_size: int = 2,
                       setup_sql: str | None = None) -> AsyncIterator[asyncpg.Pool]:
    """A pool on a scratch schema (`setup_sql` run first, for a test's own tables), dropped after."""
    async with scratch_schema(database_url, prefix, migrations) as schema:
        pool = await create_pool(database_url, schema, max_size=max_size)
        try:
            if setup_sql:
                await pool.execute(setup_sql)
            yield pool
        finally:
            await pool.close()


LockCases = Callable[[asyncpg.Connection, list[str]], Awaitable[object]]


async def assert_first_events_of_a_case_are_serialised(database_url: str, prefix: str, migrations: Path,
                                                       lock_cases: LockCases) -> None:
    """Two instances handle the first events of one case: the second waits for the first to commit
    (the case has no row yet, so a row lock alone would not hold it); another case is not held."""
    async with scratch_schema(database_url, prefix, migrations) as schema:
        instances = [await create_pool(database_url, schema, max_size=1) for _ in range(2)]
        case_id = f"LOCK-{uuid.uuid4().hex[:8]}"
        try:
            async with instances[0].acquire() as first, instances[1].acquire() as second:
                tx = first.transaction()
                await tx.start()
                await lock_cases(first, [case_id])

                async def the_other_instance():
                    async with second.transaction():
                        await lock_cases(second, [case_id, f"{case_id}-other"])

                other = asyncio.create_task(the_other_instance())
                await asyncio.sleep(0.5)
                assert not other.done(), "the second instance read the case while the first was deciding on it"
                await tx.commit()
                await asyncio.wait_for(other, 10)
            async with instances[0].acquire() as first, instances[1].acquire() as second:
                async with first.transaction():
                    await lock_cases(first, [case_id])
                    async with second.transaction():
                        await asyncio.wait_for(lock_cases(second, [f"{case_id}-other"]), 5)
        finally:
            for instance in instances:
                await instance.close()
