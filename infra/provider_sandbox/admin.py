"""The administration API: never faulted, no credentials (docs/providers.md)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import orjson
from aiohttp import web
from pydantic import ValidationError

from . import statements
from .catalogue import Provider
from .dialects.common import error_details, iso, json_response, not_found, sandbox
from .faults import FaultSettings
from .store import Transfer

COUNTERS = ("transfers", "replays", "conflicts", "rejected", "unauthorized", "errors_before", "errors_after",
            "responses_lost", "lookups", "settled", "failed", "callbacks_sent", "callbacks_failed",
            "callbacks_duplicated", "callbacks_lost", "callbacks_stale", "callbacks_abandoned")
STATEMENT_FILE = re.compile(r"^(\d{4}-\d{2}-\d{2})\.(csv|camt053\.xml|mt940)$")


def _invalid(details: list[dict[str, str]]) -> web.Response:
    return json_response({"error": "invalid_request", "details": details}, 422)


def _provider(request: web.Request) -> Provider:
    name = request.match_info["provider"]
    provider = sandbox(request).providers.get(name)
    if provider is None:
        raise not_found("unknown_provider", f"no provider named {name!r}")
    return provider


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def providers(request: web.Request) -> web.Response:
    ctx = sandbox(request)
    return json_response({"providers": [
        {**p.model_dump(mode="json"), "account": p.account.identifier, "base_path": f"/providers/{p.name}"}
        for p in ctx.providers.values()
    ]})


async def get_faults(request: web.Request) -> web.Response:
    return json_response({name: settings.to_json() for name, settings in sandbox(request).faults.all().items()})


async def put_faults(request: web.Request) -> web.Response:
    provider = _provider(request)
    try:
        settings = FaultSettings.model_validate_json(await request.read() or b"{}")
    except ValidationError as exc:
        return _invalid(error_details(exc))
    sandbox(request).faults.replace(provider.name, settings)
    return json_response(settings.to_json())


async def delete_faults(request: web.Request) -> web.Response:
    ctx = sandbox(request)
    ctx.faults.clear()
    return json_response({name: settings.to_json() for name, settings in ctx.faults.all().items()})


def transfer_json(t: Transfer) -> dict:
    return {
        "provider": t.provider, "transfer_id": t.transfer_id, "reference": t.reference,
        "provider_reference": t.provider_reference, "amount_minor": t.amount_minor, "currency": t.currency,
        "settled_amount_minor": t.settled_amount_minor, "status": t.status, "failure_reason": t.failure_reason,
        "created_at": iso(t.created_at), "settled_at": iso(t.settled_at),
        # Who was paid: msisdn digits, IBAN or account number, and the name the instruction gave.
        "counterparty": t.counterparty, "counterparty_name": t.counterparty_name,
    }


async def transfers(request: web.Request) -> web.Response:
    found = sandbox(request).store.list_transfers(request.query.get("provider"), request.query.get("reference"))
    return json_response({"transfers": [transfer_json(t) for t in found]})


async def stats(request: web.Request) -> web.Response:
    ctx = sandbox(request)
    counted = ctx.store.stats()
    return json_response({name: {c: counted.get(name, {}).get(c, 0) for c in COUNTERS} for name in ctx.providers})


async def callback_log(request: web.Request) -> web.Response:
    entries = sandbox(request).store.callback_log(request.query.get("provider"))
    for entry in entries:
        entry["at"] = iso(entry["at"])
        entry["body"] = orjson.loads(entry["body"])
    return json_response({"callbacks": entries})


async def write_statements(request: web.Request) -> web.Response:
    ctx = sandbox(request)
    raw = await request.read()
    try:
        body = orjson.loads(raw) if raw.strip() else {}
        day = date.fromisoformat(body["date"]) if body.get("date") else datetime.now(UTC).date()
    except (orjson.JSONDecodeError, ValueError, TypeError, AttributeError) as exc:
        return _invalid([{"loc": "body.date", "msg": f"expected {{\"date\": \"YYYY-MM-DD\"}}: {exc}",
                          "type": "date"}])
    paths = statements.write_all(ctx.store, ctx.providers, day, ctx.statements_dir)
    return json_response({"date": day.isoformat(), "statements": paths})


async def get_statement(request: web.Request) -> web.Response:
    provider = _provider(request)
    match = STATEMENT_FILE.match(request.match_info["file"])
    if match is None:
        return json_response({"error": "not_found", "message": "expected YYYY-MM-DD.{csv|camt053.xml|mt940}"}, 404)
    try:
        day = date.fromisoformat(match.group(1))
    except ValueError:
        return json_response({"error": "not_found", "message": "not a date"}, 404)
    fmt = match.group(2)
    statement = statements.build(sandbox(request).store, provider, day)
    return web.Response(body=statements.render(statement, fmt), content_type=statements.FORMATS[fmt],
                        charset="utf-8")


ROUTES = [
    web.get("/healthz", healthz),
    web.get("/admin/providers", providers),
    web.get("/admin/faults", get_faults),
    web.put("/admin/faults/{provider}", put_faults),
    web.delete("/admin/faults", delete_faults),
    web.get("/admin/transfers", transfers),
    web.get("/admin/stats", stats),
    web.get("/admin/callbacks", callback_log),
    web.post("/admin/statements", write_statements),
    web.get("/admin/statements/{provider}/{file}", get_statement),
]
