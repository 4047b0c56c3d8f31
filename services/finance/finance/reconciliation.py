"""A reconciliation run: every imported line of a provider matched against the payments we sent
through it, in one transaction. Matched payments are marked reconciled; findings become
exceptions (once each: a finding's key is the same in every run); a late line for a payment an
earlier run reported missing closes that exception on its own, in its history."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import date
from typing import Any

import asyncpg
from reintegra import jsonfast

from finance import repository
from finance.domain import matching
from finance.domain.statements import StatementLine
from finance.exception_store import auto_resolve

SYSTEM_ACTOR = "system:reconciliation"
DEFAULT_MISSING_AFTER_DAYS = 2


@dataclass(frozen=True)
class RunSummary:
    run: int
    as_of: date
    providers: tuple[str, ...]
    counts: dict[str, int]
    new_exceptions: int
    auto_resolved: int

    @property
    def exceptions(self) -> int:
        return sum(self.counts.get(k, 0) for k in matching.EXCEPTION_KINDS)

    def as_dict(self) -> dict[str, Any]:
        return {"run": self.run, "as_of": self.as_of.isoformat(), "providers": list(self.providers),
                "counts": self.counts, "exceptions": self.exceptions, "new_exceptions": self.new_exceptions,
                "auto_resolved": self.auto_resolved}


async def providers_known(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch(
        "SELECT provider FROM payments WHERE provider IS NOT NULL UNION SELECT provider FROM statements ORDER BY 1")
    return [r["provider"] for r in rows]


async def run_reconciliation(conn: asyncpg.Connection, actor: str, *, provider: str | None = None,
                             as_of: date | None = None,
                             missing_after_days: int = DEFAULT_MISSING_AFTER_DAYS) -> RunSummary:
    """Match every provider (or one) as of `as_of` (today by default), in the caller's transaction."""
    # One run at a time: two runs at once would both mark the same payment and raise the same finding.
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('finance-reconciliation'))")
    as_of = as_of or date.today()
    providers = [provider] if provider else await providers_known(conn)
    run = await conn.fetchval(
        "INSERT INTO reconciliation_runs (provider, as_of, started_by) VALUES ($1, $2, $3) RETURNING id",
        provider, as_of, actor)
    counts: Counter[str] = Counter()
    results: list[matching.MatchResult] = []
    for name in providers:
        outcome = await _match_provider(conn, name, as_of, missing_after_days)
        counts.update({k: v for k, v in outcome.counts.items() if v})
        results += outcome.results
    new_exceptions = await _record(conn, run, results)
    resolved = 0
    for result in results:
        for key in result.resolves:
            resolved += await auto_resolve(conn, f"statement:{key}", SYSTEM_ACTOR,
                                           f"shown on a statement line ({', '.join(result.line_ids)}) in run {run}")
    summary = RunSummary(run, as_of, tuple(providers), dict(counts), new_exceptions, resolved)
    await conn.execute("UPDATE reconciliation_runs SET counts = $2::text::jsonb WHERE id = $1", run,
                       jsonfast.dumps_text(summary.as_dict()))
    return summary


async def _match_provider(conn: asyncpg.Connection, provider: str, as_of: date,
                          missing_after_days: int) -> matching.MatchOutcome:
    payments = await conn.fetch(
        "SELECT * FROM payments WHERE provider = $1 AND status IN ('sent', 'settled') FOR UPDATE", provider)
    lines = await conn.fetch("SELECT * FROM statement_lines WHERE provider = $1 ORDER BY line_id FOR UPDATE",
                             provider)
    open_findings = await conn.fetch(
        "SELECT dedupe_key FROM exceptions WHERE source = 'statement' AND provider = $1 "
        "AND state NOT IN ('resolved', 'written_off', 'repay_approved')", provider)
    expected = [_expected(r) for r in payments]
    imported = [matching.ImportedLine(r["line_id"], str(r["statement"]), _line(r)) for r in lines]
    prior = matching.PriorRuns(
        reconciled={r["reference"]: r["reconciled_line"] for r in payments if r["reconciled_line"]},
        open_findings=frozenset(k["dedupe_key"].removeprefix("statement:") for k in open_findings))
    return matching.match(provider, expected, imported, as_of=as_of, missing_after_days=missing_after_days,
                          prior=prior)


def _expected(r: asyncpg.Record) -> matching.ExpectedPayment:
    sent = r["sent_at"] or r["settled_at"] or r["last_event_at"]
    return matching.ExpectedPayment(
        reference=r["reference"], provider=r["provider"], case_id=r["case_id"], amount_minor=r["amount_minor"],
        currency=r["currency"].strip(), sent_on=sent.date(),
        settled_on=r["settled_at"].date() if r["settled_at"] else None, modality=r["modality"])


def _line(r: asyncpg.Record) -> StatementLine:
    return StatementLine(
        location=r["location"], booking_date=r["booking_date"], value_date=r["value_date"],
        provider_ref=r["provider_ref"], reference=r["reference"], amount_minor=r["amount_minor"],
        currency=r["currency"].strip(), direction=r["direction"], reversal=r["reversal"],
        counterparty=r["counterparty"], status=r["status"])


async def _record(conn: asyncpg.Connection, run: int, results: list[matching.MatchResult]) -> int:
    """Results, line and payment marks, and exceptions for the findings not raised before."""
    if not results:
        return 0
    await conn.executemany(
        "INSERT INTO match_results (run_id, n, kind, key, provider, reference, case_id, line_ids, expected_minor, "
        "found_minor, currency, details) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::text::jsonb)",
        [(run, n, r.kind, r.key, r.provider, r.reference, r.case_id, list(r.line_ids), r.expected_minor, r.found_minor,
          r.currency, jsonfast.dumps_text(dict(r.details))) for n, r in enumerate(results)],
    )
    line_results = [(line_id, r.kind) for r in results for line_id in r.line_ids]
    if line_results:
        await conn.execute(
            "UPDATE statement_lines l SET result = u.kind, result_run = $3 "
            "FROM unnest($1::text[], $2::text[]) AS u(line_id, kind) WHERE l.line_id = u.line_id",
            [x[0] for x in line_results], [x[1] for x in line_results], run)
    matched = [(r.reference, r.line_ids[0]) for r in results if r.kind == matching.MATCHED and r.line_ids]
    if matched:
        await conn.execute(
            "UPDATE payments p SET reconciled_line = u.line_id, reconciled_run = $3, updated_at = now() "
            "FROM unnest($1::text[], $2::text[]) AS u(reference, line_id) WHERE p.reference = u.reference",
            [m[0] for m in matched], [m[1] for m in matched], run)
    findings = [{
        "kind": r.kind, "source": "statement", "provider": r.provider, "reference": r.reference,
        "case_id": r.case_id, "amount_minor": _at_stake(r),
        "currency": r.currency, "details": {**dict(r.details), "run": run, "line_ids": list(r.line_ids),
                                            "expected_minor": r.expected_minor, "found_minor": r.found_minor},
        "dedupe_key": f"statement:{r.key}",
    } for r in results if r.is_exception]
    ids = await repository.insert_exceptions(conn, findings, SYSTEM_ACTOR)
    if ids:
        await conn.execute(
            "UPDATE match_results m SET exception_id = e.id FROM exceptions e "
            "WHERE m.run_id = $1 AND e.dedupe_key = 'statement:' || m.key", run)
    return len(ids)



_PROVIDER_NAME = re.compile(r"^[a-z0-9][a-z0-9_]{0,63}$")


def valid_provider_name(name: str) -> bool:
    """Provider names are the registry's slugs (wave_sn, sgbci_ci): nothing else is stored."""
    return bool(_PROVIDER_NAME.match(name or ""))


async def list_runs(conn: asyncpg.Connection | asyncpg.Pool, limit: int = 100) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM reconciliation_runs ORDER BY id DESC LIMIT $1", limit)


async def get_run(conn: asyncpg.Connection | asyncpg.Pool, run_id: int
                  ) -> tuple[asyncpg.Record | None, list[asyncpg.Record]]:
    run = await conn.fetchrow("SELECT * FROM reconciliation_runs WHERE id = $1", run_id)
    if run is None:
        return None, []
    results = await conn.fetch(
        "SELECT m.*, e.state AS exception_state FROM match_results m LEFT JOIN exceptions e ON e.id = m.exception_id "
        "WHERE m.run_id = $1 ORDER BY m.n", run_id)
    return run, results


def _at_stake(r: matching.MatchResult) -> int | None:
    """What a write-off of the finding could be at most: for an amount mismatch the difference, else
    what the line shows (or, for a missing payment, what was sent)."""
    if r.kind == matching.AMOUNT_MISMATCH and r.found_minor is not None and r.expected_minor is not None:
        return abs(r.expected_minor - r.found_minor) or None
    return r.found_minor if r.found_minor is not None else r.expected_minor
