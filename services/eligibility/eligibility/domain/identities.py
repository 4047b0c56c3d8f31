"""Who has already been assisted: the approved grants of each identity hash (pure).

Intake sends keyed hashes of the normalised document number and of source + person_id, never
the raw values. The caller loads, under a lock per hash, the approved cases of every hash a
batch may decide, and this book answers and records approvals as the batch goes, so two cases
of one person in the same batch see each other too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def identity_hashes(accepted: Mapping[str, Any] | None) -> list[str]:
    identity = (accepted or {}).get("identity") or {}
    return sorted({h for h in (identity.get("document"), identity.get("person")) if isinstance(h, str) and h})


class IdentityBook:
    def __init__(self, approved: Mapping[str, Iterable[str]] | None = None) -> None:
        self._cases: dict[str, set[str]] = {h: set(cases) for h, cases in (approved or {}).items()}
        self.new_approvals: list[tuple[str, str, str]] = []  # (hash, case_id, program_code) to store

    def other_cases(self, case_id: str, hashes: Iterable[str]) -> list[str]:
        return sorted({c for h in hashes for c in self._cases.get(h, ()) if c != case_id})

    def approve(self, case_id: str, hashes: Iterable[str], program_code: str) -> None:
        for h in hashes:
            cases = self._cases.setdefault(h, set())
            if case_id not in cases:
                cases.add(case_id)
                self.new_approvals.append((h, case_id, program_code))
