"""Reports per programme and period, from finance's own views (postings, payments, the queue), and
their CSV and XLSX exports."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import asyncpg

from finance.domain import reports as rp
from finance.domain.ledger_view import LedgerPosting
from finance.exports import Table, to_csv, to_xlsx

MAX_PERIOD_DAYS = 3660


@dataclass(frozen=True)
class Period:
    start: date
    end: date

    @classmethod
    def of(cls, start: date | None, end: date | None, today: date | None = None) -> Period:
        """The days asked for; by default the current month up to today."""
        today = today or date.today()
        end = end or today
        start = start or end.replace(day=1)
        if end < start:
            raise ValueError(f"the period ends ({end}) before it starts ({start})")
        if (end - start).days > MAX_PERIOD_DAYS:
            raise ValueError(f"a report covers at most {MAX_PERIOD_DAYS} days")
        return cls(start, end)

    def days(self) -> list[date]:
        return [self.start + timedelta(days=n) for n in range((self.end - self.start).days + 1)]

    def as_dict(self) -> dict[str, str]:
        return {"from": self.start.isoformat(), "to": self.end.isoformat()}


async def load_postings(conn: asyncpg.Connection, until: date) -> list[LedgerPosting]:
    rows = await conn.fetch("SELECT * FROM ledger_postings WHERE posted_at < $1 ORDER BY account, seq",
                            until + timedelta(days=1))
    return [LedgerPosting(
        account=r["account"], account_kind=r["account_kind"], account_currency=r["account_currency"].strip(),
        account_programme=r["account_programme"], seq=r["seq"], transfer_id=r["transfer_id"], side=r["side"],
        phase=r["phase"], amount_minor=r["amount_minor"], currency=r["currency"].strip(), kind=r["kind"],
        counter_account=r["counter_account"] or "", programme=r["programme"], case_id=r["case_id"],
        reference=r["reference"], booked_on=r["posted_at"].date(), pending_id=r["pending_id"],
        pending_amount_minor=r["pending_amount_minor"] or 0, conversion_id=r["conversion_id"], rate=r["rate"],
    ) for r in rows]


async def load_payments(conn: asyncpg.Connection) -> list[rp.PaymentRecord]:
    rows = await conn.fetch("SELECT * FROM payments WHERE programme IS NOT NULL")
    return [rp.PaymentRecord(
        reference=r["reference"], programme=r["programme"], case_id=r["case_id"], provider=r["provider"],
        vendor_id=r["vendor_id"], modality=r["modality"], amount_minor=r["amount_minor"],
        currency=r["currency"].strip(), programme_amount_minor=r["programme_amount_minor"],
        programme_currency=r["programme_currency"].strip() if r["programme_currency"] else None,
        status=r["status"], sent_on=r["sent_at"].date() if r["sent_at"] else None,
        settled_on=r["settled_at"].date() if r["settled_at"] else None, reconciled=r["reconciled_line"] is not None,
    ) for r in rows]


async def load_exceptions(conn: asyncpg.Connection) -> list[rp.ExceptionRecord]:
    rows = await conn.fetch(
        "SELECT e.kind, e.state, e.reference, p.programme, e.amount_minor, e.currency, e.raised_at "
        "FROM exceptions e LEFT JOIN payments p ON p.reference = e.reference")
    return [rp.ExceptionRecord(kind=r["kind"], state=r["state"], reference=r["reference"], programme=r["programme"],
                               amount_minor=r["amount_minor"],
                               currency=r["currency"].strip() if r["currency"] else None,
                               raised_on=r["raised_at"].date()) for r in rows]


async def programmes(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch("SELECT DISTINCT account_programme AS p FROM ledger_postings "
                            "WHERE account_programme IS NOT NULL ORDER BY 1")
    return [r["p"] for r in rows]


async def build_reports(conn: asyncpg.Connection, programme: str | None, period: Period) -> list[rp.Report]:
    """One report per programme (or the one asked for; [] when the ledger does not know it)."""
    names = await programmes(conn)
    if programme is not None:
        names = [n for n in names if n == programme]
    if not names:
        return []
    postings = await load_postings(conn, period.end)
    payments = await load_payments(conn)
    queue = await load_exceptions(conn)
    return [rp.build_report(name, period.start, period.end, postings, payments, queue) for name in names]


async def payments_per_day(conn: asyncpg.Connection, period: Period) -> dict[str, list[rp.DayPoint]]:
    return rp.payments_per_day(await load_payments(conn), (period.start, period.end))


def report_json(report: rp.Report) -> dict[str, Any]:
    data = dataclasses.asdict(report)
    data["ledger_ok"] = report.ledger_ok
    return _jsonable(data)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, date):
        return value.isoformat()
    return value


ROW_COLUMNS = ("programme", "section", "item", "measure", "currency", "amount", "amount_minor", "count", "note")


def tables(reports: list[rp.Report], period: Period) -> list[Table]:
    rows = [(r.programme, row.section, row.item, row.measure, row.currency, row.amount, row.amount_minor, row.count,
             row.note) for r in reports for row in rp.report_rows(r)]
    burn = [(b.programme, b.currency or "", b.budget_minor, b.reserved_minor, b.released_minor, b.paid_minor,
             b.available_minor) for b in rp.budget_burn(*reports)]
    return [
        Table("Report", ROW_COLUMNS, rows, numeric=frozenset({"amount_minor", "count"})),
        Table("Budget burn", ("programme", "currency", "budget", "reserved", "released", "paid", "available"), burn,
              numeric=frozenset({"budget", "reserved", "released", "paid", "available"}),
              chart=("programme", ("budget", "reserved", "paid", "available"))),
    ]


def export(reports: list[rp.Report], period: Period, fmt: str) -> tuple[bytes, str, str]:
    """The file's bytes, media type and name."""
    stem = f"reintegra-report-{reports[0].programme if len(reports) == 1 else 'all'}-{period.start}-{period.end}"
    if fmt == "csv":
        return to_csv(tables(reports, period)), "text/csv; charset=utf-8", f"{stem}.csv"
    return (to_xlsx(tables(reports, period)),
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", f"{stem}.xlsx")
