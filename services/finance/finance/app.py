"""Finance service: `faststream run finance.app:create_app --factory`.

It keeps finance's views up to date from events; the console and API (`python -m finance.web`) and
the CLI (`reintegra finance ...`) read them and write decisions to its outbox, which this
service's relay publishes."""

from __future__ import annotations

from faststream import FastStream
from reintegra.service import ServiceBuilder
from reintegra.topics import CASE_STATUS, LEDGER_POSTINGS, PAYMENT_EXCEPTIONS

from finance.handlers import handle_exceptions_batch, handle_postings_batch, handle_status_batch
from finance.schema import MIGRATIONS, SCHEMA


def create_app() -> FastStream:
    builder = ServiceBuilder("finance", schema=SCHEMA, migrations=MIGRATIONS)
    builder.consume(LEDGER_POSTINGS, handle_postings_batch, title="ledger-postings",
                    description="Every ledger posting, kept once per (account, seq): the balances of the reports.")
    builder.consume(CASE_STATUS, handle_status_batch, title="case-status",
                    description="Payment statuses (released, sent, settled, failed, cancelled, held): the payments "
                    "the statements are matched against.")
    builder.consume(PAYMENT_EXCEPTIONS, handle_exceptions_batch, title="payment-exceptions",
                    description="Disbursement's payment exceptions, into the queue; its answers to decisions.")
    return builder.build()
