"""The finance HTTP API (JSON under /api/v1), for scripts and other systems; the console pages use
the same service functions. Bearer API token or console session; `finance_viewer` reads,
`finance_approver` acts (imports, runs, exceptions). Every refusal is 401/403 and audited; every
action is audited too.

    GET  /api/v1/statements                      imported statement files
    POST /api/v1/statements                      multipart: file, provider[, format] -> 201 | 200 (already) | 422
    GET  /api/v1/reconciliation-runs             newest first
    POST /api/v1/reconciliation-runs             {"provider"?, "as_of"?, "missing_after_days"?}
    GET  /api/v1/reconciliation-runs/{id}        the run and its results
    GET  /api/v1/exceptions?state=&kind=&provider=
    GET  /api/v1/exceptions/{id}                 with its history and the actions open to the caller
    POST /api/v1/exceptions/{id}/actions         {"action", "reason"?, "amount_minor"?, "version"?}
    GET  /api/v1/reports?programme=&from=&to=&format=json|csv|xlsx
"""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from reintegra import jsonfast
from reintegra.auth import FINANCE_APPROVER, FINANCE_VIEWER, Principal, record_audit

from finance import exception_store, reconciliation, reporting, statement_store
from finance.domain import exceptions as wf
from finance.domain.statements import StatementFormatError

from .auth_deps import api_principal
from .runtime import client_ip, get_pool

router = APIRouter(prefix="/api/v1")
reader = api_principal(FINANCE_VIEWER, FINANCE_APPROVER)
actor = api_principal(FINANCE_APPROVER)


def error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, **extra}}, status_code=status)


def _json(value: Any) -> Any:
    return jsonfast.loads(jsonfast.dumps_text(value)) if value is not None else None


def record_dict(row: Any) -> dict[str, Any]:
    out = {}
    for key, value in dict(row).items():
        if isinstance(value, str) and key in ("details", "request", "counts", "payload"):
            value = jsonfast.loads(value)
        elif hasattr(value, "isoformat"):
            value = value.isoformat()
        elif isinstance(value, str):
            value = value.strip() if key == "currency" else value
        out[key] = value
    return out


async def audited(request: Request, principal: Principal, outcome: str, detail: dict[str, Any]) -> None:
    await record_audit(get_pool(request), principal.username, f"{request.method} {request.url.path}", outcome,
                       detail, client_ip(request))


# ------------------------------------------------------------------ statements
@router.get("/statements")
async def list_statements(request: Request, principal: Principal = Depends(reader)) -> Any:
    rows = await get_pool(request).fetch(
        "SELECT id, provider, format, filename, statement_id, currency, period_start, period_end, line_count, "
        "new_lines, imported_at, imported_by FROM statements ORDER BY id DESC LIMIT 500")
    return {"statements": [record_dict(r) for r in rows]}


@router.post("/statements")
async def import_statement(request: Request, file: UploadFile = File(...), provider: str = Form(...),
                           format: str | None = Form(None), principal: Principal = Depends(actor)) -> Any:
    data = await file.read(statement_store.MAX_STATEMENT_BYTES + 1)
    provider = provider.strip()
    if not reconciliation.valid_provider_name(provider):
        return error(422, "invalid_provider", "provider is a registry name such as wave_sn")
    try:
        async with get_pool(request).acquire() as conn, conn.transaction():
            result = await statement_store.import_statement(conn, provider, file.filename or "statement", data,
                                                            principal.username, format or None)
    except StatementFormatError as exc:
        await audited(request, principal, "refused", {"provider": provider, "location": exc.location,
                                                      "reason": exc.message})
        return error(422, "malformed_statement", str(exc), location=exc.location)
    await audited(request, principal, "ok", result.as_dict())
    return JSONResponse(result.as_dict(), status_code=200 if result.already_imported else 201)


# ------------------------------------------------------------------ reconciliation runs
class RunRequest(BaseModel):
    provider: str | None = None
    as_of: date | None = None
    missing_after_days: int = Field(reconciliation.DEFAULT_MISSING_AFTER_DAYS, ge=0, le=365)


@router.get("/reconciliation-runs")
async def list_runs(request: Request, principal: Principal = Depends(reader)) -> Any:
    rows = await reconciliation.list_runs(get_pool(request))
    return {"runs": [record_dict(r) for r in rows]}


@router.post("/reconciliation-runs")
async def start_run(request: Request, body: RunRequest, principal: Principal = Depends(actor)) -> Any:
    async with get_pool(request).acquire() as conn, conn.transaction():
        summary = await reconciliation.run_reconciliation(conn, principal.username, provider=body.provider,
                                                          as_of=body.as_of,
                                                          missing_after_days=body.missing_after_days)
    await audited(request, principal, "ok", {"run": summary.run, "exceptions": summary.exceptions})
    return JSONResponse(summary.as_dict(), status_code=201)


@router.get("/reconciliation-runs/{run_id}")
async def get_run(request: Request, run_id: int, principal: Principal = Depends(reader)) -> Any:
    run, results = await reconciliation.get_run(get_pool(request), run_id)
    if run is None:
        return error(404, "not_found", f"no reconciliation run {run_id}")
    return {"run": record_dict(run), "results": [record_dict(r) for r in results]}


# ------------------------------------------------------------------ exceptions
@router.get("/exceptions")
async def list_exceptions(request: Request, state: list[str] = Query([]), kind: str | None = None,
                          provider: str | None = None, principal: Principal = Depends(reader)) -> Any:
    async with get_pool(request).acquire() as conn:
        rows = await exception_store.list_exceptions(conn, states=state or None, kind=kind, provider=provider)
    return {"exceptions": [record_dict(r) for r in rows]}


@router.get("/exceptions/{exception_id}")
async def get_exception(request: Request, exception_id: int, principal: Principal = Depends(reader)) -> Any:
    async with get_pool(request).acquire() as conn:
        try:
            row, history, decision = await exception_store.get_exception(conn, exception_id)
        except exception_store.ExceptionNotFound as exc:
            return error(404, "not_found", str(exc))
    allowed = (wf.allowed_actions(exception_store.state_of(row), principal.username)
               if principal.has_any_role(FINANCE_APPROVER) else [])
    return {"exception": record_dict(row), "history": [record_dict(h) for h in history],
            "decision": record_dict(decision) if decision else None, "allowed_actions": allowed}


class ActionRequest(BaseModel):
    action: str
    reason: str | None = Field(None, max_length=wf.MAX_TEXT)
    amount_minor: int | None = None
    version: int | None = None


# Which refusals of the workflow are "not you" (403) rather than "not now" (409).
_FORBIDDEN_CODES = {"four_eyes", "own_request", "not_requester", "not_allowed_for_actor", "system_only"}


@router.post("/exceptions/{exception_id}/actions")
async def act(request: Request, exception_id: int, body: ActionRequest, principal: Principal = Depends(actor)) -> Any:
    if body.action == wf.AUTO_RESOLVE:
        return error(403, "system_only", "only the system resolves exceptions automatically")
    action = wf.Action(body.action, body.reason, body.amount_minor)
    try:
        async with get_pool(request).acquire() as conn, conn.transaction():
            transition = await exception_store.act(conn, exception_id, action, principal.username,
                                                   expected_version=body.version)
    except exception_store.ExceptionNotFound as exc:
        return error(404, "not_found", str(exc))
    except wf.WorkflowError as exc:
        status = 403 if exc.code in _FORBIDDEN_CODES else 409 if exc.code in ("invalid_transition", "stale") else 422
        await audited(request, principal, "refused", {"exception": exception_id, "action": body.action,
                                                      "code": exc.code})
        return error(status, exc.code, exc.message)
    await audited(request, principal, "ok", {"exception": exception_id, "action": body.action,
                                             "state": transition.state.state})
    return {"exception_id": exception_id, "state": transition.state.state,
            "decision": transition.decision.kind if transition.decision else None}


# ------------------------------------------------------------------ reports
@router.get("/reports")
async def report(request: Request, programme: str | None = None, period_from: date | None = Query(None, alias="from"),
                 period_to: date | None = Query(None, alias="to"), format: str = "json",
                 principal: Principal = Depends(reader)) -> Any:
    if format not in ("json", "csv", "xlsx"):
        return error(422, "invalid_format", "format is json, csv or xlsx")
    try:
        period = reporting.Period.of(period_from, period_to)
    except ValueError as exc:
        return error(422, "invalid_period", str(exc))
    async with get_pool(request).acquire() as conn:
        reports = await reporting.build_reports(conn, programme, period)
    if not reports and programme:
        return error(404, "not_found", f"no programme {programme} in the ledger")
    if format == "json":
        return {"period": period.as_dict(), "reports": [reporting.report_json(r) for r in reports]}
    body, media, name = reporting.export(reports, period, format)
    await audited(request, principal, "ok", {"export": format, "programme": programme, **period.as_dict()})
    return Response(body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'})
