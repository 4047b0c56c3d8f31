"""Splitting a component amount into tranches: the shared rule (largest remainder), re-exported."""

from reintegra.money import split_minor

__all__ = ["split_minor"]
