"""The disbursement aggregate for one case: every change to its grant goes through here (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reintegra.contract.status import (
    CASE_REJECTED,
    GRANT_COMPLETED,
    INKIND_DELIVERED,
    INKIND_ORDERED,
    PAYMENT_FAILED,
    PAYMENT_SENT,
    PAYMENT_SETTLED,
    TRANCHE_CANCELLED,
    TRANCHE_RELEASED,
    event_refused,
)

from disbursement.domain.ledger import (
    CANCELLABLE,
    DONE,
    ON_APPROVAL,
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


@dataclass
class CaseLedger:
    case_id: str
    facts: Facts
    tranches: dict[TrancheKey, Tranche]
    changed: set[TrancheKey] = field(default_factory=set)
    facts_changed: bool = False
    statuses: list[tuple[str, dict[str, Any], Tranche | None]] = field(default_factory=list)
    notices: list[dict[str, Any]] = field(default_factory=list)

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
        self.facts.grant = {
            "plan_id": plan["plan_id"], "program_code": data.get("program_code"),
            "payout": early_update.get("payout") or plan.get("payout"),
            "contact": {**(data.get("contact") or {}), **(early_update.get("contact") or {})},
        }
        self.facts.adopt_unplanned(plan["plan_id"])
        self.facts_changed = True
        for tranche in tranches_of_plan(self.case_id, plan):
            self._put(tranche)
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
        revised = {t.key: t for t in tranches_of_plan(self.case_id, plan)}
        for tranche in self._ordered():
            if tranche.status == "planned" and tranche.key not in revised:
                self._set(tranche, "cancelled", TRANCHE_CANCELLED, reason=reason)
        for key, tranche in revised.items():
            current = self.tranches.get(key)
            if current is None or current.status == "planned":
                self._put(tranche)
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
                self._set(tranche, "cancelled", TRANCHE_CANCELLED, reason=data.get("reason") or "case_withdrawn")

    def update_beneficiary(self, data: dict[str, Any]) -> None:
        """Contact or payout changes apply to payments not sent yet (the dispatcher reads them at send time)."""
        if self.facts.grant is None:
            self.facts.grant = {"plan_id": None, "program_code": None, "payout": None, "contact": {}, "pending": True}
        if data.get("payout"):
            self.facts.grant["payout"] = data["payout"]
        if data.get("contact"):
            self.facts.grant["contact"] = data["contact"]
        self.facts_changed = True

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
            self._set(tranche, "settled", PAYMENT_SETTLED)
            contact = (self.facts.grant or {}).get("contact") or {}
            self.notices.append({
                "kind": "payment_settled", "case_id": self.case_id, "phone": contact.get("phone"),
                "language": contact.get("preferred_language"),
                "params": {"amount": tranche.money().to_contract(), "reference": tranche.reference,
                           "component_id": tranche.component_id, "tranche_seq": tranche.seq},
            })
            self._check_completed()

    def payment_failed(self, key: TrancheKey, reason: str) -> None:
        tranche = self.tranches[key]
        if tranche.status in ("released", "sending", "sent"):
            tranche.failure_reason = reason
            self._set(tranche, "failed", PAYMENT_FAILED, reason=reason)

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
                self._set(tranche, "released", TRANCHE_RELEASED)
                if tranche.modality == "in_kind":
                    self._set(tranche, "ordered", INKIND_ORDERED)
        self._apply_deliveries()

    def _apply_deliveries(self) -> None:
        for tranche in self._ordered():
            if tranche.status == "ordered" and self.facts.delivery_of(tranche.plan_id, tranche.component_id, tranche.seq):
                self._set(tranche, "delivered", INKIND_DELIVERED)
        self._check_completed()

    def _check_completed(self) -> None:
        tranches = self.tranches.values()
        if self.facts.completed or self.facts.withdrawn or not tranches:
            return
        if all(t.status in DONE for t in tranches) and any(t.status != "cancelled" for t in tranches):
            self.facts.completed = True
            self.facts_changed = True
            paid: dict[str, int] = {}
            for t in tranches:
                if t.status in ("settled", "delivered"):
                    paid[t.currency] = paid.get(t.currency, 0) + t.amount_minor
            self.statuses.append((GRANT_COMPLETED, {
                "case_id": self.case_id, "status": "grant_completed",
                "plan_id": (self.facts.grant or {}).get("plan_id"),
                "paid": [{"currency": cur, "amount_minor": minor} for cur, minor in sorted(paid.items())],
            }, None))

    def _set(self, tranche: Tranche, status: str, status_type: str, *, reason: str | None = None) -> None:
        tranche.status = status
        self.changed.add(tranche.key)
        data = {
            "case_id": self.case_id, "status": status_type.split(".", 1)[1].rsplit(".", 1)[0].replace(".", "_"),
            "plan_id": tranche.plan_id, "component_id": tranche.component_id, "tranche_seq": tranche.seq,
            "modality": tranche.modality, "category": tranche.category,
            "amount": tranche.money().to_contract(), "reference": tranche.reference,
        }
        if tranche.vendor_id:
            data["vendor_id"] = tranche.vendor_id
        if reason:
            data["reason"] = reason
        self.statuses.append((status_type, data, tranche))
