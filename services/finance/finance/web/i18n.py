"""The console's languages: a Python catalog per language and part (the shell's ``messages/en.py``
and ``messages/fr.py``, the finance pages' ``messages/finance_en.py`` and ``finance_fr.py``), keys
such as ``"login.title"`` mapped to text with ``str.format`` fields (``"Welcome, {name}."``); each
key lives in exactly one part.

The user's choice (kept in the session, or before sign-in in the ``reintegra_lang`` cookie) wins,
then the browser's Accept-Language, then English. A key missing from a catalog falls back to
English, then to the key itself, so that a page never fails on a missing string
(``test_finance_web_i18n`` checks that both catalogs have the same keys).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from .messages import en, finance_en, finance_fr, fr


def _merged(*parts: Mapping[str, str]) -> dict[str, str]:
    merged: dict[str, str] = {}
    for part in parts:
        twice = merged.keys() & part.keys()
        if twice:
            raise ValueError(f"message keys defined twice: {sorted(twice)}")
        merged.update(part)
    return merged


DEFAULT_LOCALE = "en"
CATALOGS: Mapping[str, Mapping[str, str]] = {
    "en": _merged(en.MESSAGES, finance_en.MESSAGES),
    "fr": _merged(fr.MESSAGES, finance_fr.MESSAGES),
}
SUPPORTED_LOCALES: tuple[str, ...] = tuple(CATALOGS)
# Each language named in itself, for the language switch.
LANGUAGE_NAMES = {"en": "English", "fr": "Français"}

log = logging.getLogger("finance.web")

Translate = Callable[..., str]


def supported_locale(value: object) -> str | None:
    """``value`` as one of the supported locales ("fr-FR" -> "fr"), or None."""
    if not isinstance(value, str) or not value or len(value) > 35:
        return None
    language = value.strip().replace("_", "-").split("-", 1)[0].lower()
    return language if language in CATALOGS else None


def negotiate(accept_language: str | None) -> str | None:
    """The best supported locale for an Accept-Language header, or None."""
    choices: list[tuple[float, int, str]] = []
    for position, part in enumerate((accept_language or "")[:500].split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        locale = supported_locale(tag)
        if locale and quality > 0:
            choices.append((-quality, position, locale))
    return min(choices)[2] if choices else None


def translate(locale: str, key: str, /, **fields: object) -> str:
    text = CATALOGS.get(locale, {}).get(key)
    if text is None:
        text = CATALOGS[DEFAULT_LOCALE].get(key)
        log.warning("no text for %r in %s", key, locale)
    if text is None:
        return key
    try:
        return text.format(**fields) if fields else text
    except (KeyError, IndexError, ValueError):
        log.warning("text %r in %s does not fit its fields", key, locale)
        return text


def translator(locale: str) -> Translate:
    """``t("key", field=value)`` in ``locale``: what templates and routes call."""

    def t(key: str, /, **fields: object) -> str:
        return translate(locale, key, **fields)

    return t
