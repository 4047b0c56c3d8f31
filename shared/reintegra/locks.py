"""Per-subject locks for read-decide-write handlers.

`SELECT ... FOR UPDATE` locks only rows that exist: two instances handling the first events of one
case (a rebalance, or a producer keying by something else than the case id) would each find no
row, decide alone, and the later write would undo the earlier one. A transaction-scoped advisory
lock per subject covers rows that do not exist yet; taken in one sorted statement, before any
row lock, so two batches never wait on each other in a cycle.
"""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg


async def lock_subjects(conn: asyncpg.Connection, namespace: str, subjects: Iterable[str]) -> None:
    """Wait for, and hold until the transaction ends, the lock of each subject in `namespace`."""
    keys = sorted(set(subjects))
    if not keys:
        return
    await conn.execute(
        """
        SELECT pg_advisory_xact_lock(hashtext($1), k)
        FROM (SELECT DISTINCT hashtext(s) AS k FROM unnest($2::text[]) AS s ORDER BY 1) AS ordered
        """,
        namespace, keys,
    )
