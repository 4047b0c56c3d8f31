"""A plan component's tranches in exact minor units, as the contract defines them.

"The tranche amount is the component amount times the share, rounded to the minor unit so that
the tranches of a component sum exactly to its amount": eligibility judges a grant with these
amounts and disbursement pays them, so both take them from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from reintegra.money import Money, split_minor


class TrancheAmount(NamedTuple):
    seq: int
    release: str  # on_approval | milestone:<name>
    amount: Money


def component_tranches(component: Mapping[str, Any]) -> list[TrancheAmount]:
    """The component's tranches in seq order (largest-remainder split of its amount)."""
    total = Money.parse(component["amount"]["amount"], component["amount"]["currency"])
    specs = sorted(component["tranches"], key=lambda t: t["seq"])
    parts = split_minor(total.minor, [str(t["share_percent"]) for t in specs])
    return [TrancheAmount(int(spec["seq"]), spec["release"], Money(minor, total.currency))
            for spec, minor in zip(specs, parts, strict=True)]
