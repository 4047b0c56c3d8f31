"""The disbursement aggregate for one case: every change to its grant goes through here (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reintegra.contract.status import (
    CASE_REJECTED,
    GRANT_COMPLETED,
    GRANT_HELD,
    GRANT_RESERVED,
    INKIND_DELIVERED,
    INKIND_ORDERED,
    PAYMENT_FAILED,
    PAYMENT_SENT,
    PAYMENT_SETTLED,
    TRANCHE_CANCELLED,
    TRANCHE_HELD,
    TRANCHE_RELEASED,
    event_refused,
)
from reintegra.money import Money

from disbursement.domain import grant_money
from disbursement.domain.currency import (
    convert,
    converted_tranche,
    converted_tranches,
    currency_of_country,
    payout_country,
)
from disbursement.domain.grant_money import MoneyContext
from disbursement.domain.three_way_match import (
    Delivery,
    Invoice,
    MatchResult,
    PurchaseOrder,
    invoice_key,
    match,
    purchase_order_number,
)
from disbursement.domain.tranche import (
    CANCELLABLE,
    DONE,
    ON_APPROVAL,
    UNRELEASED,
    Facts,
    Tranche,
    TrancheKey,
    delivery_key,
    tranches_of_plan,
)

REMOVED_BY_REVISION = "removed_by_revision"  # a revision of the same plan no longer has the tranche
REPLACED_BY_PLAN = "replaced_by_plan"  # a replacement plan (another plan_id) superseded the tranche's plan
# Tranches of a replaced plan that were ordered before the replacement: the goods are owed, so
# their delivery is still recorded (otherwise the grant could never complete).
_STILL_DELIVERABLE = {"ordered", "delivered"}
BUDGET_EXHAUSTED = "budget_exhausted"
EXCHANGE_RATE_MISSING = "exchange_rate_missing"
PAYOUT_CURRENCY_UNKNOWN = "payout_currency_unknown"
PROVIDER_UNKNOWN = "provider_unknown"
INVOICE_MISMATCH = "invoice_mismatch"  # the delivery's invoice does not match the order: finance looks
PAYMENT_OUTCOME_UNRESOLVED = "payment_outcome_unresolved"  # no outcome by the deadline: finance looks
SETTLEMENT_MISMATCH = "settlement_mismatch"  # settled for another amount than instructed: finance looks
# Released money that is still owed to a payee: cancelling or failing it returns it to the budget.
_OWED = {"released", "sending", "sent", "ordered"}


def programme_currency_of(approval: dict[str, Any]) -> str:
    """The currency of a grant's programme, from eligibility's approval (older approvals did not say:
    the programme total's currency, else the plan's)."""
    return (approval.get("programme_currency") or (approval.get("programme_total") or {}).get("currency")
            or approval["plan"]["components"][0]["amount"]["currency"])


@dataclass
class CaseLedger:
    case_id: str
    facts: Facts
    tranches: dict[TrancheKey, Tranche]
    changed: set[TrancheKey] = field(default_factory=set)
    facts_changed: bool = False
    statuses: list[tuple[str, dict[str, Any], Tranche | None]] = field(default_factory=list)
    notices: list[dict[str, Any]] = field(default_factory=list)
    # The ledger, rates and clock of the transaction; None only for tranches outside the ledger.
    money: MoneyContext | None = None
    # (tranche key, from status, to status, reason, cause, actor) for the audit trail.
    transitions: list[tuple[TrancheKey, str | None, str, str | None, str, str]] = field(default_factory=list)
    cause: str = ""
    actor: str = ""
    hold_order: int = 0  # when the grant was held in this transaction (queue order)
    exceptions: list[dict[str, Any]] = field(default_factory=list)  # for finance (payment_store.raise_exceptions)

    def act(self, cause: str, actor: str) -> None:
        """Who and what the next changes are attributed to (the event id, its author)."""
        self.cause, self.actor = cause, actor
        if self.money is not None:
            self.money.cause, self.money.actor = cause, actor

    def budget_hold(self) -> tuple[str, str, int] | None:
        """(programme, currency, amount) while the grant waits for budget, else None."""
        held = [t for t in self.tranches.values() if t.status == "held" and t.hold_reason == BUDGET_EXHAUSTED]
        if not held:
            return None
        return held[0].programme_code, held[0].programme_currency, sum(t.programme_minor or 0 for t in held)

    @property
    def plan_id(self) -> str | None:
        """The grant's current plan; None before a grant is approved (a beneficiary update may
        have created a pending grant that only carries contact and payout)."""
        grant = self.facts.grant
        if grant is None or grant.get("pending"):
            return None
        return grant["plan_id"]

    # --- events from eligibility ---------------------------------------------------------
    def approve(self, data: dict[str, Any]) -> None:
        early_update = self.facts.grant or {}  # a beneficiary update that came before the grant
        if self.plan_id is not None or self.facts.withdrawn:
            return  # a redelivered approval; eligibility never approves a withdrawn case
        plan = data["plan"]
        programme_currency = programme_currency_of(data)
        self.facts.grant = {
            "plan_id": plan["plan_id"], "program_code": data.get("program_code"),
            "programme_currency": programme_currency, "country": data.get("country"),
            "payout": early_update.get("payout") or plan.get("payout"),
            "contact": {**(data.get("contact") or {}), **(early_update.get("contact") or {})},
        }
        self.facts.adopt_unplanned(plan["plan_id"])
        self.facts_changed = True
        tranches = tranches_of_plan(self.case_id, plan)
        if self.money is not None and data.get("program_code"):
            budget = data.get("programme_budget")
            opening = Money.parse(budget["amount"], budget["currency"]) if budget else None
            if opening is not None and opening.currency == programme_currency:
                grant_money.open_budget(self.money, data["program_code"], opening)
            self._price(tranches, plan)
        for tranche in tranches:
            self._put(tranche)
        self._fund(tranches, was_held=False)
        self._release_due()

    def revise(self, data: dict[str, Any]) -> None:
        """A revision of the current plan (same plan_id) changes only tranches not released yet.
        A replacement plan (another plan_id, approved by a reviewer) cancels every tranche of the
        old plan not released yet and adds its own tranches next to the ones already released:
        tranches are keyed by plan, so nothing released is ever re-created or re-priced."""
        if self._refused_after_end(data):
            return
        current_plan_id = self.plan_id
        if current_plan_id is None:
            return  # no grant yet: eligibility revises only approved grants, tolerated as before
        plan = data["plan"]
        self.facts.grant["plan_id"] = plan["plan_id"]
        if plan.get("payout"):
            self.facts.grant["payout"] = plan["payout"]
        self.facts_changed = True
        reason = REMOVED_BY_REVISION if plan["plan_id"] == current_plan_id else REPLACED_BY_PLAN
        was_held = any(t.status == "held" and t.hold_reason == BUDGET_EXHAUSTED for t in self.tranches.values())
        revised = {t.key: t for t in tranches_of_plan(self.case_id, plan)}
        if self.money is not None and self._programme_code() and self.facts.grant.get("programme_currency"):
            self._price(list(revised.values()), plan)
        for tranche in self._ordered():
            if tranche.status in UNRELEASED and tranche.key not in revised:
                self._cancel(tranche, reason)
        fresh = []
        for key, tranche in revised.items():
            current = self.tranches.get(key)
            if current is not None and current.status not in UNRELEASED:
                continue
            if (current is not None and current.status == "planned" and current.reserve_id
                    and current.programme_minor == tranche.programme_minor):
                tranche.status, tranche.reserve_id = "planned", current.reserve_id  # the reserve still fits
                self._put(tranche)
                continue
            if current is not None and current.status == "planned" and current.in_ledger and self.money is not None:
                grant_money.unreserve(self.money, current)
                tranche.reserve_id = current.reserve_id  # the next reserve gets the next id
            self._put(tranche)
            fresh.append(tranche)
        self._fund(fresh, was_held=was_held)
        self._release_due()

    def verify_milestone(self, data: dict[str, Any]) -> None:
        """A milestone releases the tranches of the plan it names that wait for it."""
        if self._refused_after_end(data):
            return
        plan_id, milestone = data["plan_id"], data["milestone"]
        current_plan_id = self.plan_id
        if current_plan_id is None:  # before the grant: kept for when the grant for this plan arrives
            self._record_milestone(plan_id, milestone)
            return
        if plan_id != current_plan_id:
            self._refuse(data, "plan_mismatch", "data.plan_id", "names another plan than the case's current plan")
            return
        if milestone in self.facts.milestones_of(plan_id):
            return  # verified again: its tranches were released the first time
        release = f"milestone:{milestone}"
        if not any(t.plan_id == plan_id and t.release == release and t.status != "cancelled"
                   for t in self.tranches.values()):
            self._refuse(data, "unknown_milestone", "data.milestone", "no tranche of the plan waits for this milestone")
            return
        self._record_milestone(plan_id, milestone)
        self._release_due()

    def confirm_delivery(self, data: dict[str, Any]) -> None:
        if self._refused_after_end(data):
            return
        plan_id, component_id, seq = data["plan_id"], data["component_id"], int(data["tranche_seq"])
        if self.plan_id is not None and self._refused_delivery(data, plan_id, component_id, seq):
            return
        # Before the grant, or before the tranche is ordered, the delivery waits for the order.
        self.facts.deliveries.setdefault(plan_id, {})[delivery_key(component_id, seq)] = {
            k: data.get(k) for k in ("vendor_id", "delivered_at", "invoice")}
        self.facts_changed = True
        self._apply_deliveries()

    def withdraw(self, data: dict[str, Any]) -> None:
        """Tranches not yet sent are cancelled and their budget released; money sent stays sent."""
        if self.facts.withdrawn:
            return
        self.facts.withdrawn = True
        self.facts_changed = True
        for tranche in self._ordered():
            if tranche.status in CANCELLABLE:
                self._cancel(tranche, data.get("reason") or "case_withdrawn")

    def update_beneficiary(self, data: dict[str, Any]) -> None:
        """Contact or payout changes apply to payments not sent yet (the dispatcher reads them at send time)."""
        if self.facts.grant is None:
            self.facts.grant = {"plan_id": None, "program_code": None, "payout": None, "contact": {}, "pending": True}
        if data.get("payout"):
            self.facts.grant["payout"] = data["payout"]
        if data.get("contact"):
            self.facts.grant["contact"] = data["contact"]
        self.facts_changed = True
        if data.get("payout") and self.plan_id is not None and not self.facts.withdrawn:
            self._release_due()  # a tranche waiting for a payout currency may now have one
            for tranche in self._ordered():
                # Known to have failed, and the payout it was sent to is not the new one: re-issue.
                if (tranche.status == "failed" and tranche.plan_id == self.plan_id
                        and tranche.sent_payout != data["payout"]):
                    self._reissue(tranche)

    # --- results from the payment provider -----------------------------------------------
    def payment_sent(self, key: TrancheKey, transfer_id: str | None) -> None:
        tranche = self.tranches[key]
        if tranche.status in ("released", "sending"):
            tranche.transfer_id = transfer_id
            self._set(tranche, "sent", PAYMENT_SENT)

    def payment_settled(self, key: TrancheKey) -> None:
        tranche = self.tranches[key]
        if tranche.status == "sending":
            # The provider took it, but we crashed before recording its answer: upstream still sees
            # payment.sent before payment.settled.
            self._set(tranche, "sent", PAYMENT_SENT)
        if tranche.status == "sent":
            if tranche.in_ledger and self.money is not None:
                grant_money.settle(self.money, tranche)
            tranche.hold_reason = None
            self._set(tranche, "settled", PAYMENT_SETTLED)
            self._notify("payment_settled", tranche)
            self._check_completed()

    def pickup_ready(self, key: TrancheKey, pickup_code: str) -> None:
        """A cash pickup is waiting at the provider's agents: the beneficiary gets its code by SMS."""
        self._notify("pickup_ready", self.tranches[key], pickup_code=pickup_code)

    def _notify(self, kind: str, tranche: Tranche, **params: Any) -> None:
        if tranche.modality != "cash":
            return  # a vendor's payment is no news for the beneficiary's phone
        contact = (self.facts.grant or {}).get("contact") or {}
        self.notices.append({
            "kind": kind, "case_id": self.case_id, "phone": contact.get("phone"),
            "language": contact.get("preferred_language"),
            "params": {"amount": tranche.paid_money().to_contract(), "reference": tranche.payment_ref,
                       "component_id": tranche.component_id, "tranche_seq": tranche.seq, **params},
        })

    def payment_failed(self, key: TrancheKey, reason: str) -> None:
        """The provider reported the payment failed (or refused it before executing anything): the
        money waits in the commitment; the caseworker (payment.failed upstream) and the beneficiary
        are told; a payout changed since it was sent is tried at once under a new reference."""
        tranche = self.tranches[key]
        if tranche.status in ("released", "sending", "sent"):
            tranche.failure_reason = reason
            if tranche.in_ledger and self.money is not None:
                grant_money.unpay(self.money, tranche)
            self._set(tranche, "failed", PAYMENT_FAILED, reason=reason)
            self._notify("payment_failed", tranche)
            payout = (self.facts.grant or {}).get("payout")
            if payout and tranche.sent_payout is not None and payout != tranche.sent_payout:
                self._reissue(tranche)

    def payment_unresolved(self, key: TrancheKey, message: str) -> None:
        """No outcome known by the deadline: nothing is resent; the tranche waits for finance."""
        tranche = self.tranches[key]
        if tranche.status in ("sending", "sent"):
            self._wait(tranche, PAYMENT_OUTCOME_UNRESOLVED, message)

    def settlement_mismatch(self, key: TrancheKey, message: str) -> None:
        """The provider settled another amount or currency than instructed: held for finance."""
        tranche = self.tranches[key]
        if tranche.status == "sending":
            self._set(tranche, "sent", PAYMENT_SENT)
        if tranche.status == "sent":
            self._wait(tranche, SETTLEMENT_MISMATCH, message)

    # --- what finance decided (four eyes checked there) ------------------------------------
    def finance_repay(self, key: TrancheKey, reason: str) -> str | None:
        """Finance confirmed with the provider that an attempt executed nothing: it ends as failed and
        the tranche is paid again at once, to the current payout, under the next attempt's reference.
        Returns why it cannot be done, or None."""
        tranche = self.tranches[key]
        unresolved = tranche.hold_reason == PAYMENT_OUTCOME_UNRESOLVED and tranche.status in ("sending", "sent")
        if not unresolved and tranche.status != "failed":
            return f"the payment is {tranche.status}, not failed nor of unknown outcome: nothing to pay again"
        if tranche.modality != "cash":
            return "a vendor's payment is re-issued with a corrected delivery, not by finance"
        if unresolved:
            tranche.failure_reason = f"confirmed not executed: {reason}"
            if tranche.in_ledger and self.money is not None:
                grant_money.unpay(self.money, tranche)
            tranche.hold_reason = None
            self._set(tranche, "failed", PAYMENT_FAILED, reason="not_executed_confirmed_by_finance")
        self._reissue(tranche)
        if tranche.status == "failed":
            return "the payment failed, but the payout cannot be paid again yet (see its tranche.held)"
        return None

    def finance_write_off(self, key: TrancheKey, reason: str) -> str | None:
        """Finance closed the doubt on a payment held for it (its outcome never told, or settled for
        another amount than instructed) by booking it paid as instructed; the difference, if any, is
        the loss or gain finance wrote off in its own books. Returns why it cannot be done, or None."""
        tranche = self.tranches[key]
        if tranche.hold_reason not in (PAYMENT_OUTCOME_UNRESOLVED, SETTLEMENT_MISMATCH) or \
                tranche.status not in ("sending", "sent"):
            return (f"the payment is {tranche.status}" + (f", held for {tranche.hold_reason}" if tranche.hold_reason
                                                           else "") + ": no doubt on it to write off")
        if tranche.status == "sending":
            self._set(tranche, "sent", PAYMENT_SENT)
        if tranche.in_ledger and self.money is not None:
            grant_money.settle(self.money, tranche)
        tranche.hold_reason = None
        self._set(tranche, "settled", PAYMENT_SETTLED, reason="written_off_by_finance")
        self._check_completed()
        return None

    # --- budget and rates ----------------------------------------------------------------
    def fund_held(self) -> bool:
        """Reserve the grant held for budget, if the budget now covers it; False when it still does not."""
        held = [t for t in self._ordered() if t.status == "held" and t.hold_reason == BUDGET_EXHAUSTED]
        if not held or self.money is None:
            return True
        total = sum(t.programme_minor or 0 for t in held)
        programme = held[0].programme_code
        if total > grant_money.available(self.money, programme):
            return False
        for tranche in held:
            grant_money.reserve(self.money, tranche)
            tranche.hold_reason = None
            self._move(tranche, "planned")
        self.statuses.append((GRANT_RESERVED, {
            "case_id": self.case_id, "status": "grant_reserved", "plan_id": self.plan_id, "programme_code": programme,
            "programme_amount": Money(total, held[0].programme_currency).to_contract()}, None))
        self._release_due()
        return True

    def retry_waiting(self) -> None:
        """After finance loaded rates: price what could not be priced, release what waited for a rate."""
        if self.money is None or self.facts.withdrawn:
            return
        unpriced = [t for t in self._ordered()
                    if t.status == "held" and t.hold_reason == EXCHANGE_RATE_MISSING and t.plan_id == self.plan_id]
        if unpriced:
            self._price_from_components(unpriced)
            if all(t.programme_minor is not None for t in unpriced):
                for t in unpriced:
                    t.hold_reason = None
                self._fund(unpriced, was_held=False, from_status="held")
        self._release_due()

    # --- answers for events refused or ignored -------------------------------------------
    def _refused_after_end(self, data: dict[str, Any]) -> bool:
        """Nothing changes a withdrawn case or a completed grant: such an event is answered, not applied."""
        if self.facts.withdrawn:
            self._refuse(data, "case_withdrawn", None, "the case was withdrawn: nothing more is paid")
            return True
        if self.facts.completed:
            self._refuse(data, "grant_completed", None, "every tranche of the grant is done: nothing more can change it")
            return True
        return False

    def _refused_delivery(self, data: dict[str, Any], plan_id: str, component_id: str, seq: int) -> bool:
        """Whether a delivery, arriving once the grant exists, names no in-kind tranche it can confirm
        (then it is answered)."""
        tranche = self.tranches.get((plan_id, component_id, seq))
        if plan_id != self.plan_id:
            if tranche is not None and tranche.status in _STILL_DELIVERABLE:
                return False
            self._refuse(data, "plan_mismatch", "data.plan_id", "names another plan than the case's current plan")
            return True
        if tranche is None or tranche.status == "cancelled":
            has_component = any(t.plan_id == plan_id and t.component_id == component_id and t.status != "cancelled"
                                for t in self.tranches.values())
            if has_component:
                self._refuse(data, "unknown_tranche", "data.tranche_seq", "the component has no such tranche")
            else:
                self._refuse(data, "unknown_tranche", "data.component_id", "the plan has no such component")
            return True
        if tranche.modality != "in_kind":
            self._refuse(data, "unknown_tranche", "data.component_id",
                         "is a cash component: deliveries confirm in-kind tranches only")
            return True
        return False

    def _refuse(self, data: dict[str, Any], code: str, field_path: str | None, message: str) -> None:
        reason = {"code": code, "field": field_path, "message": message}
        self.statuses.append((CASE_REJECTED, event_refused(self.case_id, [reason], data.get("upstream_event")), None))

    # --- internals ------------------------------------------------------------------------
    def _ordered(self) -> list[Tranche]:
        return [self.tranches[k] for k in sorted(self.tranches)]

    def _put(self, tranche: Tranche) -> None:
        self.tranches[tranche.key] = tranche
        self.changed.add(tranche.key)

    def _record_milestone(self, plan_id: str, milestone: str) -> None:
        verified = self.facts.milestones.setdefault(plan_id, [])
        if milestone not in verified:
            verified.append(milestone)
            self.facts_changed = True

    def _release_due(self) -> None:
        plan_id = self.plan_id
        if plan_id is None or self.facts.withdrawn:
            return
        verified = self.facts.milestones_of(plan_id)
        for tranche in self._ordered():
            if tranche.status != "planned" or tranche.plan_id != plan_id:
                continue
            due = tranche.release == ON_APPROVAL or (
                tranche.release.startswith("milestone:") and tranche.release.split(":", 1)[1] in verified
            )
            if due:
                if tranche.in_ledger and self.money is not None:
                    if not self._lock_payout(tranche):
                        continue
                    grant_money.release(self.money, tranche)
                self._set(tranche, "released", TRANCHE_RELEASED)
                if tranche.modality == "in_kind":
                    self._set(tranche, "ordered", INKIND_ORDERED)
        self._apply_deliveries()

    def _apply_deliveries(self) -> None:
        for tranche in self._ordered():
            delivery = self.facts.delivery_of(tranche.plan_id, tranche.component_id, tranche.seq)
            if tranche.status == "ordered" and delivery:
                if self._vendor_paid_after_match(tranche) and not self._matched(tranche, delivery):
                    continue
                self._set(tranche, "delivered", INKIND_DELIVERED)
        self._check_completed()

    def _vendor_paid_after_match(self, tranche: Tranche) -> bool:
        """In the ledger, with vendors known: the order is matched and the vendor paid for it."""
        return tranche.in_ledger and self.money is not None and self.money.vendors is not None

    def _matched(self, tranche: Tranche, delivery: dict[str, Any]) -> bool:
        """Three-way match of order, delivery and invoice; a match owes the vendor the invoice (the
        rest of the order back to the budget), a mismatch holds the tranche for finance, saying why."""
        assert self.money is not None
        order = purchase_order(tranche)
        invoice = delivery.get("invoice") or None
        parsed = None
        if invoice:
            try:
                amount = invoice.get("amount") or {}
                parsed = Invoice(str(invoice.get("number") or ""), Money.parse(amount["amount"], amount["currency"]))
            except (KeyError, TypeError, ValueError):
                parsed = None
        facts = Delivery(vendor_id=delivery.get("vendor_id") or "", plan_id=tranche.plan_id,
                         component_id=tranche.component_id, tranche_seq=tranche.seq,
                         delivered_at=str(delivery.get("delivered_at") or ""), invoice=parsed)
        others = {key for key, reference in self.money.invoices.items() if reference != tranche.reference}
        result = match(order, facts, others)
        if invoice and parsed is None:
            result = MatchResult(False, [{"code": "invoice_invalid", "field": "data.invoice",
                                          "message": "the invoice has no readable number and amount"}])
        if not result.matched:
            message = "; ".join(r["message"] for r in result.reasons)
            if tranche.hold_reason != INVOICE_MISMATCH:
                self.exceptions.append({
                    "kind": "invoice_mismatch", "provider": None, "reference": tranche.reference,
                    "case_id": self.case_id,
                    "details": {"purchase_order": order.order_number, "vendor_id": tranche.vendor_id,
                                "order_amount": order.order_amount.to_contract(), "invoice": invoice,
                                "delivered_by": delivery.get("vendor_id"), "reasons": result.reasons},
                    "dedupe_key": f"invoice_mismatch:{tranche.reference}:{(invoice or {}).get('number')}"})
            self._wait(tranche, INVOICE_MISMATCH, message, reasons=result.reasons)
            return False
        rest = result.remainder.minor if result.remainder is not None else 0
        if rest:
            grant_money.return_rest(self.money, tranche, rest)
        tranche.payout_minor = result.payable.minor
        number = invoice_key(tranche.vendor_id or "", parsed.number)
        self.money.invoices[number] = tranche.reference
        self.money.new_invoices.append((number[0], number[1], self.case_id, tranche.reference))
        tranche.hold_reason = None
        return True

    def _check_completed(self) -> None:
        tranches = self.tranches.values()
        if self.facts.completed or self.facts.withdrawn or not tranches:
            return
        if all(self._done(t) for t in tranches) and any(t.status != "cancelled" for t in tranches):
            self.facts.completed = True
            self.facts_changed = True
            paid: dict[str, int] = {}
            for t in tranches:
                if t.status in ("settled", "delivered"):
                    money = t.paid_money()
                    paid[money.currency] = paid.get(money.currency, 0) + money.minor
            self.statuses.append((GRANT_COMPLETED, {
                "case_id": self.case_id, "status": "grant_completed",
                "plan_id": (self.facts.grant or {}).get("plan_id"),
                "paid": [{"currency": cur, "amount_minor": minor} for cur, minor in sorted(paid.items())],
            }, None))

    def _done(self, tranche: Tranche) -> bool:
        """Settled or cancelled; an in-kind tranche delivered counts only where vendors are not paid
        through Reintegra (outside the ledger): otherwise its vendor must be paid (settled) first."""
        if tranche.status == "delivered":
            return tranche.pay_via is None
        return tranche.status in DONE

    def _cancel(self, tranche: Tranche, reason: str) -> None:
        """Cancel a tranche not paid yet; whatever it holds of the budget goes back."""
        if tranche.in_ledger and self.money is not None:
            if tranche.status == "planned" and tranche.reserve_id:
                grant_money.unreserve(self.money, tranche)
            elif tranche.status == "failed":
                grant_money.uncommit(self.money, tranche)
            elif tranche.status in _OWED:
                grant_money.give_back(self.money, tranche)
        self._set(tranche, "cancelled", TRANCHE_CANCELLED, reason=reason)

    def _programme_code(self) -> str | None:
        return (self.facts.grant or {}).get("program_code")

    def _price(self, tranches: list[Tranche], plan: dict[str, Any]) -> None:
        """Each tranche's share of its component converted into the programme's currency (what the
        budget reserves); left unpriced when no rate is loaded for the component's currency."""
        assert self.money is not None
        programme, currency = self._programme_code(), self.facts.grant["programme_currency"]
        by_key = {t.key: t for t in tranches}
        for component in plan["components"]:
            if component["amount"]["currency"] == currency:  # the common case: nothing to convert
                for tranche in tranches:
                    if tranche.component_id == component["component_id"]:
                        tranche.programme_code, tranche.programme_currency = programme, currency
                        tranche.programme_minor = tranche.amount_minor
                continue
            rate = self.money.rates.rate(component["amount"]["currency"], currency, self.money.today)
            amounts = converted_tranches(component, rate) if rate is not None else []
            for seq in {int(t["seq"]) for t in component["tranches"]}:
                tranche = by_key.get((plan["plan_id"], component["component_id"], seq))
                if tranche is not None:
                    tranche.programme_code, tranche.programme_currency = programme, currency
            for seq, _release, amount in amounts:
                tranche = by_key.get((plan["plan_id"], component["component_id"], seq))
                if tranche is not None:
                    tranche.programme_minor = amount.minor

    def _price_from_components(self, tranches: list[Tranche]) -> None:
        assert self.money is not None
        for tranche in tranches:
            rate = self.money.rates.rate(tranche.currency, tranche.programme_currency, self.money.today)
            if rate is not None:
                tranche.programme_minor = self._share_of(tranche, rate)
                self.changed.add(tranche.key)

    def _share_of(self, tranche: Tranche, rate) -> int:
        """The tranche's part of its component converted whole, so a component's tranches sum exactly
        to its converted amount (a tranche cut before components were kept is converted alone)."""
        if rate.from_currency == rate.to_currency:
            return tranche.amount_minor
        component = tranche.component()
        if component is None:
            return convert(tranche.money(), rate).minor
        return converted_tranche(component, tranche.seq, rate).minor

    def _fund(self, fresh: list[Tranche], *, was_held: bool, from_status: str | None = None) -> None:
        """Reserve new tranches against the budget, or hold them: nothing is ever reserved beyond the
        budget, and a grant never passes one approved before it that is still waiting."""
        if not fresh:
            return
        ledgered = [t for t in fresh if t.programme_code is not None and self.money is not None]
        for tranche in fresh:
            if tranche not in ledgered:
                self.transitions.append((tranche.key, from_status, tranche.status, None, self.cause, self.actor))
        if not ledgered:
            return
        assert self.money is not None
        programme, currency = ledgered[0].programme_code, ledgered[0].programme_currency
        total = sum(t.programme_minor or 0 for t in ledgered)
        reason, message = None, ""
        if any(t.programme_minor is None for t in ledgered):
            reason = EXCHANGE_RATE_MISSING
            message = f"no rate from {ledgered[0].currency} to {currency} is loaded: the grant waits for one"
        else:
            available = grant_money.available(self.money, programme)
            if was_held or programme in self.money.queued or total > available:
                reason = BUDGET_EXHAUSTED
                message = (f"the budget of {programme} has {Money(max(available, 0), currency)} available for a "
                           f"grant of {Money(total, currency)}" + (
                               ", and grants approved before it are waiting" if programme in self.money.queued
                               and total <= available else ""))
        if reason is None:
            for tranche in ledgered:
                grant_money.reserve(self.money, tranche)
                tranche.status = "planned"
                self.changed.add(tranche.key)
                self.transitions.append((tranche.key, from_status, "planned", None, self.cause, self.actor))
            return
        for tranche in ledgered:
            tranche.status, tranche.hold_reason = "held", reason
            self.changed.add(tranche.key)
            self.transitions.append((tranche.key, from_status, "held", reason, self.cause, self.actor))
        if reason == BUDGET_EXHAUSTED:
            self.money.queued.add(programme)
            self.hold_order = self.money.next_hold()
        self.statuses.append((GRANT_HELD, {
            "case_id": self.case_id, "status": "grant_held", "plan_id": self.plan_id, "programme_code": programme,
            "programme_amount": Money(total, currency).to_contract(),
            "reasons": [{"code": reason, "field": None, "message": message}]}, None))

    def _lock_payout(self, tranche: Tranche) -> bool:
        """Fix the payout currency, rate and amount of a due tranche; False (and the tranche waits,
        saying why) when the currency is unknown or has no rate: never a guess."""
        assert self.money is not None
        grant = self.facts.grant or {}
        payout = grant.get("payout") or {}
        if tranche.modality == "cash":
            country = payout_country(payout, grant.get("country"))
            payee = payout.get("provider") or payout.get("method") or "unknown"
            currency = currency_of_country(country)
            pay_via = payout.get("provider")
            if self.money.providers is not None:
                route = self.money.providers.route(payout, country)
                if route.provider is None:
                    return self._wait(tranche, route.reason or PROVIDER_UNKNOWN, route.message)
                # A wallet or account holds its provider's currency.
                payee, currency = route.provider.name, route.provider.currency
                pay_via = payee
        else:
            country = grant.get("country") or payout_country(payout, None)
            payee = f"vendor:{tranche.vendor_id}"
            currency = currency_of_country(country)
            pay_via = None  # vendors not registered here: their payment happens outside Reintegra
            if self.money.vendors is not None:
                reason, message = self.money.vendors.check(tranche.vendor_id, tranche.category)
                if reason is not None:
                    return self._wait(tranche, reason, message)
                vendor = self.money.vendors.get(tranche.vendor_id)
                currency = vendor.currency  # a vendor invoices and is paid in its own currency
                pay_via = vendor.bank.provider
                if self.money.providers is not None:
                    bank = {"method": "bank_transfer", "provider": vendor.bank.provider,
                            "account_number": vendor.bank.iban or vendor.bank.account_number}
                    route = self.money.providers.route(bank, vendor.country)
                    if route.provider is None:
                        return self._wait(tranche, route.reason or PROVIDER_UNKNOWN, route.message)
                    pay_via = route.provider.name
        if currency is None:
            return self._wait(tranche, PAYOUT_CURRENCY_UNKNOWN, f"no currency is known for the payout country {country}")
        rate = self.money.rates.rate(tranche.currency, currency, self.money.today)
        if rate is None:
            tranche.payout_currency = currency  # the currency it waits for (no amount until a rate is locked)
            return self._wait(tranche, EXCHANGE_RATE_MISSING,
                              f"no rate from {tranche.currency} to {currency} is loaded for {self.money.today}")
        payout_minor = self._share_of(tranche, rate)
        if tranche.programme_currency == currency and payout_minor > (tranche.programme_minor or 0):
            extra = payout_minor - (tranche.programme_minor or 0)  # a floating rate moved since approval
            if extra > grant_money.available(self.money, tranche.programme_code):
                return self._wait(tranche, BUDGET_EXHAUSTED, f"paying it today takes {Money(extra, currency)} "
                                  "more than was reserved, and the budget does not have it")
        tranche.payout_currency, tranche.payout_minor = currency, payout_minor
        tranche.rate, tranche.rate_source = rate.text, rate.source
        ledger_rate = self.money.rates.rate(tranche.programme_currency, currency, self.money.today)
        tranche.programme_rate = ledger_rate.text if ledger_rate is not None else rate.text
        tranche.rate_date = rate.effective_date.isoformat() if rate.effective_date else self.money.today.isoformat()
        tranche.payee, tranche.pay_via, tranche.hold_reason = payee, pay_via, None
        return True

    def _reissue(self, tranche: Tranche) -> None:
        """A failed payment tried again to the current payout, under a new reference linked to the
        old one; its money is already committed (it waits there since the failure)."""
        if tranche.modality != "cash" or (tranche.in_ledger and self.money is None):
            return
        if tranche.in_ledger:
            assert self.money is not None
            if not self._lock_payout(tranche):
                return  # waits, saying why (an unknown provider, no rate); a later update tries again
            if tranche.payout_currency == tranche.programme_currency:
                tranche.payout_minor = tranche.programme_minor  # what the budget was charged, no more
        tranche.attempt += 1
        tranche.sent_payout, tranche.transfer_id, tranche.failure_reason = None, None, None
        if tranche.in_ledger:
            grant_money.owe(self.money, tranche)
        self._set(tranche, "released", TRANCHE_RELEASED, reason="reissued")

    def _wait(self, tranche: Tranche, reason: str, message: str, *, reasons: list[dict[str, Any]] | None = None) -> bool:
        if tranche.hold_reason != reason:
            tranche.hold_reason = reason
            self.changed.add(tranche.key)
            self.transitions.append((tranche.key, tranche.status, tranche.status, reason, self.cause, self.actor))
            data = self._tranche_data(tranche, "tranche_held")
            data["reason"] = reason
            data["reasons"] = reasons or [{"code": reason, "field": None, "message": message}]
            self.statuses.append((TRANCHE_HELD, data, tranche))
        return False

    def _move(self, tranche: Tranche, status: str, reason: str | None = None) -> None:
        self.transitions.append((tranche.key, tranche.status, status, reason, self.cause, self.actor))
        tranche.status = status
        if status not in UNRELEASED:
            tranche.hold_reason = None  # released or cancelled: it waits for nothing any more
        self.changed.add(tranche.key)

    def _tranche_data(self, tranche: Tranche, status: str) -> dict[str, Any]:
        data = {
            "case_id": self.case_id, "status": status,
            "plan_id": tranche.plan_id, "component_id": tranche.component_id, "tranche_seq": tranche.seq,
            "modality": tranche.modality, "category": tranche.category,
            "amount": tranche.paid_money().to_contract(), "reference": tranche.payment_ref,
        }
        if tranche.previous_payment_ref:
            data["previous_reference"] = tranche.previous_payment_ref
            data["attempt"] = tranche.attempt
        programme_money = tranche.programme_money()
        if programme_money is not None:
            data["programme_amount"] = programme_money.to_contract()
        if tranche.payout_minor is not None and tranche.rate and tranche.payout_currency != tranche.currency:
            data["plan_amount"] = tranche.money().to_contract()
            data["exchange_rate"] = {"from": tranche.currency, "to": tranche.payout_currency, "rate": tranche.rate,
                                     "source": tranche.rate_source, "effective_date": tranche.rate_date}
        if tranche.programme_code:
            data["programme_code"] = tranche.programme_code
        if tranche.pay_via and tranche.status not in UNRELEASED:
            data["provider"] = tranche.pay_via
        if tranche.vendor_id:
            data["vendor_id"] = tranche.vendor_id
            if tranche.payout_minor is not None and tranche.status not in UNRELEASED:
                data["purchase_order"] = purchase_order_number(tranche.case_id, tranche.plan_id,
                                                               tranche.component_id, tranche.seq)
        return data

    def _set(self, tranche: Tranche, status: str, status_type: str, *, reason: str | None = None) -> None:
        self._move(tranche, status, reason)
        data = self._tranche_data(tranche, status_type.split(".", 1)[1].rsplit(".", 1)[0].replace(".", "_"))
        if reason:
            data["reason"] = reason
        self.statuses.append((status_type, data, tranche))


def purchase_order(tranche: Tranche) -> PurchaseOrder:
    """What was ordered from the vendor when the tranche was released, at its locked rate."""
    return PurchaseOrder(
        order_number=purchase_order_number(tranche.case_id, tranche.plan_id, tranche.component_id, tranche.seq),
        case_id=tranche.case_id, plan_id=tranche.plan_id, component_id=tranche.component_id,
        tranche_seq=tranche.seq, vendor_id=tranche.vendor_id or "", plan_amount=tranche.money(),
        order_amount=tranche.paid_money(),
        rate_text=tranche.rate if tranche.payout_currency != tranche.currency else None)
