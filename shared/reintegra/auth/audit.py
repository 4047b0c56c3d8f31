"""The append-only audit trail ``auth.audit``: who did or tried what, and how it ended."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import asyncpg

# Lengths are capped because refusals are recorded for anonymous callers too: nobody should be
# able to fill the table with megabyte-long paths.
MAX_ACTION_LENGTH = 300
MAX_REMOTE_LENGTH = 100

# $5 is sent as text and cast by the server, so the row is right whatever jsonb codec the
# caller's pool has (or has not) registered.
_INSERT = """
    INSERT INTO auth.audit (actor, action, outcome, detail, remote)
    VALUES ($1, $2, $3, $4::text::jsonb, $5)
"""


async def record_audit(
    conn: asyncpg.Connection | asyncpg.Pool,
    actor: str | None,
    action: str,
    outcome: str,
    detail: Mapping[str, Any] | None = None,
    remote: str | None = None,
) -> None:
    """Append one row. Never pass secrets (tokens, passwords) in ``detail``: it is kept forever."""
    await conn.execute(
        _INSERT,
        actor,
        action[:MAX_ACTION_LENGTH],
        outcome,
        json.dumps(dict(detail or {}), sort_keys=True, default=str),
        remote[:MAX_REMOTE_LENGTH] if remote else None,
    )
