"""Topic names: the fixed contract topics and the internal ones between services."""

UPSTREAM_CASE_EVENTS = "upstream.case-events.v1"
UPSTREAM_INVALID = "upstream.case-events.v1.invalid"
CASE_STATUS = "reintegration.case-status.v1"

# Internal, keyed by case_id so that one case's events stay in order.
INTAKE_CASE_EVENTS = "reintegra.intake.case-events.v1"
ELIGIBILITY_CASE_EVENTS = "reintegra.eligibility.case-events.v1"
NOTICE_REQUESTS = "reintegra.notifications.requests.v1"
# Every ledger posting, keyed by account id (in order per account), for views built elsewhere.
LEDGER_POSTINGS = "reintegra.ledger.postings.v1"
# Payments a person must look at (unresolved, mismatched, unknown to us), keyed by case_id, for finance.
PAYMENT_EXCEPTIONS = "reintegra.payment.exceptions.v1"
# What finance decided about an exception (a write-off, a re-pay), keyed by case_id, for disbursement.
FINANCE_DECISIONS = "reintegra.finance.decisions.v1"

DEAD_LETTER_SUFFIX = ".dlq"


def dead_letter_topic(topic: str) -> str:
    return topic + DEAD_LETTER_SUFFIX


CONSUMED_TOPICS = (UPSTREAM_CASE_EVENTS, INTAKE_CASE_EVENTS, ELIGIBILITY_CASE_EVENTS, NOTICE_REQUESTS,
                   CASE_STATUS, LEDGER_POSTINGS, PAYMENT_EXCEPTIONS, FINANCE_DECISIONS)
ALL_TOPICS = (
    UPSTREAM_CASE_EVENTS,
    UPSTREAM_INVALID,
    CASE_STATUS,
    INTAKE_CASE_EVENTS,
    ELIGIBILITY_CASE_EVENTS,
    NOTICE_REQUESTS,
    LEDGER_POSTINGS,
    PAYMENT_EXCEPTIONS,
    FINANCE_DECISIONS,
    *(dead_letter_topic(t) for t in CONSUMED_TOPICS),
)
