"""What a grant is made of, tranche by tranche, as eligibility tracks it (pure).

Eligibility judges a revision on the whole grant, so it keeps the tranches already released
(their amounts can no longer change) and applies disbursement's rule: a revision changes only
tranches not released yet; a replacement plan (another plan_id) cancels the old plan's
unreleased tranches. What the grant commits is then the released tranches plus the new plan's
tranches that are not released yet — the amount the ceiling must cover.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from reintegra.contract.tranches import component_tranches
from reintegra.money import Money

ON_APPROVAL = "on_approval"


@dataclass(frozen=True)
class GrantItem:
    plan_id: str
    component_id: str
    seq: int
    modality: str  # cash | in_kind
    category: str
    currency: str
    amount_minor: int
    release: str  # on_approval | milestone:<name>

    @property
    def key(self) -> str:
        return f"{self.plan_id}\x1f{self.component_id}\x1f{self.seq}"

    @property
    def money(self) -> Money:
        return Money(self.amount_minor, self.currency)

    def to_json(self) -> dict[str, Any]:
        # Spelled out: dataclasses.asdict recurses and deep-copies, and this runs for every case saved.
        return {"plan_id": self.plan_id, "component_id": self.component_id, "seq": self.seq,
                "modality": self.modality, "category": self.category, "currency": self.currency,
                "amount_minor": self.amount_minor, "release": self.release}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GrantItem:
        return cls(**data)


def plan_items(plan: Mapping[str, Any]) -> list[GrantItem]:
    """Every tranche of a plan, with the contract's split (the one disbursement pays)."""
    return [GrantItem(plan["plan_id"], component["component_id"], seq, component["modality"], component["category"],
                      amount.currency, amount.minor, release)
            for component in plan["components"] for seq, release, amount in component_tranches(component)]


def is_due(item: GrantItem, milestones: Mapping[str, Iterable[str]]) -> bool:
    """On approval, or its milestone verified for its own plan (milestones count per plan)."""
    if item.release == ON_APPROVAL:
        return True
    name = item.release.split(":", 1)[1] if item.release.startswith("milestone:") else None
    return name is not None and name in set(milestones.get(item.plan_id, ()))


def grant_after(released: Mapping[str, GrantItem], plan: Mapping[str, Any]) -> list[GrantItem]:
    """The grant's tranches if `plan` is applied: what is released stays, the plan fills the rest."""
    return list(released.values()) + [item for item in plan_items(plan) if item.key not in released]


def newly_due(released: Mapping[str, GrantItem], plan: Mapping[str, Any],
              milestones: Mapping[str, Iterable[str]]) -> list[GrantItem]:
    """Tranches of `plan` that become released now (as disbursement will release them)."""
    return [item for item in plan_items(plan) if item.key not in released and is_due(item, milestones)]


def totals_by_currency(items: Iterable[GrantItem], modality: str | None = None) -> dict[str, int]:
    totals: dict[str, int] = {}
    for item in items:
        if modality is None or item.modality == modality:
            totals[item.currency] = totals.get(item.currency, 0) + item.amount_minor
    return totals
