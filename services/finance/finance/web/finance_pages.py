"""The console's finance pages: reconciliation (statements and runs), the exceptions queue, reports.

`finance_viewer` reads every page; only `finance_approver` imports, runs and acts, and the server
checks it on each POST (a viewer's forged form is refused 403 and audited by page_principal). Four
eyes on write-offs and re-pays are the workflow's (finance.domain.exceptions), checked inside the
action's transaction."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal, InvalidOperation

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from reintegra import jsonfast
from reintegra.auth import FINANCE_APPROVER, FINANCE_VIEWER, Principal, record_audit
from reintegra.money import MoneyError, minor_units
from starlette.responses import Response

from finance import exception_store, reconciliation, reporting, statement_store
from finance.domain import exceptions as wf
from finance.domain import matching
from finance.domain.statements import StatementFormatError

from .auth_deps import page_principal
from .i18n import translator
from .rendering import redirect_after_post, render
from .request_context import request_locale
from .runtime import client_ip, get_pool

router = APIRouter()
reader = page_principal(FINANCE_VIEWER, FINANCE_APPROVER)
approver = page_principal(FINANCE_APPROVER)
CHART_JS = "/static/vendor/chart.umd.min.js"
OPEN_STATES = [s for s in wf.STATES if s not in wf.FINAL_STATES]


async def _audit(request: Request, principal: Principal, outcome: str, detail: dict) -> None:
    await record_audit(get_pool(request), principal.username, f"{request.method} {request.url.path}", outcome,
                       detail, client_ip(request))


def _loads(value):
    return jsonfast.loads(value) if isinstance(value, str) else (value or {})


# ------------------------------------------------------------------ reconciliation
@router.get("/runs")
async def runs_page(request: Request, principal: Principal = Depends(reader)) -> Response:
    pool = get_pool(request)
    runs = [dict(r) | {"counts": _loads(r["counts"])} for r in await reconciliation.list_runs(pool, 50)]
    statements = await pool.fetch("SELECT * FROM statements ORDER BY id DESC LIMIT 100")
    async with pool.acquire() as conn:
        providers = await reconciliation.providers_known(conn)
        queue = await exception_store.queue_counts(conn)
    unreconciled = await pool.fetchval(
        "SELECT count(*) FROM payments WHERE status = 'settled' AND reconciled_line IS NULL")
    return render(request, "finance_runs.html", {
        "runs": runs, "statements": statements, "providers": providers, "can_act": _can_act(principal),
        "open_exceptions": sum(n for s, n in queue.items() if s in OPEN_STATES), "unreconciled": unreconciled,
        "exception_kinds": matching.EXCEPTION_KINDS, "today": date.today().isoformat(),
        "default_missing_days": reconciliation.DEFAULT_MISSING_AFTER_DAYS})


def _can_act(principal: Principal) -> bool:
    return principal.has_any_role(FINANCE_APPROVER)


@router.post("/statements")
async def import_statement_form(request: Request, file: UploadFile = File(...), provider: str = Form(...),
                                principal: Principal = Depends(approver)) -> Response:
    provider = provider.strip()
    if not reconciliation.valid_provider_name(provider):
        return redirect_after_post(request, "/runs", flash="runs.import.bad_provider", level="error")
    data = await file.read(statement_store.MAX_STATEMENT_BYTES + 1)
    name = (file.filename or "statement")[:200]
    try:
        async with get_pool(request).acquire() as conn, conn.transaction():
            result = await statement_store.import_statement(conn, provider, name, data, principal.username)
    except StatementFormatError as exc:
        await _audit(request, principal, "refused", {"provider": provider, "location": exc.location})
        return redirect_after_post(request, "/runs", flash="runs.import.refused", level="error", file=name,
                                   location=exc.location, reason=exc.message)
    await _audit(request, principal, "ok", result.as_dict())
    if result.already_imported:
        return redirect_after_post(request, "/runs", flash="runs.import.already", file=name,
                                   statement=result.statement)
    return redirect_after_post(request, "/runs", flash="runs.import.done", file=name, lines=result.lines,
                               new=result.new_lines, provider=provider)


@router.post("/runs")
async def start_run_form(request: Request, provider: str = Form(""), as_of: str = Form(""),
                         missing_after_days: int = Form(reconciliation.DEFAULT_MISSING_AFTER_DAYS, ge=0, le=365),
                         principal: Principal = Depends(approver)) -> Response:
    try:
        day = date.fromisoformat(as_of) if as_of else None
    except ValueError:
        return redirect_after_post(request, "/runs", flash="runs.bad_date", level="error")
    async with get_pool(request).acquire() as conn, conn.transaction():
        summary = await reconciliation.run_reconciliation(conn, principal.username, provider=provider or None,
                                                          as_of=day, missing_after_days=missing_after_days)
    await _audit(request, principal, "ok", {"run": summary.run, "exceptions": summary.exceptions})
    return redirect_after_post(request, f"/runs/{summary.run}", flash="runs.done", run=summary.run,
                               exceptions=summary.exceptions)


@router.get("/runs/{run_id}")
async def run_page(request: Request, run_id: int, kind: str | None = None,
                   principal: Principal = Depends(reader)) -> Response:
    run, results = await reconciliation.get_run(get_pool(request), run_id)
    if run is None:
        return render(request, "error.html", {"code": "404", "message": f"no reconciliation run {run_id}"},
                      status_code=404)
    counts = _loads(run["counts"]).get("counts", {})
    shown = [r for r in results if kind is None or r["kind"] == kind]
    return render(request, "finance_run.html", {"run": run, "counts": counts, "results": shown[:1000],
                                                "total": len(shown), "kind": kind, "kinds": matching.KINDS,
                                                "exception_kinds": matching.EXCEPTION_KINDS})


# ------------------------------------------------------------------ exceptions
@router.get("/exceptions")
async def exceptions_page(request: Request, state: str = Query("open_states"), kind: str | None = None,
                          principal: Principal = Depends(reader)) -> Response:
    states = OPEN_STATES if state == "open_states" else None if state == "all" else [state]
    async with get_pool(request).acquire() as conn:
        rows = await exception_store.list_exceptions(conn, states=states, kind=kind or None, limit=500)
        queue = await exception_store.queue_counts(conn)
    return render(request, "finance_exceptions.html", {
        "rows": rows, "state": state, "kind": kind or "", "queue": queue, "states": wf.STATES,
        "open_states": OPEN_STATES})


@router.get("/exceptions/{exception_id}")
async def exception_page(request: Request, exception_id: int, principal: Principal = Depends(reader)) -> Response:
    return await _exception_view(request, exception_id, principal)


async def _exception_view(request: Request, exception_id: int, principal: Principal, *, error: str | None = None,
                          status_code: int = 200) -> Response:
    async with get_pool(request).acquire() as conn:
        try:
            row, history, decision = await exception_store.get_exception(conn, exception_id)
        except exception_store.ExceptionNotFound:
            return render(request, "error.html", {"code": "404", "message": f"no exception {exception_id}"},
                          status_code=404)
    state = exception_store.state_of(row)
    allowed = wf.allowed_actions(state, principal.username) if _can_act(principal) else []
    details = _loads(row["details"])
    return render(request, "finance_exception.html", {
        "exc": row, "details": details, "details_json": json.dumps(details, indent=2, ensure_ascii=False,
                                                                   sort_keys=True, default=str),
        "history": history, "decision": decision, "request_info": state.request,
        "allowed": [a for a in allowed if a != wf.AUTO_RESOLVE], "error": error,
        "currency": (row["currency"] or "").strip()}, status_code=status_code)


def _amount_minor(text: str, currency: str | None) -> int | None:
    """A write-off amount typed in major units ("1 200,50" or "1200.50") as minor units."""
    text = (text or "").strip().replace("\u202f", "").replace("\xa0", "").replace(" ", "")
    if not text:
        return None
    if currency is None:
        raise ValueError("the exception has no currency")
    text = text.replace(",", ".")
    try:
        value = Decimal(text)
        digits = minor_units(currency)
    except (InvalidOperation, MoneyError) as exc:
        raise ValueError(f"{text!r} is not an amount") from exc
    minor = value.scaleb(digits)
    if minor != minor.to_integral_value():
        raise ValueError(f"{currency} has {digits} decimals")
    return int(minor)


_FORBIDDEN_CODES = {"four_eyes", "own_request", "not_requester", "not_allowed_for_actor", "system_only"}


@router.post("/exceptions/{exception_id}/actions")
async def exception_action(request: Request, exception_id: int, action: str = Form(...), reason: str = Form(""),
                           amount: str = Form(""), version: int | None = Form(None),
                           principal: Principal = Depends(approver)) -> Response:
    pool = get_pool(request)
    currency = await pool.fetchval("SELECT currency FROM exceptions WHERE id = $1", exception_id)
    try:
        amount_minor = _amount_minor(amount, currency.strip() if currency else None) if amount else None
        if action == wf.AUTO_RESOLVE:
            raise wf.WorkflowError("system_only", "only the system resolves exceptions automatically")
        async with pool.acquire() as conn, conn.transaction():
            transition = await exception_store.act(conn, exception_id, wf.Action(action, reason, amount_minor),
                                                   principal.username, expected_version=version)
    except exception_store.ExceptionNotFound:
        return render(request, "error.html", {"code": "404", "message": f"no exception {exception_id}"},
                      status_code=404)
    except (wf.WorkflowError, ValueError) as exc:
        code = getattr(exc, "code", "invalid_amount")
        await _audit(request, principal, "refused", {"exception": exception_id, "action": action, "code": code})
        status = 403 if code in _FORBIDDEN_CODES else 409 if code in ("invalid_transition", "stale") else 422
        return await _exception_view(request, exception_id, principal, error=getattr(exc, "message", str(exc)),
                                     status_code=status)
    await _audit(request, principal, "ok", {"exception": exception_id, "action": action,
                                            "state": transition.state.state})
    return redirect_after_post(request, f"/exceptions/{exception_id}", flash="exceptions.done",
                               state=transition.state.state)


# ------------------------------------------------------------------ reports
def _period(period_from: str, period_to: str) -> reporting.Period:
    start = date.fromisoformat(period_from) if period_from else None
    end = date.fromisoformat(period_to) if period_to else None
    return reporting.Period.of(start, end)


@router.get("/reports")
async def reports_page(request: Request, programme: str = "", period_from: str = Query("", alias="from"),
                       period_to: str = Query("", alias="to"), principal: Principal = Depends(reader)) -> Response:
    try:
        period = _period(period_from, period_to)
        error = None
    except ValueError as exc:
        period, error = reporting.Period.of(None, None), str(exc)
    async with get_pool(request).acquire() as conn:
        names = await reporting.programmes(conn)
        reports = await reporting.build_reports(conn, programme or None, period)
        per_day = await reporting.payments_per_day(conn, period)
    burn = reporting.rp.budget_burn(*reports)
    return render(request, "finance_reports.html", {
        "reports": reports, "programmes": names, "programme": programme, "period": period, "error": error,
        "burn": burn, "per_day": per_day, "chart_js": CHART_JS,
        "burn_chart": _script_json(_burn_chart(burn, translator(request_locale(request)))), "day_chart": _script_json(_day_chart(per_day, period)),
        "query": request.url.query})


def _script_json(value: dict) -> str:
    """JSON to place inside <script type="application/json">: no "<" can close the element."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _burn_chart(burn, t) -> dict:
    labels = [b.programme for b in burn]

    def major(b, value):
        return float(Decimal(value).scaleb(-minor_units(b.currency))) if b.currency else value

    series = [(t("fin.reports.budget"), "budget_minor", "#9fb3c8"), (t("fin.reports.reserved"), "reserved_minor", "#f0b429"),
              (t("fin.reports.paid"), "paid_minor", "#2f855a"), (t("fin.reports.available"), "available_minor", "#3182ce")]
    return {"type": "bar", "data": {"labels": labels, "datasets": [
        {"label": name, "backgroundColor": colour, "data": [major(b, getattr(b, field)) for b in burn]}
        for name, field, colour in series]},
        "options": {"responsive": True, "animation": False, "plugins": {"legend": {"position": "bottom"}}}}


def _day_chart(per_day, period) -> dict:
    colours = ["#2b6cb0", "#c05621", "#2f855a", "#6b46c1", "#b83280", "#718096", "#d69e2e", "#319795", "#e53e3e"]
    datasets = [{"label": provider, "borderColor": colours[n % len(colours)],
                 "backgroundColor": colours[n % len(colours)], "data": [p.count for p in points], "tension": 0.2}
                for n, (provider, points) in enumerate(sorted(per_day.items()))]
    return {"type": "line", "data": {"labels": [d.isoformat() for d in period.days()], "datasets": datasets},
            "options": {"responsive": True, "animation": False, "plugins": {"legend": {"position": "bottom"}},
                        "scales": {"y": {"beginAtZero": True, "ticks": {"precision": 0}}}}}


@router.get("/reports/export")
async def report_export(request: Request, format: str = "csv", programme: str = "",
                        period_from: str = Query("", alias="from"), period_to: str = Query("", alias="to"),
                        principal: Principal = Depends(reader)) -> Response:
    if format not in ("csv", "xlsx"):
        return render(request, "error.html", {"code": "422", "message": "format is csv or xlsx"}, status_code=422)
    try:
        period = _period(period_from, period_to)
    except ValueError as exc:
        return render(request, "error.html", {"code": "422", "message": str(exc)}, status_code=422)
    async with get_pool(request).acquire() as conn:
        reports = await reporting.build_reports(conn, programme or None, period)
    if not reports:
        return render(request, "error.html", {"code": "404", "message": "no programme to report on"}, status_code=404)
    body, media, name = reporting.export(reports, period, format)
    await _audit(request, principal, "ok", {"export": format, "programme": programme or None, **period.as_dict()})
    return Response(body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"',
                                                     "Cache-Control": "no-store"})
