"""One case's grant as disbursement sees it: tranches and their lifecycle (pure).

Tranche statuses: held → planned → released → (cash) sending → sent → settled | failed
                                            → (in kind) ordered → delivered
failed → released again (a re-issue, attempt 2, 3...) once the beneficiary's payout changed: a
failed payment's money waits in the programme's commitment, it is never lost nor paid twice.
`held`: approved, waiting for the programme's budget (not reserved); `planned`: reserved against the
budget, waiting for its release (on approval, or a milestone); a due tranche whose payout currency has
no rate stays `planned` with a `hold_reason` until finance loads one. held | planned | released |
ordered → cancelled when the case is withdrawn; held | planned → cancelled when a revision removes
the tranche or a replacement plan supersedes its plan.

A tranche is identified by (plan_id, component_id, seq): a replacement plan's tranches are new
tranches next to the old plan's, so what the old plan released can never be re-created or reset.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from reintegra.contract.tranches import component_tranches
from reintegra.money import Money

ON_APPROVAL = "on_approval"
CANCELLABLE = {"held", "planned", "released", "ordered", "failed"}
UNRELEASED = {"held", "planned"}
DONE = {"settled", "cancelled"}  # and "delivered" for in kind outside the ledger (CaseLedger._done)
# Milestones or deliveries stored, before any grant, by a version that did not record their plan:
# they belong to whichever plan the grant is approved with. Plan ids are never empty.
ANY_PLAN = ""

TrancheKey = tuple[str, str, int]  # (plan_id, component_id, seq)


@dataclass
class Tranche:
    case_id: str
    component_id: str
    seq: int
    plan_id: str
    modality: str  # cash | in_kind
    category: str
    currency: str
    amount_minor: int
    release: str  # on_approval | milestone:<name>
    vendor_id: str | None = None
    status: str = "planned"
    reference: str | None = None
    transfer_id: str | None = None
    failure_reason: str | None = None
    traceparent: str | None = None
    tracestate: str | None = None
    # The component it was cut from: its amount (plan currency) and every tranche's share ("1=60;2=40"),
    # so that the payout amount is this tranche's part of the converted component.
    component_minor: int | None = None
    component_shares: str | None = None
    # What the programme's budget reserved for it (None: the tranche predates the ledger, or its
    # plan's currency could not be converted yet).
    programme_code: str | None = None
    programme_currency: str | None = None
    programme_minor: int | None = None
    # What is paid, in the payout country's currency, at the rate locked when it was released.
    payout_currency: str | None = None
    payout_minor: int | None = None
    rate: str | None = None  # payout units per unit of the plan's currency, as locked
    programme_rate: str | None = None  # payout units per unit of the programme's (the ledger's conversion)
    rate_source: str | None = None
    rate_date: str | None = None
    payee: str | None = None  # the provider (cash) or vendor:<id> (in kind) the money is owed through
    hold_reason: str | None = None  # why a due or approved tranche waits (budget_exhausted, exchange_rate_missing)
    reserve_id: str | None = None  # the pending transfer that reserved it
    # Payment attempts: 1, then 2, 3... for each re-issue after a failure (see payment_ref).
    attempt: int = 1
    sent_payout: dict[str, Any] | None = None  # the payout the current attempt was sent to (frozen at claim)
    pay_via: str | None = None  # the provider the money goes through (the vendor's bank for in kind)

    @property
    def key(self) -> TrancheKey:
        return self.plan_id, self.component_id, self.seq

    @property
    def payment_ref(self) -> str | None:
        """The reference of the current payment attempt, sent to the provider (see attempt_reference)."""
        return attempt_reference(self.reference, self.attempt) if self.reference else None

    @property
    def previous_payment_ref(self) -> str | None:
        if self.reference is None or self.attempt == 1:
            return None
        return attempt_reference(self.reference, self.attempt - 1)

    @property
    def in_ledger(self) -> bool:
        return self.programme_minor is not None

    def component(self) -> dict[str, Any] | None:
        """The component it was cut from, as the contract writes it (None for tranches cut before this was kept)."""
        if self.component_minor is None or not self.component_shares:
            return None
        tranches = []
        for part in self.component_shares.split(";"):
            seq, _, share = part.partition("=")
            tranches.append({"seq": int(seq), "share_percent": share, "release": ""})
        return {"amount": Money(self.component_minor, self.currency).to_contract(), "tranches": tranches}

    def money(self) -> Money:
        """The plan's amount (the component's currency)."""
        return Money(self.amount_minor, self.currency)

    def paid_money(self) -> Money:
        """What is (or will be) paid: the payout amount once released, the plan's amount before."""
        if self.payout_minor is None or self.payout_currency is None:
            return self.money()
        return Money(self.payout_minor, self.payout_currency)

    def programme_money(self) -> Money | None:
        if self.programme_minor is None or self.programme_currency is None:
            return None
        return Money(self.programme_minor, self.programme_currency)


def payment_reference(case_id: str, plan_id: str, component_id: str, seq: int) -> str:
    """The idempotency reference sent to the provider: the same tranche always gets the same one."""
    digest = hashlib.sha256(f"{case_id}\x1f{plan_id}\x1f{component_id}\x1f{seq}".encode()).hexdigest()
    return f"RG-{digest[:24]}"


def attempt_reference(reference: str, attempt: int) -> str:
    """A payment attempt's reference: the tranche's own first, `REF-2`, `REF-3`... for re-issues
    (the ledger keeps the tranche's)."""
    return reference if attempt == 1 else f"{reference}-{attempt}"


def tranches_of_plan(case_id: str, plan: dict[str, Any]) -> list[Tranche]:
    result = []
    for component in plan["components"]:
        shares = ";".join(f"{int(t['seq'])}={t['share_percent']}" for t in sorted(component["tranches"],
                                                                                  key=lambda t: int(t["seq"])))
        total = Money.parse(component["amount"]["amount"], component["amount"]["currency"])
        for seq, release, amount in component_tranches(component):
            result.append(Tranche(
                case_id=case_id, component_id=component["component_id"], seq=seq,
                plan_id=plan["plan_id"], modality=component["modality"], category=component["category"],
                currency=amount.currency, amount_minor=amount.minor, release=release,
                vendor_id=component.get("vendor_id"),
                reference=payment_reference(case_id, plan["plan_id"], component["component_id"], seq),
                component_minor=total.minor, component_shares=shares,
            ))
    return result


@dataclass
class Facts:
    """What disbursement knows of a case beyond its tranches; may arrive before the grant."""

    grant: dict[str, Any] | None = None  # plan_id (the current plan), program_code, payout, contact
    milestones: dict[str, list[str]] = field(default_factory=dict)  # plan_id → milestones verified
    # plan_id → "component_id/seq" → delivery
    deliveries: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    withdrawn: bool = False
    completed: bool = False

    def milestones_of(self, plan_id: str) -> list[str]:
        return self.milestones.get(plan_id) or []

    def delivery_of(self, plan_id: str, component_id: str, seq: int) -> dict[str, Any] | None:
        return self.deliveries.get(plan_id, {}).get(delivery_key(component_id, seq))

    def adopt_unplanned(self, plan_id: str) -> None:
        """Milestones and deliveries stored without a plan become the approved plan's."""
        if ANY_PLAN in self.milestones:
            names = self.milestones.setdefault(plan_id, [])
            names += [m for m in self.milestones.pop(ANY_PLAN) if m not in names]
        if ANY_PLAN in self.deliveries:
            self.deliveries[plan_id] = {**self.deliveries.pop(ANY_PLAN), **self.deliveries.get(plan_id, {})}

    def to_json(self) -> dict[str, Any]:
        # Spelled out: dataclasses.asdict deep-copies recursively and shows up in profiles.
        return {"grant": self.grant, "milestones": self.milestones, "deliveries": self.deliveries,
                "withdrawn": self.withdrawn, "completed": self.completed}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Facts:
        # Facts written before milestones and deliveries were kept per plan hold a plain list of
        # milestones and deliveries keyed "component_id/seq": they belong to the grant's current
        # plan (ids cannot contain "/", so a key with one is an old delivery key, never a plan id).
        grant = data.get("grant")
        legacy_plan = (grant or {}).get("plan_id") or ANY_PLAN
        milestones = data.get("milestones") or {}
        if isinstance(milestones, list):
            milestones = {legacy_plan: milestones}
        deliveries = data.get("deliveries") or {}
        if any("/" in key for key in deliveries):
            deliveries = {legacy_plan: deliveries}
        return cls(grant=grant, milestones=milestones, deliveries=deliveries,
                   withdrawn=data.get("withdrawn", False), completed=data.get("completed", False))


def delivery_key(component_id: str, seq: int) -> str:
    return f"{component_id}/{seq}"
