"""What eligibility knows of one case, and how each incoming event changes it (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class CaseFile:
    case_id: str
    accepted: dict[str, Any] | None = None  # minimised case from intake
    returned: dict[str, Any] | None = None  # return.completed payload
    plan: dict[str, Any] | None = None  # latest plan.approved payload
    contact: dict[str, Any] = field(default_factory=dict)
    decision: str | None = None  # approved | rejected | review_required
    decided_plan: dict[str, Any] | None = None
    withdrawn: bool = False

    def to_json(self) -> dict[str, Any]:
        # Spelled out: dataclasses.asdict deep-copies recursively and shows up in profiles.
        return {"case_id": self.case_id, "accepted": self.accepted, "returned": self.returned, "plan": self.plan,
                "contact": self.contact, "decision": self.decision, "decided_plan": self.decided_plan,
                "withdrawn": self.withdrawn}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CaseFile:
        return cls(**data)
