"""Splitting a component amount into tranches in exact integer minor units."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal


def split_minor(total_minor: int, shares_percent: Sequence[Decimal | int | str]) -> list[int]:
    """Largest-remainder apportionment: each part is total × share rounded to a minor unit, and the
    parts sum exactly to the total (the contract's rule). Ties go to the earlier tranche."""
    shares = [Decimal(str(s)) for s in shares_percent]
    # Scale every share to an integer so all arithmetic is exact integer arithmetic: Decimal's
    # 28 digits would round away the remainders of long amounts, and Fractions are slow.
    decimals = max(-min(s.as_tuple().exponent for s in shares), 0)
    scaled = [int(s.scaleb(decimals)) for s in shares]
    whole = 100 * 10**decimals
    if sum(scaled) != whole:
        raise ValueError(f"shares must sum to 100, got {sum(shares)}")
    parts, remainders = zip(*(divmod(total_minor * share, whole) for share in scaled), strict=True)
    parts = list(parts)
    leftover = total_minor - sum(parts)
    by_remainder = sorted(range(len(shares)), key=lambda i: (-remainders[i], i))
    for i in by_remainder[:leftover]:
        parts[i] += 1
    return parts
