"""Two instances handling the first events of one case: the second waits for the first to commit
(its case does not exist yet, so a row lock alone would not hold it), then sees what it wrote."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg
import disbursement
from disbursement import repository
from reintegra.db import apply_migrations, create_pool

MIGRATIONS = Path(disbursement.__file__).parent / "migrations"


async def test_a_case_without_a_row_yet_is_locked_until_the_first_instance_commits(infra):
    schema = f"disbursement_locks_{uuid.uuid4().hex[:10]}"
    apply_migrations(infra.database_url, schema, MIGRATIONS)
    instances = [await create_pool(infra.database_url, schema, max_size=1) for _ in range(2)]
    case_id = f"LOCK-{uuid.uuid4().hex[:8]}"
    try:
        async with instances[0].acquire() as first, instances[1].acquire() as second:
            tx = first.transaction()
            await tx.start()
            await repository.load_ledgers(first, [case_id])

            async def the_other_instance():
                async with second.transaction():
                    await repository.load_ledgers(second, [case_id, f"{case_id}-other"])

            other = asyncio.create_task(the_other_instance())
            await asyncio.sleep(0.5)
            assert not other.done(), "the second instance read the case while the first was deciding on it"
            await tx.commit()
            await asyncio.wait_for(other, 10)
        # Another case is not held by it.
        async with instances[0].acquire() as first, instances[1].acquire() as second:
            async with first.transaction():
                await repository.load_ledgers(first, [case_id])
                async with second.transaction():
                    await asyncio.wait_for(repository.load_ledgers(second, [f"{case_id}-other"]), 5)
    finally:
        for instance in instances:
            await instance.close()
        conn = await asyncpg.connect(infra.database_url)
        try:
            await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        finally:
            await conn.close()
