"""Splitting a component amount into tranches in exact integer minor units."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from fractions import Fraction


def split_minor(total_minor: int, shares_percent: Sequence[Decimal | int | str]) -> list[int]:
    """Largest-remainder apportionment: each part is total × share rounded to a minor unit, and the
    parts sum exactly to the total (the contract's rule). Ties go to the earlier tranche."""
    # Fractions are exact: Decimal's 28 digits would round away the remainders of long amounts.
    shares = [Fraction(Decimal(str(s))) for s in shares_percent]
    if sum(shares) != 100:
        raise ValueError(f"shares must sum to 100, got {float(sum(shares))}")
    exact = [total_minor * s / 100 for s in shares]
    parts = [int(e) for e in exact]  # floor: amounts are positive
    leftover = total_minor - sum(parts)
    by_remainder = sorted(range(len(shares)), key=lambda i: (-(exact[i] - parts[i]), i))
    for i in by_remainder[:leftover]:
        parts[i] += 1
    return parts
