"""Eligibility's schema: case files, decisions, the review queue and approved identities.

Every function runs inside the caller's transaction. Lock order, for every writer (the batch
handler and the review API): case file rows (sorted by case_id), then identity locks (sorted),
so concurrent writers never deadlock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import asyncpg
from reintegra import jsonfast
from reintegra.locks import lock_subjects

from eligibility.domain.case_file import CaseFile
from eligibility.domain.process import DecisionRecord

# A class id of our own for pg_advisory_xact_lock(int, int): it cannot collide with the
# single-bigint locks of the relay and migrations.
_IDENTITY_LOCK_CLASS = 0x454C4947  # "ELIG"


async def lock_case_files(conn: asyncpg.Connection, case_ids: Iterable[str]) -> dict[str, CaseFile]:
    """Load and lock the files of these cases, also those that do not exist yet (until commit)."""
    ids = sorted(set(case_ids))
    await lock_subjects(conn, "eligibility-case", ids)
    rows = await conn.fetch(
        "SELECT case_id, state FROM case_files WHERE case_id = ANY($1::text[]) ORDER BY case_id FOR UPDATE", ids,
    )
    return {r["case_id"]: CaseFile.from_json(jsonfast.loads(r["state"])) for r in rows}


def _lock_key(identity_hash: str) -> int:
    return int(identity_hash[:8], 16) - 2**31  # any stable int4; a collision only makes two waits one


async def lock_identities(conn: asyncpg.Connection, hashes: Iterable[str]) -> None:
    """Transaction-scoped locks on these identities, in one order for everyone."""
    keys = sorted({_lock_key(h) for h in hashes})
    if keys:
        await conn.execute(
            "SELECT pg_advisory_xact_lock($1::int, k) FROM (SELECT unnest($2::int[]) AS k ORDER BY 1) AS keys",
            _IDENTITY_LOCK_CLASS, keys,
        )


async def approved_cases(conn: asyncpg.Connection, hashes: Iterable[str]) -> dict[str, set[str]]:
    hashes = sorted(set(hashes))
    if not hashes:
        return {}
    rows = await conn.fetch(
        "SELECT identity_hash, case_id FROM approved_identities WHERE identity_hash = ANY($1::text[])", hashes
    )
    found: dict[str, set[str]] = {}
    for r in rows:
        found.setdefault(r["identity_hash"], set()).add(r["case_id"])
    return found


async def save_approved_identities(conn: asyncpg.Connection, approvals: Sequence[tuple[str, str, str]]) -> None:
    if approvals:
        await conn.execute(
            """
            INSERT INTO approved_identities (identity_hash, case_id, program_code)
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) ON CONFLICT DO NOTHING
            """,
            [a[0] for a in approvals], [a[1] for a in approvals], [a[2] for a in approvals],
        )


async def save_case_files(conn: asyncpg.Connection, files: Iterable[CaseFile]) -> None:
    files = list(files)
    if files:
        await conn.execute(
            """
            INSERT INTO case_files (case_id, state)
            SELECT * FROM unnest($1::text[], $2::jsonb[])
            ON CONFLICT (case_id) DO UPDATE SET state = excluded.state, updated_at = now()
            """,
            [f.case_id for f in files],
            [jsonfast.dumps_text(f.to_json()) for f in files],
        )


async def log_decisions(conn: asyncpg.Connection, decisions: Sequence[DecisionRecord]) -> None:
    if decisions:
        await conn.execute(
            """
            INSERT INTO decisions (case_id, plan_id, outcome, reasons, programme_version, rules, decided_by)
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[], $5::text[], $6::jsonb[], $7::text[])
            """,
            [d.case_id for d in decisions], [d.plan_id for d in decisions],
            [d.decision.outcome for d in decisions],
            [jsonfast.dumps_text(list(d.decision.reasons)) for d in decisions],
            [d.decision.programme_version for d in decisions],
            [jsonfast.dumps_text([{"kind": d.kind}] + [r.to_json() for r in d.decision.rules]) for d in decisions],
            [d.decided_by for d in decisions],
        )


_REVIEW_COLUMNS = ("case_id", "plan_id", "program_code", "programme_version", "status", "kind", "reasons", "facts",
                   "plan_total", "programme_total", "second_approval_needed")
_REVIEW_TYPES = ("text", "text", "text", "text", "text", "text", "jsonb", "jsonb", "jsonb", "jsonb", "bool")
_JSON_COLUMNS = {"reasons", "facts", "plan_total", "programme_total"}


async def save_reviews(conn: asyncpg.Connection, reviews: Sequence[Mapping[str, Any]]) -> None:
    """Upsert review queue rows; the last row of a case in the batch wins."""
    latest = {r["case_id"]: r for r in reviews}
    if not latest:
        return
    rows = list(latest.values())
    columns = [[jsonfast.dumps_text(r[c]) if c in _JSON_COLUMNS else r[c] for r in rows] for c in _REVIEW_COLUMNS]
    args = ", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(_REVIEW_TYPES))
    updates = ", ".join(f"{c} = excluded.{c}" for c in _REVIEW_COLUMNS[1:])
    await conn.execute(
        f"""
        INSERT INTO reviews ({', '.join(_REVIEW_COLUMNS)})
        SELECT * FROM unnest({args})
        ON CONFLICT (case_id) DO UPDATE SET {updates}, updated_at = now(),
            opened_at = CASE WHEN excluded.status = 'open' AND reviews.status <> 'open' THEN now()
                             ELSE reviews.opened_at END
        """,
        *columns,
    )


async def add_review_actions(conn: asyncpg.Connection, actions: Sequence[Mapping[str, Any]]) -> None:
    for a in actions:  # one per API call
        await conn.execute(
            """
            INSERT INTO review_actions (case_id, plan_id, actor, action, outcome, comment, programme_version)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            """,
            a["case_id"], a["plan_id"], a["actor"], a["action"], a["outcome"], a["comment"], a["programme_version"],
        )
