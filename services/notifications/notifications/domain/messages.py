"""Rendering a notice into the text of an SMS in the beneficiary's language (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reintegra.money import Money


@dataclass(frozen=True)
class Templates:
    fallback_language: str
    by_kind: Mapping[str, Mapping[str, str]]


class UnknownNoticeKind(ValueError):
    pass


def format_money(money: Mapping[str, str], language: str) -> str:
    amount = Money.parse(money["amount"], money["currency"]).format_amount()
    whole, _, cents = amount.partition(".")
    grouped = f"{int(whole):,}"
    if language == "fr":
        grouped = grouped.replace(",", "\u202f")  # French groups with a narrow no-break space
        return f"{grouped}{',' + cents if cents else ''} {money['currency']}"
    return f"{grouped}{'.' + cents if cents else ''} {money['currency']}"


def render(templates: Templates, kind: str, language: str | None, case_id: str, params: Mapping[str, Any]) -> tuple[str, str]:
    """(language actually used, text)."""
    texts = templates.by_kind.get(kind)
    if texts is None:
        raise UnknownNoticeKind(f"no SMS template for notice kind {kind!r}")
    used = language if language in texts else templates.fallback_language
    values = {"case_id": case_id}
    for name, value in params.items():
        values[name] = format_money(value, used) if isinstance(value, Mapping) and "currency" in value else value
    return used, texts[used].format(**values)
