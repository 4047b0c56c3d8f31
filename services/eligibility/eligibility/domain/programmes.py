"""Programme rules, read from a config file (not code)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reintegra.money import Money


@dataclass(frozen=True)
class Programme:
    code: str
    name: str
    ceilings: Mapping[str, Money]
    require_return_to_origin: bool
    review_vulnerabilities: frozenset[str]


class ProgrammeConfigError(ValueError):
    pass


VULNERABILITIES = frozenset({
    "victim_of_trafficking", "unaccompanied_minor", "medical_condition", "disability", "single_parent", "elderly",
})


def _review_list(code: str, value: Any) -> frozenset[str]:
    # A bare string would otherwise become a set of letters and silently disable every review.
    if value is None:
        return frozenset()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ProgrammeConfigError(f"programme {code}: review_vulnerabilities must be a list of names")
    unknown = set(value) - VULNERABILITIES
    if unknown:
        raise ProgrammeConfigError(f"programme {code}: unknown vulnerabilities {sorted(unknown)}")
    return frozenset(value)


def _flag(code: str, name: str, value: Any, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ProgrammeConfigError(f"programme {code}: {name} must be true or false")
    return value


def programmes_from_config(config: Mapping[str, Any]) -> dict[str, Programme]:
    try:
        result = {}
        for code, spec in config["programmes"].items():
            ceilings = {cur: Money.parse(str(amount), cur) for cur, amount in (spec.get("ceilings") or {}).items()}
            result[code] = Programme(
                code=code,
                name=spec.get("name", code),
                ceilings=ceilings,
                require_return_to_origin=_flag(code, "require_return_to_origin",
                                               spec.get("require_return_to_origin"), True),
                review_vulnerabilities=_review_list(code, spec.get("review_vulnerabilities")),
            )
        return result
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise ProgrammeConfigError(f"invalid programme config: {exc}") from exc
