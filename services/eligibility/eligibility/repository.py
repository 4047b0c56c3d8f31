"""Eligibility's schema: case files and the decision log. Runs inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg
from reintegra import jsonfast

from eligibility.domain.case_file import CaseFile
from eligibility.domain.rules import Decision


async def load_case_files(conn: asyncpg.Connection, case_ids: Iterable[str]) -> dict[str, CaseFile]:
    rows = await conn.fetch("SELECT case_id, state FROM case_files WHERE case_id = ANY($1::text[])", list(case_ids))
    return {r["case_id"]: CaseFile.from_json(jsonfast.loads(r["state"])) for r in rows}


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


async def log_decisions(conn: asyncpg.Connection, decisions: list[tuple[str, str | None, Decision]]) -> None:
    if decisions:
        await conn.execute(
            """
            INSERT INTO decisions (case_id, plan_id, outcome, reasons)
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[])
            """,
            [d[0] for d in decisions], [d[1] for d in decisions], [d[2].outcome for d in decisions],
            [jsonfast.dumps_text(list(d[2].reasons)) for d in decisions],
        )
