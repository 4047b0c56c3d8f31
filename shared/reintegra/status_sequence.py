"""A sequence number on every case status, so upstream can order what it reads.

Statuses reach upstream at least once and, after a crash, a status published again can arrive
after newer ones. Each status carries `data.sequence`: an integer that grows along each case's
history, across the services that publish its statuses. It is a hybrid logical clock in
microseconds: `max(now, the case's last sequence here + 1, what the causing event carried + 1)`.
Wall time orders statuses of independent services; the carried value keeps a cause before its
effects even when one service's clock is behind. A status published again keeps its number (it
is stored in the outbox row), so upstream keeps the highest it has seen and drops the older.

Each service keeps the last number per case (`status_clocks`, written in the batch's transaction,
under the case lock the handler holds) and stamps the internal case events it sends on with the
case's current value (the CloudEvents extension attribute `reintegraseq`); `fresh_events` reads it
back on the next service as that case's floor for the batch.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from reintegra import jsonfast
from reintegra.topics import CASE_STATUS, ELIGIBILITY_CASE_EVENTS, INTAKE_CASE_EVENTS

if TYPE_CHECKING:
    import asyncpg

    from reintegra.outbox import OutboxMessage

CARRIED_ATTRIBUTE = "reintegraseq"
STATUS_TOPIC = CASE_STATUS
# Internal topics whose events carry the case's clock on to the next service.
CARRYING_TOPICS = frozenset({INTAKE_CASE_EVENTS, ELIGIBILITY_CASE_EVENTS})

# Per batch (the handler's task): the highest value the consumed events carried, per case.
_floors: contextvars.ContextVar[dict[str, int] | None] = contextvars.ContextVar("status_floors", default=None)


def remember_carried(carried: Iterable[tuple[str, int | None]]) -> None:
    """Called with each consumed event's (subject, carried value): the floor for this batch."""
    floors: dict[str, int] = {}
    for subject, value in carried:
        if value is not None and value > floors.get(subject, -1):
            floors[subject] = value
    _floors.set(floors or None)


def now_us() -> int:
    return time.time_ns() // 1000


async def stamp(conn: asyncpg.Connection, messages: Sequence[OutboxMessage]) -> None:
    """Give each status message its sequence number and each carrying message the case's clock,
    in message order; save the cases' last numbers. Runs inside the caller's transaction."""
    stamped = [(m, m.topic == STATUS_TOPIC) for m in messages if m.topic == STATUS_TOPIC or m.topic in CARRYING_TOPICS]
    if not stamped:
        return
    events = [(m, is_status, jsonfast.loads(m.value)) for m, is_status in stamped]
    cases = {e["subject"] for _, _, e in events}
    rows = await conn.fetch("SELECT case_id, last_seq FROM status_clocks WHERE case_id = ANY($1::text[])", sorted(cases))
    stored = {r["case_id"]: r["last_seq"] for r in rows}
    clock = dict(stored)
    for case_id, floor in (_floors.get() or {}).items():
        if case_id in cases and floor > clock.get(case_id, -1):
            clock[case_id] = floor
    for message, is_status, event in events:
        case_id = event["subject"]
        if is_status:
            value = max(now_us(), clock.get(case_id, 0) + 1)
            clock[case_id] = value
            event["data"]["sequence"] = value
        else:
            if case_id not in clock:
                clock[case_id] = now_us()
            event[CARRIED_ATTRIBUTE] = clock[case_id]
        message.value = jsonfast.dumps(event)
    changed = [(c, v) for c, v in clock.items() if stored.get(c) != v]
    if changed:
        await conn.execute(
            """
            INSERT INTO status_clocks (case_id, last_seq) SELECT * FROM unnest($1::text[], $2::bigint[])
            ON CONFLICT (case_id) DO UPDATE SET last_seq = greatest(status_clocks.last_seq, excluded.last_seq)
            """,
            [c for c, _ in changed], [v for _, v in changed],
        )
