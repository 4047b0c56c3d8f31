"""One case's grant as disbursement sees it: tranches and their lifecycle (pure).

Tranche statuses: planned → released → (cash) sending → sent → settled | failed
                                     → (in kind) ordered → delivered
and planned | released | ordered → cancelled when the case is withdrawn.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from reintegra.money import Money

from disbursement.domain.split import split_minor

ON_APPROVAL = "on_approval"
CANCELLABLE = {"planned", "released", "ordered"}
DONE = {"settled", "delivered", "cancelled"}


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

    @property
    def key(self) -> tuple[str, int]:
        return self.component_id, self.seq

    def money(self) -> Money:
        return Money(self.amount_minor, self.currency)


def payment_reference(case_id: str, plan_id: str, component_id: str, seq: int) -> str:
    """The idempotency reference sent to the provider: the same tranche always gets the same one."""
    digest = hashlib.sha256(f"{case_id}\x1f{plan_id}\x1f{component_id}\x1f{seq}".encode()).hexdigest()
    return f"RG-{digest[:24]}"


def tranches_of_plan(case_id: str, plan: dict[str, Any]) -> list[Tranche]:
    result = []
    for component in plan["components"]:
        total = Money.parse(component["amount"]["amount"], component["amount"]["currency"])
        specs = sorted(component["tranches"], key=lambda t: t["seq"])
        parts = split_minor(total.minor, [str(t["share_percent"]) for t in specs])
        for spec, minor in zip(specs, parts, strict=False):
            result.append(Tranche(
                case_id=case_id, component_id=component["component_id"], seq=int(spec["seq"]),
                plan_id=plan["plan_id"], modality=component["modality"], category=component["category"],
                currency=total.currency, amount_minor=minor, release=spec["release"],
                vendor_id=component.get("vendor_id"),
                reference=payment_reference(case_id, plan["plan_id"], component["component_id"], int(spec["seq"])),
            ))
    return result


@dataclass
class Facts:
    """What disbursement knows of a case beyond its tranches; may arrive before the grant."""

    grant: dict[str, Any] | None = None  # plan_id, program_code, payout, contact, status
    milestones: list[str] = field(default_factory=list)
    deliveries: dict[str, dict[str, Any]] = field(default_factory=dict)  # "component_id/seq" → delivery
    withdrawn: bool = False
    completed: bool = False

    def to_json(self) -> dict[str, Any]:
        # Spelled out: dataclasses.asdict deep-copies recursively and shows up in profiles.
        return {"grant": self.grant, "milestones": self.milestones, "deliveries": self.deliveries,
                "withdrawn": self.withdrawn, "completed": self.completed}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Facts:
        return cls(**data)


def delivery_key(component_id: str, seq: int) -> str:
    return f"{component_id}/{seq}"
