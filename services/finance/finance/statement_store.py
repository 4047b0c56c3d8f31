"""Importing a provider statement: parsed whole before anything is written, then stored in one
transaction. The same bytes twice change nothing; a line already imported from another format of
the same day (CSV, camt.053, MT940) is not added again."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass

import asyncpg

from finance.adapters.statements import parse_statement
from finance.adapters.statements.column_maps import column_map_for
from finance.domain.statements import ParsedStatement, StatementFormatError, line_key

MAX_STATEMENT_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True)
class ImportResult:
    statement: int            # the statements row (the earlier one when the file was already imported)
    provider: str
    format: str
    lines: int
    new_lines: int
    already_imported: bool

    def as_dict(self) -> dict:
        return {"statement": self.statement, "provider": self.provider, "format": self.format, "lines": self.lines,
                "new_lines": self.new_lines, "already_imported": self.already_imported}


def parse(provider: str, filename: str, data: bytes, fmt: str | None = None) -> ParsedStatement:
    """The whole file parsed, or StatementFormatError naming where it is wrong."""
    if not data:
        raise StatementFormatError("file", "the file is empty")
    if len(data) > MAX_STATEMENT_BYTES:
        raise StatementFormatError("file", f"the file is larger than {MAX_STATEMENT_BYTES // (1024 * 1024)} MiB")
    return parse_statement(data, filename=filename, fmt=fmt, column_map=column_map_for(provider))


def line_ids(provider: str, parsed: ParsedStatement) -> list[str]:
    """Each line's identity: the same line in the day's CSV, camt.053 and MT940 gets the same id; two
    identical lines in one file are two lines (occurrences 1 and 2)."""
    seen: Counter[str] = Counter()
    ids = []
    for line in parsed.lines:
        first = line_key(line, 1)
        seen[first] += 1
        ids.append(f"{provider}:{line_key(line, seen[first])}")
    return ids


async def import_statement(conn: asyncpg.Connection, provider: str, filename: str, data: bytes, actor: str,
                           fmt: str | None = None) -> ImportResult:
    """Parse, then store in the caller's transaction (parsing errors raise before any write)."""
    parsed = parse(provider, filename, data, fmt)
    digest = hashlib.sha256(data).hexdigest()
    # Two imports of the same file at once: the second waits here, then sees the first.
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('finance-statement:' || $1))", provider)
    earlier = await conn.fetchrow("SELECT id, format, line_count FROM statements WHERE provider = $1 AND sha256 = $2",
                                  provider, digest)
    if earlier is not None:
        return ImportResult(earlier["id"], provider, earlier["format"], earlier["line_count"], 0, True)
    statement = await conn.fetchval(
        """
        INSERT INTO statements (provider, format, filename, sha256, statement_id, account, currency, period_start,
                                period_end, opening_minor, closing_minor, line_count, new_lines, imported_by)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 0, $13) RETURNING id
        """,
        provider, parsed.format, filename[:300], digest, parsed.statement_id, parsed.account, parsed.currency,
        parsed.period_start, parsed.period_end, parsed.opening_minor, parsed.closing_minor, len(parsed.lines), actor,
    )
    ids = line_ids(provider, parsed)
    lines = parsed.lines
    inserted = await conn.fetch(
        """
        INSERT INTO statement_lines (line_id, provider, statement, location, booking_date, value_date, provider_ref,
                                     reference, amount_minor, currency, direction, reversal, counterparty, status)
        SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::date[], $6::date[], $7::text[],
                             $8::text[], $9::bigint[], $10::text[], $11::text[], $12::boolean[], $13::text[],
                             $14::text[])
        ON CONFLICT (line_id) DO NOTHING RETURNING line_id
        """,
        ids, [provider] * len(ids), [statement] * len(ids), [x.location for x in lines],
        [x.booking_date for x in lines], [x.value_date for x in lines], [x.provider_ref for x in lines],
        [x.reference for x in lines], [x.amount_minor for x in lines], [x.currency for x in lines],
        [x.direction for x in lines], [x.reversal for x in lines], [x.counterparty for x in lines],
        [x.status for x in lines],
    )
    await conn.execute("UPDATE statements SET new_lines = $2 WHERE id = $1", statement, len(inserted))
    return ImportResult(statement, provider, parsed.format, len(lines), len(inserted), False)
