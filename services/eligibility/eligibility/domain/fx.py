"""Converting plan amounts into a programme's currency, to check them against its limits (pure).

XOF and XAF are pegged to the euro at 655.957 (fixed by treaty); other currencies need a rate
loaded by finance (the ledger issue brings the rates table). Without a rate there is no guess:
`convert` returns None and the plan goes to a reviewer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from reintegra.money import Money, minor_units

PEGGED_PER_EUR: Mapping[str, Decimal] = {"XOF": Decimal("655.957"), "XAF": Decimal("655.957")}


@dataclass(frozen=True)
class Rates:
    """Units of a currency per one euro: the pegs, plus any rates loaded (currency -> per EUR)."""

    per_eur: Mapping[str, Decimal] = field(default_factory=lambda: dict(PEGGED_PER_EUR))

    def _per_eur(self, currency: str) -> Decimal | None:
        return Decimal(1) if currency == "EUR" else self.per_eur.get(currency)

    def convert(self, money: Money, to_currency: str) -> Money | None:
        """`money` in `to_currency`, rounded half up to its minor unit; None without a rate."""
        if money.currency == to_currency:
            return money
        source, target = self._per_eur(money.currency), self._per_eur(to_currency)
        if source is None or target is None:
            return None
        exact = money.amount / source * target
        quantum = Decimal(1).scaleb(-minor_units(to_currency))
        rounded = exact.quantize(quantum, rounding=ROUND_HALF_UP)
        return Money(int(rounded.scaleb(minor_units(to_currency))), to_currency)


PEGS_ONLY = Rates()
