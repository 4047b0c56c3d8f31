"""Applying what providers report (by callback or by lookup, whichever comes first) to payments.

Reports are stored once per (provider, transfer id, status), so a duplicate, late or replayed
report is never applied twice; each is applied to its instruction's state machine, and through it
to the tranche. Whatever does not fit (an unknown reference, another amount than instructed, a
status contradicting a final one, a second transfer under one reference) becomes a payment
exception for finance, never a log line.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
from reintegra import outbox
from reintegra.money import Money
from reintegra.outbox import OutboxMessage
from reintegra.telemetry import span_from_traceparent

from disbursement import ledger_repository, payment_store, repository
from disbursement.domain.case import CaseLedger
from disbursement.money_context import money_context
from disbursement.publishing import drain

OPEN = ("sending", "unknown", "pending", "unresolved")


def exception(kind: str, instruction: Any, report: dict[str, Any] | None, **details: Any) -> dict[str, Any]:
    """A payment exception; raised once per kind, provider, reference (and transfer id)."""
    reference = (report or {}).get("reference") or (instruction["reference"] if instruction else None)
    provider = (report or {}).get("provider") or (instruction["provider"] if instruction else None)
    transfer_id = (report or {}).get("transfer_id") or ""
    body = {"transfer_id": transfer_id or None, **details}
    if report is not None:
        body["reported"] = {k: report.get(k) for k in ("status", "amount_minor", "currency", "reason", "via")}
    if instruction is not None:
        body["instructed"] = {"amount_minor": instruction["amount_minor"],
                              "currency": instruction["currency"].strip(), "state": instruction["state"]}
    return {"kind": kind, "provider": provider, "reference": reference,
            "case_id": instruction["case_id"] if instruction else None, "details": body,
            "dedupe_key": f"{kind}:{provider}:{reference}:{transfer_id}"}


class Batch:
    """One transaction's view of the payments it touches: instructions (locked), their cases'
    ledgers (locked), and what it decided (instruction changes, exceptions, outbox messages)."""

    def __init__(self, instructions: dict[str, asyncpg.Record], ledgers: dict[str, CaseLedger]) -> None:
        self.instructions = instructions
        self.state = {ref: row["state"] for ref, row in instructions.items()}
        self.transfer_ids = {ref: row["transfer_id"] for ref, row in instructions.items()}
        self.ledgers = ledgers
        self.changes: dict[str, dict[str, Any]] = {}
        self.exceptions: list[dict[str, Any]] = []
        self.messages: list[OutboxMessage] = []

    def change(self, reference: str, **values: Any) -> None:
        self.changes.setdefault(reference, {}).update(values)
        if "state" in values:
            self.state[reference] = values["state"]
        if values.get("transfer_id"):
            self.transfer_ids[reference] = values["transfer_id"]

    def ledger_of(self, instruction: Any, cause: str, actor: str) -> tuple[CaseLedger, tuple[str, str, int]]:
        ledger = self.ledgers[instruction["case_id"]]
        ledger.act(cause, actor)
        return ledger, (instruction["plan_id"], instruction["component_id"], instruction["seq"])

    def drain(self, ledger: CaseLedger, cause: str) -> None:
        self.messages.extend(drain(ledger, cause))


def apply_report(batch: Batch, report: dict[str, Any]) -> str:
    """Apply one stored report; returns what it did (kept on the report row)."""
    reference, status = report["reference"], report["status"]
    instruction = batch.instructions.get(reference)
    if instruction is None or instruction["provider"] != report["provider"]:
        batch.exceptions.append(exception("unknown_reference", None, report,
                                          message="the provider reports a payment we never instructed"))
        return "exception:unknown_reference"
    state = batch.state[reference]
    known_id = batch.transfer_ids.get(reference)
    final = state in ("settled", "failed", "refused", "mismatch")
    if final and known_id and report["transfer_id"] != known_id and status != "pending":
        batch.exceptions.append(exception(
            "duplicate_at_provider", instruction, report,
            message=f"a second transfer {report['transfer_id']} under this reference (the first: {known_id})"))
        return "exception:duplicate_at_provider"
    cause, actor = f"provider:{report['provider']}:{report['transfer_id']}:{status}", f"provider:{report['provider']}"
    ledger, key = batch.ledger_of(instruction, cause, actor)
    tranche = ledger.tranches.get(key)
    with span_from_traceparent("disbursement apply provider report", instruction["traceparent"],
                               instruction["tracestate"],
                               {"reintegra.case_id": instruction["case_id"], "reintegra.reference": reference,
                                "reintegra.provider_status": status}):
        outcome = _apply(batch, instruction, report, state, ledger, key, tranche is not None)
        batch.drain(ledger, cause)
    return outcome


def _apply(batch: Batch, instruction: Any, report: dict[str, Any], state: str, ledger: CaseLedger,
           key: tuple[str, str, int], has_tranche: bool) -> str:
    reference, status = instruction["reference"], report["status"]
    if not has_tranche:
        batch.exceptions.append(exception("unknown_reference", instruction, report,
                                          message="the instruction's tranche no longer exists"))
        return "exception:unknown_reference"
    if status == "pending":
        if state not in ("sending", "unknown", "unresolved"):
            return "stale"
        batch.change(reference, state="pending", transfer_id=report["transfer_id"],
                     pickup_code=report.get("pickup_code"))
        ledger.payment_sent(key, report["transfer_id"])
        if report.get("pickup_code"):
            ledger.pickup_ready(key, report["pickup_code"])
        return "sent"
    if status == "settled":
        if state in ("settled", "mismatch"):
            return "stale"
        if state in ("failed", "refused"):
            batch.exceptions.append(exception(
                "settled_after_failure", instruction, report,
                message=f"the provider reports as settled a payment it reported {state} (it was re-issued or "
                        "its money is waiting in the commitment): check it was not paid twice"))
            return "exception:settled_after_failure"
        paid_minor, paid_currency = report.get("amount_minor"), (report.get("currency") or "").strip()
        instructed = Money(instruction["amount_minor"], instruction["currency"].strip())
        if (paid_minor is not None and paid_minor != instructed.minor) or (paid_currency and paid_currency != instructed.currency):
            paid = Money(paid_minor, paid_currency or instructed.currency) if paid_minor is not None else None
            message = f"the provider settled {paid} where {instructed} was instructed"
            batch.change(reference, state="mismatch", transfer_id=report["transfer_id"])
            batch.exceptions.append(exception("amount_mismatch", instruction, report, message=message))
            ledger.settlement_mismatch(key, message)
            return "exception:amount_mismatch"
        if state in ("sending", "unknown", "unresolved") and report.get("pickup_code"):
            ledger.pickup_ready(key, report["pickup_code"])
        batch.change(reference, state="settled", transfer_id=report["transfer_id"])
        ledger.payment_sent(key, report["transfer_id"])  # sending → sent first: upstream sees both, in order
        ledger.payment_settled(key)
        return "settled"
    # failed
    if state in ("failed", "refused"):
        return "stale"
    if state in ("settled", "mismatch"):
        batch.exceptions.append(exception(
            "reversed_after_settlement", instruction, report,
            message="the provider reports as failed a payment it reported settled"))
        return "exception:reversed_after_settlement"
    batch.change(reference, state="failed", transfer_id=report["transfer_id"], last_error=report.get("reason"))
    ledger.payment_failed(key, report.get("reason") or "failed_at_provider")
    return "failed"


async def open_batch(conn: asyncpg.Connection, references: Sequence[str], *,
                     money_may_move: bool) -> Batch:
    """Lock the instructions, then their cases (the handler's order: facts, tranches, budgets)."""
    instructions = await payment_store.lock_instructions(conn, references)
    ledgers = await repository.load_ledgers(conn, {row["case_id"] for row in instructions.values()})
    # A failure may re-issue at once (new payout, rates) and a cancellation returns money to the
    # budget; a settlement only moves payable → paid.
    await money_context(conn, ledgers.values(), budgets=money_may_move, rates=money_may_move)
    return Batch(instructions, ledgers)


async def close_batch(conn: asyncpg.Connection, batch: Batch) -> None:
    for reference, values in batch.changes.items():
        await payment_store.update_instruction(conn, reference, **values)
    batch.messages += await repository.save_ledgers(conn, batch.ledgers.values())
    books = next((ledger.money.books for ledger in batch.ledgers.values() if ledger.money is not None), None)
    if books is not None:
        batch.messages += await ledger_repository.apply(conn, books)
    raised = await payment_store.raise_exceptions(conn, batch.exceptions)
    batch.messages += payment_store.exception_messages(raised)
    await outbox.add(conn, batch.messages)


async def apply_stored_reports(conn: asyncpg.Connection, limit: int = 500) -> int:
    """Apply reports stored by the callback endpoint (one transaction). Returns how many."""
    async with conn.transaction():
        rows = await payment_store.claim_unapplied_events(conn, limit)
        if not rows:
            return 0
        reports = [dict(r) for r in rows]
        batch = await open_batch(conn, [r["reference"] for r in reports],
                                 money_may_move=any(r["status"] == "failed" for r in reports))
        outcomes = {r["id"]: apply_report(batch, r) for r in reports}
        await close_batch(conn, batch)
        await payment_store.mark_events_applied(conn, outcomes)
        return len(rows)
