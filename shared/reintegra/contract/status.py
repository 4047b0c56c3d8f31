"""What upstream gets back on `reintegration.case-status.v1`: the `data` of each status event.

These models document the feedback half of the contract (AsyncAPI, JSON Schema); the services
build the dicts themselves. Every status carries `case_id` and `status`; tranche and payment
statuses also carry `plan_id`, `component_id`, `tranche_seq`, `amount` (in the currency
actually paid) and `reference` (the payment's idempotency reference).

Unknown fields may be added later: consumers must ignore what they do not know.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from reintegra.contract.reasons import Reason

CASE_ACCEPTED = "reintegration.case.accepted.v1"
CASE_REJECTED = "reintegration.case.rejected.v1"
ELIGIBILITY_APPROVED = "reintegration.eligibility.approved.v1"
ELIGIBILITY_REJECTED = "reintegration.eligibility.rejected.v1"
ELIGIBILITY_REVIEW_REQUIRED = "reintegration.eligibility.review_required.v1"
TRANCHE_RELEASED = "reintegration.tranche.released.v1"
PAYMENT_SENT = "reintegration.payment.sent.v1"
PAYMENT_SETTLED = "reintegration.payment.settled.v1"
PAYMENT_FAILED = "reintegration.payment.failed.v1"
INKIND_ORDERED = "reintegration.inkind.ordered.v1"
INKIND_DELIVERED = "reintegration.inkind.delivered.v1"
TRANCHE_CANCELLED = "reintegration.tranche.cancelled.v1"
GRANT_COMPLETED = "reintegration.grant.completed.v1"
# Beyond the contract's list (consumers ignore types they do not know): money waiting for something.
GRANT_HELD = "reintegration.grant.held.v1"
GRANT_RESERVED = "reintegration.grant.reserved.v1"
TRANCHE_HELD = "reintegration.tranche.held.v1"


def event_refused(case_id: str, reasons: list[dict], rejected_event: dict | None) -> dict:
    """`data` of a `case.rejected` status for one refused or ignored event of a case: every event
    upstream sends gets an answer it can read, never only a log line. `rejected_event` is the
    upstream event's `{id, type, source}` (intake forwards it as `upstream_event`)."""
    ref = rejected_event or {}
    return {"case_id": case_id, "status": "rejected", "reasons": list(reasons),
            "rejected_event": {"id": ref.get("id"), "type": ref.get("type"), "source": ref.get("source")}}


class _Status(BaseModel):
    model_config = ConfigDict(extra="allow")

    case_id: str = Field(description="The case this status is about (also the record key and `subject`).")
    sequence: int | None = Field(
        None, description="Grows along the case's statuses (microseconds, a hybrid logical clock): keep the "
        "highest seen; a status with a lower one is older (e.g. published again after a crash).")


class Money(BaseModel):
    amount: str = Field(description='Decimal string with the currency\'s minor-unit digits, e.g. "1200.00".')
    currency: str = Field(description="ISO 4217 code.")


class RejectedEventRef(BaseModel):
    id: str | None = Field(description="`id` of the refused upstream event, when it could be read.")
    type: str | None = Field(description="`type` of the refused upstream event, when it could be read.")
    source: str | None = Field(default=None, description="`source` of the refused upstream event: several "
                               "systems may send events naming one case id, each reads the answers to its own.")


class CaseAccepted(_Status):
    """The case.registered event was valid: the case exists."""

    status: Literal["accepted"]
    program_code: str


class CaseRejected(_Status):
    """An upstream event for this case was refused or could not be applied: invalid (then it is also on
    `upstream.case-events.v1.invalid`), from a source that does not own the case, or no longer applicable
    (the case was withdrawn, rejected or its grant completed; a revision that would exceed the ceiling).
    `rejected_event` names the event; the case itself may still be active."""

    status: Literal["rejected"]
    reasons: list[Reason]
    rejected_event: RejectedEventRef


class _Eligibility(_Status):
    plan_id: str
    plan_total: Money = Field(description="Sum of the plan's components.")
    reasons: list[Reason] = Field(default=[], description="Why the decision was not a plain approval: one entry "
                                  "per rule that rejected the plan or asked for a person's review.")
    decided_by: str = Field(default="rules", description='"rules", or the reviewers who decided (comma-separated).')
    programme_version: str | None = Field(default=None, description="Content hash of the programme rules applied.")
    programme_total: Money | None = Field(default=None, description="The whole grant in the programme's currency "
                                          "(plan amounts converted; XOF and XAF at 655.957 per EUR).")
    revision: Literal["revision", "replacement"] | None = Field(
        default=None, description="Set when the decision is on a revised plan (same plan_id) or on another plan "
        "replacing the approved one; absent for the first decision of a case.")


class EligibilityApproved(_Eligibility):
    """The plan is approved for payment."""

    status: Literal["eligibility_approved"]


class EligibilityRejected(_Eligibility):
    """The case or plan is not eligible under the programme's rules."""

    status: Literal["eligibility_rejected"]


class EligibilityReviewRequired(_Eligibility):
    """A person must review the plan (an unaccompanied minor, a possible duplicate beneficiary, a missing
    exchange rate, a replacement plan) before anything is paid; the reviewer's decision follows as
    `eligibility.approved` or `eligibility.rejected`."""

    status: Literal["eligibility_review_required"]


class ExchangeRate(BaseModel):
    from_: str = Field(alias="from", description="The plan's currency.")
    to: str = Field(description="The payout currency.")
    rate: str = Field(description='Units of `to` per unit of `from`: "655.957", or a ratio of two per-euro '
                      'rates ("10250.5/655.957") for a cross rate, kept exact.')
    source: str = Field(description='"peg" (XOF, XAF), "same_currency", or the loaded rate used ("rates:GNF@2026-11-01").')
    effective_date: str | None = Field(description="The day the rate applies from.")


class _Tranche(_Status):
    plan_id: str
    component_id: str
    tranche_seq: int
    modality: Literal["cash", "in_kind"]
    category: str
    amount: Money = Field(description="The tranche amount, in the currency actually paid (the payout "
                          "country's: XOF in CI, SN, ML, BF; XAF in CM; GNF in GN...) once released; before its "
                          "release, in the plan's currency.")
    programme_amount: Money | None = Field(default=None, description="What the programme's budget reserved for "
                                           "the tranche, in the programme's currency.")
    plan_amount: Money | None = Field(default=None, description="The plan's amount, when it was converted.")
    exchange_rate: ExchangeRate | None = Field(default=None, description="The rate locked at release, when the "
                                               "payout currency is not the plan's.")
    reference: str | None = Field(
        description="The payment's idempotency reference; null for a tranche cancelled before its release."
    )
    vendor_id: str | None = Field(default=None, description="For in_kind components.")
    programme_code: str | None = Field(default=None, description="The programme whose budget pays the tranche.")
    provider: str | None = Field(default=None, description="Once released: the payment provider the money goes "
                                 "through (for in kind, the vendor's bank), as named in Reintegra's provider registry.")
    previous_reference: str | None = Field(
        default=None, description="On a re-issued payment (attempt 2, 3...): the reference of the attempt that "
        "failed before it. `reference` is then `<first reference>-<attempt>`.")
    attempt: int | None = Field(default=None, description="The payment attempt, when more than the first.")


class TrancheReleased(_Tranche):
    """The tranche is due (on approval, or its milestone was verified), or a failed payment is
    re-issued to a new payout (`reason` `reissued`, with `previous_reference`)."""

    status: Literal["tranche_released"]
    reason: str | None = None


class PaymentSent(_Tranche):
    """The payment was accepted by the payment provider."""

    status: Literal["payment_sent"]


class PaymentSettled(_Tranche):
    """The provider confirmed the money reached the beneficiary (cash) or the vendor (in kind)."""

    status: Literal["payment_settled"]


class PaymentFailed(_Tranche):
    """The provider refused or failed the payment."""

    status: Literal["payment_failed"]
    reason: str | None = None


class InkindOrdered(_Tranche):
    """Goods or services were ordered from the vendor."""

    status: Literal["inkind_ordered"]


class InkindDelivered(_Tranche):
    """Delivery of the in-kind tranche was confirmed."""

    status: Literal["inkind_delivered"]


class TrancheCancelled(_Tranche):
    """The tranche will not be paid (case withdrawn or plan revised); its budget is released."""

    status: Literal["tranche_cancelled"]
    reason: str | None = None


class TrancheHeld(_Tranche):
    """A tranche waits, saying why: no rate is loaded for its payout currency (`exchange_rate_missing`,
    released as soon as finance loads one), the payout's country has no known currency, the payout names
    no provider Reintegra pays through (`provider_unknown`, `provider_kind_mismatch`, `payout_missing`:
    released after a `beneficiary.updated` with a usable payout), the provider never told the outcome of
    the payment by the deadline (`payment_outcome_unresolved`) or settled another amount than instructed
    (`settlement_mismatch`): both are finance exceptions, never resent on their own."""

    status: Literal["tranche_held"]
    reason: str
    reasons: list[Reason]


class GrantHeld(_Status):
    """The approved grant waits for budget (`budget_exhausted`: the programme's budget cannot cover it, or
    grants approved before it are waiting) or for a rate to convert it into the programme's currency
    (`exchange_rate_missing`). Nothing is reserved or paid until then; grants are funded in approval order
    when finance raises the budget."""

    status: Literal["grant_held"]
    plan_id: str | None
    programme_code: str
    programme_amount: Money = Field(description="What the grant needs from the budget.")
    reasons: list[Reason]


class GrantReserved(_Status):
    """A held grant is now reserved against its programme's budget; its tranches are released as due."""

    status: Literal["grant_reserved"]
    plan_id: str | None
    programme_code: str
    programme_amount: Money


class PaidTotal(BaseModel):
    currency: str
    amount_minor: int = Field(description="Total paid or delivered, in minor units of the currency.")


class GrantCompleted(_Status):
    """Every tranche of the plan is settled, delivered or cancelled."""

    status: Literal["grant_completed"]
    plan_id: str | None
    paid: list[PaidTotal]


STATUS_TYPES: dict[str, type[_Status]] = {
    CASE_ACCEPTED: CaseAccepted,
    CASE_REJECTED: CaseRejected,
    ELIGIBILITY_APPROVED: EligibilityApproved,
    ELIGIBILITY_REJECTED: EligibilityRejected,
    ELIGIBILITY_REVIEW_REQUIRED: EligibilityReviewRequired,
    TRANCHE_RELEASED: TrancheReleased,
    PAYMENT_SENT: PaymentSent,
    PAYMENT_SETTLED: PaymentSettled,
    PAYMENT_FAILED: PaymentFailed,
    INKIND_ORDERED: InkindOrdered,
    INKIND_DELIVERED: InkindDelivered,
    TRANCHE_CANCELLED: TrancheCancelled,
    GRANT_COMPLETED: GrantCompleted,
    GRANT_HELD: GrantHeld,
    GRANT_RESERVED: GrantReserved,
    TRANCHE_HELD: TrancheHeld,
}
