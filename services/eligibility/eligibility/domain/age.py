"""A beneficiary's age in whole years on a given day (pure)."""

from __future__ import annotations

from datetime import date


def age_on(born: date, on: date) -> int:
    """Completed years on `on`: the birthday itself counts. Someone born on 29 February has their
    birthday on 1 March in years without one (they are not a year older before the day has passed)."""
    years = on.year - born.year
    if (on.month, on.day) < (born.month, born.day):
        years -= 1
    return years
