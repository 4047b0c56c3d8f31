"""Keeping personal data out of logs, traces and files people read."""

from __future__ import annotations


def mask_phone(phone: str | None) -> str | None:
    """Keep the country prefix and the last 3 digits: enough to tell numbers apart, not to call."""
    if not phone:
        return phone
    return phone[:4] + "•" * max(len(phone) - 7, 0) + phone[-3:]
