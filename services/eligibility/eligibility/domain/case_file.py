"""What eligibility knows of one case, and how each incoming event changes it (pure)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
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
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CaseFile:
        return cls(**data)
