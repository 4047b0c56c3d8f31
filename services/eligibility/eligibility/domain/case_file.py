"""What eligibility knows of one case (pure state, stored as one JSON document per case)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from eligibility.domain.grant import GrantItem


@dataclass
class CaseFile:
    case_id: str
    accepted: dict[str, Any] | None = None  # minimised case from intake
    returned: dict[str, Any] | None = None  # return.completed payload
    plan: dict[str, Any] | None = None  # the latest plan received for the grant decision
    contact: dict[str, Any] = field(default_factory=dict)
    decision: str | None = None  # the grant decision: approved | rejected | review_required
    grant: dict[str, Any] | None = None  # the approved grant: plan, program_code, programme_version, decided_by
    released: dict[str, GrantItem] = field(default_factory=dict)  # tranches released, by key
    milestones: dict[str, list[str]] = field(default_factory=dict)  # plan_id -> milestones verified
    review: dict[str, Any] | None = None  # the latest review (open or closed)
    withdrawn: bool = False

    @property
    def grant_plan_id(self) -> str | None:
        return self.grant["plan"]["plan_id"] if self.grant else None

    def to_json(self) -> dict[str, Any]:
        # Spelled out: dataclasses.asdict deep-copies recursively and shows up in profiles.
        # The approved plan is usually the latest plan too: stored once.
        plan = None if self.grant is not None and self.plan == self.grant["plan"] else self.plan
        return {"case_id": self.case_id, "accepted": self.accepted, "returned": self.returned, "plan": plan,
                "contact": self.contact, "decision": self.decision, "grant": self.grant,
                "released": {k: v.to_json() for k, v in self.released.items()},
                "milestones": self.milestones, "review": self.review, "withdrawn": self.withdrawn}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CaseFile:
        grant = data.get("grant")
        if grant is None and data.get("decision") == "approved" and data.get("decided_plan"):
            grant = {"plan": data["decided_plan"], "program_code": (data.get("accepted") or {}).get("program_code"),
                     "programme_version": None, "decided_by": "rules"}  # a file written before grants were kept
        return cls(
            case_id=data["case_id"], accepted=data.get("accepted"), returned=data.get("returned"),
            plan=data.get("plan") or (grant or {}).get("plan"), contact=data.get("contact") or {}, decision=data.get("decision"), grant=grant,
            released={k: GrantItem.from_json(v) for k, v in (data.get("released") or {}).items()},
            milestones=data.get("milestones") or {}, review=data.get("review"), withdrawn=bool(data.get("withdrawn")),
        )
