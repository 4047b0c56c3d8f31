"""The three wire dialects; each module has ROUTES, `render` and `callback_body`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import bank, momo, pickup

DIALECTS = {"momo": momo, "bank": bank, "pickup": pickup}
ROUTES = [*momo.ROUTES, *bank.ROUTES, *pickup.ROUTES]


def callback_renderer(dialect: str) -> Callable[..., dict[str, Any]]:
    """`renderer(transfer, stale=False)` → the callback JSON of that dialect."""
    return DIALECTS[dialect].callback_body


__all__ = ["DIALECTS", "ROUTES", "callback_renderer"]
