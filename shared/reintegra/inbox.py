"""Inbox: recognise events already applied, for a whole batch in one statement."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from enum import Enum

import asyncpg

# A deliberately broken build, for the fault harness to prove its checks can fail: every event is
# applied as if new (duplicates applied twice). Never set it outside that test.
INBOX_DISABLED_FOR_TESTS = os.environ.get("REINTEGRA_TEST_DISABLE_INBOX") == "1"
if INBOX_DISABLED_FOR_TESTS:
    logging.getLogger(__name__).critical("REINTEGRA_TEST_DISABLE_INBOX=1: the inbox check is OFF (test-only build)")

EventKey = tuple[str, str]  # (source, event id): the CloudEvents identity of an event


class Verdict(str, Enum):
    APPLY = "apply"  # first time this event is seen: apply it now
    DUPLICATE = "duplicate"  # already applied (earlier, or earlier in this batch): skip
    CONFLICT = "conflict"  # same (source, id) seen before with another content: never applied


async def claim(
    conn: asyncpg.Connection, events: Sequence[tuple[str, str, str | None]]
) -> list[Verdict]:
    """Record (source, id, content_hash) triples; return one verdict per input, in input order.

    Runs inside the transaction that applies the APPLY events, so the inbox row and the
    effect commit or roll back together. A None hash means "identity only, no conflict check".
    """
    first_hash: dict[EventKey, str | None] = {}
    for source, event_id, content_hash in events:
        first_hash.setdefault((source, event_id), content_hash)
    if not first_hash:
        return []
    if INBOX_DISABLED_FOR_TESTS:
        return [Verdict.APPLY] * len(events)
    rows = await conn.fetch(
        """
        INSERT INTO inbox (source, event_id, content_hash)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
        ON CONFLICT DO NOTHING
        RETURNING source, event_id
        """,
        [k[0] for k in first_hash],
        [k[1] for k in first_hash],
        list(first_hash.values()),
    )
    fresh = {(r["source"], r["event_id"]) for r in rows}
    known_hash: dict[EventKey, str | None] = dict(first_hash)
    seen_before = [k for k in first_hash if k not in fresh]
    if seen_before:
        stored = await conn.fetch(
            """
            SELECT i.source, i.event_id, i.content_hash
            FROM inbox i JOIN unnest($1::text[], $2::text[]) AS k(source, event_id)
              ON i.source = k.source AND i.event_id = k.event_id
            """,
            [k[0] for k in seen_before],
            [k[1] for k in seen_before],
        )
        known_hash.update({(r["source"], r["event_id"]): r["content_hash"] for r in stored})

    verdicts: list[Verdict] = []
    applied: set[EventKey] = set()
    for source, event_id, content_hash in events:
        key = (source, event_id)
        reference = known_hash[key]
        if content_hash is not None and reference is not None and content_hash != reference:
            verdicts.append(Verdict.CONFLICT)
        elif key in fresh and key not in applied:
            applied.add(key)
            verdicts.append(Verdict.APPLY)
        else:
            verdicts.append(Verdict.DUPLICATE)
    return verdicts
