"""Disbursement service: `faststream run disbursement.app:create_app --factory`."""

from __future__ import annotations

from faststream import FastStream
from reintegra.service import ServiceBuilder
from reintegra.topics import ELIGIBILITY_CASE_EVENTS, FINANCE_DECISIONS

from disbursement.finance_decisions import handle_finance_decisions_batch
from disbursement.funding import run_budget_waiter
from disbursement.handlers import handle_eligibility_batch
from disbursement.payments import run_payments
from disbursement.schema import MIGRATIONS, SCHEMA


def create_app() -> FastStream:
    builder = ServiceBuilder("disbursement", schema=SCHEMA, migrations=MIGRATIONS)
    builder.consume(
        ELIGIBILITY_CASE_EVENTS,
        handle_eligibility_batch,
        title="eligibility-case-events",
        description="Approved grants, plan revisions, milestones, deliveries, beneficiary updates and "
        "withdrawals; turns plans into tranches and releases them.",
    )
    builder.consume(
        FINANCE_DECISIONS,
        handle_finance_decisions_batch,
        title="finance-decisions",
        description="Re-pays and write-offs approved by two finance staff; applies each to its payment and "
        "answers on the payment-exceptions topic (applied, or refused with why).",
    )
    builder.background(run_payments)
    builder.background(run_budget_waiter)
    return builder.build()
