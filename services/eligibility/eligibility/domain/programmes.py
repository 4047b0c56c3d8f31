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


def programmes_from_config(config: Mapping[str, Any]) -> dict[str, Programme]:
    try:
        result = {}
        for code, spec in config["programmes"].items():
            ceilings = {cur: Money.parse(str(amount), cur) for cur, amount in (spec.get("ceilings") or {}).items()}
            result[code] = Programme(
                code=code,
                name=spec.get("name", code),
                ceilings=ceilings,
                require_return_to_origin=bool(spec.get("require_return_to_origin", True)),
                review_vulnerabilities=frozenset(spec.get("review_vulnerabilities") or ()),
            )
        return result
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise ProgrammeConfigError(f"invalid programme config: {exc}") from exc
