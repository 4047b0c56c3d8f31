"""The disbursement aggregate for one case: every change to its grant goes through here (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reintegra.contract.status import (
    GRANT_COMPLETED,
    INKIND_DELIVERED,
    INKIND_ORDERED,
    PAYMENT_FAILED,
    PAYMENT_SENT,
    PAYMENT_SETTLED,
    TRANCHE_CANCELLED,
    TRANCHE_RELEASED,
)

from disbursement.domain.ledger import (
    CANCELLABLE,
    DONE,
    ON_APPROVAL,
    Facts,
    Tranche,
    delivery_key,
    tranches_of_plan,
)


@dataclass
class CaseLedger:
    case_id: str
    facts: Facts
    tranches: dict[tuple[str, int], Tranche]
    changed: set[tuple[str, int]] = field(default_factory=set)
    facts_changed: bool = False
    statuses: list[tuple[str, dict[str, Any], Tranche | None]] = field(default_factory=list)
    notices: list[dict[str, Any]] = field(default_factory=list)

    # --- events from eligibility ---------------------------------------------------------
    def approve(self, data: dict[str, Any]) -> None:
        early_update = self.facts.grant or {}  # a beneficiary update that came before the grant
        if (self.facts.grant is not None and not early_update.get("pending")) or self.facts.withdrawn:
            return
        plan = data["plan"]
        self.facts.grant = {
            "plan_id": plan["plan_id"], "program_code": data.get("program_code"),
            "payout": early_update.get("payout") or plan.get("payout"),
            "contact": {**(data.get("contact") or {}), **(early_update.get("contact") or {})},
        }
        self.facts_changed = True
        for tranche in tranches_of_plan(self.case_id, plan):
            self._put(tranche)
        self._release_due()

    def revise(self, data: dict[str, Any]) -> None:
        """A revised plan changes only tranches not released yet."""
        if self.facts.grant is None or self.facts.withdrawn:
            return
        plan = data["plan"]
        self.facts.grant["plan_id"] = plan["plan_id"]
        if plan.get("payout"):
            self.facts.grant["payout"] = plan["payout"]
        self.facts_changed = True
        revised = {t.key: t for t in tranches_of_plan(self.case_id, plan)}
        for key, tranche in self.tranches.items():
            if tranche.status == "planned" and key not in revised:
                self._set(tranche, "cancelled", TRANCHE_CANCELLED, reason="removed_by_revision")
        for key, tranche in revised.items():
            current = self.tranches.get(key)
            if current is None or current.status == "planned":
                self._put(tranche)
        self._release_due()

    def verify_milestone(self, data: dict[str, Any]) -> None:
        if data["milestone"] not in self.facts.milestones:
            self.facts.milestones.append(data["milestone"])
            self.facts_changed = True
        self._release_due()

    def confirm_delivery(self, data: dict[str, Any]) -> None:
        key = delivery_key(data["component_id"], int(data["tranche_seq"]))
        self.facts.deliveries[key] = {k: data.get(k) for k in ("vendor_id", "delivered_at", "invoice")}
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
    def payment_sent(self, key: tuple[str, int], transfer_id: str | None) -> None:
        tranche = self.tranches[key]
        if tranche.status in ("released", "sending"):
            tranche.transfer_id = transfer_id
            self._set(tranche, "sent", PAYMENT_SENT)

    def payment_settled(self, key: tuple[str, int]) -> None:
        tranche = self.tranches[key]
        if tranche.status in ("sending", "sent"):
            self._set(tranche, "settled", PAYMENT_SETTLED)
            contact = (self.facts.grant or {}).get("contact") or {}
            self.notices.append({
                "kind": "payment_settled", "case_id": self.case_id, "phone": contact.get("phone"),
                "language": contact.get("preferred_language"),
                "params": {"amount": tranche.money().to_contract(), "reference": tranche.reference,
                           "component_id": tranche.component_id, "tranche_seq": tranche.seq},
            })
            self._check_completed()

    def payment_failed(self, key: tuple[str, int], reason: str) -> None:
        tranche = self.tranches[key]
        if tranche.status in ("released", "sending", "sent"):
            tranche.failure_reason = reason
            self._set(tranche, "failed", PAYMENT_FAILED, reason=reason)

    # --- internals ------------------------------------------------------------------------
    def _ordered(self) -> list[Tranche]:
        return [self.tranches[k] for k in sorted(self.tranches)]

    def _put(self, tranche: Tranche) -> None:
        self.tranches[tranche.key] = tranche
        self.changed.add(tranche.key)

    def _release_due(self) -> None:
        if self.facts.grant is None or self.facts.withdrawn or self.facts.grant.get("pending"):
            return
        for tranche in self._ordered():
            if tranche.status != "planned":
                continue
            due = tranche.release == ON_APPROVAL or (
                tranche.release.startswith("milestone:") and tranche.release.split(":", 1)[1] in self.facts.milestones
            )
            if due:
                self._set(tranche, "released", TRANCHE_RELEASED)
                if tranche.modality == "in_kind":
                    self._set(tranche, "ordered", INKIND_ORDERED)
        self._apply_deliveries()

    def _apply_deliveries(self) -> None:
        for tranche in self._ordered():
            if tranche.status == "ordered" and delivery_key(tranche.component_id, tranche.seq) in self.facts.deliveries:
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
