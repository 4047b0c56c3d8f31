"""HTTP routes of the mobile-money provider sandbox."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from pydantic import ValidationError

from .config import SandboxConfig
from .faults import FaultInjector
from .ledger import Ledger, SubmitResult
from .schemas import BatchRequest, FaultSettings, TransferRequest, error_details
from .settler import Settler

LEDGER = web.AppKey("ledger", Ledger)
FAULTS = web.AppKey("faults", FaultInjector)
SETTLER = web.AppKey("settler", Settler)

MAX_FEED_PAGE = 1000

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_app(config: SandboxConfig | None = None) -> web.Application:
    config = config or SandboxConfig()
    app = web.Application(middlewares=[_inject_faults], client_max_size=8 * 1024**2)
    ledger = Ledger()
    app[LEDGER] = ledger
    app[FAULTS] = FaultInjector(config.faults)
    app[SETTLER] = Settler(ledger, config.settle_delay_ms)
    app.cleanup_ctx.append(_run_settler)
    app.add_routes(
        [
            web.post("/v1/transfers", create_transfer),
            web.post("/v1/transfers:batch", create_transfers_batch),
            web.get("/v1/transfers/{reference}", get_transfer),
            web.get("/v1/settlements", list_settlements),
            web.get("/v1/admin/faults", get_faults),
            web.post("/v1/admin/faults", set_faults),
            web.get("/v1/admin/stats", get_stats),
            web.get("/healthz", healthz),
        ]
    )
    return app


async def _run_settler(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(app[SETTLER].run())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@web.middleware
async def _inject_faults(request: web.Request, handler: Handler) -> web.StreamResponse:
    # Admin routes stay fault-free so a test can always switch faults off again.
    if request.method != "POST" or request.path.startswith("/v1/admin/"):
        return await handler(request)
    faults = request.app[FAULTS]
    await faults.delay()
    if faults.transient_error():
        request.app[LEDGER].stats.transient_errors_injected += 1
        return web.json_response(
            {"error": "temporarily_unavailable", "message": "injected transient fault"}, status=503
        )
    return await handler(request)


def _validated(model, body):
    """The request body as `model`, or a 422 with every validation error."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise _invalid(error_details(exc)) from exc


async def create_transfer(request: web.Request) -> web.Response:
    transfer_request = _validated(TransferRequest, await _json_body(request))
    result = _submit(request.app, transfer_request)
    if result.transfer is None:
        return web.json_response(result.error, status=result.status_code)
    return web.json_response(result.transfer.to_json(), status=result.status_code)


async def create_transfers_batch(request: web.Request) -> web.Response:
    batch = _validated(BatchRequest, await _json_body(request))
    return web.json_response({"results": [_submit_batch_item(request.app, item) for item in batch.transfers]})


def _submit_batch_item(app: web.Application, item: dict) -> dict:
    reference = item.get("reference")
    try:
        transfer_request = TransferRequest.model_validate(item)
    except ValidationError as exc:
        return {
            "reference": reference if isinstance(reference, str) else None,
            "status_code": 422,
            "transfer": None,
            "error": {"error": "invalid_request", "details": error_details(exc)},
        }
    result = _submit(app, transfer_request)
    return {
        "reference": transfer_request.reference,
        "status_code": result.status_code,
        "transfer": result.transfer.to_json() if result.transfer else None,
        "error": result.error,
    }


def _submit(app: web.Application, transfer_request: TransferRequest) -> SubmitResult:
    result = app[LEDGER].submit(transfer_request, app[FAULTS].planned_failure(transfer_request))
    if result.created:
        app[SETTLER].schedule(transfer_request.reference)
    return result


async def get_transfer(request: web.Request) -> web.Response:
    transfer = request.app[LEDGER].transfers.get(request.match_info["reference"])
    if transfer is None:
        return web.json_response({"error": "not_found"}, status=404)
    return web.json_response(transfer.to_json())


async def list_settlements(request: web.Request) -> web.Response:
    after = _int_query(request, "after", default=0, minimum=0, maximum=None)
    limit = _int_query(request, "limit", default=500, minimum=1, maximum=MAX_FEED_PAGE)
    events, next_cursor = request.app[LEDGER].events_after(after, limit)
    return web.json_response({"events": events, "next_cursor": next_cursor})


async def get_faults(request: web.Request) -> web.Response:
    return web.json_response(request.app[FAULTS].settings.to_json())


async def set_faults(request: web.Request) -> web.Response:
    # Replaces every setting; omitted fields fall back to "no fault", so `{}` clears all faults.
    body = await _json_body(request)
    try:
        settings = FaultSettings.model_validate(body)
    except ValidationError as exc:
        raise _invalid(error_details(exc)) from exc
    request.app[FAULTS].configure(settings)
    return web.json_response(settings.to_json())


async def get_stats(request: web.Request) -> web.Response:
    return web.json_response(vars(request.app[LEDGER].stats))


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _json_body(request: web.Request) -> object:
    try:
        return await request.json()
    except json.JSONDecodeError as exc:
        raise _invalid([{"loc": "body", "msg": "body is not valid JSON", "type": "json_invalid"}]) from exc


def _int_query(request: web.Request, name: str, *, default: int, minimum: int, maximum: int | None) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or value < minimum or (maximum is not None and value > maximum):
        bounds = f">= {minimum}" + (f" and <= {maximum}" if maximum is not None else "")
        raise _invalid([{"loc": f"query.{name}", "msg": f"must be an integer {bounds}", "type": "int_range"}])
    return value


def _invalid(details: list[dict]) -> web.HTTPUnprocessableEntity:
    return web.HTTPUnprocessableEntity(
        text=json.dumps({"error": "invalid_request", "details": details}), content_type="application/json"
    )
